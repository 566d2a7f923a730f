"""Kie codes sorted into retryable and final, and what an error says."""

from __future__ import annotations

import pytest

from services.kie.errors import KieError, KieFinal, KieRetryable, error_for, is_retryable


@pytest.mark.parametrize("code", [0, 408, 429, 455, 500, 502, 503, 504, 550, 599])
def test_network_rate_limit_maintenance_and_server_errors_are_retryable(code: int) -> None:
    assert is_retryable(code)
    assert isinstance(error_for(code), KieRetryable)


@pytest.mark.parametrize("code", [400, 401, 402, 404, 405, 413, 422, 433, 451, 501, 505, 531])
def test_client_errors_and_generation_failures_are_final(code: int) -> None:
    assert not is_retryable(code)
    assert isinstance(error_for(code), KieFinal)


def test_both_classes_are_kie_errors_carrying_code_meaning_and_detail() -> None:
    error = error_for(402, detail="x" * 500, path="/api/v1/jobs/createTask")
    assert isinstance(error, KieError)
    assert (error.code, error.message) == (402, "insufficient Kie credits")
    assert len(error.detail) == 200
    assert str(error).startswith("Kie 402 (/api/v1/jobs/createTask): insufficient Kie credits")


def test_an_unknown_code_gets_a_generic_meaning() -> None:
    assert error_for(499).message == "unexpected answer"


def test_a_lost_answer_is_marked_as_maybe_executed() -> None:
    lost = error_for(0, maybe_executed=True)
    assert isinstance(lost, KieRetryable) and lost.maybe_executed
    assert not KieRetryable(429).maybe_executed
