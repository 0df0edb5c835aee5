"""The one backoff rule: immediate first attempt, then doubling waits up to a cap."""

from __future__ import annotations

import itertools

from appliance.backoff import Backoff


def test_reconnect_waits_double_up_to_the_cap() -> None:
    rule = Backoff(0.5, 3.0)
    assert rule.delay(0) == 0.0  # nothing failed yet: try at once
    assert list(itertools.islice(rule.delays(), 6)) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_free_attempts_cost_nothing() -> None:
    rule = Backoff(1.0, 8.0, free=3)
    assert [rule.delay(n) for n in range(1, 8)] == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_a_cap_below_the_first_wait_is_the_first_wait() -> None:
    assert Backoff(5.0, 1.0).delay(4) == 5.0
