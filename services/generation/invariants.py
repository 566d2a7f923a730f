"""The money and job invariants, audited by one query set (issue 9 item 4).

`audit(conn)` returns every violation (an empty list when all hold):
- wallet_equals_ledger: a wallet's balance and hold equal the sums of its ledger;
- hold_equals_open_jobs: a wallet's hold equals the prices of its open, priced jobs;
- open_job_has_its_hold: an open priced job has exactly one hold of its price, unsettled;
- finished_job_has_no_open_hold: a finished job's hold (if any) is settled in full;
- one_settlement_per_job: at most one hold and one commit or release per job;
- charged_only_for_success: only a succeeded job is committed; free jobs hold nothing;
- refund_only_of_a_charge: a job's refund (an adjustment naming it) credits back a committed
  success's price, once;
- undeliverable_result_refunded: a charged success whose delivery was given up on (attempts
  spent) is refunded: the user never pays for a result they did not get.
Tests run it after every scenario; a scheduled leader job runs it and reports what it finds.
It only reads, so it needs no fence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "invariants.sql")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: which rule, where, and the numbers that disagree."""

    rule: str
    user_id: int | None
    job_id: int | None
    detail: str


class InvariantStore:
    """The audit's query (sql/invariants.sql) on one connection."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def violations(self) -> list[Violation]:
        """Return every violation of the money and job invariants."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["violations"])
        return [Violation(**row) for row in await cur.fetchall()]


async def audit(conn: psycopg.AsyncConnection) -> list[Violation]:
    """Return every broken money or job invariant; empty when all hold."""
    return await InvariantStore(conn).violations()
