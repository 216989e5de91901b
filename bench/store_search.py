"""PostgreSQL search at catalogue scale, before and after a change, side by side.

`python -m bench.store_search --database postgresql://…/NAME` reads a database that already
holds a catalogue (`bench.api_data`, or one kept by `bench.store --keep`) and times
`Store.search` two ways in the same process, call by call, alternating which goes first: the
query `main` sends (`_Before`, a copy of it kept here) and the branch's `PostgresStore`. The
queries: the store benchmark's mix (`bench.store`'s `random_query`, the same seed), and fixed
groups of words (common product words, cut short as a prefix, two words, rare words, words in
over 10 % of products), each also within one site. Every page is compared: the two ways must
agree, and each must give the same page on every call. With `--before-database` (a copy of the
catalogue kept at an earlier schema, e.g. `CREATE DATABASE b TEMPLATE a` before migrating `a`),
`before` is this code's search on that copy instead: a schema change, side by side. Results go to
`bench/results/store-search-<tag>-<date>.json`, with the plans of a common word (EXPLAIN
ANALYZE, BUFFERS) as each way sends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bench import percentile
from bench.store import SEED, Catalogue, Plan, reads_for
from pricefleet.store.postgres import PostgresStore, async_url
from pricefleet.store.query import SEARCH_CANDIDATES
from pricefleet.store.records import SearchHit
from pricefleet.store.sql import _default_columns_sql

RESULTS = Path(__file__).resolve().parent / "results"

#: Fixed groups of queries (the last word is a prefix, as typed).
GROUPS: dict[str, tuple[str, ...]] = {
    "common word": ("leche", "queso", "aceite", "yogur", "pan", "cafe"),
    "common prefix": ("lech", "ques", "acei", "yogu"),
    "two words": ("leche entera", "jamon iberic", "queso curad", "aceite oliva"),
    "rare word": ("trufado", "bellota", "azafran", "gourmet"),
    "very common word (>10 %)": ("ecologico", "oferta", "huerta", "de"),
}


class _Before(PostgresStore):
    """The search query of `main` before this change (commit 8d0e82e), for side-by-side runs."""

    async def _search(
        self, conn: AsyncConnection, words: list[str], limit: int, site_id: str | None, fuzzy: bool
    ) -> list[SearchHit]:
        columns = _default_columns_sql("p", "st")
        site_clause = "AND p.site_id = :site" if site_id is not None else ""
        tsquery = " & ".join([*words[:-1], f"{words[-1]}:*"])
        full_text = text(
            f"SELECT {columns}, s.score FROM ("
            "SELECT c.site_id, c.id, c.score FROM ("
            "SELECT p.site_id, p.id, ts_rank_cd(p.search, q, 1) AS score "
            "FROM product_search p, to_tsquery('simple', :tsq) q "
            f"WHERE p.search @@ q {site_clause} LIMIT :candidates"
            ") c ORDER BY c.score DESC, c.site_id, c.id LIMIT :limit"
            ") s JOIN products p ON p.site_id = s.site_id AND p.id = s.id "
            "JOIN product_state st ON st.site_id = p.site_id AND st.id = p.id "
            "ORDER BY s.score DESC, p.site_id, p.id"
        ).columns(*self._columns(None))
        params = {"tsq": tsquery, "limit": limit, "site": site_id, "candidates": SEARCH_CANDIDATES}
        rows = list(await conn.execute(full_text, params))
        return [
            SearchHit({k: v for k, v in r._mapping.items() if k != "score"}, float(r.score))
            for r in rows
        ]


def _before_store(url: str) -> _Before:
    # As `main` connects: no session settings.
    engine = create_async_engine(async_url(url), pool_size=5, max_overflow=5, pool_pre_ping=True)
    return _Before(url, engine, [])


def _queries(site: str) -> list[tuple[str, str, str | None]]:
    """(group, query, site or None) for every call of a round."""
    catalogue = Catalogue(Plan.make(1.0, False, 3, 1.0))
    mix = [read.args[0] for read in reads_for(catalogue, random.Random(SEED + 1), 200)["search"]]
    out: list[tuple[str, str, str | None]] = [("store benchmark mix", q, None) for q in mix]
    for group, words in GROUPS.items():
        out += [(group, q, None) for q in words]
        out += [(f"{group}, one site", q, site) for q in words]
    return out


async def _explain(url: str, store: PostgresStore, q: str, site: str | None) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the search statement `store` sends for `q`, with the
    settings its search transaction has."""
    captured: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        captured.append((statement, params))

    event.listen(store.writer.sync_engine, "before_cursor_execute", grab)
    try:
        await store.search(q, site_id=site)
    finally:
        event.remove(store.writer.sync_engine, "before_cursor_execute", grab)
    statement, params = next(c for c in reversed(captured) if "ts_rank_cd" in c[0])
    conn = await asyncpg.connect(url)
    try:
        if not isinstance(store, _Before):  # as the branch's search transaction does
            await conn.execute("SET synchronize_seqscans = off")
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *params)
    finally:
        await conn.close()
    return [row[0] for row in rows]


