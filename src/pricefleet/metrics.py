"""The fleet's Prometheus metrics with the names the seeds give them, shared by every process.

Workers count `products_scraped_total` and `scrape_errors_total` and hold `active_workers` at 1
while they run (`livesum`: in multiprocess mode — `pricefleet run`, several processes writing to
one `PROMETHEUS_MULTIPROC_DIR` — the API's /metrics adds up the live ones; in a cluster each
worker's own endpoint says 1 and Prometheus sums). The API refreshes `scraping_queue_depth`
from the queue. Alerts and dashboards use these names (deploy/).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["ACTIVE_WORKERS", "PRODUCTS_SCRAPED", "SCRAPE_ERRORS", "SCRAPING_QUEUE_DEPTH"]

PRODUCTS_SCRAPED = Counter(
    "products_scraped_total", "Products stored or confirmed by crawls.", ["site"]
)
SCRAPE_ERRORS = Counter(
    "scrape_errors_total", "Pages that gave no product, by reason.", ["site", "code"]
)
ACTIVE_WORKERS = Gauge(
    "active_workers", "Crawl worker processes running.", multiprocess_mode="livesum"
)
SCRAPING_QUEUE_DEPTH = Gauge(
    "scraping_queue_depth",
    "Jobs not finished (queued, delayed, leased) per site.",
    ["site"],
    multiprocess_mode="max",
)
