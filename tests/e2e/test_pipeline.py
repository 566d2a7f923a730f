"""Telegram users never lose an update, whatever happens to the instances (real processes)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from sandbox.harness.cluster import wait_until
from supervisor import migrations
from tests.e2e.pipeline import WEBHOOK_SECRET, Deployment, judge
from tests.pg import temporary_cluster

CHATS = 200
PER_CHAT = 25
TOTAL = CHATS * PER_CHAT
BATCH = 100
INJECT_RATE_PER_S = 500
DISPATCH_CONCURRENCY = 64


@pytest.fixture(params=["polling", "webhook"])
def deployment(request: pytest.FixtureRequest, database_url: str) -> Iterator[Deployment]:
    d = Deployment(database_url, request.param,
                   env={"DISPATCH_CONCURRENCY": str(DISPATCH_CONCURRENCY)})
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _inject_steadily(d: Deployment, done: threading.Event) -> None:
    """Send every chat's messages in order, BATCH at a time, at about INJECT_RATE_PER_S."""
    items = [(chat, n) for n in range(PER_CHAT) for chat in range(1, CHATS + 1)]
    started = time.monotonic()
    for i in range(0, len(items), BATCH):
        d.inject_messages(items[i:i + BATCH])
        pause = started + (i + BATCH) / INJECT_RATE_PER_S - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the simulated users, not waiting for a result
    done.set()


def _fault_leader(d: Deployment, sig: signal.Signals) -> tuple[int, int]:
    """Fault the leader; return the outbox counter just before and once a new leader leads."""
    leader = d.cluster.wait_leader()
    old_id = d.cluster.members[leader].instance_id
    before = int(d.stats()["outbox"])
    d.cluster.signal(leader, sig)

    def new_leader() -> bool:
        index = d.cluster.leader_index()
        return index is not None and d.cluster.members[index].instance_id != old_id

    assert wait_until(new_leader, 20, interval_s=0.02), f"no new leader after {sig.name}"
    after = int(d.stats()["outbox"])
    d.cluster.wait_exit(leader)
    d.cluster.start(leader)
    return before, after


def test_five_thousand_updates_survive_a_kill_and_a_handover_in_order(
        deployment: Deployment) -> None:
    d = deployment
    d.cluster.wait_all_answering()
    d.cluster.wait_leader()
    injected = threading.Event()
    sender = threading.Thread(target=_inject_steadily, args=(d, injected), daemon=True)
    sender.start()
    assert wait_until(lambda: int(d.stats()["outbox"]) >= TOTAL // 4, 60)
    kill_lo, kill_hi = _fault_leader(d, signal.SIGKILL)
    assert wait_until(lambda: int(d.stats()["outbox"]) >= kill_hi + TOTAL // 4, 60)
    term_lo, term_hi = _fault_leader(d, signal.SIGTERM)
    assert injected.wait(60)
    sender.join()

    assert d.wait_outbox(TOTAL, 90), f"replies stalled; logs in {d.logs_dir}"
    assert wait_until(lambda: d.done_count() == TOTAL, 30), d.not_done()[:10]
    verdict = judge(d.replies(), CHATS, PER_CHAT)
    assert verdict.lost == [], f"lost: {verdict.lost[:10]}; logs in {d.logs_dir}"
    assert verdict.out_of_order == []
    # Only updates in flight at the SIGKILL may run twice; the SIGTERM handover drains first.
    across_kill = [dup for dup in verdict.duplicates if dup[2] <= kill_hi and dup[3] > kill_lo]
    others = [dup for dup in verdict.duplicates if dup not in across_kill]
    print(f"\n[{d.mode}] duplicates across SIGKILL: {len(across_kill)} "
          f"(in flight at most {DISPATCH_CONCURRENCY}); handover window {term_lo}-{term_hi}")
    assert others == [], f"duplicates outside the SIGKILL window: {others[:10]}"
    assert len(across_kill) <= DISPATCH_CONCURRENCY


def test_webhook_answers_503_while_postgres_is_down_and_loses_nothing() -> None:
    with temporary_cluster() as pg:
        asyncio.run(migrations.apply_pending(pg.url))
        d = Deployment(pg.url, "webhook", instances=2)
        d.start()
        try:
            d.cluster.wait_all_answering()
            d.cluster.wait_leader()
            d.inject_messages([(chat, 0) for chat in range(1, 21)])
            assert d.wait_outbox(20, 30)
            # Fully handled (marked done) before the outage, so none of them runs again.
            assert wait_until(lambda: d.done_count() == 20, 30)
            pg.stop("fast")
            d.inject_messages([(chat, 1) for chat in range(1, 21)])
            assert wait_until(lambda: int(d.stats()["webhook_failed"]) > 0, 10)
            status = _post_update_status(d.cluster.urls[0])
            assert status == 503
            # The outage itself is the scenario: PostgreSQL stays down for 10 s.
            time.sleep(10)
            pg.start()
            assert d.wait_outbox(40, 60), f"replies stalled; logs in {d.logs_dir}"
            assert wait_until(lambda: d.done_count() == 40, 30), d.not_done()
            verdict = judge(d.replies(), 20, 2)
            assert verdict.lost == [] and verdict.out_of_order == []
            assert verdict.duplicates == []
        finally:
            d.stop()


def _post_update_status(instance_url: str) -> int:
    request = urllib.request.Request(
        instance_url + "/telegram/webhook", method="POST",
        data=b'{"update_id": 999999, "message": {"message_id": 1, "date": 1, '
             b'"chat": {"id": 1, "type": "private"}, "text": "x"}}',
        headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
