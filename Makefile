# pricefleet — the two set-up commands are `make demo` and `make test`; both start from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := chromium nginx-light postgresql-client-15
# Tools the deploy/ tests run (promtool, docker-compose config), installed without their
# recommends (no node exporter, no Docker engine); the tests need no Prometheus server, so the
# daemon the package starts under systemd is stopped and disabled.
DEBIAN_TOOLS := prometheus docker-compose
PORT ?= 8100
PRODUCTS ?= 2000

.PHONY: demo test lint format bench system venv clean

## demo: install everything, start the demo shops, crawl all five, keep serving (Ctrl-C to stop)
demo: $(STAMP)
	$(BIN)/pricefleet demo --port $(PORT) --products $(PRODUCTS)

## test: install everything, then run the whole test suite
test: $(STAMP)
	$(BIN)/pytest

## lint: ruff check, ruff format --check, mypy --strict on src/
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## bench: the benchmarks (figures in BENCHMARKS.md); the API one drives wrk, installed when missing
bench: $(STAMP)
	@dpkg-query -W -f='$${Status}' wrk 2>/dev/null | grep -q "install ok installed" || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench

## system: Debian packages the tests need (Chromium, nginx, promtool, docker-compose), when missing
system:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	tools=""; for p in $(DEBIAN_TOOLS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || tools="$$tools $$p"; \
	done; \
	if [ -n "$$missing$$tools" ]; then \
	  echo "installing Debian packages:$$missing$$tools"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq || exit 1; \
	  if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; fi; \
	  if [ -n "$$tools" ]; then DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$tools >/dev/null; fi; \
	  if systemctl is-active -q prometheus 2>/dev/null; then $$SUDO systemctl disable --now prometheus; fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python system
	$(BIN)/pip install -q -e ".[dev,browser,impersonate]"
	touch $(STAMP)

venv: $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
