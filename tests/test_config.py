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


def test_public_reads_follow_the_profile_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads are public in the embedded profile and need a key in the cluster one, unless
    PRICEFLEET_PUBLIC_READS says otherwise."""
    assert Settings(_env_file=None).effective_public_reads is True
    monkeypatch.setenv("PRICEFLEET_DATABASE_URL", "postgresql://pg/pf")
    monkeypatch.setenv("PRICEFLEET_REDIS_URL", "redis://localhost:6379/0")
    assert Settings(_env_file=None).effective_public_reads is False
    monkeypatch.setenv("PRICEFLEET_PUBLIC_READS", "true")
    assert Settings(_env_file=None).effective_public_reads is True


def test_api_allow_ips_and_rate_limits_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The allow-list splits on commas; per-scope rate limits override the default one."""
    monkeypatch.setenv("PRICEFLEET_API_ALLOW_IPS", "10.0.0.0/8, 192.168.1.7,::1")
    monkeypatch.setenv("PRICEFLEET_RATE_LIMIT", "200/minute")
    monkeypatch.setenv("PRICEFLEET_RATE_LIMIT_CRAWL", "10 per second")
    settings = Settings(_env_file=None)
    assert settings.api_allow_ips == ("10.0.0.0/8", "192.168.1.7", "::1")
    assert settings.rate_limit_for("read") == "200/minute"
    assert settings.rate_limit_for("crawl") == "10 per second"
    assert settings.rate_limit_for("admin") == "200/minute"
    assert settings.api_key_cache_seconds == 30.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PRICEFLEET_API_ALLOW_IPS", "10.0.0.0/8,10.0.0.300"),
        ("PRICEFLEET_API_ALLOW_IPS", "10.0.0.0/33"),
        ("PRICEFLEET_RATE_LIMIT", "lots"),
        ("PRICEFLEET_RATE_LIMIT_ADMIN", "5/fortnight"),
        ("PRICEFLEET_RATE_LIMIT_READ", "1000/day;100/minute"),
    ],
)
def test_bad_auth_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A bad network or rate limit is refused with an error naming the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        Settings(_env_file=None)
