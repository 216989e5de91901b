"""`RedisQueue`: the cluster backend of `JobQueue`, shared by every worker on every machine.

It owns the Redis key layout of the queue and the calls to its Lua scripts
(`pricefleet.queue.redis_scripts`). Every state change of a site is one atomic script on that
site's keys, which share a hash tag (`pf:{shop-a}:ready`), so the queue runs unchanged on Redis
Cluster; the only cross-site key is the set of known sites (`pf:sites`). Times come from the
server's clock. It must not hold state of its own between calls beyond the connection pool: two
instances are two workers, and they agree through Redis alone.

Connection errors are retried by the pool with exponential backoff; those that persist surface as
`QueueError`. A script whose reply was lost may run twice on a retry: enqueue, ack, fail and
release are idempotent then; a lease is handed out, never acked and recovered when it expires.

Concurrent calls on one instance share round trips (`pricefleet.queue.coalesce`): while an
enqueue, lease, heartbeat, ack, fail or release is in flight, further calls of that kind wait and
then go together, one script call per site in one pipeline; the scripts answer per item (a
character per job or lease), so each caller learns its own figures. A merged lease asks each site
for the sum of its callers' shares and the script gates that sum (pause, hold, concurrency, GCRA)
as it gates one call's; the jobs it gives are dealt to the callers in the order they asked.
"""

from __future__ import annotations

import math
import random
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pricefleet.errors import QueueError
from pricefleet.models import JobKind
from pricefleet.queue import redis_scripts as lua
from pricefleet.queue.base import (
    DEFAULT_VISIBILITY,
    SEEN_SECONDS,
    JobQueue,
    Lease,
    NewJob,
    Retention,
    RunProgress,
    SiteLimits,
    SiteStats,
    backoff,
    run_of,
)
from pricefleet.queue.coalesce import Coalescer

__all__ = ["RedisQueue"]

#: How long a run's seen keys live after its last one, in milliseconds (PEXPIRE).
_SEEN_MS = int(SEEN_SECONDS * 1_000)
#: Delayed jobs promoted and expired leases recovered per lease call, at most (keeps it short).
_HOUSEKEEP_LIMIT = 1_000

_Call = tuple[str, list[str], list[Any]]
#: A job ready for ENQUEUE: site, key, body, priority, delay, max_attempts, run.
_Job = tuple[str, str, bytes, int, float, int, str]
#: Seconds a client trusts its list of known sites when leasing from all of them.
SITES_REFRESH = 1.0


def _describe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _glob_escape(text: str) -> str:
    """`text` matched literally by a Redis glob (SCAN MATCH)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class _LeaseAsk:
    """One caller's lease: `sites` None for all known sites."""

    count: int
    sites: list[str] | None
    visibility: float


@dataclass(slots=True)
class _Dealt:
    """What a merged lease has dealt one caller so far, and where it may still look."""

    ask: _LeaseAsk
    candidates: list[str]
    got: list[Lease]


