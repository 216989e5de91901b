"""The fleet's processes: crawl workers, the scheduler and the local autoscaler."""

from __future__ import annotations

__all__: list[str] = []
