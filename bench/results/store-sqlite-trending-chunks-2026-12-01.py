"""One SQLite site of N products with 3 price days; refresh_trending with chunks of 10,000 and
with the whole site in one transaction; the longest write transaction of each (the time the
one writer's lock is held), timed around each `_write` block."""
import asyncio, sys, time, json
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
import random
from pricefleet.store.sqlite import SqliteStore
from tests.store.factories import SITES, sighting

N = int(sys.argv[1])
async def main():
    path = Path(f"/tmp/trend/one-{N}.db")
    fresh = not path.exists()
    store = SqliteStore.create(f"sqlite:///{path}")
    await store.upgrade()
    if fresh:
        await store.upsert_sites(SITES[:1])
        rng = random.Random(1)
        now = datetime.now(UTC)
        for d in (20, 5, 1):
            when = now - timedelta(days=d)
            for start in range(0, N, 5000):
                await store.ingest([sighting(f"p{n:07d}", f"{rng.randint(50, 500) / 100:.2f}", when, site_id=SITES[0].id) for n in range(start, min(N, start + 5000))])
    holds = []
    real = store._write
    @asynccontextmanager
    async def timed():
        t = time.perf_counter()
        async with real() as conn:
            yield conn
        holds.append(time.perf_counter() - t)
    store._write = timed
    out = {}
    for chunk in (10_000, 10**9, 10_000, 10**9):
        store.TRENDING_CHUNK = chunk
        holds.clear()
        t = time.perf_counter()
        await store.refresh_trending()
        out.setdefault(str(chunk), []).append({"total_s": round(time.perf_counter() - t, 2), "longest_hold_s": round(max(holds), 3), "transactions": len(holds)})
        print(chunk, out[str(chunk)][-1], flush=True)
    await store.close()
    print(json.dumps(out))
asyncio.run(main())
