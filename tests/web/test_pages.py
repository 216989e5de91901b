"""The dashboard in the system Chromium, against a real fleet that crawled the demo shops."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import WAIT_MS, Chosen, Fleet, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def product_url(fleet: Fleet, chosen: Chosen) -> str:
    """The dashboard's page of the chosen product."""
    return f"{fleet.url}/product?{urlencode({'site': chosen.site, 'id': chosen.id})}"


def test_search_then_product_chart_then_compare(page: Page, fleet: Fleet, chosen: Chosen) -> None:
    """Search finds the product; its page plots one point per stored price state (as many as
    /history returns), per measure; compare lists every offer and marks the cheapest per unit."""
    page.goto(f"{fleet.url}/")
    page.get_by_label("Words", exact=True).fill(chosen.name)
    page.get_by_role("button", name="Search").click()
    result = page.locator(f'li.result[data-site="{chosen.site}"][data-id="{chosen.id}"]')
    expect(result).to_be_visible(timeout=WAIT_MS)
    screenshot(page, "search")

    result.get_by_role("link").click()
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-drawn", "1", timeout=WAIT_MS)
    assert page.locator("#chart canvas").count() >= 1
    expect(chart).to_have_attribute("data-points", str(len(chosen.history)))
    other_shops = len(chosen.offers) - 1
    expect(chart).to_have_attribute("data-series", str(1 + min(other_shops, 5)))
    label = chart.get_attribute("aria-label") or ""
    assert f"{len(chosen.history)} price states" in label
    expect(page.locator("#history-table tbody tr")).to_have_count(len(chosen.history))
    expect(page.locator("#product-name")).to_have_text(chosen.name)
    screenshot(page, "product-price")

    page.get_by_label("Unit price", exact=True).check()
    expect(chart).to_have_attribute("data-measure", "unit_price")
    with_unit = [row for row in chosen.history if row["unit_price"] is not None]
    expect(chart).to_have_attribute("data-points", str(len(with_unit)))
    screenshot(page, "product-unit-price")

    page.get_by_role("link", name="Compare all offers").click()
    rows = page.locator("#offers tbody tr")
    expect(rows).to_have_count(len(chosen.offers), timeout=WAIT_MS)
    shown = [
        (rows.nth(i).get_attribute("data-site"), rows.nth(i).get_attribute("data-id"))
        for i in range(len(chosen.offers))
    ]
    assert shown == [(o["site_id"], o["id"]) for o in chosen.offers]  # the API's order
    cheapest = min(
        (
            o
            for o in chosen.offers
            if o["unit_price"] is not None and o["unit"] == chosen.offers[0]["unit"]
        ),
        key=lambda o: float(str(o["unit_price"])),
    )
    marked = page.locator('#offers tbody tr[data-cheapest="1"]')
    expect(marked.first).to_have_attribute("data-site", str(cheapest["site_id"]))
    expect(marked.first).to_contain_text("cheapest per")
    expect(rows.first).to_contain_text("ago")
    screenshot(page, "compare")


@pytest.mark.parametrize("width", [360, 390])
def test_phone_sized_screens_do_not_scroll_sideways(
    browser: Browser, fleet: Fleet, chosen: Chosen, width: int
) -> None:
    """Every page fits a phone's width: no horizontal scrolling."""
    context = browser.new_context(viewport={"width": width, "height": 800}, is_mobile=True)
    try:
        page = context.new_page()
        pages = {
            "search": f"{fleet.url}/?{urlencode({'q': chosen.name})}",
            "product": product_url(fleet, chosen),
            "compare": f"{fleet.url}/compare?{urlencode({'group': chosen.group})}",
            "trending": f"{fleet.url}/trending",
            "fleet": f"{fleet.url}/fleet",
        }
        for name, url in pages.items():
            page.goto(url)
            page.wait_for_load_state("networkidle")
            if name == "product":
                expect(page.locator("#chart")).to_have_attribute("data-drawn", "1")
            sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            screenshot(page, f"phone-{width}-{name}")
            assert sizes[0] <= sizes[1], f"{name} is {sizes[0]} px wide on a {sizes[1]} px screen"
    finally:
        context.close()


def test_keyboard_reaches_the_search_box_and_the_results(
    page: Page, fleet: Fleet, chosen: Chosen
) -> None:
    """With Tab alone: the skip link, then the search box (with a visible focus ring), then
    after a search the result links, and Enter opens a product."""
    page.goto(f"{fleet.url}/")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    focused = ""
    for _ in range(20):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.id")
        if focused == "q":
            break
    assert focused == "q", "Tab never reached the search box"
    ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert ring != "none"
    page.keyboard.type(chosen.name)
    page.keyboard.press("Enter")
    expect(page.locator("li.result").first).to_be_visible(timeout=WAIT_MS)
    reached = False
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('result-link')"):
            reached = True
            break
    assert reached, "Tab never reached a result"
    screenshot(page, "keyboard-result-focused")
    page.keyboard.press("Enter")
    page.wait_for_url("**/product?*")
    expect(page.locator("#chart")).to_have_attribute("data-drawn", "1", timeout=WAIT_MS)
