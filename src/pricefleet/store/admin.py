"""Operations on a whole database, for the CLI: upgrade; later backup, restore, prune, stats."""

from __future__ import annotations

from pricefleet.config import Settings
from pricefleet.store.base import Store
from pricefleet.store.migrate import head_revision

__all__ = ["upgrade"]


async def upgrade(settings: Settings) -> str:
    """Migrate the configured database to the head revision; returns the revision."""
    async with Store.from_url(settings.effective_database_url) as store:
        await store.upgrade()
    return head_revision()
