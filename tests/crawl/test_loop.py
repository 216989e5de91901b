"""The crawling processes' event loop: uvloop when installed, the standard loop otherwise."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from pricefleet.crawl import loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_uvloop_when_installed() -> None:
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed here")
    assert loop.run(_loop_module()).startswith("uvloop")


def test_run_falls_back_to_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "loop_factory", lambda: None)
    assert loop.run(_loop_module()).startswith("asyncio")


def test_run_returns_and_raises_like_asyncio_run() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    assert loop.run(_loop_module())
    with pytest.raises(ValueError, match="boom"):
        loop.run(fail())
