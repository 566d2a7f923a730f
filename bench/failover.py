"""Measure leader failover: N=3 real instances on a throwaway database, four fault scenarios.

    python bench/failover.py [--rounds 10] [--quick] [--scenarios sigkill,sigterm,...]

Each round faults the current leader and measures the gap from the fault instant to the new
term's first fenced write. `split_brain` counts fenced writes of an old term that landed
after a newer term's first write (must be 0). Prints one JSON object.

Scenarios: sigkill (crash), sigterm (graceful handover), sigstop (frozen leader, resumed
after the failover), conn_kill (pg_terminate_backend of the leader's lock session).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time

import orjson
import psycopg

from sandbox.harness.cluster import wait_until
from sandbox.harness.databases import Server
from sandbox.harness.probe import Cluster
from supervisor import migrations

SCENARIOS = ("sigkill", "sigterm", "sigstop", "conn_kill")
TTL_S = 5.0
RENEW_S = 1.0


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_round(cluster: Cluster, scenario: str, term: int, holder: str) -> tuple[float, int, str]:
    """Fault the leader once; return (gap ms, new term, new holder)."""
    leader = cluster.index_of(holder)
    if scenario == "conn_kill":
        fault_at, _ = cluster.terminate_leader_lock_session()
    else:
        sig = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM,
               "sigstop": signal.SIGSTOP}[scenario]
        fault_at = cluster.signal(leader, sig)
    new_term, new_holder, first_write = cluster.wait_writing_leader(
        after_term=term, timeout_s=TTL_S * 4)
    gap_ms = (first_write - fault_at) * 1000
    if scenario == "sigstop":
        cluster.signal(leader, signal.SIGCONT)
    if scenario in ("sigkill", "sigterm"):
        cluster.wait_exit(leader)
        cluster.start(leader)
    # Steady state before the next fault: every member up and exactly one leader.
    wait_until(lambda: cluster.roles().count("leader") == 1
               and None not in cluster.roles(), 30)
    return gap_ms, new_term, new_holder


def run_scenario(server: Server, template: str, scenario: str, rounds: int) -> dict[str, object]:
    """Run one scenario on a fresh database; return its figures."""
    url = server.create_database(template=template, prefix="kiebot_bench")
    cluster = Cluster(url, n=3, ttl_s=TTL_S, renew_s=RENEW_S)
    gaps: list[float] = []
    try:
        cluster.start()
        term, holder, _ = cluster.wait_writing_leader()
        cluster.wait_all_answering()
        for _ in range(rounds):
            gap_ms, term, holder = run_round(cluster, scenario, term, holder)
            gaps.append(gap_ms)
        split_brain = cluster.split_brain_writes()
    finally:
        cluster.stop()
        server.drop_database(url)
    return {"n": len(gaps), "p50_ms": round(statistics.median(gaps), 1),
            "p99_ms": round(percentile(gaps, 0.99), 1), "max_ms": round(max(gaps), 1),
            "split_brain": split_brain}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 rounds per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    server = Server().start()
    try:
        template_url = server.create_database(prefix="kiebot_bench_tmpl")
        asyncio.run(migrations.apply_pending(template_url))
        template = server.template_from(template_url)
        started = time.monotonic()
        results: dict[str, object] = {}
        for scenario in args.scenarios.split(","):
            if scenario not in SCENARIOS:
                parser.error(f"unknown scenario {scenario!r}; choose from {SCENARIOS}")
            results[scenario] = run_scenario(server, template, scenario, rounds)
        results["config"] = {"instances": 3, "lease_ttl_s": TTL_S, "renew_interval_s": RENEW_S,
                             "rounds": rounds, "duration_s": round(time.monotonic() - started, 1)}
        server.drop_database(template_url)
    except psycopg.Error as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    print(orjson.dumps(results).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
