"""The leader's audit of the money and job invariants, shown on /health and /metrics.

Run by the leader's audit alerts (services/admin/alerts.py, a Maintenance job every
ALERTS_EVERY_S and once on promotion), which also tell the operators: one audit serves both.
`run` calls `audit()` (read only, so not fenced) and writes the result into RuntimeState:
`/health` shows `invariants` {ok, violations, rules, checked_at}; `/metrics` counts
`invariant_audits` and `invariant_violations`. A violation is logged at ERROR with its rule
and where it is (user, job), never hidden: the audit reports, it does not repair. A crash
mid-audit changes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from psycopg_pool import AsyncConnectionPool

from services.generation import Violation, audit
from supervisor.runtime_state import RuntimeState

logger = logging.getLogger(__name__)

# Violations shown per audit in logs (the count is always complete).
MAX_LOGGED: Final[int] = 20


class InvariantsJob:
    """Audit the invariants and publish the result in the process's RuntimeState."""

    def __init__(self, pool: AsyncConnectionPool, state: RuntimeState) -> None:
        """Read through pool, report into state."""
        self._pool = pool
        self._state = state

    async def run(self) -> list[Violation]:
        """Run one audit; return its violations (empty when every invariant holds)."""
        async with self._pool.connection() as conn:
            violations = await audit(conn)
        self._state.invariants = {
            "ok": not violations, "violations": len(violations),
            "rules": sorted({v.rule for v in violations}),
            "checked_at": round(time.time(), 3)}
        self._state.count("invariant_audits")
        if violations:
            self._state.count("invariant_violations", len(violations))
            for violation in violations[:MAX_LOGGED]:
                logger.error("invariant_violated", extra={
                    "rule": violation.rule, "user_id": violation.user_id,
                    "job_id": violation.job_id, "detail": violation.detail})
        return violations
