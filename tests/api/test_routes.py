"""The API's endpoints on both profiles: answers, pages, errors, HTTP caching, fresh reads."""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime, timedelta

import pytest

from pricefleet.api.cache import product_tag
from pricefleet.api.routes import products
from pricefleet.events import price_changed
from pricefleet.models import JobKind
from pricefleet.queue import NewJob
from tests.api.conftest import Api
from tests.store.factories import at, sighting

PROBLEM = "application/problem+json"


async def test_product_with_fields_and_problem_for_unknown(api: Api) -> None:
    """A product reads back with its price as a decimal string; fields= narrows it; an unknown
    product or field is a problem document."""
    await api.ctx.store.ingest([sighting("p1", "1.19", at(0), name="Leche entera")])
    r = await api.client.get("/v1/products/shop-a/p1")
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["price"], body["currency"]) == ("Leche entera", "1.19", "EUR")
    assert body["last_seen"] == at(0).isoformat().replace("+00:00", "Z")
    assert "raw" not in body
    narrow = (await api.client.get("/v1/products/shop-a/p1?fields=name,price")).json()
    assert set(narrow) == {"site_id", "id", "name", "price"}
    missing = await api.client.get("/v1/products/shop-a/ghost")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["status"] == 404
    assert "ghost" in missing.json()["detail"]
    bad = await api.client.get("/v1/products/shop-a/p1?fields=name,secret")
    assert bad.status_code == 400
    assert "secret" in bad.json()["detail"]


async def test_list_filters_and_cursor_pages(api: Api) -> None:
    """Filters apply, and following next_cursor visits every product once, in price order."""
    await api.ctx.store.ingest(
        [
            sighting(f"p{i}", f"{i}.00", at(0), regular="99" if i % 3 == 0 else None)
            for i in range(1, 11)
        ]
        + [sighting("q1", "5.00", at(0), site_id="shop-b")]
    )
    seen: list[str] = []
    url = "/v1/products?site=shop-a&sort=price&order=desc&limit=3&fields=price"
    cursor = None
    while True:
        r = await api.client.get(url + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200
        page = r.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(10, 0, -1)]
    cheap = (await api.client.get("/v1/products?min_price=2&max_price=4")).json()["items"]
    assert sorted(i["id"] for i in cheap) == ["p2", "p3", "p4"]
    deals = (await api.client.get("/v1/products?discounted=true")).json()["items"]
    assert sorted(i["id"] for i in deals) == ["p3", "p6", "p9"]
    bad = await api.client.get("/v1/products?cursor=garbage")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == PROBLEM
    invalid = await api.client.get("/v1/products?limit=0&sort=colour")
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"query.limit", "query.sort"}


async def test_history_search_compare_trending(api: Api) -> None:
    """History is change-only and oldest first; search ranks; compare sorts by unit price;
    trending finds the drop."""
    now = datetime.now(UTC)
    gtin = "8410000000016"
    await api.ctx.store.ingest(
        [
            sighting("p1", "2.00", now - timedelta(days=10), name="Aceite de oliva", gtin=gtin),
            sighting(
                "q1",
                "9.00",
                now - timedelta(days=10),
                site_id="shop-b",
                name="Aceite de oliva virgen",
                gtin=gtin,
                size="5",
            ),
        ]
    )
    await api.ctx.store.ingest(
        [sighting("p1", "1.50", now - timedelta(hours=1), name="Aceite de oliva", gtin=gtin)]
    )
    history = (await api.client.get("/v1/products/shop-a/p1/history")).json()
    assert [row["price"] for row in history["items"]] == ["2.00", "1.50"]
    hits = (await api.client.get("/v1/search?q=aceite oliva virg")).json()["items"]
    assert [h["product"]["id"] for h in hits] == ["q1"]
    hits = (await api.client.get("/v1/search?q=aceite")).json()["items"]
    assert {h["product"]["id"] for h in hits} == {"p1", "q1"}
    offers = (await api.client.get(f"/v1/compare?gtin={gtin}")).json()["items"]
    # 9.00 for 5 l is 1.80/l, dearer per litre than 1.50 for 1 l.
    assert [(o["site_id"], o["unit_price"]) for o in offers] == [
        ("shop-a", "1.50"),
        ("shop-b", "1.80"),
    ]
    assert all(o["age_seconds"] > 0 for o in offers)
    await api.ctx.store.refresh_trending()
    moves = (await api.client.get("/v1/trending?days=7")).json()["items"]
    assert [(m["product_id"], m["change"]) for m in moves] == [("p1", -0.25)]
    both = await api.client.get(f"/v1/compare?gtin={gtin}&q=aceite")
    assert both.status_code == 400


