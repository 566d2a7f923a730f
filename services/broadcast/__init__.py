"""Operators' broadcasts: one durable row per recipient, sent by the leader at BROADCAST_RATE.

`start_broadcast(conn, ...)` runs inside the caller's fenced unit of work (the console's
confirm); `sender.BroadcastSender` is the leader-only service that sends the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from services.broadcast.store import BroadcastStore


@dataclass(frozen=True, slots=True)
class Started:
    """A broadcast of one confirm press: created now, or found from an earlier press."""

    id: int
    recipients: int
    created: bool


async def start_broadcast(conn: psycopg.AsyncConnection, *, key: str, text: str,
                          operator_id: int, language: str, chat_id: int) -> Started:
    """Write the broadcast and one pending row per user, once per key; wake the sender.

    Crash before the caller's commit: nothing was written. After it: the rows are durable and
    the sender (this leader or the next) finds them even without the NOTIFY.
    """
    store = BroadcastStore(conn)
    inserted = await store.insert_broadcast(idempotency_key=key, operator_id=operator_id,
                                            text=text, language=language,
                                            progress_chat_id=chat_id)
    if inserted is None:
        found = await store.broadcast_by_key(key)
        assert found is not None, "the key's broadcast exists (ON CONFLICT found it)"
        return Started(found[0], found[1], created=False)
    broadcast_id, recipients = inserted
    await store.insert_recipients(broadcast_id)
    await store.notify(broadcast_id)
    return Started(broadcast_id, recipients, created=True)


async def set_progress_message(conn: psycopg.AsyncConnection, broadcast_id: int,
                               message_id: int) -> None:
    """Remember the operator's progress message (inside a fenced unit of work)."""
    await BroadcastStore(conn).set_progress_message(broadcast_id, message_id)
