"""Recipe schedules: fixed intervals and cron expressions (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pricefleet.sites.schema import Schedule

NOW = datetime(2026, 12, 1, 3, 7, 30, tzinfo=UTC)  # a Tuesday


def test_every_is_aligned_on_the_epoch() -> None:
    """`every: 6h` falls due at 00:00, 06:00, 12:00 and 18:00 UTC."""
    schedule = Schedule(every="6h")
    assert schedule.latest(NOW) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert schedule.following(NOW) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def test_cron_with_ranges_steps_and_lists() -> None:
    """`*/15 2-6 * * 1,3`: every quarter hour from 02:00 to 06:45 on Mondays and Wednesdays."""
    schedule = Schedule(cron="*/15 2-6 * * 1,3")
    assert schedule.latest(NOW) == datetime(2026, 11, 30, 6, 45, tzinfo=UTC)
    assert schedule.following(NOW) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def test_cron_instant_itself_is_due() -> None:
    """At a scheduled instant, that instant is the latest one."""
    schedule = Schedule(cron="0 3 * * *")
    assert schedule.latest(datetime(2026, 12, 1, 3, 0, tzinfo=UTC)) == datetime(
        2026, 12, 1, 3, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"cron": "0 3 * *"}, "not a cron expression"),
        ({"every": "0h"}, "longer than zero"),
        ({"every": "soon"}, "duration"),
        ({"every": "6h", "cron": "0 3 * * *"}, "not both"),
    ],
)
def test_bad_schedules_say_what_is_wrong(fields: dict[str, str], message: str) -> None:
    """A bad schedule is refused with a message naming the problem."""
    with pytest.raises(ValidationError, match=message):
        Schedule(**fields)
