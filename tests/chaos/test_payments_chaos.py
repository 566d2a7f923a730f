"""A leader SIGKILLed between an operator's approval and its messages: one top-up, and the
next leader edits both operators' receipts and tells the user (real instance processes)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from sandbox.harness.cluster import InstanceCluster
from sandbox.telegram import SandboxClient, SandboxConfig, SandboxError, TelegramSandbox
from tests.helpers import BOT_TOKEN, eventually, make_env

pytestmark = pytest.mark.chaos

USER = 7001
OPERATORS = (1001, 1002)
PAYMENT_SQL = b"SELECT id, status FROM payments WHERE user_id = %s"
TOPUPS_SQL = b"SELECT count(*) FROM ledger WHERE kind = 'topup' AND user_id = %s"
# Every retry of the edit fails while the fault stands: the leader is stuck sending it.
EDIT_FAULT_COUNT = 1_000
FLOW_TIMEOUT_S = 30.0


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    config = SandboxConfig(per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True)
    async with TelegramSandbox([BOT_TOKEN], config=config) as sb:
        yield sb


async def one(database_url: str, query: bytes) -> Any:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(query, (USER,))
        return await cur.fetchone()


async def receipts(control: SandboxClient, operator: int) -> list[dict[str, Any]]:
    try:
        log = await control.chat_messages(operator)
    except SandboxError:  # the chat does not exist yet
        return []
    ids = [e["message_id"] for e in log if e["method"] == "sendPhoto"]
    return [await control.message(operator, i) for i in ids]


async def test_a_leader_killed_between_the_approval_and_its_messages_ends_consistent(
        database_url: str, sandbox: TelegramSandbox) -> None:
    env = make_env(database_url, TELEGRAM_API_BASE=sandbox.base_url,
                   ADMIN_ID=",".join(map(str, OPERATORS)))
    cluster = InstanceCluster(2, command=["-m", "supervisor", "run"], env=env)
    async with SandboxClient(sandbox.base_url) as control:
        try:
            cluster.start()
            await asyncio.to_thread(cluster.wait_leader, 60.0)
            who = {"chat_id": USER, "user_id": USER, "language_code": "en"}
            for item in ({"kind": "message", "text": "/start"},
                         {"kind": "callback", "data": "topup"},
                         {"kind": "callback", "data": "tamt:500"},
                         {"kind": "photo"}):
                before = len(await control.chat_messages(USER)) if item["kind"] != "message" else 0
                await control.inject([item | who])
                await control.wait_chat(USER, before + 1, timeout_s=FLOW_TIMEOUT_S)

            async def both_received() -> bool:
                return all([await receipts(control, op) for op in OPERATORS])

            await eventually(both_received, timeout_s=FLOW_TIMEOUT_S, what="the receipts")
            [receipt] = await receipts(control, OPERATORS[0])
            approve = receipt["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            await control.fault("editMessageCaption", fail_next=EDIT_FAULT_COUNT, status=500,
                                description="Internal Server Error")
            leader = await asyncio.to_thread(cluster.leader_index)
            assert leader is not None
            await control.inject([{"kind": "callback", "chat_id": OPERATORS[0],
                                   "user_id": OPERATORS[0], "data": approve,
                                   "message_id": receipt["message_id"]}])

            async def approved() -> bool:
                row = await one(database_url, PAYMENT_SQL)
                return bool(row and row[1] == "approved")

            await eventually(approved, timeout_s=FLOW_TIMEOUT_S, what="the approval committed")
            await eventually(lambda: sandbox.bot().stats.calls["editMessageCaption"] > 0,
                             timeout_s=FLOW_TIMEOUT_S, what="the leader sending the edits")
            cluster.signal(leader, signal.SIGKILL)  # decided, messages not yet sent
            await asyncio.to_thread(cluster.wait_exit, leader)
            await control.clear_faults()

            async def all_edited() -> bool:
                captions = [r["caption"] for op in OPERATORS for r in await receipts(control, op)]
                return len(captions) == 2 and all("Approved" in c or "Подтвердил" in c
                                                  for c in captions)

            # The dead term's leases on the notices are free to the next term at once.
            await eventually(all_edited, timeout_s=FLOW_TIMEOUT_S,
                             what="both operators' receipts edited by the next leader")

            async def user_told() -> bool:
                log = await control.chat_messages(USER)
                return any("is approved" in (e["text"] or "") for e in log)

            await eventually(user_told, timeout_s=FLOW_TIMEOUT_S, what="the user told")
            assert (await one(database_url, TOPUPS_SQL))[0] == 1
        finally:
            await asyncio.to_thread(cluster.stop)
