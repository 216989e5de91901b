"""Read replicas and shards: where reads and writes go, on real PostgreSQL databases.

The "replica" here is a second database on the same server that is not replicated, so a test
can tell from the answer which database a read went to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pricefleet.models import Site
from pricefleet.store.base import Store
from pricefleet.store.postgres import PostgresStore
from pricefleet.store.sharded import ShardedStore, shard_for
from tests.servers import create_database, drop_database, free_port, pg_url
from tests.store.factories import SITES, at, sighting


@pytest.fixture
async def two_databases() -> AsyncIterator[tuple[str, str]]:
    """A migrated primary and a migrated would-be replica, each with the two shops."""
    names = [await create_database(), await create_database()]
    try:
        for name in names:
            async with Store.from_url(pg_url(name)) as store:
                await store.upgrade()
                await store.upsert_sites(SITES)
        yield pg_url(names[0]), pg_url(names[1])
    finally:
        for name in names:
            await drop_database(name)


async def test_reads_go_to_the_replica_and_writes_to_the_primary(
    two_databases: tuple[str, str],
) -> None:
    """Reads are served by the replica; writes land on the primary only."""
    primary, replica = two_databases
    async with Store.from_url(replica) as direct:
        await direct.ingest([sighting("only-on-replica", "1.00", at(0))])
    routed = PostgresStore.create(primary, replica_urls=[replica])
    routed.read_your_writes_seconds = 0.0
    try:
        await routed.ingest([sighting("written", "2.00", at(0))])
        assert await routed.get_product("shop-a", "only-on-replica") is not None
        assert await routed.get_product("shop-a", "written") is None  # not replicated here
    finally:
        await routed.close()
    async with Store.from_url(primary) as direct:
        assert await direct.get_product("shop-a", "written") is not None
        assert await direct.get_product("shop-a", "only-on-replica") is None


async def test_a_store_reads_its_own_writes_from_the_primary(
    two_databases: tuple[str, str],
) -> None:
    """Right after writing, reads go to the primary, so the writer sees what it wrote."""
    primary, replica = two_databases
    async with PostgresStore.create(primary, replica_urls=[replica]) as routed:
        await routed.ingest([sighting("fresh", "2.00", at(0))])
        assert await routed.get_product("shop-a", "fresh") is not None
        page = await routed.list_products()
        assert [item["id"] for item in page.items] == ["fresh"]


async def test_a_dead_replica_falls_back_to_the_primary(two_databases: tuple[str, str]) -> None:
    """With its replica unreachable, a store still answers reads, from the primary."""
    primary, _ = two_databases
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    async with Store.from_url(primary) as direct:
        await direct.ingest([sighting("p1", "1.00", at(0))])
    async with PostgresStore.create(primary, replica_urls=[dead]) as routed:
        for _ in range(3):  # the first read finds the replica down, the next skip it
            assert await routed.get_product("shop-a", "p1") is not None
        assert routed._down_until[0] > 0


async def test_sites_spread_over_shards_and_stay_on_theirs() -> None:
    """Every shard gets sites; each site's products are stored on its shard only."""
    names = [await create_database() for _ in range(3)]
    entries = [f"s{n}={pg_url(name)}" for n, name in enumerate(names)]
    sites = [Site(f"shop-{n}", f"Shop {n}", f"http://{n}.test") for n in range(12)]
    try:
        async with ShardedStore.from_urls(entries) as sharded:
            await sharded.upgrade()
            await sharded.upsert_sites(sites)
            await sharded.ingest([sighting("p1", "1.00", at(0), site_id=s.id) for s in sites])
            homes = {s.id: shard_for(s.id, sharded.names) for s in sites}
            assert set(homes.values()) == {"s0", "s1", "s2"}
            for shard_name, shard in sharded.shards.items():
                page = await shard.list_products()
                assert {item["site_id"] for item in page.items} == {
                    site for site, home in homes.items() if home == shard_name
                }
            everything = await sharded.list_products(limit=5)
            assert len(everything.items) == 5
            assert everything.next_cursor is not None
    finally:
        for name in names:
            await drop_database(name)


def test_adding_a_shard_moves_only_the_sites_it_takes() -> None:
    """Rendezvous hashing: with a fourth shard, a site either stays or moves to the new one."""
    sites = [f"site-{n}" for n in range(2000)]
    before = {s: shard_for(s, ["a", "b", "c"]) for s in sites}
    after = {s: shard_for(s, ["a", "b", "c", "d"]) for s in sites}
    moved = [s for s in sites if before[s] != after[s]]
    assert all(after[s] == "d" for s in moved)
    assert 0.15 < len(moved) / len(sites) < 0.35  # about a quarter
