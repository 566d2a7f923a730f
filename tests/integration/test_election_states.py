"""Persisted election states: the StrEnums and the database's CHECKs agree."""

from __future__ import annotations

import re

import psycopg
import pytest

from supervisor.runtime_state import Role
from supervisor.stores import LeaderEvent, TransitionReason


def check_literals(url: str, table: str, column: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'c'", (table,)).fetchall()
    (definition,) = [r[0] for r in rows if column in r[0]]
    return set(re.findall(r"'([^']*)'", definition))


def test_leader_events_check_allows_exactly_the_leader_event_members(database_url: str) -> None:
    assert check_literals(database_url, "leader_events", "event") == {e.value for e in LeaderEvent}


def test_leader_events_check_allows_exactly_the_transition_reasons(database_url: str) -> None:
    assert check_literals(database_url, "leader_events", "reason") == {
        r.value for r in TransitionReason}


def test_instances_check_allows_exactly_the_roles(database_url: str) -> None:
    assert check_literals(database_url, "instances", "role") == {r.value for r in Role}


def test_a_reason_outside_the_enum_is_refused(database_url: str) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO leader_events (name, term, instance_id, event, reason) "
                     "VALUES ('x', 1, 'a', 'demoted', 'lock session lost: chat 42 said hi')")
