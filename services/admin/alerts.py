"""The leader's audit alerts: every broken invariant told to the operators in chat, once.

Every ALERTS_EVERY_S (a Maintenance ScheduledJob) the leader runs the generation audit
(`InvariantsJob`: wallets, holds, settlements; it also publishes the result on /health and
/metrics, so one audit serves both) and the money-in audit
(`AdminStore.payment_violations`: an approved payment has exactly one top-up entry; a Stars
charge id backs one payment). Each violation has a fingerprint (rule + where), remembered in
`alerted_violations` (fenced, ON CONFLICT DO NOTHING), so a violation that persists is
alerted once, ever. Then every remembered, unalerted violation is sent to each operator and
marked alerted (fenced). Each operator reads it in their own language (`chat_languages`).

Crash analysis: before the remember commits, nothing changed (the next run finds it again);
between the remember and the sends, the next run sends it; between a send and its mark, the
next run sends it once more (the only duplicate, at most one per crash). A 403 from an
operator (blocked the bot) does not hold the alert back for the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from psycopg_pool import AsyncConnectionPool

from services.admin.store import AdminStore
from services.generation.invariants_job import InvariantsJob
from services.telegram import texts
from services.telegram.i18n import chat_languages
from supervisor.election import Leadership

logger = logging.getLogger(__name__)

# Money bugs are worth an operator's attention within minutes.
ALERTS_EVERY_S: Final[float] = 60.0
# Alerts sent per run (a flood of violations is one bug: the first ones tell the story).
MAX_ALERTS_PER_RUN: Final[int] = 20


class AuditAlerts:
    """Find invariant violations and tell the operators about each one once."""

    name = "audit-alerts"
    every_s = ALERTS_EVERY_S

    def __init__(self, pool: AsyncConnectionPool, bot: Bot, invariants: InvariantsJob, *,
                 operators: Sequence[int]) -> None:
        self._pool = pool
        self._bot = bot
        self._invariants = invariants
        self._operators = tuple(operators)

    async def run(self, leadership: Leadership) -> int:
        """Run the audits, remember new violations, send unsent alerts; return how many."""
        found = [(f"{v.rule}:user={v.user_id}:job={v.job_id}", v.rule, v.detail)
                 for v in await self._invariants.run()]
        async with self._pool.connection() as conn:
            found += [(f"{v.rule}:user={v.user_id}:payment={v.payment_id}", v.rule, v.detail)
                      for v in await AdminStore(conn).payment_violations()]
            languages = await chat_languages(conn, self._operators)
        async with leadership.fenced(self._pool) as conn:
            store = AdminStore(conn)
            for fingerprint, rule, detail in found:
                await store.remember_violation(fingerprint=fingerprint, rule=rule,
                                               detail=detail)
            alerts = await store.unalerted(limit=MAX_ALERTS_PER_RUN)
        for alert in alerts:
            for operator in self._operators:
                text = texts.get(languages[operator], "admin-alert", rule=alert.rule,
                                 where=alert.fingerprint, detail=alert.detail)
                try:
                    await self._bot.send_message(operator, text)
                except (TelegramForbiddenError, TelegramBadRequest) as exc:
                    logger.warning("audit_alert_undeliverable", extra={
                        "operator_id": operator, "error": str(exc)[:200]})
            async with leadership.fenced(self._pool) as conn:
                await AdminStore(conn).mark_alerted(alert.fingerprint)
            logger.error("audit_alert_sent", extra={"rule": alert.rule,
                                                    "where": alert.fingerprint})
        return len(alerts)
