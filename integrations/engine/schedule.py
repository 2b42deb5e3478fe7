"""Delivery windows: when may a scheduled integration deliver?"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def in_window(local: time, start: time, end: time) -> bool:
    """Inside [start, end); a window may wrap midnight (22:00–02:00)."""
    if start == end:
        return True
    if start < end:
        return start <= local < end
    return local >= start or local < end


def next_delivery_time(now: datetime, *, tz: str, start: time | None, end: time | None) -> datetime:
    """``now`` if inside the window (or there is none), else the next window start, in UTC.

    Computed on the customer's wall clock, so a window stays 01:00–04:00 local across DST."""
    if start is None or end is None:
        return now
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    if in_window(local.time(), start, end):
        return now
    day = local.date()
    for offset in (0, 1, 2):
        candidate = datetime.combine(day + timedelta(days=offset), start, tzinfo=zone)
        # Round-trip through UTC resolves a start time that falls in a DST gap.
        candidate_utc = candidate.astimezone(UTC)
        if candidate_utc > now:
            return candidate_utc
    raise AssertionError("a daily window always starts within two days")  # pragma: no cover
