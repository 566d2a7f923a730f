"""The broadcasts' queries (sql/broadcast.sql): one typed store, one method per query."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from supervisor import worker
from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "broadcast.sql")


class RecipientStatus(StrEnum):
    """Statuses of a broadcast recipient, mirrored by the CHECK on broadcast_recipients."""

    PENDING = "pending"  # to send (after ready_at)
    SENDING = "sending"  # claimed by the leader of claimed_term
    SENT = "sent"        # Telegram accepted the message
    BLOCKED = "blocked"  # 403: the user blocked the bot
    FAILED = "failed"    # refused for good (e.g. chat not found) or attempts used up


@dataclass(slots=True)
class Recipient:
    """One claimed recipient; the sender sets `blocked` when Telegram answers 403."""

    broadcast_id: int
    user_id: int
    text: str
    blocked: bool = False

    @property
    def key(self) -> str:
        """Return the worker's key of this row."""
        return f"{self.broadcast_id}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Progress:
    """A broadcast whose final progress is not shown yet, with its counts."""

    id: int
    recipients: int
    language: str
    progress_chat_id: int | None
    progress_message_id: int | None
    sent: int
    blocked: int
    failed: int
    open: int


class BroadcastStore:
    """Broadcasts and their recipient rows on one connection."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    async def insert_broadcast(self, *, idempotency_key: str, operator_id: int, text: str,
                               language: str, progress_chat_id: int) -> tuple[int, int] | None:
        """Create the broadcast of a confirm press; None when that press made one already."""
        cur = await self._conn.execute(QUERIES["insert_broadcast"], {
            "idempotency_key": idempotency_key, "operator_id": operator_id, "text": text,
            "language": language, "progress_chat_id": progress_chat_id})
        row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else None

    async def broadcast_by_key(self, idempotency_key: str) -> tuple[int, int] | None:
        """Return (id, recipients) of the broadcast a press created, or None."""
        cur = await self._conn.execute(QUERIES["broadcast_by_key"],
                                       {"idempotency_key": idempotency_key})
        row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else None

    async def insert_recipients(self, broadcast_id: int) -> None:
        """Write one recipient row per known user."""
        await self._conn.execute(QUERIES["insert_recipients"], {"broadcast_id": broadcast_id})

    async def set_progress_message(self, broadcast_id: int, message_id: int) -> None:
        """Remember the operator's progress message."""
        await self._conn.execute(QUERIES["set_progress_message"],
                                 {"broadcast_id": broadcast_id, "message_id": message_id})

    async def listen(self) -> None:
        """LISTEN for confirmed broadcasts."""
        await self._conn.execute(QUERIES["listen"])

    async def notify(self, broadcast_id: int) -> None:
        """Wake the sender (delivered at commit)."""
        await self._conn.execute(QUERIES["notify"], {"broadcast_id": broadcast_id})

    async def claim(self, *, term: int, limit: int) -> list[tuple[Recipient, int]]:
        """Claim up to limit ready recipients for term; return each with its attempts."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["claim"], {"term": term, "limit": limit})
        return [(Recipient(broadcast_id=r["broadcast_id"], user_id=r["user_id"],
                           text=r["text"]), r["attempts"]) for r in await cur.fetchall()]

    async def settle(self, *, term: int, rows: Sequence[tuple[Recipient, RecipientStatus,
                                                                str | None, float]]) -> None:
        """Write (recipient, status, error, retry delay) of term's claims."""
        await self._conn.execute(QUERIES["settle"], {
            "term": term, "broadcast_ids": [r.broadcast_id for r, *_ in rows],
            "user_ids": [r.user_id for r, *_ in rows],
            "statuses": [str(status) for _, status, _, _ in rows],
            "errors": [error for _, _, error, _ in rows],
            "delays": [delay for *_, delay in rows]})

    async def release_claims(self, *, held: Collection[Hashable], older_than_s: float,
                             max_attempts: int) -> list[tuple[int, int, int, RecipientStatus]]:
        """Free unheld claims; return (broadcast, user, attempts, new status) of each."""
        cur = await self._conn.execute(QUERIES["release_claims"], {
            "held": [str(key) for key in held], "older_than_s": older_than_s,
            "max_attempts": max_attempts})
        return [(int(b), int(u), int(a), RecipientStatus(s)) for b, u, a, s in
                await cur.fetchall()]

    async def unfinished(self) -> list[Progress]:
        """Return the broadcasts still showing progress, with their counts."""
        cur = self._conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["unfinished"])
        return [Progress(**row) for row in await cur.fetchall()]

    async def finish(self, broadcast_id: int) -> None:
        """Stop editing a broadcast's progress."""
        await self._conn.execute(QUERIES["finish"], {"broadcast_id": broadcast_id})

    async def counts(self, broadcast_id: int) -> dict[RecipientStatus, int]:
        """Return one broadcast's recipients by status."""
        cur = await self._conn.execute(QUERIES["counts"], {"broadcast_id": broadcast_id})
        return {RecipientStatus(s): int(n) for s, n in await cur.fetchall()}


class RecipientQueue:
    """Broadcast recipients as the generic worker's queue (claims carry the term)."""

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        """Wake on confirmed broadcasts."""
        await BroadcastStore(conn).listen()

    async def claim(self, conn: psycopg.AsyncConnection, *, term: int,
                    limit: int) -> list[worker.Job[Recipient]]:
        """Claim up to limit recipients (the attempt is counted by the claim)."""
        claimed = await BroadcastStore(conn).claim(term=term, limit=limit)
        return [worker.Job(key=r.key, attempts=attempts, payload=r) for r, attempts in claimed]

    async def settle(self, conn: psycopg.AsyncConnection, *, term: int,
                     settlements: Sequence[worker.Settlement[Recipient]]) -> None:
        """Write each outcome: sent (or blocked), failed, or back in line."""
        rows = [(s.job.payload, _status(s), s.error, s.retry_in_s) for s in settlements]
        await BroadcastStore(conn).settle(term=term, rows=rows)

    async def release_claims(self, conn: psycopg.AsyncConnection, *,
                             held: Collection[Hashable], older_than_s: float,
                             max_attempts: int) -> list[worker.Released[Recipient]]:
        """Free unheld claims (older terms', ours after a restart, stuck ones)."""
        released = await BroadcastStore(conn).release_claims(
            held=held, older_than_s=older_than_s, max_attempts=max_attempts)
        return [worker.Released(worker.Job(key=f"{b}:{u}", attempts=a,
                                           payload=Recipient(b, u, "")),
                                dead_lettered=status is RecipientStatus.FAILED)
                for b, u, a, status in released]


def _status(settlement: worker.Settlement[Recipient]) -> RecipientStatus:
    if settlement.outcome is worker.Outcome.DONE:
        return RecipientStatus.BLOCKED if settlement.job.payload.blocked \
            else RecipientStatus.SENT
    if settlement.outcome is worker.Outcome.DEAD:
        return RecipientStatus.FAILED
    return RecipientStatus.PENDING
