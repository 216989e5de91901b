"""Dashboard fixtures: a real fleet (`pricefleet run`: API server, scheduler, a worker, all real
processes) over its own demo shops, crawled on three demo days so products have a price
history; and the system Chromium driven by Playwright.

The crawls go through the API (`POST /v1/crawls` with an admin key made by `pricefleet keys
create`), and the demo clock moves a day between them, as a shop's prices move."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.servers import DemoServer, free_port, require_program, start_demo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RECIPES = Path(__file__).parents[2] / "recipes"
#: Where screenshots go (git-ignored; CI keeps them as artefacts).
SCREENSHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
#: The shops crawled over plain HTTP (demo-spa needs a browser crawl: slower, not needed here).
SITES = ("demo-jsonld", "demo-microdata", "demo-api", "demo-plain")
DAYS = (8, 9, 10)
PRODUCTS = "150"
WAIT_S = 90.0


@dataclass
class Fleet:
    """A running `pricefleet run` with its API at `url`; `key` holds the admin scope."""

    url: str
    key: str
    demo: DemoServer
    process: subprocess.Popen[bytes]
    log: Any

    def client(self) -> httpx.Client:
        """An HTTP client of the API carrying the admin key."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        )

    def log_text(self) -> str:
        """What the fleet wrote so far (for failure messages)."""
        self.log.seek(0)
        return str(self.log.read().decode(errors="replace"))[-4000:]


def _env(data: Path, recipes: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # `run` makes its own, shared with its workers
    env.update(
        PRICEFLEET_DATA_DIR=str(data),
        PRICEFLEET_RECIPES_DIR=str(recipes),
        PRICEFLEET_API_PORT=str(port),
        PRICEFLEET_API_HOST="127.0.0.1",
        # The tests read every product's history to choose one, and the fleet page polls
        # every second: far past the default 100 requests a minute per key.
        PRICEFLEET_RATE_LIMIT="100000/minute",
    )
    return env


def _admin_key(env: dict[str, str]) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "pricefleet", "keys", "create", "web-tests", "--scope", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    found = re.search(r"^pf_\S+$", made.stdout, re.M)
    assert found, made.stdout
    return found.group(0)


def wait_for(what: str, check: Any, fleet: Fleet | None = None, timeout: float = WAIT_S) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            value = check()
            if value:
                return value
        time.sleep(0.2)
    raise AssertionError(
        f"timed out waiting for {what}" + (f"\n{fleet.log_text()}" if fleet else "")
    )


def crawl_all(fleet: Fleet, client: httpx.Client) -> None:
    """Crawl every site through the API and wait until each crawl is done."""
    ids = []
    for site in SITES:
        answer = client.post("/v1/crawls", json={"site_id": site})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    for crawl in ids:
        wait_for(
            f"crawl {crawl}",
            lambda c=crawl: client.get(f"/v1/crawls/{c}").json()["status"] == "done",
            fleet,
        )


@pytest.fixture(scope="package")
def fleet() -> Iterator[Fleet]:
    """`pricefleet run` on demo shops it crawled on days 8, 9 and 10 (150 products each)."""
    demo = start_demo("--products", PRODUCTS, "--seed", "7", "--day", str(DAYS[0]))
    folder = Path(tempfile.mkdtemp(prefix="pf-web-"))
    recipes = folder / "recipes"
    recipes.mkdir()
    for site in SITES:
        text = (RECIPES / f"{site}.yaml").read_text()
        (recipes / f"{site}.yaml").write_text(
            text.replace("${PRICEFLEET_DEMO_URL:-http://127.0.0.1:8100}", demo.url)
        )
    port = free_port()
    env = _env(folder / "data", recipes, port)
    subprocess.run(
        [sys.executable, "-m", "pricefleet", "db", "upgrade"], env=env, check=True, timeout=60
    )
    key = _admin_key(env)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "pricefleet", "run", "--min-workers", "1"]
    command += ["--max-workers", "1", "--tick", "1", "--concurrency", "16"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    fleet = Fleet(f"http://127.0.0.1:{port}", key, demo, process, log)
    try:
        with fleet.client() as client:
            wait_for("the API", lambda: client.get("/healthz").status_code == 200, fleet)
            # The scheduler crawls every site once on start-up (day 8); then one crawl a day.
            wait_for("the first crawl", lambda: _settled(client), fleet)
            for day in DAYS[1:]:
                httpx.put(f"{demo.url}/_clock", json={"day": day}).raise_for_status()
                crawl_all(fleet, client)
        yield fleet
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        demo.stop()


def _settled(client: httpx.Client) -> bool:
    """Every site's queue is empty after more than its start job (its products were crawled).
    The queue is asked, not /v1/sites: that answer is cached for a minute."""
    queues = {q["site_id"]: q for q in client.get("/v1/queues").json()["items"]}
    return set(SITES) <= set(queues) and all(
        queues[site]["depth"] == 0 and queues[site]["acked_total"] > 1 for site in SITES
    )


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """The system Chromium, headless (a missing Chromium fails under CI=true, else skips).
    Package-scoped: Playwright's sync API keeps an event loop running in this thread while it
    is open, which would break every asyncio test collected after tests/web."""
    require_program(CHROMIUM, "chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no saved key), desktop-sized."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A tab whose script errors fail the test."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    assert errors == [], f"script errors on the page: {errors}"


def screenshot(page: Page, name: str) -> None:
    """Save a full-page screenshot as a test artefact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


#: How long a page may take to show what a test waits for, ms.
WAIT_MS = 20_000


@dataclass(frozen=True)
class Chosen:
    """A product with a price history, sold by other shops too, as the API describes it."""

    site: str
    id: str
    name: str
    group: str
    history: list[dict[str, object]]
    offers: list[dict[str, object]]


@pytest.fixture(scope="package")
def chosen(fleet: Fleet) -> Chosen:
    """Of the products sold by other shops too (same GTIN, so one match group), the one with
    the longest price history."""
    with fleet.client() as client:
        histories = []
        for site in SITES:
            items = client.get("/v1/products", params={"site": site, "limit": 200}).json()["items"]
            for item in items:
                if item.get("gtin"):
                    rows = client.get(f"/v1/products/{site}/{item['id']}/history").json()["items"]
                    histories.append((len(rows), site, item["id"], rows))
        histories.sort(key=lambda h: -h[0])
        for _, site, product_id, rows in histories:
            product = client.get(f"/v1/products/{site}/{product_id}").json()
            if not product.get("group_id"):
                continue
            offers = client.get("/v1/compare", params={"group": product["group_id"]}).json()
            if len({o["site_id"] for o in offers["items"]}) >= 2:
                chosen = Chosen(
                    site, product_id, product["name"], product["group_id"], rows, offers["items"]
                )
                break
        else:
            raise AssertionError("no product is sold by two shops")
    assert len(chosen.history) >= 2, "no matched product changed price over the three days"
    return chosen
