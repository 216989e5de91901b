"""The suite's own rule: a server a test needs is a skip on a laptop but a failure under CI."""

from __future__ import annotations

import pytest

from tests.servers import free_port, require_server


def test_missing_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI=true an unreachable server fails the test instead of skipping it."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must have it running"):
        require_server("127.0.0.1", free_port(), "Redis")


def test_missing_server_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside CI an unreachable server skips the test, saying what is missing."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable"):
        require_server("127.0.0.1", free_port(), "PostgreSQL")


@pytest.mark.parametrize(("port", "what"), [(6379, "Redis"), (5432, "PostgreSQL")])
def test_local_services_are_up(port: int, what: str) -> None:
    """The machine's Redis and PostgreSQL answer (CI starts them first; later issues use them)."""
    require_server("127.0.0.1", port, what)
