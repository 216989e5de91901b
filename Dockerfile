# syntax=docker/dockerfile:1
# pricefleet: one image for every process (`pricefleet api | worker | scheduler | autoscale |
# run | db upgrade`). Build: docker build -t pricefleet:latest .
# The builder makes a wheel and installs it with its dependencies into a virtualenv; the
# runtime stage copies only that virtualenv and the recipes, and runs as an unprivileged user.
# --build-arg BROWSER=true adds Chromium and Playwright, for recipes with `fetch: mode: browser`
# (demo-spa); without it those sites' jobs fail with a clear error and the rest crawl.

ARG PYTHON_VERSION=3.11
ARG BROWSER=false

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ARG BROWSER
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every dependency ships manylinux wheels for CPython 3.11 (asyncpg, orjson, selectolax,
# hiredis...), so no compiler is needed.
RUN python -m venv /opt/pricefleet \
    && /opt/pricefleet/bin/pip install --upgrade pip
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/pricefleet/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && wheel="$(ls /wheels/pricefleet-*.whl)" \
    && if [ "$BROWSER" = "true" ]; then wheel="$wheel[browser]"; fi \
    && /opt/pricefleet/bin/pip install "$wheel" \
    && /opt/pricefleet/bin/pricefleet --help >/dev/null

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG BROWSER
LABEL org.opencontainers.image.title="pricefleet" \
      org.opencontainers.image.description="Scrape shop catalogues, keep price history, serve it through a cached API."
RUN if [ "$BROWSER" = "true" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends chromium \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 pricefleet \
    && useradd --system --uid 10001 --gid pricefleet --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin pricefleet \
    && mkdir -p /app/data \
    && chown pricefleet:pricefleet /app/data
COPY --from=builder /opt/pricefleet /opt/pricefleet
COPY recipes /app/recipes
WORKDIR /app
ENV PATH=/opt/pricefleet/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PRICEFLEET_API_HOST=0.0.0.0 \
    PRICEFLEET_API_PORT=8000 \
    PRICEFLEET_RECIPES_DIR=/app/recipes \
    PRICEFLEET_DATA_DIR=/app/data \
    PRICEFLEET_LOG_JSON=true
USER 10001:10001
EXPOSE 8000
# Liveness of the API (the default command). Worker and scheduler containers serve no /healthz:
# docker-compose.yml gives them a check on their metrics port instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c 'import os, urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/healthz" % os.environ.get("PRICEFLEET_API_PORT", "8000"), timeout=4)'
ENTRYPOINT ["pricefleet"]
CMD ["api"]
