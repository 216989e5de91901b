"""Across shops: search, compare (offers by unit price) and trending (biggest price moves)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from pricefleet.api.cache import Entry, Kind, make_entry, site_tag
from pricefleet.api.context import ApiContext, context
from pricefleet.api.http import cached_answer
from pricefleet.api.problems import Problem
from pricefleet.api.schemas import CompareOut, MoveOut, SearchOut, TrendingOut
from pricefleet.store.records import Direction

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["catalogue"])

Ctx = Annotated[ApiContext, Depends(context)]
Q = Annotated[str, Query(min_length=1, max_length=200, description="Words to look for.")]


@router.get("/search", response_model=SearchOut, summary="Search products")
async def search(
    request: Request,
    ctx: Ctx,
    q: Q,
    site: Annotated[str | None, Query(max_length=64)] = None,
    fuzzy: Annotated[bool, Query(description="Fall back to similar names on no match.")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Products whose name or brand hold every word of `q` (the last as a prefix), most
    relevant first."""
    key = "search:" + request.url.query

    async def build() -> Entry:
        hits = await ctx.store.search(q, limit=limit, site_id=site, fuzzy=fuzzy)
        out = SearchOut.model_validate(
            {"q": q, "items": [{"score": h.score, "product": h.item} for h in hits]}
        )
        return make_entry(out.model_dump_json().encode(), [Kind.SEARCH.value])

    return await cached_answer(request, ctx, Kind.SEARCH, key, build)


@router.get("/compare", response_model=CompareOut, summary="Compare offers across shops")
async def compare(
    request: Request,
    ctx: Ctx,
    gtin: Annotated[str | None, Query(pattern=r"^\d{8,14}$", description="EAN/UPC/GTIN.")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    group: Annotated[str | None, Query(max_length=128, description="A match group id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """The offers of one product across shops, cheapest per kg, litre or item first, each
    with how long ago it was last seen. Give exactly one of `gtin`, `group` or `q`."""
    if sum(x is not None for x in (gtin, q, group)) != 1:
        raise Problem(400, "give exactly one of gtin=, group= or q=", title="Invalid query")
    key = "compare:" + request.url.query

    async def build() -> Entry:
        offers = await ctx.store.compare(gtin=gtin, group_id=group, q=q, limit=limit)
        for offer in offers:
            offer.pop("raw", None)  # the source payload is for `fields=raw` on one product
        out = CompareOut.model_validate({"items": offers})
        tags = sorted({site_tag(o["site_id"]) for o in offers}) or [Kind.COMPARE.value]
        return make_entry(out.model_dump_json().encode(), tags)

    return await cached_answer(request, ctx, Kind.COMPARE, key, build)


@router.get("/trending", response_model=TrendingOut, summary="Biggest price moves")
async def trending(
    request: Request,
    ctx: Ctx,
    days: Annotated[int, Query(ge=1, le=365)] = 7,
    direction: Direction = Direction.DROPS,
    site: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """The products whose price moved most (relative) between `days` ago and now."""
    key = "trending:" + request.url.query

    async def build() -> Entry:
        moves = await ctx.store.trending(days, direction=direction, limit=limit, site_id=site)
        out = TrendingOut(
            days=days,
            direction=direction.value,
            items=[MoveOut.model_validate(m, from_attributes=True) for m in moves],
        )
        return make_entry(out.model_dump_json().encode(), [Kind.TRENDING.value])

    return await cached_answer(request, ctx, Kind.TRENDING, key, build)
