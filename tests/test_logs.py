"""Logs of a real pricefleet process: text by default, JSON lines when asked, at the level set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson


def _scheduler_once(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    env = {**base, "PRICEFLEET_DATA_DIR": str(tmp_path / "data")}
    env["PRICEFLEET_RECIPES_DIR"] = str(tmp_path)  # no recipes: a tick that starts nothing
    env.update({f"PRICEFLEET_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "pricefleet", "scheduler", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_lines_carry_level_logger_time_and_pid(tmp_path: Path) -> None:
    result = _scheduler_once(tmp_path, log_json="true")
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    tick = next(line for line in lines if line["event"].startswith("scheduler: started"))
    assert tick["level"] == "info"
    assert tick["logger"] == "pricefleet.workers.main"
    assert tick["timestamp"].endswith("Z")
    assert isinstance(tick["pid"], int)


def test_level_filters_and_text_is_the_default(tmp_path: Path) -> None:
    text = _scheduler_once(tmp_path)
    assert "[info" in text.stderr
    assert "scheduler: started" in text.stderr
    quiet = _scheduler_once(tmp_path, log_level="warning")
    assert quiet.returncode == 0, quiet.stderr
    assert "scheduler: started" not in quiet.stderr


def test_an_unknown_level_is_refused_clearly(tmp_path: Path) -> None:
    result = _scheduler_once(tmp_path, log_level="loud")
    assert result.returncode == 2
    assert "PRICEFLEET_LOG_LEVEL='loud' is not a level" in result.stderr
