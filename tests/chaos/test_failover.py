"""Leader election with real processes, real signals and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import pytest

from sandbox.harness.probe import Cluster
from supervisor import migrations
from tests.pg import ThrowawayCluster, temporary_cluster, wait_until

pytestmark = pytest.mark.chaos

FAST_TTL_S = 3.0
FAST_RENEW_S = 0.5


@pytest.fixture
def cluster(database_url: str) -> Iterator[Cluster]:
    c = Cluster(database_url, n=3)
    try:
        yield c
    finally:
        c.stop()


def _exactly_one_leader(cluster: Cluster) -> bool:
    return cluster.roles().count("leader") == 1


def test_three_instances_keep_exactly_one_leader_through_twenty_kill_and_term_rounds(
        cluster: Cluster) -> None:
    cluster.start()
    term, holder, _ = cluster.wait_writing_leader()
    assert wait_until(lambda: _exactly_one_leader(cluster), 10)
    for round_no in range(20):
        sig = signal.SIGKILL if round_no % 2 == 0 else signal.SIGTERM
        leader = cluster.index_of(holder)
        cluster.signal(leader, sig)
        term, holder, _ = cluster.wait_writing_leader(after_term=term, timeout_s=15)
        code = cluster.wait_exit(leader)
        assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        cluster.start(leader)
        assert wait_until(lambda: _exactly_one_leader(cluster), 10), cluster.roles()
    assert cluster.split_brain_writes() == 0


def test_frozen_leader_is_replaced_within_ttl_and_its_old_term_never_writes_again(
        database_url: str) -> None:
    cluster = Cluster(database_url, n=3, ttl_s=FAST_TTL_S, renew_s=FAST_RENEW_S)
    try:
        cluster.start()
        term, holder, _ = cluster.wait_writing_leader()
        frozen = cluster.index_of(holder)
        fault_at = cluster.signal(frozen, signal.SIGSTOP)
        _, new_holder, first_write_at = cluster.wait_writing_leader(
            after_term=term, timeout_s=FAST_TTL_S + 5)
        assert new_holder != holder
        assert first_write_at - fault_at <= FAST_TTL_S + 1.0
        cluster.signal(frozen, signal.SIGCONT)
        assert wait_until(lambda: (cluster.health(frozen) or {}).get("role") != "leader", 10)
        # Give the resumed process every chance to misbehave before counting.
        assert wait_until(lambda: (cluster.health(frozen) or {}).get("role")
                          in ("candidate", "follower"), 10)
        assert cluster.split_brain_writes() == 0
    finally:
        cluster.stop()


def test_leader_whose_lock_session_is_terminated_demotes_within_one_renew_interval(
        database_url: str) -> None:
    cluster = Cluster(database_url, n=3, ttl_s=FAST_TTL_S, renew_s=FAST_RENEW_S)
    try:
        cluster.start()
        term, holder, _ = cluster.wait_writing_leader()
        old = cluster.index_of(holder)
        cluster.terminate_leader_lock_session()
        new_term, _, _ = cluster.wait_writing_leader(after_term=term, timeout_s=5)
        # Demotes at its next renewal (within one interval); slack covers process scheduling.
        assert wait_until(lambda: (cluster.health(old) or {}).get("role") != "leader",
                          FAST_RENEW_S + 1.0)
        assert wait_until(lambda: _exactly_one_leader(cluster), 10)
        assert new_term > term
        assert cluster.split_brain_writes() == 0
    finally:
        cluster.stop()


def test_crashing_leader_service_is_restarted_with_backoff_and_leadership_is_kept(
        database_url: str) -> None:
    cluster = Cluster(database_url, n=2, extra_args=("--crash-after", "3"))
    try:
        cluster.start()
        term, holder, _ = cluster.wait_writing_leader()
        leader = cluster.index_of(holder)

        def restarted_twice() -> bool:
            doc = cluster.health(leader) or {}
            services = doc.get("services") or {}
            return int(services.get("fenced-writer", {}).get("restarts", 0)) >= 2  # type: ignore[union-attr]

        assert wait_until(restarted_twice, 15)
        doc = cluster.health(leader) or {}
        assert doc["role"] == "leader" and doc["term"] == term
    finally:
        cluster.stop()


def test_postgres_restart_never_yields_two_leaders_and_health_keeps_answering() -> None:
    with temporary_cluster() as pg:
        asyncio.run(migrations.apply_pending(pg.url))
        cluster = Cluster(pg.url, n=3, ttl_s=FAST_TTL_S, renew_s=FAST_RENEW_S)
        try:
            cluster.start()
            term, _, _ = cluster.wait_writing_leader()
            cluster.wait_all_answering()
            _restart_postgres_while_watching_health(pg, cluster, down_s=10.0)
            back_at = time.time()
            # The outage ended the term (renewals failed), so the next write is a new term's.
            _, _, first_write_at = cluster.wait_writing_leader(
                after_term=term, timeout_s=FAST_TTL_S + 10)
            assert first_write_at - back_at <= FAST_TTL_S + 2.0, first_write_at - back_at
            assert cluster.split_brain_writes() == 0
            assert wait_until(lambda: _exactly_one_leader(cluster), 10)
        finally:
            cluster.stop()


def _restart_postgres_while_watching_health(pg: ThrowawayCluster, cluster: Cluster,
                                            *, down_s: float) -> None:
    pg.stop("fast")
    deadline = time.monotonic() + down_s
    while time.monotonic() < deadline:
        for i in range(len(cluster.members)):
            assert cluster.health(i) is not None, f"instance {i} stopped answering /health"
        # The outage itself is the scenario: watch /health every 200 ms while it lasts.
        time.sleep(0.2)
    pg.start()