def _after_candidates() -> int:
    from pricefleet.store import postgres

    return postgres.SEARCH_CANDIDATES


def _summary(times: Sequence[float]) -> dict[str, Any]:
    ms = [1000 * t for t in times]
    return {
        "calls": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "max_ms": round(max(ms), 2),
    }


async def _run(url: str, rounds: int, before_url: str | None) -> dict[str, Any]:
    before = PostgresStore.create(before_url) if before_url else _before_store(url)
    after = PostgresStore.create(url)
    stores = {"before": before, "after": after}
    try:
        async with after.writer.connect() as conn:
            site = await conn.scalar(text("SELECT min(id) FROM sites"))
            counts = {
                t: await conn.scalar(text(f"SELECT count(*) FROM {t}"))
                for t in ("products", "product_search")
            }
        calls = _queries(site)
        times: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in stores}
        rounds_median: dict[str, list[float]] = defaultdict(list)
        pages: dict[str, dict[tuple[str, str | None], set[tuple[tuple[str, str], ...]]]] = {
            k: defaultdict(set) for k in stores
        }
        for _, q, s in calls[:10]:  # warm-up, untimed
            for store in stores.values():
                await store.search(q, site_id=s)
        for number in range(rounds):
            round_times: dict[str, list[float]] = defaultdict(list)
            for index, (group, q, s) in enumerate(calls):
                order = list(stores.items())
                if (index + number) % 2:
                    order.reverse()
                for name, store in order:
                    began = time.perf_counter()
                    hits = await store.search(q, site_id=s)
                    seconds = time.perf_counter() - began
                    times[name][group].append(seconds)
                    round_times[name].append(seconds)
                    page = tuple((h.item["site_id"], h.item["id"]) for h in hits)
                    pages[name][(q, s)].add(page)
            for name in stores:
                rounds_median[name].append(round(1000 * statistics.median(round_times[name]), 2))
            print(f"round {number + 1}/{rounds} done, load {os.getloadavg()[0]:.1f}", flush=True)
        keys = pages["after"].keys()
        unstable = {
            name: sorted(f"{q}|{s}" for q, s in keys if len(pages[name][(q, s)]) > 1)
            for name in stores
        }
        differ = sorted(
            f"{q}|{s}"
            for q, s in keys
            if len(pages["after"][(q, s)]) == 1
            and len(pages["before"][(q, s)]) == 1
            and pages["after"][(q, s)] != pages["before"][(q, s)]
        )
        plans = {
            name: {
                "leche": await _explain(store.url, store, "leche", None),
                "leche, one site": await _explain(store.url, store, "leche", site),
            }
            for name, store in stores.items()
        }
        summary = {
            name: {
                "all": _summary([t for g in groups.values() for t in g]),
                "round_medians_ms": rounds_median[name],
                **{group: _summary(values) for group, values in groups.items()},
            }
            for name, groups in times.items()
        }
    finally:
        for store in stores.values():
            await store.close()
    return {
        "benchmark": "store-search",
        "database": url.rsplit("/", 1)[-1],
        "before_database": (before_url or url).rsplit("/", 1)[-1],
        "rows": counts,
        "rounds": rounds,
        "search_candidates": SEARCH_CANDIDATES,
        "search_candidates_after": _after_candidates(),
        "calls_per_round": len(calls),
        "site": site,
        "reads": summary,
        "pages_unstable_across_calls": unstable,
        "pages_differing_before_after": differ,
        "plans": plans,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write its results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="postgresql://… of a loaded catalogue")
    parser.add_argument(
        "--before-database",
        help="a copy of the catalogue at an earlier schema: `before` is this code's search "
        "there (default: `main`'s old query on --database)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tag", default="ab")
    parser.add_argument(
        "--after-candidates",
        type=int,
        help="rank at most this many matches in the branch's search (before keeps 5,000)",
    )
    args = parser.parse_args(argv)
    if args.after_candidates is not None:
        from pricefleet.store import postgres

        postgres.SEARCH_CANDIDATES = args.after_candidates
    started = datetime.now(UTC)
    load = os.getloadavg()
    result = asyncio.run(_run(args.database, args.rounds, args.before_database))
    result |= {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"store-search-{args.tag}-{started:%Y-%m-%d}.json"
    path.write_text(json.dumps(result, indent=1))
    for name, groups in result["reads"].items():
        for group, figures in groups.items():
            if group != "round_medians_ms":
                print(f"{name:7s} {group:40s} {figures}")
        print(f"{name:7s} round medians {groups['round_medians_ms']}")
    print("unstable:", {k: len(v) for k, v in result["pages_unstable_across_calls"].items()})
    print("differ:", len(result["pages_differing_before_after"]))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
