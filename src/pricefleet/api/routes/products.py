"""Products: the list with filters and cursor pages, one product (fresh on demand), its history."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from pricefleet.api.cache import Entry, Kind, make_entry, product_tag, site_tag
from pricefleet.api.context import ApiContext, context
from pricefleet.api.http import cached_answer, send
from pricefleet.api.problems import Problem
from pricefleet.api.schemas import HistoryOut, HistoryRow, ProductOut, ProductPage
from pricefleet.events import BUS_RESET, PRICE_CHANGED, Subscription
from pricefleet.store.records import ProductFilter, SortKey
from pricefleet.workers.scheduler import refresh_jobs

__all__ = ["router"]

router = APIRouter(prefix="/v1/products", tags=["products"])

Ctx = Annotated[ApiContext, Depends(context)]
SiteId = Annotated[str, Path(min_length=1, max_length=64, description="The shop's id.")]
ProductId = Annotated[
    str, Path(min_length=1, max_length=256, description="The product's id at that shop.")
]
Fields = Annotated[
    str | None,
    Query(
        max_length=500,
        description="Comma-separated fields to return (site_id and id always come).",
        examples=["name,price,unit_price"],
    ),
]
#: How often a fresh read looks in the store whether its refresh has landed, between the
#: `product.price_changed` events that wake it at once (a refresh that changed nothing but
#: `last_seen` publishes no event: this bounds how late that one is seen).
_REFRESH_POLL = 0.5
#: Refresh jobs of fresh reads run before scheduled crawls.
REFRESH_PRIORITY = 50


def fields_list(fields: str | None) -> list[str] | None:
    """`fields=` as a list (None: the default set); an empty list is an error."""
    if fields is None:
        return None
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    if not wanted:
        raise Problem(400, "fields= names no field; omit it for the default set")
    return wanted


def product_json(item: dict[str, object]) -> bytes:
    """A product dict from the store as its JSON body (validated against `ProductOut`)."""
    return ProductOut.model_validate(item).model_dump_json(exclude_unset=True).encode()


@router.get("", response_model=ProductPage, summary="List products")
async def list_products(
    request: Request,
    ctx: Ctx,
    site: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=128)] = None,
    min_price: Annotated[float | None, Query(ge=0, le=1e9)] = None,
    max_price: Annotated[float | None, Query(ge=0, le=1e9)] = None,
    discounted: bool | None = None,
    gtin: Annotated[str | None, Query(pattern=r"^\d{8,14}$")] = None,
    sort: SortKey = SortKey.NAME,
    order: Literal["asc", "desc"] = "asc",
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    fields: Fields = None,
) -> Response:
    """Products matching every filter given, in pages of `limit`; pass the answer's
    `next_cursor` as `cursor` for the next page."""
    filters = ProductFilter(
        site_id=site,
        category_id=category,
        min_price=None if min_price is None else Decimal(str(min_price)),
        max_price=None if max_price is None else Decimal(str(max_price)),
        discounted=discounted,
        gtin=gtin,
    )
    wanted = fields_list(fields)
    key = "list:" + request.url.query

    async def build() -> Entry:
        page = await ctx.store.list_products(
            filters,
            sort=sort,
            descending=order == "desc",
            cursor=cursor,
            limit=limit,
            fields=wanted,
        )
        body = ProductPage.model_validate(
            {"items": page.items, "next_cursor": page.next_cursor}
        ).model_dump_json(exclude_unset=True)
        return make_entry(body.encode(), [site_tag(site) if site else Kind.LIST.value])

    return await cached_answer(request, ctx, Kind.LIST, key, build)


@router.get(
    "/{site_id}/{product_id:path}/history",
    response_model=HistoryOut,
    summary="A product's price history",
)
async def history(
    request: Request,
    ctx: Ctx,
    site_id: SiteId,
    product_id: ProductId,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """The product's change-only price states, oldest first: each holds from `observed_at`
    and was last confirmed at `last_seen`. With `since`, the state in force then comes first."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        raise Problem(400, "since is after until", title="Invalid query")
    key = f"history:{site_id}:{product_id}:{request.url.query}"

    async def build() -> Entry:
        rows = await ctx.store.history(site_id, product_id, since, until, limit)
        if not rows and await ctx.store.get_product(site_id, product_id, ["id"]) is None:
            raise Problem(404, f"no product {product_id!r} at site {site_id!r}")
        out = HistoryOut(
            site_id=site_id,
            product_id=product_id,
            items=[HistoryRow.model_validate(r) for r in rows],
        )
        tags = [product_tag(site_id, product_id), site_tag(site_id)]
        return make_entry(out.model_dump_json().encode(), tags)

    return await cached_answer(request, ctx, Kind.HISTORY, key, build)


