"""The HTTP API (v1): FastAPI routes over the store and the queue, cached, authenticated,
rate-limited and measured. `create_app` builds it; `pricefleet api` serves it."""

from __future__ import annotations

__all__: list[str] = []
