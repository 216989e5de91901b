"""The dashboard's pages: HTML shells rendered from Jinja templates, and their static files.

A page carries no data of its own: its script fetches the same-origin `/v1/…` JSON with the
key the user gave (if any), so the pages obey the API's auth exactly as any client does and
nothing is shown that the caller could not read through the API. What the server renders is
the layout, the forms and the query the page was opened with (escaped by Jinja's autoescape).
This module must not query the store, the queue or the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pricefleet import __version__

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "router", "static_files"]

_HERE = Path(__file__).parent
TEMPLATES_DIR = _HERE / "templates"
STATIC_DIR = _HERE / "static"

#: Scripts from this origin only; uPlot sizes its canvas through inline styles.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)
_templates = Jinja2Templates(directory=TEMPLATES_DIR)

Text = Annotated[str, Query(max_length=200)]


def static_files() -> StaticFiles:
    """The dashboard's CSS, scripts and vendored chart library, for mounting at `/static`."""
    return StaticFiles(directory=STATIC_DIR)


def _page(request: Request, template: str, title: str, **values: object) -> HTMLResponse:
    response = _templates.TemplateResponse(
        request,
        template,
        {"title": title, "version": __version__, **values},
    )
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@router.get("/", response_class=HTMLResponse)
async def search_page(request: Request) -> HTMLResponse:
    """Search and filter products (`q`, site, category, price range, discounted)."""
    return _page(request, "search.html", "Search", page="search")


@router.get("/product", response_class=HTMLResponse)
async def product_page(request: Request, site: Text = "", id: Text = "") -> HTMLResponse:
    """One product: its price history per shop (chart and table) and its offers elsewhere."""
    return _page(request, "product.html", "Product", page="product", site=site, product_id=id)


@router.get("/compare", response_class=HTMLResponse)
async def compare_page(
    request: Request, gtin: Text = "", group: Text = "", q: Text = ""
) -> HTMLResponse:
    """The offers of one product across shops, cheapest per unit first."""
    return _page(request, "compare.html", "Compare", page="compare", gtin=gtin, group=group, q=q)


@router.get("/trending", response_class=HTMLResponse)
async def trending_page(request: Request) -> HTMLResponse:
    """The biggest price moves."""
    return _page(request, "trending.html", "Trending", page="trending")


@router.get("/fleet", response_class=HTMLResponse)
async def fleet_page(request: Request) -> HTMLResponse:
    """The crawl fleet, live: queues, freshness, workers and recent errors per site."""
    return _page(request, "fleet.html", "Fleet", page="fleet")
