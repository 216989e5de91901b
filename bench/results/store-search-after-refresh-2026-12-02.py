"""bench.store's read rounds for search only, both backends, with GC pauses logged."""
import asyncio, gc, random, sys, time, statistics, os
sys.path.insert(0, "/work/main")
from bench.store import SEED, Catalogue, plan_from_env, reads_for, _timed
from pricefleet.store import Store

pauses = []
_start = [0.0]
def cb(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter()
    else:
        pauses.append((info["generation"], (time.perf_counter() - _start[0]) * 1000))
gc.callbacks.append(cb)

async def main() -> None:
    plan = plan_from_env(False)
    cat = Catalogue(plan)
    reads = reads_for(cat, random.Random(SEED + 1), 200)["search"]
    stores = {"sqlite": Store.from_url("sqlite:////tmp/pricefleet-bench-store-full1m/store.db"),
              "postgresql": Store.from_url("postgresql://postgres@127.0.0.1:5432/pf_bench_keep_full1m")}
    times = {k: [] for k in stores}
    gcs = {k: [] for k in stores}
    for r in reads[:20]:
        for s in stores.values():
            await _timed(s, r)
    for n in range(int(sys.argv[1])):
        if sys.argv[2] == "refresh":
            for name, s in stores.items():
                t = time.perf_counter(); await s.refresh_trending(); print(name, "refresh", round(time.perf_counter() - t, 1), flush=True)
        order = list(stores) if n % 2 == 0 else list(stores)[::-1]
        for name in order:
            for r in reads[n * 67:(n + 1) * 67]:
                pauses.clear()
                sec, _ = await _timed(stores[name], r)
                times[name].append(sec * 1000)
                gcs[name].append(sum(p for g, p in pauses))
    for name, t in times.items():
        q = sorted(t)
        slow = [(round(x, 1), round(g, 1)) for x, g in zip(t, gcs[name]) if x > 50]
        print(name, "p50", round(statistics.median(t), 1), "p95", round(q[int(0.95 * len(q))], 1), "max", round(max(t), 1), "slow (ms, gc ms):", slow)
    print("gc objects tracked:", len(gc.get_objects()))
    for s in stores.values():
        await s.close()

asyncio.run(main())
