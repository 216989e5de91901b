"""Operations on a whole database, for the CLI: upgrade, backup, restore, prune, stats.

Backups are consistent snapshots taken while writers go on. On SQLite, the online backup API
copies the file in one step (one read transaction, so one snapshot; WAL lets writers continue)
inside a worker thread; on PostgreSQL, `pg_dump --format=custom` (one snapshot too). Either is
written to a temporary file beside the target and renamed into place, so a backup file is
always whole. A restore refuses files that are not pricefleet backups and backups made by a
newer pricefleet (a schema revision this code does not know), then migrates to the head.

Pruning keeps history true: a history row holds from its `observed_at` until the next row
begins, so a row is only deleted when a later row of the same product also began before the
cutoff. Each product keeps its last row that began before the cutoff (the state in force
there), and `Store.history(since=cutoff)` reads the same after pruning as before.
"""

from __future__ import annotations

from pricefleet.store.admin.backup import backup, restore
from pricefleet.store.admin.common import BackupInfo, PruneResult, upgrade
from pricefleet.store.admin.prune import parse_age, prune
from pricefleet.store.admin.stats import stats

__all__ = [
    "BackupInfo",
    "PruneResult",
    "backup",
    "parse_age",
    "prune",
    "restore",
    "stats",
    "upgrade",
]
