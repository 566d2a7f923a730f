"""Persisted states are StrEnums mirrored by their table's CHECK, member for member."""

from __future__ import annotations

import re
from enum import StrEnum

import psycopg
import pytest

from config import load_settings
from services.billing.ledger import EntryKind
from services.generation import CallbackSource, JobLimits, JobStatus, expiry_deadlines
from services.generation.store import StatusShown
from tests.helpers import make_env

CONSTRAINT_SQL = b"""
SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
 WHERE c.conrelid = %s::regclass AND c.contype = 'c'
   AND pg_get_constraintdef(c.oid) LIKE %s
"""


@pytest.mark.parametrize(("enum", "table", "column"), [
    (JobStatus, "generation_jobs", "status"),
    (CallbackSource, "job_callbacks", "source"),
    (EntryKind, "ledger", "kind"),
    (StatusShown, "generation_jobs", "status_shown"),
], ids=["job-status", "callback-source", "entry-kind", "status-shown"])
async def test_each_enum_lists_exactly_the_values_its_check_allows(
        database_url: str, enum: type[StrEnum], table: str, column: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(CONSTRAINT_SQL, (table, f"CHECK (({column} = ANY%"))
        [(definition,)] = await cur.fetchall()
    assert set(re.findall(r"'([a-z_]+)'::text", definition)) == {str(m) for m in enum}


def test_limits_and_deadlines_come_from_the_environment() -> None:
    settings = load_settings(make_env("postgresql://u@h/db", MAX_ACTIVE_JOBS="4",
                                      FREE_DAILY_QUOTA="0", JOB_EXPIRY_VIDEO="7200"))
    assert JobLimits.from_settings(settings) == JobLimits(max_active_jobs=4,
                                                          free_daily_quota=0)
    assert expiry_deadlines(settings) == {"image": 900.0, "video": 7200.0, "audio": 1200.0,
                                          "upscale": 1800.0}
