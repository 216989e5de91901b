"""The open-model load generator: arrivals on a clock, one aiohttp session, every outcome kept.

Arrivals are scheduled at fixed instants (phase start + i / rate) and sent whether or not
earlier requests have been answered, so a slow server cannot slow the arrivals down and hide its
latency (coordinated omission). Latency is measured from each request's *scheduled* instant to
the end of its body; the service time (from the moment it was actually sent) and the send lag
(how late the generator was) are kept beside it, so a generator that falls behind shows up as
lag instead of passing for server latency. This module measures; `report` summarises.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from pricefleet.loadtest.plan import LoadPlan

__all__ = ["PhaseSamples", "run_load"]

#: Arrivals due within this many seconds are sent now rather than after a sleep.
_EARLY = 0.0005
#: Seconds before the first arrival, so the clock starts after the session is ready.
_LEAD = 0.05


@dataclass(slots=True)
class PhaseSamples:
    """What happened to one phase's requests (times in seconds)."""

    name: str
    rate: float
    seconds: float
    sent: int = 0
    #: Scheduled → body read, for every request that got an HTTP answer (any status).
    latency: array[float] = field(default_factory=lambda: array("d"))
    #: Sent → body read, same requests.
    service: array[float] = field(default_factory=lambda: array("d"))
    #: Scheduled → sent, for every request sent.
    lag: array[float] = field(default_factory=lambda: array("d"))
    #: "200", "500", "timeout", "ClientConnectorError", "unfinished", …
    outcomes: Counter[str] = field(default_factory=Counter)
    first_sent: float | None = None
    last_sent: float | None = None


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    due: float,
    samples: PhaseSamples,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    samples.lag.append(max(0.0, started - due))
    try:
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            outcome = str(response.status)
    except TimeoutError:
        samples.outcomes["timeout"] += 1
        return
    except aiohttp.ClientError as exc:
        samples.outcomes[type(exc).__name__] += 1
        return
    ended = loop.time()
    samples.outcomes[outcome] += 1
    samples.latency.append(ended - due)
    samples.service.append(ended - started)


async def run_load(plan: LoadPlan) -> list[PhaseSamples]:
    """Run `plan` against its server; one `PhaseSamples` per phase. Requests still unanswered
    `plan.timeout` seconds after the last arrival are cancelled and counted as `unfinished`."""
    rng = random.Random(plan.seed)
    weights = [w for w, _ in plan.paths]
    urls = [plan.base_url + path for _, path in plan.paths]
    phases = [PhaseSamples(p.name, p.rate, p.seconds) for p in plan.phases]
    connector = aiohttp.TCPConnector(limit=plan.connections, limit_per_host=plan.connections)
    timeout = aiohttp.ClientTimeout(total=plan.timeout)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    owner: dict[asyncio.Task[None], PhaseSamples] = {}

    def forget(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        owner.pop(task, None)

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=dict(plan.headers)
    ) as session:
        start = loop.time() + _LEAD
        for phase, samples in zip(plan.phases, phases, strict=True):
            picks = rng.choices(urls, weights=weights, k=phase.requests)
            for index, url in enumerate(picks):
                due = start + index / phase.rate
                wait = due - loop.time()
                if wait > _EARLY:
                    await asyncio.sleep(wait)
                task = asyncio.create_task(_one(session, url, due, samples))
                pending.add(task)
                owner[task] = samples
                task.add_done_callback(forget)
                samples.sent += 1
                now = loop.time()
                samples.first_sent = now if samples.first_sent is None else samples.first_sent
                samples.last_sent = now
            start += phase.seconds
        if pending:
            _, late = await asyncio.wait(set(pending), timeout=plan.timeout + 1)
            for task in late:
                owner[task].outcomes["unfinished"] += 1
                task.cancel()
            if late:
                await asyncio.wait(late)
    return phases
