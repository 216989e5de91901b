"""The pricefleet command lines the deploy files run, checked against the real CLI."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import typer.main

from pricefleet.cli import app

__all__ = ["check_command"]


def check_command(args: Sequence[str], where: str) -> str:
    """Parse `pricefleet ARGS` as the CLI would (subcommands, options, their types and
    ranges) without running it; fail naming `where` when the CLI would refuse. Returns the
    command's path, e.g. "db upgrade"."""
    command = typer.main.get_command(app)
    words = list(args)
    path: list[str] = []
    while hasattr(command, "commands") and words and words[0] in command.commands:
        path.append(words.pop(0))
        command = command.commands[path[-1]]
    runs_itself = getattr(command, "invoke_without_command", False)  # `demo-shop`
    if not path or (hasattr(command, "commands") and not runs_itself):
        pytest.fail(f"{where}: `pricefleet {' '.join(args)}` names no pricefleet command")
    try:
        command.make_context(" ".join(path), words)
    except Exception as exc:  # typer's click raises its own UsageError types
        pytest.fail(f"{where}: `pricefleet {' '.join(args)}` is refused: {exc}")
    return " ".join(path)