@router.get("/{site_id}/{product_id:path}", response_model=ProductOut, summary="One product")
async def product(
    request: Request,
    ctx: Ctx,
    site_id: SiteId,
    product_id: ProductId,
    fields: Fields = None,
    max_age: Annotated[
        int | None,
        Query(ge=0, le=365 * 86_400, description="Seconds: older data is refreshed first."),
    ] = None,
    wait: Annotated[
        float, Query(ge=0, le=30, description="Seconds to wait for that refresh.")
    ] = 5.0,
) -> Response:
    """The product with its current price. With `max_age`, data last seen longer ago is
    refreshed: a high-priority crawl of the product is queued (once, however many readers
    ask) and the answer waits up to `wait` seconds for it; after that it is the stored data,
    marked by `X-Refresh: pending`."""
    wanted = fields_list(fields)
    key = f"product:{site_id}:{product_id}:{fields or ''}"

    async def build() -> Entry:
        item = await ctx.store.get_product(
            site_id, product_id, None if wanted is None else [*wanted, "last_seen", "url"]
        )
        if item is None:
            raise Problem(404, f"no product {product_id!r} at site {site_id!r}")
        seen = item["last_seen"].timestamp()
        if wanted is not None:
            item = {k: v for k, v in item.items() if k in wanted or k in ("site_id", "id")}
        tags = [product_tag(site_id, product_id), site_tag(site_id)]
        return make_entry(product_json(item), tags, seen_at=seen)

    entry = await ctx.cache.get_or_build(Kind.PRODUCT, key, build)
    refresh = None
    if max_age is not None and _too_old(entry, max_age):
        entry, refresh = await _fresh(ctx, site_id, product_id, key, entry, max_age, wait, build)
    response = send(request, entry, ctx.cache.ttl(Kind.PRODUCT), public=ctx.public_reads)
    if refresh is not None:
        response.headers["X-Refresh"] = refresh
    return response


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # a time without zone is UTC, as every time here
    return moment


def _too_old(entry: Entry, max_age: int) -> bool:
    return entry.seen_at is None or time.time() - entry.seen_at > max_age


async def _fresh(
    ctx: ApiContext,
    site_id: str,
    product_id: str,
    key: str,
    entry: Entry,
    max_age: int,
    wait: float,
    build: Callable[[], Awaitable[Entry]],
) -> tuple[Entry, str]:
    """Queue a refresh of a product older than `max_age` and wait for it up to `wait` s."""
    recipe = ctx.recipes.get(site_id)
    if recipe is None:
        raise Problem(
            409,
            f"site {site_id!r} has no recipe here, so its products cannot be refreshed",
            title="Cannot refresh",
        )
    item = await ctx.store.get_product(site_id, product_id, ["url", "last_seen"])
    if item is None:
        raise Problem(404, f"no product {product_id!r} at site {site_id!r}")
    now = datetime.now(UTC)
    if (now - item["last_seen"]).total_seconds() <= max_age:  # another reader refreshed it
        await ctx.cache.invalidate([product_tag(site_id, product_id)])
        return await _rebuilt(ctx, key, build), "done"
    # Listening before the job is queued, so its event cannot come before we listen.
    async with ctx.events.subscribe() as events:
        # The queue's dedup key makes concurrent readers (in any process) share one job.
        job = refresh_jobs(recipe, [item["url"]], now=now, priority=REFRESH_PRIORITY)
        await ctx.queue.enqueue(job)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_REFRESH_POLL, left)):
                    await _changed(events, site_id, product_id)
            seen = await ctx.store.get_product(site_id, product_id, ["last_seen"])
            if seen is not None and seen["last_seen"] > item["last_seen"]:
                await ctx.cache.invalidate([product_tag(site_id, product_id)])
                return await _rebuilt(ctx, key, build), "done"
    return entry, "pending"


async def _changed(events: Subscription, site_id: str, product_id: str) -> None:
    """Return once the bus says the product's price changed (or that events were lost)."""
    async for event in events:
        if event.kind == BUS_RESET or (
            event.kind == PRICE_CHANGED
            and event.site_id == site_id
            and product_id in event.product_ids
        ):
            return


async def _rebuilt(ctx: ApiContext, key: str, build: Callable[[], Awaitable[Entry]]) -> Entry:
    return await ctx.cache.get_or_build(Kind.PRODUCT, key, build, fresh=True)