async def test_etag_304_cache_headers_and_gzip(api: Api) -> None:
    """Answers carry a strong ETag, Cache-Control and cache tags; the same ETag back gives a
    304 with no body; a large answer is gzipped."""
    await api.ctx.store.ingest([sighting(f"p{i}", "1.00", at(0)) for i in range(40)])
    r = await api.client.get("/v1/products/shop-a/p1")
    etag = r.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert "max-age=" in r.headers["cache-control"]
    assert r.headers["cache-tag"] == "product:shop-a:p1,site:shop-a"
    assert r.headers["surrogate-key"] == "product:shop-a:p1 site:shop-a"
    again = await api.client.get("/v1/products/shop-a/p1", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = await api.client.get("/v1/products/shop-a/p1", headers={"If-None-Match": '"x"'})
    assert other.status_code == 200
    big = await api.client.get("/v1/products?limit=40", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert len(big.json()["items"]) == 40
    assert big.headers["vary"] == "Accept-Encoding"
    assert big.headers["etag"].endswith('-gz"')  # its own ETag: another representation
    again_gz = await api.client.get(
        "/v1/products?limit=40",
        headers={"Accept-Encoding": "gzip", "If-None-Match": big.headers["etag"]},
    )
    assert again_gz.status_code == 304
    raw = await api.client.get("/v1/products?limit=40", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert len(gzip.compress(raw.content)) < len(raw.content)


async def test_cached_until_invalidated(api: Api) -> None:
    """A product answer is served from the cache until its tag is invalidated, then the new
    price shows, with a new ETag."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0))])
    first = await api.client.get("/v1/products/shop-a/p1")
    await api.ctx.store.ingest([sighting("p1", "2.00", at(10))])
    cached = await api.client.get("/v1/products/shop-a/p1")
    assert cached.json()["price"] == "1.00"
    assert cached.headers["etag"] == first.headers["etag"]
    await api.ctx.cache.invalidate([product_tag("shop-a", "p1")])
    fresh = await api.client.get("/v1/products/shop-a/p1")
    assert fresh.json()["price"] == "2.00"
    assert fresh.headers["etag"] != first.headers["etag"]


async def test_stale_reads_share_one_refresh_job(api: Api) -> None:
    """Ten concurrent reads of a stale product with max_age queue one refresh job between
    them, and answer with the stored data marked pending when it does not land in time."""
    await api.ctx.store.ingest([sighting("p1", "1.00", datetime.now(UTC) - timedelta(hours=3))])
    responses = await asyncio.gather(
        *(api.client.get("/v1/products/shop-a/p1?max_age=3600&wait=0.3") for _ in range(10))
    )
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["x-refresh"] for r in responses} == {"pending"}
    stats = (await api.ctx.queue.stats(["shop-a"]))["shop-a"]
    assert (stats.queued, stats.enqueued_total) == (1, 1)
    leases = await api.ctx.queue.lease(10, sites=["shop-a"])
    assert [lease.url for lease in leases] == ["http://shop-a.test/p/p1"]
    fresh = await api.client.get("/v1/products/shop-a/p1?max_age=86400")
    assert "x-refresh" not in fresh.headers


async def test_fresh_read_returns_the_refreshed_price(api: Api) -> None:
    """When the refresh lands within `wait`, the answer is the new data."""
    await api.ctx.store.ingest([sighting("p1", "1.00", datetime.now(UTC) - timedelta(hours=3))])
    await api.client.get("/v1/products/shop-a/p1")  # cached, stale

    async def worker() -> None:
        # Plays the worker: polls the queue as a worker does, then stores a new sighting.
        for _ in range(500):
            if await api.ctx.queue.lease(1, sites=["shop-a"]):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the fresh read queued no refresh job")
        await api.ctx.store.ingest([sighting("p1", "0.80", datetime.now(UTC))])

    task = asyncio.create_task(worker())
    r = await api.client.get("/v1/products/shop-a/p1?max_age=60&wait=10")
    await task
    assert (r.json()["price"], r.headers["x-refresh"]) == ("0.80", "done")


async def test_fresh_read_wakes_on_the_price_change_event(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh read waiting for its refresh answers as soon as the worker's
    `product.price_changed` event arrives, without waiting for its next look at the store."""
    monkeypatch.setattr(products, "_REFRESH_POLL", 60.0)
    await api.ctx.store.ingest([sighting("p1", "1.00", datetime.now(UTC) - timedelta(hours=3))])

    async def worker() -> None:
        for _ in range(500):
            if await api.ctx.queue.lease(1, sites=["shop-a"]):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the fresh read queued no refresh job")
        result = await api.ctx.store.ingest([sighting("p1", "0.70", datetime.now(UTC))])
        await api.ctx.events.publish(price_changed(result.price_changes))

    task = asyncio.create_task(worker())
    started = time.monotonic()
    r = await api.client.get("/v1/products/shop-a/p1?max_age=60&wait=20")
    await task
    assert (r.json()["price"], r.headers["x-refresh"]) == ("0.70", "done")
    assert time.monotonic() - started < 15


async def test_crawls_and_queues(api: Api) -> None:
    """POST /v1/crawls queues a site's start jobs or its product pages (each once); queues
    show them; pause and resume flip the site; bad requests are problems."""
    r = await api.client.post("/v1/crawls", json={"site_id": "shop-a", "priority": 10})
    assert r.status_code == 202
    crawl = r.json()
    assert crawl["id"].startswith("shop-a.")
    assert crawl["jobs_enqueued"] == 1
    urls = ["http://shop-a.test/p/1", "http://shop-a.test/p/2", "http://shop-a.test/p/1"]
    r = await api.client.post("/v1/crawls", json={"site_id": "shop-a", "urls": urls})
    assert r.json()["jobs_enqueued"] == 2
    queues = (await api.client.get("/v1/queues")).json()["items"]
    assert [(q["site_id"], q["queued"]) for q in queues] == [("shop-a", 3)]
    paused = await api.client.post("/v1/queues/shop-a/pause")
    assert paused.json()["paused"] is True
    assert await api.ctx.queue.lease(10, sites=["shop-a"]) == []
    resumed = await api.client.post("/v1/queues/shop-a/resume")
    assert resumed.json()["paused"] is False
    elsewhere = await api.client.post(
        "/v1/crawls", json={"site_id": "shop-a", "urls": ["http://evil.test/x"]}
    )
    assert elsewhere.status_code == 422
    assert "evil.test" in elsewhere.json()["detail"]
    unknown = await api.client.post("/v1/crawls", json={"site_id": "nope"})
    assert unknown.status_code == 404
    malformed = await api.client.post("/v1/crawls", json={"site_id": "shop-a", "urls": ["ftp:/x"]})
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == PROBLEM


async def test_crawl_progress_follows_its_jobs(api: Api) -> None:
    """GET /v1/crawls/{id} counts the crawl's jobs as workers finish them, and only its own;
    an unknown crawl is a 404."""
    urls = [f"http://shop-a.test/p/{i}" for i in range(3)]
    crawl = (await api.client.post("/v1/crawls", json={"site_id": "shop-a", "urls": urls})).json()
    await api.client.post("/v1/crawls", json={"site_id": "shop-a"})  # another crawl
    url = f"/v1/crawls/{crawl['id']}"
    first = (await api.client.get(url)).json()
    assert (first["status"], first["jobs_enqueued"], first["jobs_pending"]) == ("queued", 3, 3)
    leases = await api.ctx.queue.lease(10, sites=["shop-a"])
    ours = [lease for lease in leases if lease.url in urls]
    assert len(ours) == 3
    await api.ctx.queue.ack(ours[:2])
    middle = (await api.client.get(url)).json()
    assert (middle["status"], middle["jobs_done"], middle["jobs_pending"]) == ("running", 2, 1)
    await api.ctx.queue.ack(leases)
    done = (await api.client.get(url)).json()
    assert (done["status"], done["jobs_done"], done["jobs_pending"]) == ("done", 3, 0)
    missing = await api.client.get("/v1/crawls/shop-a.nosuchcrawl0")
    assert missing.status_code == 404
    malformed = await api.client.get("/v1/crawls/no-dot-here")
    assert malformed.status_code == 422


async def test_sites_health_and_metrics(api: Api) -> None:
    """Sites report counts and freshness; readyz checks the database and queue; /metrics
    counts requests by route template and cache hits by kind."""
    await api.ctx.store.ingest(
        [sighting("p1", "1.00", datetime.now(UTC)), sighting("p2", "1.00", at(0))]
    )
    sites = (await api.client.get("/v1/sites")).json()["items"]
    a = next(s for s in sites if s["id"] == "shop-a")
    assert (a["products"], a["stale_products"], a["fresh_ratio"]) == (2, 1, 0.5)
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "queue": "ok"}
    for _ in range(2):
        await api.client.get("/v1/products/shop-a/p1")
    text = (await api.client.get("/metrics")).text
    assert (
        'http_requests_total{endpoint="/v1/products/{site_id}/{product_id:path}",'
        'method="GET",status="200"}' in text
    )
    assert 'cache_hits_total{kind="product"}' in text
    unmatched = await api.client.get("/no/such/path")
    assert unmatched.status_code == 404
    assert unmatched.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("settings", ["cluster"], indirect=True)
async def test_readyz_names_a_database_that_is_down(api: Api) -> None:
    """With the database unreachable, readyz is 503 and says which check failed."""
    await api.ctx.store.close()
    from pricefleet.store import Store

    api.ctx.store = Store.from_url("postgresql://postgres@127.0.0.1:1/none")
    r = await api.client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["queue"] == "ok"


async def test_warming_rebuilds_popular_answers_before_they_expire(api: Api) -> None:
    """The warming job rebuilds the most requested answers near expiry (so they stay hits,
    with current data) and leaves fresh or unpopular ones alone."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0)), sighting("p2", "2.00", at(0))])
    for _ in range(3):
        await api.client.get("/v1/products/shop-a/p1")
    await api.client.get("/v1/products/shop-a/p2")
    assert api.ctx.cache.most_requested(1) == ["product:shop-a:p1:"]
    assert await api.ctx.cache.warm(1) == 0  # fresh: nothing to do
    await api.ctx.store.ingest([sighting("p1", "1.50", at(10)), sighting("p2", "2.50", at(10))])
    # Everything is near expiry when only 0 % of the TTL may be left unused.
    assert await api.ctx.cache.warm(1, before_expiry=1.0) == 1
    assert (await api.client.get("/v1/products/shop-a/p1")).json()["price"] == "1.50"
    assert (await api.client.get("/v1/products/shop-a/p2")).json()["price"] == "2.00"  # cold


async def test_queues_list_recent_dead_jobs_and_workers(api: Api) -> None:
    """/v1/queues names each site's newest dead jobs with their last error (the dashboard's
    recent errors); `workers` is null where this API cannot see the workers (the cluster)."""
    url = "http://shop-a.test/p/broken"
    await api.ctx.queue.enqueue([NewJob("shop-a", url, JobKind.PRODUCT, url, max_attempts=1)])
    (lease,) = await api.ctx.queue.lease(1, sites=["shop-a"])
    assert await api.ctx.queue.fail(lease, "HTTP 500 from the shop")
    body = (await api.client.get("/v1/queues")).json()
    assert body["recent_dead"] == [
        {"site_id": "shop-a", "url": url, "attempts": 1, "error": "HTTP 500 from the shop"}
    ]
    if api.settings.database_url is not None:
        assert body["workers"] is None
