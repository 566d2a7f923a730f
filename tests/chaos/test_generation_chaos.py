"""500 generations in flight through 3 real instances while the leader is SIGKILLed and
SIGTERMed in turn: nothing lost, nothing charged twice, duplicates only in SIGKILL windows.

The jobs are written as the confirm handler writes them (`request_generation` rows, one per
user, from the test process), not pressed through the chat: 500 chats of button presses
would cost a minute of CI and fault nothing more (see bench/generation_chaos.py, which runs
the same set-up at 2,000 generations). What a SIGKILL window is, precisely: the module
docstring of sandbox/harness/chaos.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.generation_chaos import chaos_run

pytestmark = pytest.mark.chaos

GENERATIONS = 500
FAULT_EVERY_S = 4.0
FAULTS = 6  # 3 SIGKILL + 3 SIGTERM, alternating
# Kie takes 12 new tasks a second: the 500 submissions last about 40 s, across the faults.
KIE_LIMIT_PER_10S = 120


async def test_generations_survive_repeated_sigkill_and_sigterm_of_the_leader(
        database_url: str, tmp_path: Path) -> None:
    figures = await chaos_run(database_url, generations=GENERATIONS,
                              fault_every_s=FAULT_EVERY_S, max_faults=FAULTS,
                              kie_limit_per_10s=KIE_LIMIT_PER_10S, logs_dir=tmp_path)
    print(figures)  # the duplicates and their windows, for the CI log
    assert figures["faults"] == {"sigkill": 3, "sigterm": 3}, figures
    assert figures["generations"] == GENERATIONS
    assert figures["lost_results"] == 0, figures
    assert figures["double_charges"] == 0, figures
    assert figures["holds_open"] == 0, figures
    assert figures["invariants_ok"], figures["violations"]
    assert figures["duplicates_outside_sigkill_windows"] == 0, figures["outside_examples"]
    # A window holds only what the killed leader had in flight.
    assert figures["max_in_flight_per_window"] <= figures["delivery_concurrency"], figures
