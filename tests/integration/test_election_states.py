"""Persisted election states: the StrEnums and the database's CHECKs agree."""

from __future__ import annotations

import re

import psycopg

from supervisor.stores import LeaderEvent


def check_literals(url: str, table: str, column: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'c'", (table,)).fetchall()
    (definition,) = [r[0] for r in rows if column in r[0]]
    return set(re.findall(r"'([^']*)'", definition))


def test_leader_events_check_allows_exactly_the_leader_event_members(database_url: str) -> None:
    assert check_literals(database_url, "leader_events", "event") == {e.value for e in LeaderEvent}
