"""`pricefleet crawl --processes N`: several processes crawl one site into one store, each
product page fetched once, every product as its truth, the site's politeness shared."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pricefleet.crawl.engine import Share
from pricefleet.crawl.runner import policy_of
from pricefleet.store import Store
from tests.crawl.truth import RECIPES, assert_matches_truth, recipes_for
from tests.servers import DemoServer, start_demo

PRODUCTS, SEED, DAY = 400, 11, 2


@pytest.fixture(scope="module")
def shop_server() -> Iterator[DemoServer]:
    """The demo shops, 400 products each."""
    server = start_demo("--products", str(PRODUCTS), "--seed", str(SEED), "--day", str(DAY))
    yield server
    server.stop()


async def _stats(server: DemoServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/_stats") as answer:
        stats: dict[str, Any] = (await answer.json())["shops"]["jsonld"]
    return stats


def _crawl(server: DemoServer, database: Path, *options: str) -> str:
    env = {
        **os.environ,
        "PRICEFLEET_DEMO_URL": server.url,
        "PRICEFLEET_RECIPES_DIR": str(RECIPES),
        "PRICEFLEET_DATA_DIR": str(database.parent / "data"),
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "pricefleet", "crawl", "demo-jsonld"]
    command += ["--database", f"sqlite:///{database}", *options]
    done = subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stderr.decode()  # the CLI's console writes there


@pytest.mark.timeout(600)
async def test_two_processes_crawl_every_product_once(
    shop_server: DemoServer, tmp_path: Path
) -> None:
    """One process, then two: the two store every product equal to its truth, fetch each
    product page once between them (only the sitemaps and robots.txt twice), report every
    product in the summary, and stay within the recipe's rate and concurrency together."""
    before = await _stats(shop_server)
    _crawl(shop_server, tmp_path / "one.db")
    middle = await _stats(shop_server)
    output = _crawl(shop_server, tmp_path / "two.db", "--processes", "2")
    after = await _stats(shop_server)
    one = middle["requests"] - before["requests"]
    two = after["requests"] - middle["requests"]
    assert two - one == one - PRODUCTS  # the requests that are not product pages, twice
    # The summary counts every process's products: site │ pages │ products │ …
    assert re.search(rf"demo-jsonld │ +[\d,]+ │ +{PRODUCTS} │", output), output
    store = Store.from_url(f"sqlite:///{tmp_path / 'two.db'}")
    try:
        await assert_matches_truth(store, shop_server, "jsonld", PRODUCTS, SEED, DAY)
    finally:
        await store.close()
    (recipe,) = recipes_for(shop_server, ("jsonld",))
    polite = recipe.politeness
    assert after["peak_concurrency"] <= polite.max_concurrency
    assert after["peak_requests_per_second"] <= polite.requests_per_second + 1


def test_shares_split_every_url_once() -> None:
    """Every URL belongs to exactly one of N shares, and the shares are about even."""
    urls = [f"https://shop.example/p/{n}/name-{n}" for n in range(3000)]
    for of in (1, 2, 3):
        owners = [[i for i in range(of) if Share(i, of).owns(url)] for url in urls]
        assert all(len(found) == 1 for found in owners)
        sizes = [sum(found == [i] for found in owners) for i in range(of)]
        assert min(sizes) > 0.8 * len(urls) / of
    with pytest.raises(ValueError, match="index"):
        Share(2, 2)


def test_each_process_gets_its_part_of_the_politeness(shop_server: DemoServer) -> None:
    """With N processes, each one's policy has 1/N of the recipe's rate, burst and
    concurrency, and divides a robots.txt rate by N too."""
    (recipe,) = recipes_for(shop_server, ("jsonld",))
    whole, half = policy_of(recipe), policy_of(recipe, share=2)
    assert half.requests_per_second == whole.requests_per_second / 2
    assert half.max_concurrency == whole.max_concurrency // 2
    assert half.burst == max(1, whole.burst // 2)
    assert (whole.share, half.share) == (1, 2)
