"""`pricefleet demo-shop export`: a static copy of a shop that nginx serves byte for byte."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from pricefleet.demo import DemoConfig, create_app
from pricefleet.demo.catalog import Leaf
from pricefleet.demo.shops.base import DemoShop
from tests.servers import DemoServer, free_port, require_program, start_demo

NGINX = Path("/usr/sbin/nginx")
SEED, DAY = 7, 10
HOST = "shop.test"
BASE_URL = f"http://{HOST}"
#: The smallest sizes (80 leaves, 24 products a page) where some leaf of the shop has a page 2:
#: `plain` gets half of --products, `jsonld` all of them.
PRODUCTS = {"plain": 3850, "jsonld": 1925}
#: Where each shop's product pages live in the copy, relative to the export directory.
PRODUCT_DIRS = {"plain": "plain/__q/product", "jsonld": "jsonld/p"}


@dataclass(frozen=True)
class Export:
    """One run of `demo-shop export`: what it was asked for, what it said, where it wrote."""

    shop: str
    products: int
    directory: Path
    returncode: int
    output: str

    def check(self) -> None:
        """Fail the test (not error it) when the export command itself failed."""
        assert self.returncode == 0, f"demo-shop export --shop {self.shop} failed:\n{self.output}"
        assert (self.directory / "nginx.conf").is_file(), "the export wrote no nginx.conf"


@cache
def shop_model(name: str, products: int) -> DemoShop:
    """The shop as a demo server started with `--products products --seed 7` has it."""
    shop: DemoShop = create_app(DemoConfig(products=products, seed=SEED)).state.shops[name]
    return shop


@pytest.fixture(scope="module", params=sorted(PRODUCTS))
def export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Export:
    """One shop exported by the CLI, day 10, absolute URLs on http://shop.test."""
    shop: str = request.param
    directory = tmp_path_factory.mktemp(f"export-{shop}")
    products = PRODUCTS[shop]
    command = [
        sys.executable,
        "-m",
        "pricefleet",
        "demo-shop",
        "export",
        str(directory),
        "--shop",
        shop,
        "--products",
        str(products),
        "--seed",
        str(SEED),
        "--day",
        str(DAY),
        "--base-url",
        BASE_URL,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    return Export(shop, products, directory, done.returncode, done.stdout + done.stderr)


def nginx_conf(directory: Path, port: int) -> Path:
    """A copy of the export's nginx.conf listening on `port` instead of the fixed 8180."""
    text = (directory / "nginx.conf").read_text()
    listen = "listen 127.0.0.1:8180;"
    assert listen in text, "the generated nginx.conf no longer listens on 127.0.0.1:8180"
    text = text.replace(listen, f"listen 127.0.0.1:{port};")
    if os.geteuid() == 0:
        # Started by root, the workers run as nobody, who cannot enter pytest's 0700 tmp dirs.
        text = "user root;\n" + text
    conf = directory / "test-nginx.conf"
    conf.write_text(text)
    return conf


@contextmanager
def nginx(directory: Path) -> Iterator[int]:
    """nginx serving an export on a free port, in the foreground; yields the port."""
    require_program(NGINX, "nginx-light")
    port = free_port()
    conf = nginx_conf(directory, port)
    log = directory / "nginx-test.log"
    command = [str(NGINX), "-p", f"{directory}/", "-c", str(conf), "-e", str(log)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited with {process.returncode}: {log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not listen: {log.read_text()}") from None
                time.sleep(0.05)
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fetch(url: str) -> tuple[int, bytes]:
    """GET `url` with `Host: shop.test`, as a client of the exported site would send."""
    try:
        with urlopen(Request(url, headers={"Host": HOST}), timeout=30) as answer:
            return answer.status, answer.read()
    except HTTPError as error:
        with error:
            return error.code, error.read()


def sample_paths(shop: DemoShop) -> list[str]:
    """robots.txt, sitemap.xml, home, pages 1 and 2 of a leaf, and five product pages."""
    leaf = next(
        (n for n in shop.nodes.values() if isinstance(n, Leaf) and shop.page_count(n) >= 2), None
    )
    assert leaf is not None, f"no {shop.name} leaf has a second page: raise PRODUCTS"
    count = shop.catalogue.products
    picks = sorted({0, count // 4, count // 2, 3 * count // 4, count - 1})
    return [
        f"{shop.prefix}/robots.txt",
        f"{shop.prefix}/sitemap.xml",
        f"{shop.prefix}/",
        shop.category_path(leaf, 1),
        shop.category_path(leaf, 2),
        *(shop.product_path(shop.catalogue.listing(index)) for index in picks),
    ]


def test_nginx_serves_the_export_byte_for_byte(export: Export, own_demo: list[DemoServer]) -> None:
    """nginx serving the export answers each sampled URL with the live shop's exact bytes."""
    export.check()
    shop = shop_model(export.shop, export.products)
    paths = sample_paths(shop)
    assert len(paths) == 10
    if export.shop == "plain":
        assert any("?" in path and "&p=2" in path for path in paths), "plain pages by query"
        assert any(path.startswith("/plain/product?id=") for path in paths)
    live = start_demo("--products", str(export.products), "--seed", str(SEED), "--day", str(DAY))
    own_demo.append(live)
    bodies: dict[str, bytes] = {}
    with nginx(export.directory) as port:
        for path in paths:
            static_status, static_body = fetch(f"http://127.0.0.1:{port}{path}")
            live_status, live_body = fetch(live.url + path)
            assert live_status == 200, path
            assert static_status == 200, f"nginx answered {static_status} for {path}"
            assert static_body == live_body, f"nginx and the live shop differ on {path}"
            bodies[path] = static_body
    assert all(bodies.values())
    assert len(set(bodies.values())) == len(paths), "every sampled page is a different page"
    # Absolute URLs come from the Host header: both sides must have used shop.test.
    robots = bodies[f"{shop.prefix}/robots.txt"].decode()
    assert f"Sitemap: {BASE_URL}{shop.prefix}/sitemap.xml" in robots


def test_export_holds_one_file_per_product(export: Export) -> None:
    """The export writes exactly one product page per product of the shop, named by its id."""
    export.check()
    shop = shop_model(export.shop, export.products)
    root = export.directory / PRODUCT_DIRS[export.shop]
    files = [path for path in root.rglob("*") if path.is_file()]
    assert len(files) == shop.catalogue.products
    if export.shop == "plain":
        names = {path.name for path in files}
        assert names == {f"id={index + 1}" for index in range(shop.catalogue.products)}
    else:
        ids = {path.relative_to(root).parts[0] for path in files}
        assert ids == {shop.product_id(index) for index in range(shop.catalogue.products)}
