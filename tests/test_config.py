"""Settings: one frozen object from the environment, and the profile it selects."""

from __future__ import annotations

import os

import pytest

from pricefleet.config import Profile, Settings
from pricefleet.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the PRICEFLEET_ variables they set."""
    for key in list(os.environ):
        if key.startswith("PRICEFLEET_"):
            monkeypatch.delenv(key)


def test_embedded_by_default() -> None:
    """With no URLs configured, pricefleet runs embedded on a SQLite file in its data dir."""
    settings = Settings(_env_file=None)
    assert settings.profile is Profile.EMBEDDED
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("/data/pricefleet.db")


def test_cluster_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL plus Redis URLs select the cluster profile; replicas split on commas."""
    monkeypatch.setenv("PRICEFLEET_DATABASE_URL", "postgresql://pg/pf")
    monkeypatch.setenv("PRICEFLEET_REDIS_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("PRICEFLEET_DATABASE_REPLICA_URLS", "postgresql://r1/pf, postgresql://r2/pf")
    settings = Settings(_env_file=None)
    assert settings.profile is Profile.CLUSTER
    assert settings.database_replica_urls == ("postgresql://r1/pf", "postgresql://r2/pf")


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after they are built."""
    settings = Settings(_env_file=None)
    with pytest.raises(ValueError, match="frozen"):
        settings.workers = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRICEFLEET_DATABASE_URL": "mysql://x/y"}, "expected sqlite"),
        ({"PRICEFLEET_DATABASE_URL": "postgresql://x/y"}, "needs both"),
        ({"PRICEFLEET_REDIS_URL": "redis://x"}, "needs both"),
        (
            {"PRICEFLEET_REDIS_URL": "http://x", "PRICEFLEET_DATABASE_URL": "postgresql://x/y"},
            "redis://",
        ),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    """A wrong or half-configured profile is refused with the variable to fix."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        Settings(_env_file=None)
