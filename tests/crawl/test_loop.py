"""The crawling processes' event loop: uvloop when installed, the standard loop otherwise."""

from __future__ import annotations

import asyncio
import gc
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


def test_run_sets_the_collector_for_the_crawl_and_restores_it() -> None:
    """During `run` what existed before is frozen and young collections are rarer; after
    it, the thresholds and the frozen set are as they were."""

    before = gc.get_threshold()

    async def inside() -> tuple[tuple[int, int, int], int]:
        await asyncio.sleep(0)
        return gc.get_threshold(), gc.get_freeze_count()

    thresholds, frozen = loop.run(inside())
    assert thresholds == (loop._YOUNG, before[1], before[2])
    assert frozen > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_run_leaves_a_freeze_made_before_it() -> None:
    """Objects the process froze before `run` stay frozen after it."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        loop.run(_loop_module())
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
