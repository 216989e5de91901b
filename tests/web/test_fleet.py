"""The fleet page, live, in the system Chromium against a real `pricefleet run`."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import Fleet, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

WAIT_MS = 30_000
SITE = "demo-plain"


def test_fleet_page_follows_a_running_crawl(page: Page, fleet: Fleet) -> None:
    """Without a key the page falls back to /v1/sites and says why; with the admin key saved
    through its form it shows live figures and the one worker of `pricefleet run`; a crawl
    started from the page while the site is paused queues a job (depth rises), and once the
    site is resumed the page follows the crawl to done, with the done count risen."""
    page.goto(f"{fleet.url}/fleet?every=1")
    row = page.locator(f'#fleet tr[data-site="{SITE}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#workers")).to_contain_text("crawl scope")
    expect(page.locator("#fleet-source")).to_contain_text("/v1/sites")

    page.get_by_text("API key", exact=True).click()
    page.get_by_label("Key sent with every request").fill(fleet.key)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#workers")).to_have_attribute("data-workers", "1", timeout=WAIT_MS)
    expect(page.locator("#fleet-source")).to_contain_text("live")
    expect(row.locator('[data-field="rate"]')).to_contain_text("jobs/s", timeout=WAIT_MS)
    totals = row.locator('[data-field="totals"]')
    done_before = int(totals.get_attribute("data-done") or "0")
    assert done_before > 0  # the fixture's crawls

    page.get_by_role("button", name=f"Pause {SITE}").click()
    expect(row.locator('[data-field="hold"]')).to_have_text("paused", timeout=WAIT_MS)
    page.get_by_role("button", name=f"Crawl {SITE} now").click()
    crawl = page.locator("#crawls li[data-crawl]")
    expect(crawl).to_have_attribute("data-status", "queued", timeout=WAIT_MS)
    expect(row.locator('[data-field="depth"]')).to_have_attribute(
        "data-value", "1", timeout=WAIT_MS
    )
    screenshot(page, "fleet-paused-crawl-queued")

    page.get_by_role("button", name=f"Resume {SITE}").click()
    expect(crawl).to_have_attribute("data-status", "done", timeout=WAIT_MS)
    expect(crawl).to_contain_text("0 pending")
    expect(row.locator('[data-field="hold"]')).to_have_text("none")
    expect(row.locator('[data-field="depth"]')).to_have_attribute(
        "data-value", "0", timeout=WAIT_MS
    )
    done_after = int(totals.get_attribute("data-done") or "0")
    assert done_after > done_before
    expect(page.locator("#errors")).to_be_visible()
    screenshot(page, "fleet-crawl-done")
