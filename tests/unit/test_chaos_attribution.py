"""The chaos runs' attribution of duplicates to SIGKILL windows (sandbox/harness/chaos.py)."""

from __future__ import annotations

import math

from sandbox.harness.chaos import Fault, Term, attribute, build_terms, term_at

PROMOTIONS = [{"term": 1, "instance_id": "a", "began": 100.0},
              {"term": 2, "instance_id": "b", "began": 110.0},
              {"term": 3, "instance_id": "c", "began": 120.0}]
FAULTS = [Fault("SIGKILL", "a", 1, 109.9, 40.0), Fault("SIGTERM", "b", 2, 119.9, 50.0)]


def terms() -> list[Term]:
    return build_terms(PROMOTIONS, FAULTS)


def test_terms_end_where_the_next_begins_with_the_signal_that_ended_them() -> None:
    assert [(t.term, t.ended, t.ended_by) for t in terms()] == [
        (1, 110.0, "SIGKILL"), (2, 120.0, "SIGTERM"), (3, math.inf, "running")]
    assert term_at(terms(), 99.0) is None
    assert term_at(terms(), 110.0) == terms()[1]


def test_a_copy_in_flight_at_a_sigkill_and_resent_by_the_next_term_is_inside_its_window() -> None:
    found = attribute({1: [109.5, 110.2], 2: [105.0]}, {1: 110.3, 2: 105.01}, terms())
    assert (found.duplicates, found.inside_sigkill_windows) == (1, 1)
    assert found.windows == [{"term": 1, "instance": "a", "in_flight": 1, "window_ms": 500.0}]


def test_duplicates_after_a_sigterm_or_within_one_term_are_outside() -> None:
    found = attribute({1: [119.5, 120.5],  # SIGTERM'd term: a handover must drain
                       2: [111.0, 112.0],  # twice by one living leader
                       3: [105.0, 111.0]},  # recorded by the killed term, sent again anyway
                      {1: 120.6, 2: 112.1, 3: 105.1}, terms())
    assert (found.duplicates, found.inside_sigkill_windows) == (3, 0)
    assert sorted(o["item"] for o in found.outside) == [1, 2, 3]
