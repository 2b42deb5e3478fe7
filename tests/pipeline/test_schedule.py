"""Delivery windows on the customer's wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, time

from integrations.engine.schedule import in_window, next_delivery_time


def test_inside_the_window_means_now():
    now = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)  # 02:30 in Chicago
    assert next_delivery_time(now, tz="America/Chicago", start=time(1), end=time(4)) == now


def test_outside_the_window_waits_for_the_next_local_start():
    now = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # 09:00 in Chicago
    assert next_delivery_time(now, tz="America/Chicago", start=time(1), end=time(4)) == datetime(
        2026, 12, 4, 7, 0, tzinfo=UTC
    )


def test_the_window_stays_at_local_time_across_daylight_saving():
    before = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)  # the day before US DST starts
    after = datetime(2026, 3, 8, 15, 0, tzinfo=UTC)
    assert next_delivery_time(before, tz="America/Chicago", start=time(1), end=time(4)).hour == 7  # CST
    assert next_delivery_time(after, tz="America/Chicago", start=time(1), end=time(4)).hour == 6  # CDT


def test_a_window_may_wrap_midnight():
    assert in_window(time(23, 30), time(22), time(2))
    assert in_window(time(1, 0), time(22), time(2))
    assert not in_window(time(12, 0), time(22), time(2))


def test_no_window_means_now():
    now = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    assert next_delivery_time(now, tz="UTC", start=None, end=None) == now
