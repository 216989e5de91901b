"""The exception tree of pricefleet. Every error a user can meet says what was wrong and what to do.

    PricefleetError
    ├── ConfigError                 bad settings or environment (wrong URL, missing pair)
    ├── RecipeError                 a site recipe is invalid (names the file and the field)
    ├── FetchError                  a page could not be fetched
    │   ├── BlockedURL              refused before sending: SSRF guard, robots.txt, scheme
    │   ├── HTTPStatusError         the shop answered an error status that is not retried
    │   ├── RetryLater              transient (5xx, 429, timeout); carries `after` seconds
    │   └── CircuitOpen             too many failures on a site: it is paused for a while
    ├── ExtractError                a page holds no product we can read, or a malformed one
    ├── StoreError                  the database refused or is unreachable
    │   ├── MigrationError          the schema is not at the head revision
    │   └── UnknownSite             products were written for a site never registered
    ├── InvalidQuery                a query cannot be run: bad cursor, unknown field or sort
    ├── QueueError                  the job queue refused or is unreachable
    └── NotFound                    a requested site, product or job does not exist

Control-flow exceptions are named for what they mean (`RetryLater(after=…)`); no bare
`RuntimeError` is raised for a condition a caller may want to handle.
"""

from __future__ import annotations

__all__ = [
    "BlockedURL",
    "CircuitOpen",
    "ConfigError",
    "ExtractError",
    "FetchError",
    "HTTPStatusError",
    "InvalidQuery",
    "MigrationError",
    "NotFound",
    "PricefleetError",
    "QueueError",
    "RecipeError",
    "RetryLater",
    "StoreError",
    "UnknownSite",
]


class PricefleetError(Exception):
    """Base of every error pricefleet raises on purpose."""


class ConfigError(PricefleetError):
    """The settings or the environment are wrong; the message names the variable."""


class RecipeError(PricefleetError):
    """A site recipe is invalid; the message names the file and the field."""


class FetchError(PricefleetError):
    """A page could not be fetched."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class BlockedURL(FetchError):
    """The URL was refused before any request: private address, robots.txt, bad scheme."""


class HTTPStatusError(FetchError):
    """The shop answered with an error status that retrying will not fix."""

    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class RetryLater(FetchError):
    """A transient failure: try again after `after` seconds (from Retry-After or backoff)."""

    def __init__(self, message: str, *, url: str | None = None, after: float = 0.0) -> None:
        super().__init__(message, url=url)
        self.after = after


class CircuitOpen(FetchError):
    """The site failed too often; requests to it are paused until `until` (epoch seconds)."""

    def __init__(self, message: str, *, url: str | None = None, until: float) -> None:
        super().__init__(message, url=url)
        self.until = until


class ExtractError(PricefleetError):
    """A page holds no readable product, or a malformed one."""


class StoreError(PricefleetError):
    """The database refused an operation or cannot be reached."""


class MigrationError(StoreError):
    """The database schema is not at the head revision: run `pricefleet db upgrade`."""


class UnknownSite(StoreError):
    """Products arrived for a site the store does not know: register it with `upsert_sites`."""


class InvalidQuery(PricefleetError):
    """A query cannot be run as asked: a bad cursor, an unknown field or sort, a bad range."""


class QueueError(PricefleetError):
    """The job queue refused an operation or cannot be reached."""


class NotFound(PricefleetError):
    """A requested site, product or job does not exist."""
