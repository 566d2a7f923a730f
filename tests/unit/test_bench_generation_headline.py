"""bench/generation.py's headline: the acceptance's figures, summed over every run."""

from typing import Any

from bench.generation import CALLBACK_TO_SENT_P99_TARGET_MS, headline


def runs(*, p99: float, chaos: dict[str, Any] | None = None) -> dict[str, Any]:
    burst = {"jobs_per_s": 150.0, "confirm_to_submit_ms": {"p50": 500.0, "p99": 900.0},
             "callback_to_sent_ms": {"p50": 16.0, "p99": p99}, "lost_results": 1,
             "double_charges": 0, "invariants_ok": True, "noise_warning": None}
    found: dict[str, Any] = {
        "throughput": burst,
        "steady": {"lost_results": 2, "invariants_ok": True},
        "rate_limited": {"kie_429": 0, "invariants_ok": True},
    }
    if chaos is not None:
        found["chaos"] = chaos
    return found


def test_headline_reads_the_burst_and_sums_what_every_run_lost() -> None:
    chaos = {"lost_results": 3, "double_charges": 4, "holds_open": 5, "invariants_ok": False,
             "duplicates_outside_sigkill_windows": 6}
    figures = headline(runs(p99=CALLBACK_TO_SENT_P99_TARGET_MS - 1, chaos=chaos))
    assert figures == {
        "lost_results": 6, "double_charges": 4, "holds_open": 5, "invariants_ok": False,
        "kie_429": 0, "jobs_per_s": 150.0,
        "confirm_to_submit_ms": {"p50": 500.0, "p99": 900.0},
        "callback_to_sent_ms": {"p50": 16.0, "p99": CALLBACK_TO_SENT_P99_TARGET_MS - 1},
        "noise_warning": None, "callback_to_sent_p99_met": True,
        "duplicates_outside_sigkill_windows": 6}


def test_headline_without_chaos_and_over_the_target() -> None:
    figures = headline(runs(p99=CALLBACK_TO_SENT_P99_TARGET_MS))
    assert figures["callback_to_sent_p99_met"] is False
    assert figures["lost_results"] == 3
    assert (figures["holds_open"], figures["invariants_ok"]) == (0, True)
