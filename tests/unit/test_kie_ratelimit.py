"""The createTask bucket: never 21 grants in any 10 s window, and no waiting beyond that."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.kie.ratelimit import TokenBucket

WINDOW_S = 10.0
LIMIT = 20


class JumpClock:
    """A clock whose sleep moves time forward at once and records the delay."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, delay_s: float) -> None:
        self.sleeps.append(delay_s)
        self.t += delay_s
        await asyncio.sleep(0)


async def grant_times(gaps: list[float], clock: JumpClock) -> list[float]:
    """Start one acquire after each gap of clock time; return the grant times in order."""
    bucket = TokenBucket(LIMIT, WINDOW_S, clock=clock)
    tasks = []
    for gap in gaps:
        clock.t += gap
        tasks.append(asyncio.create_task(bucket.acquire()))
        await asyncio.sleep(0)
    return list(await asyncio.gather(*tasks))


def assert_window_holds(times: list[float]) -> None:
    assert times == sorted(times)
    for i in range(len(times) - LIMIT):
        # times[i] .. times[i + LIMIT] are 21 grants: they must span a full window.
        assert times[i] + WINDOW_S <= times[i + LIMIT], (i, times[i], times[i + LIMIT])


# Mostly bursts (zero or tiny gaps), sometimes a pause past the window.
GAPS_S = st.one_of(st.just(0.0), st.floats(0, 0.2), st.floats(0, 1), st.floats(0, 12))


@settings(max_examples=200, deadline=None)
@given(st.lists(GAPS_S, min_size=LIMIT + 1, max_size=90))
def test_no_10_second_window_ever_holds_21_grants(gaps: list[float]) -> None:
    clock = JumpClock()
    times = asyncio.run(grant_times(gaps, clock))
    assert len(times) == len(gaps)
    assert_window_holds(times)


async def test_a_burst_gets_20_at_once_then_20_per_window() -> None:
    clock = JumpClock()
    times = await grant_times([0.0] * 45, clock)
    assert times == [0.0] * 20 + [10.0] * 20 + [20.0] * 5


async def test_the_21st_caller_sleeps_once_for_exactly_the_rest_of_the_window() -> None:
    clock = JumpClock()
    bucket = TokenBucket(LIMIT, WINDOW_S, clock=clock)
    for _ in range(LIMIT):
        await bucket.acquire()
    assert clock.sleeps == []
    clock.t = 4.0
    assert await bucket.acquire() == 10.0
    assert clock.sleeps == [6.0]


async def test_grants_spread_over_the_window_free_up_one_by_one() -> None:
    clock = JumpClock()
    times = await grant_times([0.5] * 20 + [0.0] * 3, clock)
    assert times[20:] == [10.5, 11.0, 11.5]


async def test_available_counts_the_tokens_left_in_the_current_window() -> None:
    clock = JumpClock()
    bucket = TokenBucket(LIMIT, WINDOW_S, clock=clock)
    assert bucket.available() == LIMIT
    for _ in range(5):
        await bucket.acquire()
    clock.t = 3.0
    await bucket.acquire()
    assert bucket.available() == LIMIT - 6
    clock.t = 10.0  # the first five age out; the one at 3 s still counts
    assert bucket.available() == LIMIT - 1
    clock.t = 13.0
    assert bucket.available() == LIMIT


async def test_waiters_are_served_in_arrival_order() -> None:
    clock = JumpClock()
    bucket = TokenBucket(2, WINDOW_S, clock=clock)
    order: list[int] = []

    async def take(n: int) -> None:
        await bucket.acquire()
        order.append(n)

    await asyncio.gather(*(take(n) for n in range(6)))
    assert order == list(range(6))


async def test_the_default_clock_is_the_event_loop_and_passes_without_waiting() -> None:
    bucket = TokenBucket()
    before = asyncio.get_running_loop().time()
    granted = await bucket.acquire()
    assert granted >= before


@pytest.mark.parametrize(("capacity", "window_s"), [(0, 10.0), (20, 0.0)])
def test_a_bucket_that_could_never_grant_is_refused(capacity: int, window_s: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(capacity, window_s)


async def test_a_primed_bucket_counts_the_previous_leaders_grants_of_the_window() -> None:
    # A new leader after a failover: the old one made 15 grants 9 s ago and 5 just now.
    clock = JumpClock()
    clock.t = 100.0
    bucket = TokenBucket(LIMIT, WINDOW_S, clock=clock)
    await bucket.acquire()  # its own grant of an earlier term: the database has it too
    bucket.prime([9.0] * 15 + [0.5] * 5 + [12.0])  # 12 s ago: outside the window
    assert bucket.available() == 0
    assert await bucket.acquire() == 101.0  # the 15 leave the window 1 s later
    assert bucket.available() == 14
