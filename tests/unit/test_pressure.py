"""The ingress pressure gauge that lets storing take priority over handling."""

from __future__ import annotations

from services.telegram.pressure import HIGH_PER_WINDOW, WINDOW_S, IngressPressure


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_trickle_of_deliveries_is_not_a_flood() -> None:
    clock = Clock()
    pressure = IngressPressure(clock=clock)
    for _ in range(HIGH_PER_WINDOW):
        pressure.note()
    assert not pressure.high()


def test_a_burst_above_the_threshold_is_a_flood_until_it_stops() -> None:
    clock = Clock()
    pressure = IngressPressure(clock=clock)
    for _ in range(HIGH_PER_WINDOW + 1):
        pressure.note()
    assert pressure.high()
    clock.now += WINDOW_S * 1.5
    pressure.note()  # a new window starts; the busy one still counts
    assert pressure.high()
    clock.now += WINDOW_S * 2
    assert not pressure.high()


def test_a_quiet_gap_clears_the_previous_window() -> None:
    clock = Clock()
    pressure = IngressPressure(clock=clock)
    for _ in range(HIGH_PER_WINDOW + 1):
        pressure.note()
    clock.now += WINDOW_S * 5
    pressure.note()
    assert not pressure.high()
