"""The durable inbox: every update is stored once, by update_id, before it is acknowledged.

Writers (webhook handler on any instance, the leader's poller) call `store_update(s)`: one
INSERT ... ON CONFLICT DO NOTHING plus a NOTIFY, committed before the caller answers 200 or
advances the getUpdates offset. A crash before the commit means Telegram still has the
update and sends it again; a crash after it means the replay is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg

from supervisor.sqlstore import QueryStore

QUERIES = QueryStore(Path(__file__).with_name("sql") / "inbox.sql")
NOTIFY_CHANNEL = "telegram_inbox"
# Update fields whose object carries the chat; the first present one decides the order key.
_CHAT_FIELDS = ("message", "edited_message", "channel_post", "edited_channel_post",
                "business_message", "edited_business_message", "my_chat_member",
                "chat_member", "chat_join_request", "message_reaction", "chat_boost")
# Update fields without a chat: their sender's private chat is the order key.
_USER_FIELDS = ("inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query",
                "poll_answer")


class BadUpdate(ValueError):
    """The body is not a Telegram update (reason in the message)."""


def parse_update(body: bytes) -> dict[str, Any]:
    """Return the update as a dict; raise BadUpdate unless it is a JSON object with an int id."""
    try:
        update = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadUpdate(f"body is not JSON: {exc}") from None
    if not isinstance(update, dict):
        raise BadUpdate("body is not a JSON object")
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise BadUpdate("update_id is missing or not a non-negative integer")
    return update


def chat_key(update: Mapping[str, Any]) -> int | None:
    """Return the id whose updates must be handled in order (chat, else user), or None."""
    for name in _CHAT_FIELDS:
        obj = update.get(name)
        if isinstance(obj, dict) and isinstance(obj.get("chat"), dict):
            return _int_or_none(obj["chat"].get("id"))
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            return _int_or_none(message["chat"].get("id"))
        return _user_id(query.get("from"))
    for name in _USER_FIELDS:
        obj = update.get(name)
        if isinstance(obj, dict):
            return _user_id(obj.get("from") or obj.get("user"))
    return None


def _user_id(user: object) -> int | None:
    return _int_or_none(user.get("id")) if isinstance(user, dict) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def store_update(conn: psycopg.AsyncConnection, update: Mapping[str, Any], *,
                       instance_id: str, payload: bytes | None = None) -> bool:
    """Store one update (within the caller's transaction); return True if it was new."""
    cur = await conn.execute(QUERIES["insert_update"], {
        "update_id": update["update_id"], "chat_id": chat_key(update),
        "payload": (payload or orjson.dumps(update)).decode(),
        "instance_id": instance_id})
    row = await cur.fetchone()
    return bool(row and row[0])


async def store_updates(conn: psycopg.AsyncConnection, updates: Sequence[Mapping[str, Any]], *,
                        instance_id: str) -> int:
    """Store a batch of updates (within the caller's transaction); return how many were new."""
    if not updates:
        return 0
    cur = await conn.execute(QUERIES["insert_updates"], {
        "update_ids": [u["update_id"] for u in updates],
        "chat_ids": [chat_key(u) for u in updates],
        "payloads": [orjson.dumps(u).decode() for u in updates],
        "instance_id": instance_id})
    row = await cur.fetchone()
    return int(row[0]) if row else 0
