"""One frozen Settings object, built once from the environment (prefix `PRICEFLEET_`).

It owns profile detection: with no database or Redis URL configured pricefleet runs *embedded*
(SQLite file, in-process queue, cache and events); with a PostgreSQL and a Redis URL it runs as
a *cluster*. Nothing deeper in the code reads the environment: the object is passed down.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pricefleet.errors import ConfigError

__all__ = ["Profile", "Settings", "settings_reference"]


class Profile(StrEnum):
    """How pricefleet is deployed: on one machine with no servers, or as a fleet."""

    EMBEDDED = "embedded"
    CLUSTER = "cluster"


class Settings(BaseSettings):
    """Everything configurable, read from `PRICEFLEET_*` variables (and a `.env` file)."""

    model_config = SettingsConfigDict(
        env_prefix="PRICEFLEET_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    #: Folder of the embedded profile's files (SQLite database, queue, events).
    data_dir: Path = Path("data")
    #: PostgreSQL (`postgresql://…`) selects the cluster profile, with `redis_url`; unset: a
    #: SQLite file in `data_dir`.
    database_url: str | None = None
    #: Read replicas (comma-separated); reads go there, writes and read-your-writes to the
    #: primary, and a replica that is down falls back to the primary.
    database_replica_urls: Annotated[tuple[str, ...], NoDecode] = ()
    #: Several PostgreSQL databases, sites spread over them: `name=postgresql://…,name=…`.
    database_shards: Annotated[tuple[str, ...], NoDecode] = ()
    #: Redis (`redis://…`): queue, rate limits, cache second tier and events of the cluster.
    redis_url: str | None = None
    #: Namespace of the queue's keys (Redis) or tables (SQLite), for sharing a server.
    queue_prefix: str = Field(default="pf", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,30}$")
    #: Folder of the site recipes (`*.yaml`, one per shop).
    recipes_dir: Path = Path("recipes")
    #: Address the API binds (`0.0.0.0` to serve other machines).
    api_host: str = "127.0.0.1"
    #: Port of the API (`run --cluster`: the first of its API servers' ports).
    api_port: int = Field(default=8000, ge=1, le=65535)
    #: Worker processes of the demo crawl (`pricefleet demo`).
    workers: int = Field(default=2, ge=0, le=256)
    #: Logging level: DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    #: Log one JSON object per line (for log shippers) instead of text.
    log_json: bool = False
    #: API cache time-to-live per kind, seconds (seeds 002-004: product 1 h, search 5 min,
    #: trending 10 min, categories 7 d); sites carry live queue figures, so a minute.
    cache_ttl_product: float = Field(default=3600, ge=0)
    cache_ttl_search: float = Field(default=300, ge=0)
    cache_ttl_trending: float = Field(default=600, ge=0)
    cache_ttl_sites: float = Field(default=60, ge=0)
    cache_ttl_categories: float = Field(default=7 * 86_400, ge=0)
    #: The warming job: every this many seconds, rebuild the most requested answers that are
    #: about to expire (0 turns it off), this many of them.
    cache_warm_seconds: float = Field(default=60, ge=0)
    cache_warm_top: int = Field(default=200, ge=1, le=10_000)
    #: Entries kept in each API process's memory (the first tier).
    cache_size: int = Field(default=10_000, ge=1)
    #: Where invalidated cache tags are POSTed (`{"tags": [...]}`), e.g. a CDN purge relay.
    cache_purge_url: str | None = Field(default=None, pattern=r"^https?://")
    #: A product not seen for this long is stale (seed 004: refreshed every 24 h).
    freshness_seconds: int = Field(default=86_400, ge=60)
    #: The scheduler recomputes the trending price moves at least this often, seconds (0:
    #: never); a cheap refresh (small catalogue) comes every minute.
    trending_refresh_seconds: float = Field(default=600, ge=0)
    #: Whether reads need no API key; None: yes in the embedded profile, no in the cluster one.
    public_reads: bool | None = None
    #: Only these networks may call the API (CIDRs, comma-separated); empty: everyone.
    api_allow_ips: Annotated[tuple[str, ...], NoDecode] = ()
    #: Proxies whose `X-Forwarded-For` / `-Proto` the API believes (CIDRs, comma-separated, or
    #: `*`), so limits and `api_allow_ips` see the client, not the balancer; empty: none.
    forwarded_allow_ips: Annotated[tuple[str, ...], NoDecode] = ()
    #: Requests per key (or per IP when anonymous), in `limits` notation: "100/minute".
    rate_limit: str = "100/minute"
    #: Per-scope overrides of `rate_limit` for the routes needing that scope.
    rate_limit_read: str | None = None
    #: Override of `rate_limit` for the routes needing the crawl scope.
    rate_limit_crawl: str | None = None
    #: Override of `rate_limit` for the routes needing the admin scope.
    rate_limit_admin: str | None = None
    #: How long a verified API key is trusted without asking the database: a revocation takes
    #: effect within this many seconds on every API process.
    api_key_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    #: Answer cached reads before FastAPI (`pricefleet.api.fastpath`); off: every request goes
    #: through FastAPI's routing (same answers, several times the CPU per cache hit).
    api_fast_path: bool = True

    @field_validator("database_replica_urls", "database_shards", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        """Accept a comma-separated list, as environment variables are strings."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("api_allow_ips", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_networks(cls, value: object, info: ValidationInfo) -> object:
        """A comma-separated list of networks; each must parse (`10.0.0.0/8`, `::1`); the
        proxies may also be `*` (any)."""
        variable = f"PRICEFLEET_{(info.field_name or '').upper()}"
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list | tuple):
            for entry in value:
                if entry == "*" and info.field_name == "forwarded_allow_ips":
                    continue
                try:
                    ipaddress.ip_network(str(entry), strict=False)
                except ValueError as exc:
                    raise ConfigError(
                        f"{variable} entry {entry!r} is not an IP address or "
                        f"network ({exc}); expected e.g. 10.0.0.0/8,192.168.1.7,::1"
                    ) from None
        return value

    @field_validator("rate_limit", "rate_limit_read", "rate_limit_crawl", "rate_limit_admin")
    @classmethod
    def _check_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        """One limit in `limits` notation: "100/minute", "10 per second", "5000/hour"."""
        if value is None or not value.strip():
            return None if info.field_name != "rate_limit" else "100/minute"
        from limits import parse_many

        try:
            single = len(parse_many(value)) == 1
        except ValueError:
            single = False
        if not single:
            variable = f"PRICEFLEET_{(info.field_name or '').upper()}"
            raise ConfigError(
                f"{variable}={value!r} is not one rate limit; expected e.g. 100/minute, "
                "10/second or 5000/hour"
            )
        return value.strip()

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        db, redis = self.database_url, self.redis_url
        for shard in self.database_shards:
            if not shard.partition("=")[2].startswith(("postgresql", "postgres")):
                raise ConfigError(
                    f"PRICEFLEET_DATABASE_SHARDS entry {shard!r}: expected name=postgresql://…"
                )
        if self.database_shards and db is not None:
            raise ConfigError("set PRICEFLEET_DATABASE_URL or PRICEFLEET_DATABASE_SHARDS, not both")
        if db is not None and not db.startswith(("sqlite", "postgresql", "postgres")):
            raise ConfigError(
                f"PRICEFLEET_DATABASE_URL={db!r}: expected sqlite:///path or postgresql://…"
            )
        if redis is not None and not redis.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"PRICEFLEET_REDIS_URL={redis!r}: expected redis://host:port/db")
        if self.is_postgres != (redis is not None):
            raise ConfigError(
                "The cluster profile needs both PostgreSQL (PRICEFLEET_DATABASE_URL=postgresql://… "
                "or PRICEFLEET_DATABASE_SHARDS) and "
                "PRICEFLEET_REDIS_URL=redis://…; set both, or neither for the embedded profile."
            )
        return self

    @property
    def is_postgres(self) -> bool:
        """Whether the configured database is PostgreSQL (one, or shards)."""
        if self.database_shards:
            return True
        return self.database_url is not None and self.database_url.startswith("postgres")

    @property
    def profile(self) -> Profile:
        """Cluster when PostgreSQL and Redis are configured, embedded otherwise."""
        return Profile.CLUSTER if self.is_postgres else Profile.EMBEDDED

    @property
    def effective_database_url(self) -> str:
        """The database to use: the configured one, or a SQLite file in `data_dir`."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pricefleet.db').resolve()}"

    @property
    def events_url(self) -> str:
        """The event bus: Redis pub/sub in the cluster profile, else a SQLite file in
        `data_dir` (workers and the API are separate processes even on one machine)."""
        if self.redis_url is not None:
            return self.redis_url
        return f"sqlite:///{(self.data_dir / 'events.db').resolve()}"

    @property
    def effective_queue_url(self) -> str:
        """The job queue: Redis in the cluster profile, else a SQLite file in `data_dir`."""
        if self.redis_url is not None:
            return self.redis_url
        return f"sqlite:///{(self.data_dir / 'queue.db').resolve()}"

    @property
    def effective_public_reads(self) -> bool:
        """Whether reads need no key: as set, or on in the embedded profile and off in the
        cluster one."""
        if self.public_reads is not None:
            return self.public_reads
        return self.profile is Profile.EMBEDDED

    def rate_limit_for(self, scope: str) -> str:
        """The limit of the routes needing `scope` (read, crawl, admin): its override, or
        `rate_limit`."""
        override: str | None = getattr(self, f"rate_limit_{scope}", None)
        return override or self.rate_limit


_FIELD = re.compile(r"^    (?P<name>[a-z_]+): ")


def _field_comments() -> dict[str, str]:
    """Each field's `#:` comment lines (above it in this file), joined.
    A field right below a commented one, with no comment of its own, shares it (a group such
    as the cache TTLs) and points to the group's first field."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    head: str | None = None  # the commented field heading the current group
    for line in inspect.getsource(Settings).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif (match := _FIELD.match(line)) is not None and match["name"] in Settings.model_fields:
            name = match["name"]
            if pending:
                comments[name], head = " ".join(pending), name
            elif head is not None:
                comments[name] = f"As `PRICEFLEET_{head.upper()}`."
            pending = []
        elif not stripped.startswith("#"):
            pending, head = [], None
    return comments


def settings_reference() -> str:
    """Every setting as a Markdown table (variable, default, meaning), from this model: the
    operations page includes it, and a test keeps the two the same."""
    comments = _field_comments()
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, tuple):
            shown = ",".join(map(str, default)) or "(empty)"
        elif default is None:
            shown = "(unset)"
        else:
            shown = str(default)
        meaning = comments.get(name, "").replace("|", "\\|")
        rows.append(f"| `PRICEFLEET_{name.upper()}` | `{shown}` | {meaning} |")
    return "\n".join(rows)
