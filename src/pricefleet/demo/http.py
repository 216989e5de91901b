"""HTTP details every demo shop shares: validators (ETag, Last-Modified) and conditional answers."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["conditional"]


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    """RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since when both are sent."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored, as the RFC says
    if since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since


def conditional(
    request: Request,
    body: bytes,
    media_type: str,
    last_modified: datetime,
    *,
    max_age: int = 300,
    headers: dict[str, str] | None = None,
) -> Response:
    """A 200 with validators, or a bodiless 304 when the client's copy is still current."""
    etag = _etag(body)
    validators = {
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified, usegmt=True),
        "Cache-Control": f"public, max-age={max_age}",
        **(headers or {}),
    }
    if request.method in {"GET", "HEAD"} and _not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=validators)
    return Response(body, media_type=media_type, headers=validators)
