"""Behind a balancer: the client address comes from `X-Forwarded-For`, only when the peer is a
trusted proxy (`PRICEFLEET_FORWARDED_ALLOW_IPS`); the IP allow list shows which address won."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pricefleet.api.app import create_app
from pricefleet.config import Settings
from pricefleet.errors import ConfigError


async def _status(tmp_path: Path, proxies: str, peer: str, forwarded: str | None) -> int:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        recipes_dir=tmp_path,
        api_allow_ips="10.0.0.0/8",
        forwarded_allow_ips=proxies,
    )
    app = create_app(settings)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return (await client.get("/v1/sites", headers=headers)).status_code


@pytest.mark.parametrize(
    ("proxies", "peer", "forwarded", "status"),
    [
        ("127.0.0.1", "127.0.0.1", "10.1.2.3", 200),  # a trusted proxy names an allowed client
        ("127.0.0.0/8", "127.0.0.9", "192.0.2.1, 10.1.2.3", 200),  # nearest untrusted hop wins
        ("127.0.0.1", "127.0.0.1", None, 403),  # no header: the proxy itself, not allowed
        ("127.0.0.1", "192.0.2.7", "10.1.2.3", 403),  # an untrusted peer's header is ignored
        ("", "127.0.0.1", "10.1.2.3", 403),  # no proxies trusted: the header is ignored
        ("*", "192.0.2.7", "10.1.2.3", 200),
    ],
)
async def test_forwarded_for_only_from_trusted_proxies(
    tmp_path: Path, proxies: str, peer: str, forwarded: str | None, status: int
) -> None:
    assert await _status(tmp_path, proxies, peer, forwarded) == status


def test_a_bad_proxy_entry_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PRICEFLEET_FORWARDED_ALLOW_IPS entry 'nginx'"):
        Settings(_env_file=None, data_dir=tmp_path, forwarded_allow_ips="nginx")  # type: ignore[call-arg]
