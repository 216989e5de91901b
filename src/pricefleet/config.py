"""One frozen Settings object, built once from the environment (prefix `PRICEFLEET_`).

It owns profile detection: with no database or Redis URL configured pricefleet runs *embedded*
(SQLite file, in-process queue, cache and events); with a PostgreSQL and a Redis URL it runs as
a *cluster*. Nothing deeper in the code reads the environment: the object is passed down.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pricefleet.errors import ConfigError

__all__ = ["Profile", "Settings"]


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

    data_dir: Path = Path("data")
    database_url: str | None = None
    database_replica_urls: Annotated[tuple[str, ...], NoDecode] = ()
    #: Several PostgreSQL databases, sites spread over them: `name=postgresql://…,name=…`.
    database_shards: Annotated[tuple[str, ...], NoDecode] = ()
    redis_url: str | None = None
    #: Namespace of the queue's keys (Redis) or tables (SQLite), for sharing a server.
    queue_prefix: str = Field(default="pf", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,30}$")
    recipes_dir: Path = Path("recipes")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=2, ge=0, le=256)
    log_level: str = "INFO"
    log_json: bool = False
    #: API cache time-to-live per kind, seconds (seeds 002-004: product 1 h, search 5 min,
    #: trending 10 min, categories 7 d); sites carry live queue figures, so a minute.
    cache_ttl_product: float = Field(default=3600, ge=0)
    cache_ttl_search: float = Field(default=300, ge=0)
    cache_ttl_trending: float = Field(default=600, ge=0)
    cache_ttl_sites: float = Field(default=60, ge=0)
    cache_ttl_categories: float = Field(default=7 * 86_400, ge=0)
    #: Entries kept in each API process's memory (the first tier).
    cache_size: int = Field(default=10_000, ge=1)
    #: Where invalidated cache tags are POSTed (`{"tags": [...]}`), e.g. a CDN purge relay.
    cache_purge_url: str | None = Field(default=None, pattern=r"^https?://")
    #: A product not seen for this long is stale (seed 004: refreshed every 24 h).
    freshness_seconds: int = Field(default=86_400, ge=60)

    @field_validator("database_replica_urls", "database_shards", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        """Accept a comma-separated list, as environment variables are strings."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

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