class RedisQueue(JobQueue):
    """Per-site job queues in Redis; see `pricefleet.queue.base` for the contract."""

    def __init__(self, url: str, *, prefix: str = "pf", retention: Retention | None = None) -> None:
        self._where = _describe(url)
        self._prefix = prefix
        self._retention = retention or Retention()
        self._sites_key = f"{prefix}:sites"
        # The known sites as this client last read them: a worker's lease loop would otherwise
        # spend a round trip per lease re-reading a set that rarely changes.
        self._known: set[str] = set()
        self._known_at = -math.inf
        self._site_keys: dict[str, list[str]] = {}
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=2.0), retries=6),
            socket_connect_timeout=5.0,
            socket_timeout=30.0,
            health_check_interval=15,
            # Names the connections in CLIENT LIST (no spaces allowed there).
            client_name=re.sub(r"[^\w.:-]", "_", f"pricefleet-queue-{prefix}"),
        )
        self._scripts: dict[str, AsyncScript] = {
            name: self._redis.register_script(getattr(lua, name))
            for name in (
                "ACK",
                "ACQUIRE",
                "ADVANCE",
                "DEAD",
                "ENQUEUE",
                "FAIL",
                "HEARTBEAT",
                "HOLD",
                "LEASE",
                "RELEASE",
                "REPLAY",
                "STATS",
            )
        }
        # One coalescer per kind of call: concurrent callers share round trips.
        self._enqueues = Coalescer(self._enqueue_batch)
        self._leasing = Coalescer(self._lease_batch, orphan=self.release)
        self._heartbeats = Coalescer(self._heartbeat_batch)
        self._acks = Coalescer(self._ack_batch)
        self._fails = Coalescer(self._fail_batch)
        self._releases = Coalescer(self._release_batch)

    # -- plumbing -------------------------------------------------------------------------

    def _keys(self, site_id: str) -> list[str]:
        keys = self._site_keys.get(site_id)
        if keys is None:
            if not site_id or "{" in site_id or "}" in site_id:
                raise QueueError(
                    f"site id {site_id!r} cannot name a Redis queue: it must be non-empty "
                    "and hold no braces (they would break the hash tag)"
                )
            keys = [f"{self._prefix}:{{{site_id}}}:{suffix}" for suffix in lua.SITE_KEYS]
            self._site_keys[site_id] = keys
        return keys

    def _error(self, exc: RedisError) -> QueueError:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            return QueueError(
                f"the Redis queue at {self._where} is unreachable ({exc}); "
                "check that Redis runs there, workers retry with backoff"
            )
        return QueueError(f"the Redis queue at {self._where} refused an operation: {exc}")

    async def _run(
        self, calls: Sequence[_Call], *, sites: Sequence[str] = (), each: bool = False
    ) -> list[Any]:
        """Runs script calls (each on the keys of one site) in one round trip and returns
        their replies in order; `sites` are added to the known sites on the way. A script that
        fails raises, or with `each` stands as a `QueueError` in its reply's place (the calls
        merged from several callers fail only those whose items it held)."""
        if len(calls) == 1 and not sites:  # no pipeline for one call: less to do per call
            name, keys, args = calls[0]
            try:
                return [await self._scripts[name](keys, args)]
            except (RedisConnectionError, RedisTimeoutError) as exc:
                raise self._error(exc) from exc
            except RedisError as exc:
                if not each:
                    raise self._error(exc) from exc
                return [self._error(exc)]
        try:
            self._known.update(sites)
            async with self._redis.pipeline(transaction=False) as pipe:
                if sites:
                    pipe.sadd(self._sites_key, *sites)
                for name, keys, args in calls:
                    pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            if sites:
                replies = replies[1:]
            for index, reply in enumerate(replies):
                if isinstance(reply, NoScriptError):
                    # The server lost its script cache (a restart): this call did not run.
                    name, keys, args = calls[index]
                    replies[index] = await self._scripts[name](keys, args)
                elif isinstance(reply, RedisError):
                    if not each:
                        raise reply
                    replies[index] = self._error(reply)
            return replies
        except RedisError as exc:
            raise self._error(exc) from exc

    # -- the interface --------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def enqueue(self, jobs: Sequence[NewJob]) -> int:
        """Add jobs, one script call per site; returns how many were new. A job with a `run`
        is also marked seen in that run's set (kept `SEEN_SECONDS` after the run's last key)."""
        if not jobs:
            return 0
        ready: list[_Job] = []
        for job in jobs:
            if job.max_attempts < 1:
                raise QueueError(f"job {job.key!r} needs max_attempts >= 1")
            self._keys(job.site_id)  # a bad site id is this caller's error, not its batch's
            body = orjson.dumps([str(job.kind), job.url, job.payload])
            ready.append(
                (
                    job.site_id,
                    job.key,
                    body,
                    int(job.priority),
                    float(job.delay),
                    job.max_attempts,
                    job.run,
                )
            )
        return await self._enqueues.submit(ready)

    async def _enqueue_batch(self, requests: list[list[_Job]]) -> list[int | Exception]:
        """Callers' jobs in one ENQUEUE per site, each caller's in its order, callers in
        theirs: a key two callers enqueue is new for the first only, as if one had gone first."""
        per_site: dict[str, tuple[list[Any], dict[str, int], list[int]]] = {}
        for owner, ready in enumerate(requests):
            for site, key, body, priority, delay, max_attempts, run in ready:
                args, runs, owners = per_site.setdefault(site, ([0, _SEEN_MS], {}, []))
                args[0] += 1
                index = runs.setdefault(run, len(runs) + 1) if run else 0
                args += (key, body, priority, delay, max_attempts, index)
                owners.append(owner)
        calls = [
            ("ENQUEUE", self._keys(site) + self._run_keys(site, list(runs)), args)
            for site, (args, runs, _) in per_site.items()
        ]
        replies = await self._run(calls, sites=list(per_site), each=True)
        return self._count_flags(len(requests), per_site.values(), replies)

    def _seen_key(self, site_id: str, run: str) -> str:
        return f"{self._prefix}:{{{site_id}}}:seen:{run}"

    def _run_keys(self, site_id: str, runs: Sequence[str]) -> list[str]:
        """Each run's seen set and figures, in order: what ENQUEUE's KEYS end with."""
        return [
            k for run in runs for k in (self._seen_key(site_id, run), self._run_key(site_id, run))
        ]

    def _run_key(self, site_id: str, run: str) -> str:
        """The hash of a run's figures (enqueued, done, dead), expiring with its seen set."""
        return f"{self._prefix}:{{{site_id}}}:run:{run}"

    async def lease(
        self,
        count: int,
        *,
        sites: Sequence[str] | None = None,
        visibility: float = DEFAULT_VISIBILITY,
    ) -> list[Lease]:
        """Up to `count` jobs, spread over the sites in a shuffled order: each site is asked
        for its share, and sites that gave all they were asked are asked again for the rest."""
        if count <= 0:
            return []
        if visibility <= 0:
            raise QueueError(f"a lease needs a visibility above 0 seconds, not {visibility}")
        chosen = None if sites is None else list(sites)
        if chosen is not None:
            if not chosen:
                return []
            for site in chosen:
                self._keys(site)
        return await self._leasing.submit(_LeaseAsk(count, chosen, float(visibility)))

    async def _lease_batch(self, asks: list[_LeaseAsk]) -> list[list[Lease] | Exception]:
        """Callers' leases in rounds of one pipeline: each round asks every site for the sum
        of the shares its callers want from it (one LEASE per site and visibility, gated as a
        whole), then deals what came back to them in the order they asked."""
        known: list[str] = []
        if any(ask.sites is None for ask in asks):
            known = await self._lease_sites()
        dealt = []
        for ask in asks:
            candidates = list(known if ask.sites is None else ask.sites)
            random.shuffle(candidates)
            dealt.append(_Dealt(ask, candidates, []))
        while True:
            wanted: dict[tuple[str, float], list[tuple[_Dealt, int]]] = {}
            rests: list[tuple[_Dealt, list[str], list[str]]] = []
            for one in dealt:
                remaining = one.ask.count - len(one.got)
                if remaining <= 0 or not one.candidates:
                    continue
                candidates = one.candidates
                if remaining < len(candidates):
                    asked, rest = candidates[:remaining], candidates[remaining:]
                    shares = [1] * len(asked)
                else:
                    asked, rest = candidates, []
                    share, extra = divmod(remaining, len(asked))
                    shares = [share + (i < extra) for i in range(len(asked))]
                for site, want in zip(asked, shares, strict=True):
                    wanted.setdefault((site, one.ask.visibility), []).append((one, want))
                full: list[str] = []
                rests.append((one, rest, full))
            if not wanted:
                return [one.got for one in dealt]
            calls = [
                (
                    "LEASE",
                    self._keys(site),
                    [
                        sum(want for _, want in takers),
                        visibility,
                        secrets.token_hex(8),
                        _HOUSEKEEP_LIMIT,
                    ],
                )
                for (site, visibility), takers in wanted.items()
            ]
            replies = await self._run(calls)
            fulls = {id(one): full for one, _, full in rests}
            for ((site, _), takers), reply in zip(wanted.items(), replies, strict=True):
                got = self._leases(site, reply)
                start = 0
                for one, want in takers:
                    taken = got[start : start + want]
                    start += len(taken)
                    one.got += taken
                    if len(taken) == want:
                        fulls[id(one)].append(site)
            for one, rest, full in rests:
                one.candidates = rest + full

    @staticmethod
    def _leases(site_id: str, reply: list[Any]) -> list[Lease]:
        if not reply:
            return []
        expires_at = float(reply[0])
        out = []
        for j in range(1, len(reply), 6):
            kind, url, payload = orjson.loads(reply[j + 5])
            out.append(
                Lease(
                    site_id=site_id,
                    key=_text(reply[j]),
                    kind=JobKind(kind),
                    url=url,
                    token=_text(reply[j + 1]),
                    attempts=int(reply[j + 2]),
                    max_attempts=int(reply[j + 3]),
                    expires_at=expires_at,
                    priority=int(reply[j + 4]),
                    payload=payload,
                )
            )
        return out

    async def heartbeat(self, leases: Sequence[Lease], visibility: float) -> list[Lease]:
        """Extend the leases still held by `visibility` seconds from now (server time)."""
        if not leases:
            return []
        for lease in leases:
            self._keys(lease.site_id)
        return await self._heartbeats.submit((list(leases), float(visibility)))

    async def _heartbeat_batch(
        self, requests: list[tuple[list[Lease], float]]
    ) -> list[list[Lease] | Exception]:
        """One HEARTBEAT per site and visibility for every caller's leases."""
        per_call: dict[tuple[str, float], tuple[list[Any], list[tuple[int, int]]]] = {}
        for owner, (leases, visibility) in enumerate(requests):
            for position, lease in enumerate(leases):
                args, owners = per_call.setdefault((lease.site_id, visibility), ([visibility], []))
                args += (lease.key, lease.token)
                owners.append((owner, position))
        calls = [("HEARTBEAT", self._keys(site), args) for (site, _), (args, _) in per_call.items()]
        replies = await self._run(calls, each=True)
        expiry: list[dict[int, float]] = [{} for _ in requests]
        failed: list[Exception | None] = [None] * len(requests)
        for (_, owners), reply in zip(per_call.values(), replies, strict=True):
            if isinstance(reply, Exception):
                for owner, _ in owners:
                    failed[owner] = reply
                continue
            expires_at = float(reply[0])
            for (owner, position), flag in zip(owners, _text(reply[1]), strict=True):
                if flag == "1":
                    expiry[owner][position] = expires_at
        return [
            error
            if error is not None
            else [
                replace(lease, expires_at=held[position])
                for position, lease in enumerate(leases)
                if position in held
            ]
            for (leases, _), held, error in zip(requests, expiry, failed, strict=True)
        ]

    async def ack(self, leases: Sequence[Lease]) -> int:
        """Mark the jobs done and trim each site's finished jobs to the retention."""
        if not leases:
            return 0
        for lease in leases:
            self._keys(lease.site_id)
        return await self._acks.submit(list(leases))

    async def _ack_batch(self, requests: list[list[Lease]]) -> list[int | Exception]:
        """One ACK per site for every caller's leases."""
        keep: list[Any] = [self._retention.count, self._retention.seconds]
        per_site: dict[str, tuple[list[Any], dict[str, int], list[int]]] = {}
        for owner, leases in enumerate(requests):
            for lease in leases:
                args, runs, owners = per_site.setdefault(lease.site_id, (list(keep), {}, []))
                run = run_of(lease)
                index = runs.setdefault(run, len(runs) + 1) if run else 0
                args += (lease.key, lease.token, index)
                owners.append(owner)
        calls = [
            ("ACK", self._keys(site) + [self._run_key(site, run) for run in runs], args)
            for site, (args, runs, _) in per_site.items()
        ]
        return self._count_flags(
            len(requests), per_site.values(), await self._run(calls, each=True)
        )

    @staticmethod
    def _count_flags(
        callers: int, groups: Any, replies: Sequence[Any], yes: str = "1"
    ) -> list[int | Exception]:
        """Per caller, the items its calls answered `yes` to; a failed call fails its callers.
        `groups` yields tuples whose last element lists each item's caller."""
        counts: list[int | Exception] = [0] * callers
        for group, reply in zip(groups, replies, strict=True):
            owners: list[int] = group[-1]
            if isinstance(reply, Exception):
                for owner in owners:
                    counts[owner] = reply
                continue
            for owner, flag in zip(owners, _text(reply), strict=True):
                count = counts[owner]
                if flag == yes and not isinstance(count, Exception):
                    counts[owner] = count + 1
        return counts

    async def fail(self, lease: Lease, error: str, *, retry_after: float | None = None) -> bool:
        """Retry after `retry_after` or `backoff(attempts)`, or go dead with `error` once the
        attempts are used up; True when the job went dead."""
        self._keys(lease.site_id)
        delay = retry_after if retry_after is not None else backoff(lease.attempts)
        return await self._fails.submit((lease, error, max(0.0, delay)))

    async def _fail_batch(self, requests: list[tuple[Lease, str, float]]) -> list[bool | Exception]:
        """One FAIL per site for every caller's failure."""
        per_site: dict[str, tuple[list[Any], dict[str, int], list[int]]] = {}
        for owner, (lease, error, delay) in enumerate(requests):
            args, runs, owners = per_site.setdefault(lease.site_id, ([], {}, []))
            run = run_of(lease)
            index = runs.setdefault(run, len(runs) + 1) if run else 0
            args += (lease.key, lease.token, error, delay, index)
            owners.append(owner)
        calls = [
            ("FAIL", self._keys(site) + [self._run_key(site, run) for run in runs], args)
            for site, (args, runs, _) in per_site.items()
        ]
        dead = self._count_flags(
            len(requests), per_site.values(), await self._run(calls, each=True)
        )
        return [d if isinstance(d, Exception) else d == 1 for d in dead]

    async def release(self, leases: Sequence[Lease]) -> int:
        """Give the jobs back untried: ready again at once, in their old place."""
        if not leases:
            return 0
        for lease in leases:
            self._keys(lease.site_id)
        return await self._releases.submit(list(leases))

    async def _release_batch(self, requests: list[list[Lease]]) -> list[int | Exception]:
        """One RELEASE per site for every caller's leases."""
        per_site: dict[str, tuple[list[Any], list[int]]] = {}
        for owner, leases in enumerate(requests):
            for lease in leases:
                args, owners = per_site.setdefault(lease.site_id, ([], []))
                args += (lease.key, lease.token)
                owners.append(owner)
        calls = [("RELEASE", self._keys(site), args) for site, (args, _) in per_site.items()]
        return self._count_flags(
            len(requests), per_site.values(), await self._run(calls, each=True)
        )

    async def set_limits(self, site_id: str, limits: SiteLimits) -> None:
        """Set the site's GCRA rate, burst and concurrency, for every worker at once."""
        items: list[str | int] = ["rate", repr(float(limits.rate)), "burst", limits.burst]
        items += ["concurrency", limits.concurrency]
        await self._meta(site_id, lambda pipe, meta: pipe.hset(meta, items=items))

    async def acquire(self, site_id: str, rate: float, burst: int) -> float:
        """Take one slot of the site's cluster-wide GCRA for a request that is not a job's own:
        0 when taken, else the seconds to wait before asking again."""
        if rate <= 0:
            return 0.0
        args = [repr(float(rate)), max(1, burst)]
        (reply,) = await self._run([("ACQUIRE", self._keys(site_id), args)], sites=[site_id])
        return float(reply)

    async def advance(self, site_id: str, mark: str, value: float) -> bool:
        """Move the site's named mark forward to `value`, atomically: True if it moved."""
        args = [mark, repr(float(value))]
        (reply,) = await self._run([("ADVANCE", self._keys(site_id), args)], sites=[site_id])
        return int(reply) == 1

    async def hold(self, site_id: str, seconds: float) -> None:
        """Lease nothing from the site for `seconds`, unless a longer hold is in place."""
        await self._run([("HOLD", self._keys(site_id), [seconds])], sites=[site_id])

    async def pause(self, site_id: str) -> None:
        """Stop leasing the site's jobs until `resume`."""
        await self._meta(site_id, lambda pipe, meta: pipe.hset(meta, "paused", 1))

    async def resume(self, site_id: str) -> None:
        """Lease the site's jobs again."""
        await self._meta(site_id, lambda pipe, meta: pipe.hdel(meta, "paused"))

    async def _meta(self, site_id: str, change: Callable[[Pipeline, str], object]) -> None:
        meta = self._keys(site_id)[lua.SITE_KEYS.index("meta")]
        try:
            self._known.add(site_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.sadd(self._sites_key, site_id)
                change(pipe, meta)
                await pipe.execute()
        except RedisError as exc:
            raise self._error(exc) from exc

    async def _lease_sites(self) -> list[str]:
        """The known sites, re-read at most every `SITES_REFRESH` seconds (sites this client
        added itself are known at once; others' within that delay)."""
        if time.monotonic() - self._known_at >= SITES_REFRESH:
            self._known = set(await self.sites())
            self._known_at = time.monotonic()
        return sorted(self._known)

    async def sites(self) -> list[str]:
        """Every site that has had a job, limits, a hold or a pause, sorted."""
        try:
            members = await self._redis.smembers(self._sites_key)
        except RedisError as exc:
            raise self._error(exc) from exc
        return sorted(_text(m) for m in members)

    async def stats(self, site_ids: Sequence[str] | None = None) -> dict[str, SiteStats]:
        """Per-site figures, one read-only script per site in one round trip."""
        names = list(site_ids) if site_ids is not None else await self.sites()
        calls = [("STATS", self._keys(s), [self._retention.seconds]) for s in names]
        if not calls:
            return {}
        out = {}
        for site, r in zip(names, await self._run(calls), strict=True):
            out[site] = SiteStats(
                site_id=site,
                queued=int(r[0]),
                delayed=int(r[1]),
                leased=int(r[2]),
                dead=int(r[3]),
                done=int(r[4]),
                oldest_age=float(r[5]),
                paused=bool(r[6]),
                hold_seconds=float(r[7]),
                enqueued_total=int(r[8]),
                acked_total=int(r[9]),
                failed_total=int(r[10]),
            )
        return out

    async def dead(self, site_id: str, limit: int = 100) -> list[tuple[Lease, str]]:
        """The site's dead jobs, newest first, with their last error (token empty)."""
        if limit <= 0:
            return []
        (reply,) = await self._run([("DEAD", self._keys(site_id), [limit])])
        out = []
        for j in range(0, len(reply), 6):
            kind, url, payload = orjson.loads(reply[j + 4])
            lease = Lease(
                site_id=site_id,
                key=_text(reply[j]),
                kind=JobKind(kind),
                url=url,
                token="",
                attempts=int(reply[j + 1]),
                max_attempts=int(reply[j + 2]),
                expires_at=0.0,
                priority=int(reply[j + 3]),
                payload=payload,
            )
            out.append((lease, _text(reply[j + 5])))
        return out

    async def replay(self, site_id: str, keys: Sequence[str] | None = None) -> int:
        """Queue dead jobs again with fresh attempts, behind the jobs already waiting."""
        args = ["all"] if keys is None else ["some", *keys]
        (reply,) = await self._run([("REPLAY", self._keys(site_id), args)])
        return int(reply)

    async def run_progress(self, site_id: str, run: str) -> RunProgress | None:
        """The run's figures hash (enqueued, done, dead), None once it expired."""
        key = self._run_key(site_id, run)
        try:
            values = await self._redis.hmget(key, ["enqueued", "done", "dead"])
        except RedisError as exc:
            raise self._error(exc) from exc
        if all(v is None for v in values):
            return None
        enqueued, done, dead = (int(v or 0) for v in values)
        return RunProgress(site_id, run, enqueued, done, dead)

    async def purge(self, site_id: str) -> None:
        """Delete every key of the site (jobs, runs' seen keys, limits, counters) and forget
        the site."""
        seen = _glob_escape(self._seen_key(site_id, "")) + "*"
        figures = _glob_escape(self._run_key(site_id, "")) + "*"
        try:
            runs = [key async for key in self._redis.scan_iter(match=seen, count=1_000)]
            runs += [key async for key in self._redis.scan_iter(match=figures, count=1_000)]
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(*self._keys(site_id), *runs)
                pipe.srem(self._sites_key, site_id)
                await pipe.execute()
            self._known.discard(site_id)
        except RedisError as exc:
            raise self._error(exc) from exc
