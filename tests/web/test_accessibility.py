"""Every dashboard page passes axe-core's WCAG 2 A and AA rules (contrast, labels, names,
landmarks, ARIA) in the system Chromium, with real data on it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import WAIT_MS, Chosen, Fleet

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


def _violations(page: Page) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now, one line each."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            });
            return result.violations.map(v =>
                `${v.id} (${v.impact}): ${v.help} — ` +
                v.nodes.slice(0, 3).map(n => n.target.join(" ")).join("; "));
        }"""
    )
    return [str(line) for line in found]


def test_pages_pass_axe_wcag_aa(browser: Browser, fleet: Fleet, chosen: Chosen) -> None:
    # The pages' CSP allows no inline script, which is how axe is injected: bypassed here.
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    product = urlencode({"site": chosen.site, "id": chosen.id})
    pages = {
        "search": (f"/?{urlencode({'q': chosen.name})}", "li.result"),
        "product": (f"/product?{product}", '#chart[data-drawn="1"]'),
        "compare": (f"/compare?{urlencode({'group': chosen.group})}", "#offers tbody tr"),
        "trending": ("/trending", "main h1"),
        "fleet": ("/fleet", "main h1"),
    }
    report = {}
    for name, (path, ready) in pages.items():
        page.goto(f"{fleet.url}{path}")
        expect(page.locator(ready).first).to_be_visible(timeout=WAIT_MS)
        page.wait_for_load_state("networkidle")
        report[name] = _violations(page)
    context.close()
    assert report == {name: [] for name in pages}
