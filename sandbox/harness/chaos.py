"""Chaos with real processes: N instances, both sandboxes as processes, the leader faulted by
real signals, and the duplicates a fault made attributed to the fault that made them.

    ChaosCluster(database_url, logs_dir, ...)   (async context manager)
      Telegram sandbox process   what the bot sent, with the exact time of each call
      Kie sandbox process        optional; per-model task times and a fail rate
      balancer process           the public base URL (Kie's callbacks reach any member)
      N instance processes       `python -m supervisor run`
    `fault_leader(sig)` signals the member whose /health says leader, waits for another to
    lead a newer term, reaps and restarts the faulted member; `run_faults` alternates
    SIGKILL and SIGTERM every `every_s` seconds.

Where a send came from. Each term begins at its `promoted` row in leader_events (written in
the promotion's transaction, before any leader service of the term runs) and ends where the
next term begins. Only the leader sends results and broadcasts, and a faulted leader sends
nothing after the next term began (SIGKILL: the process is gone before PostgreSQL frees the
lock; SIGTERM: it drains, then resigns), so the term of a send is the one whose span holds
the sandbox's `sent_at` of it. A term ends by SIGKILL, SIGTERM (the signal we sent to its
instance while it led) or `other` (e.g. a demotion without a signal).

The SIGKILL window (what `attribute` checks for every duplicated message): a leader killed
while sending has *in flight* the items it sent but had not yet recorded (a delivery record,
a broadcast row settled). The window of a term T ended by SIGKILL runs from the first send
in T of an item whose record T never wrote (its record was written after T ended, by a
later term) to the end of T. A duplicate is *inside a SIGKILL window* when its first copy
was sent inside the window of a term ended by SIGKILL and every later copy was sent after
that term ended. Anything else (both copies in one term, a first copy in a SIGTERM'd term:
a graceful handover drains; a first copy already recorded) is a duplicate outside. The
window holds only in-flight items, so the items of one window are bounded by the sender's
concurrency: `attribute` reports the largest window count so a caller can check it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import signal
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from sandbox.harness.cluster import InstanceCluster, ServerProcess
from sandbox.harness.env import BOT_TOKEN, KIE_KEY, make_env
from sandbox.harness.postgres import free_port
from sandbox.telegram import SandboxClient
from supervisor.aio import wait_event
from supervisor.sqlstore import QueryStore

QUERIES: Final = QueryStore(Path(__file__).with_name("sql") / "chaos.sql")
FAULT_SIGNALS: Final = (signal.SIGKILL, signal.SIGTERM)
STARTUP_TIMEOUT_S: Final = 60.0
HEALTH_POLL_S: Final = 0.02
LEADER_WAIT_S: Final = 30.0  # a fault waits this long for a member that leads
FAILOVER_TIMEOUT_S: Final = 30.0  # another member must lead a newer term within this
EXIT_WAIT_S: Final = 30.0  # a faulted member must exit within this (then it is SIGKILLed)
OUTBOX_PAGE: Final = 10_000
# Short graces keep a SIGTERM'd leader's drain inside the fault interval.
SHUTDOWN_GRACE_S: Final = "8"
LEADER_STOP_GRACE_S: Final = "3"
SEND_METHODS: Final = frozenset({
    "sendMessage", "sendPhoto", "sendVideo", "sendAudio", "sendDocument", "sendAnimation",
    "sendVoice", "sendMediaGroup"})


@dataclass(frozen=True, slots=True)
class Fault:
    """One signal sent to the leader."""

    signal: str  # SIGKILL or SIGTERM
    instance_id: str
    term: int  # the term the instance led when signalled
    at: float  # Unix s, just before the signal
    failover_ms: float | None  # until another member's /health said leader of a newer term


@dataclass(frozen=True, slots=True)
class Term:
    """One term's span and how it ended."""

    term: int
    instance_id: str
    began: float
    ended: float = math.inf
    ended_by: str = "running"  # SIGKILL, SIGTERM, other, running


@dataclass(frozen=True, slots=True)
class Send:
    """One message the bot sent to a chat, and when the sandbox took it."""

    chat_id: int
    sent_at: float
    method: str


@dataclass(slots=True)
class Attribution:
    """Duplicates found and where their first copies lie."""

    duplicates: int = 0  # copies beyond one per item
    inside_sigkill_windows: int = 0
    outside: list[dict[str, Any]] = field(default_factory=list)  # one entry per bad item
    windows: list[dict[str, Any]] = field(default_factory=list)  # per SIGKILL'd term

    def figures(self) -> dict[str, Any]:
        """Return the counts (and the first few offenders) as JSON-able figures."""
        return {"duplicate_deliveries": self.duplicates,
                "duplicates_inside_sigkill_windows": self.inside_sigkill_windows,
                "duplicates_outside_sigkill_windows": self.duplicates
                - self.inside_sigkill_windows,
                "max_in_flight_per_window": max((w["in_flight"] for w in self.windows),
                                                default=0),
                "sigkill_windows": self.windows,
                "outside_examples": self.outside[:5]}


def build_terms(rows: Iterable[Mapping[str, Any]], faults: Sequence[Fault]) -> list[Term]:
    """Return the terms in order, each ended where the next began, with its cause of end."""
    ordered = sorted(rows, key=lambda r: int(r["term"]))
    by_instance_term = {(f.instance_id, f.term): f.signal for f in faults}
    terms = []
    for i, row in enumerate(ordered):
        last = i == len(ordered) - 1
        ended = math.inf if last else float(ordered[i + 1]["began"])
        cause = by_instance_term.get((str(row["instance_id"]), int(row["term"])))
        terms.append(Term(int(row["term"]), str(row["instance_id"]), float(row["began"]),
                          ended, cause or ("running" if last else "other")))
    return terms


def term_at(terms: Sequence[Term], at: float) -> Term | None:
    """Return the term whose span holds the instant `at` (None before the first)."""
    index = bisect.bisect_right([t.began for t in terms], at) - 1
    return terms[index] if index >= 0 else None


def attribute(sends_by_item: Mapping[int, Sequence[float]],
              recorded_at: Mapping[int, float | None], terms: Sequence[Term]) -> Attribution:
    """Count duplicated items and check each lies in a SIGKILL window (module docstring).

    sends_by_item: item (a job, a recipient) -> the sent_at of each copy the bot sent;
    recorded_at: item -> when its record (delivery, settle) was written, None if never.
    """
    result = Attribution()
    in_flight: dict[int, list[tuple[float, int]]] = defaultdict(list)  # term -> (sent, item)
    for item, times in sends_by_item.items():
        if not times:
            continue
        first = min(times)
        term = term_at(terms, first)
        recorded = recorded_at.get(item)
        if term is not None and (recorded is None or recorded >= term.ended):
            in_flight[term.term].append((first, item))
    for term in terms:
        if term.ended_by == "SIGKILL":
            items = sorted(in_flight.get(term.term, []))
            opened = items[0][0] if items else term.ended
            result.windows.append({"term": term.term, "instance": term.instance_id,
                                   "in_flight": len(items),
                                   "window_ms": round((term.ended - opened) * 1000, 1)})
    window_items = {item for term in terms if term.ended_by == "SIGKILL"
                    for _, item in in_flight.get(term.term, [])}
    for item, times in sends_by_item.items():
        if len(times) < 2:
            continue
        extra = len(times) - 1
        result.duplicates += extra
        ordered = sorted(times)
        term = term_at(terms, ordered[0])
        inside = (term is not None and term.ended_by == "SIGKILL" and item in window_items
                  and all(t >= term.ended for t in ordered[1:]))
        if inside:
            result.inside_sigkill_windows += extra
        else:
            result.outside.append({
                "item": item, "copies": len(times), "first_term": term.term if term else None,
                "first_term_ended_by": term.ended_by if term else None,
                "sent_at": [round(t, 3) for t in ordered], "recorded_at": recorded_at.get(item)})
    return result


async def outbox_sends(control: SandboxClient, chat_ids: Iterable[int]) -> list[Send]:
    """Return every message sent (not edited) to these chats, in the sandbox's order."""
    wanted = set(chat_ids)
    sends: list[Send] = []
    after = 0
    while True:
        page = await control.outbox(after, OUTBOX_PAGE)
        if not page:
            return sends
        after = int(page[-1]["seq"])
        sends.extend(Send(int(e["chat_id"]), float(e["sent_at"]), str(e["method"]))
                     for e in page if e["method"] in SEND_METHODS and e["chat_id"] in wanted)


async def rows(database_url: str, name: str,
               params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one named chaos query."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES[name], params or {})
        return list(await cur.fetchall())


async def count(database_url: str, name: str, params: Mapping[str, Any]) -> int:
    """Run one named counting query."""
    [row] = await rows(database_url, name, params)
    return int(row["n"])


class ChaosCluster:
    """The sandboxes, a balancer and N instance processes on one database."""

    def __init__(self, database_url: str, logs_dir: Path, *, instances: int = 3,
                 telegram_args: Sequence[str] = (), kie: bool = True,
                 env: Mapping[str, str] | None = None) -> None:
        self.database_url = database_url
        self.logs_dir = logs_dir
        self._instances = instances
        self._telegram_args = list(telegram_args)
        self._kie = kie
        self._env = dict(env or {})
        self._stack = contextlib.ExitStack()
        self.telegram_url = ""
        self.kie_url = ""
        self.cluster: InstanceCluster | None = None
        self.faults: list[Fault] = []

    async def __aenter__(self) -> ChaosCluster:
        try:
            await asyncio.to_thread(self._start)
        except BaseException:
            await asyncio.to_thread(self._stack.close)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await asyncio.to_thread(self._stack.close)

    def _server(self, module: str, args: Sequence[str], log: str) -> str:
        server = ServerProcess(module, args, self.logs_dir / log)
        self._stack.callback(server.stop)
        return server.start()

    def _start(self) -> None:
        self.telegram_url = self._server("sandbox.telegram", [
            "--port", "0", "--token", BOT_TOKEN, "--auto-create-chats", "--log-level",
            "WARNING", *self._telegram_args], "telegram.log")
        if self._kie:
            self.kie_url = self._server("sandbox.kie", [
                "--port", "0", "--key", KIE_KEY, "--log-level", "WARNING"], "kie.log")
        balancer_port = free_port()
        env = make_env(self.database_url, TELEGRAM_API_BASE=self.telegram_url,
                       KIE_BASE_URL=self.kie_url or "https://api.kie.ai",
                       KIE_UPLOAD_BASE_URL=self.kie_url or "https://kieai.redpandaai.co",
                       WEBHOOK_BASE_URL=f"http://127.0.0.1:{balancer_port}", DB_MAXCONN="10",
                       SHUTDOWN_GRACE=SHUTDOWN_GRACE_S, LEADER_STOP_GRACE=LEADER_STOP_GRACE_S,
                       **self._env)
        cluster = self.cluster = InstanceCluster(
            self._instances, command=["-m", "supervisor", "run"], env=env,
            logs_dir=self.logs_dir, name="c")
        self._stack.callback(cluster.stop)
        self._server("sandbox.harness.balancer",
                     ["--port", str(balancer_port),
                      *(arg for url in cluster.urls for arg in ("--backend", url))],
                     "balancer.log")
        cluster.start()
        cluster.wait_all_answering(STARTUP_TIMEOUT_S)
        cluster.wait_leader(STARTUP_TIMEOUT_S)

    @property
    def env(self) -> dict[str, str]:
        """Return the environment every instance shares."""
        assert self.cluster is not None
        return self.cluster.env

    async def leader(self, timeout_s: float = LEADER_WAIT_S) -> tuple[int, int] | None:
        """Return (index, term) of the member that leads the newest term, or None."""
        assert self.cluster is not None
        return await find_leader(self.cluster, timeout_s)

    async def fault_leader(self, sig: signal.Signals) -> Fault | None:
        """Signal the leader, wait for a newer term elsewhere, restart the faulted member."""
        cluster = self.cluster
        assert cluster is not None
        found = await self.leader()
        if found is None:
            return None
        index, term = found
        instance_id = cluster.members[index].instance_id
        at = await asyncio.to_thread(cluster.signal, index, sig)
        seen = await self._new_leader_seen(index, term)
        fault = Fault(sig.name, instance_id, term, at,
                      None if seen is None else round((seen - at) * 1000, 1))
        self.faults.append(fault)
        await asyncio.to_thread(cluster.reap, index, EXIT_WAIT_S)
        await asyncio.to_thread(cluster.start, index)
        return fault

    async def run_faults(self, stop: asyncio.Event, *, every_s: float,
                         max_faults: int | None = None) -> None:
        """Fault the leader every every_s (SIGKILL, SIGTERM, ...) until stop or max_faults."""
        number = 0
        while max_faults is None or number < max_faults:
            if await wait_event(stop, every_s):
                return
            await self.fault_leader(FAULT_SIGNALS[number % len(FAULT_SIGNALS)])
            number += 1

    async def terms(self) -> list[Term]:
        """Return every term so far with its span and cause of end."""
        return build_terms(await rows(self.database_url, "terms"), self.faults)

    def fault_counts(self) -> dict[str, int]:
        """Return how many faults of each signal were made."""
        return {s.name.lower(): sum(f.signal == s.name for f in self.faults)
                for s in FAULT_SIGNALS}

    async def _healths(self, indexes: Iterable[int]) -> list[dict[str, object] | None]:
        assert self.cluster is not None
        return await healths(self.cluster, indexes)

    async def _new_leader_seen(self, old_index: int, old_term: int) -> float | None:
        assert self.cluster is not None
        others = [i for i in range(len(self.cluster.members)) if i != old_index]
        deadline = time.monotonic() + FAILOVER_TIMEOUT_S
        while time.monotonic() < deadline:
            docs = await self._healths(others)
            if any(doc and doc.get("role") == "leader" and _term(doc) > old_term
                   for doc in docs):
                return time.time()
            await asyncio.sleep(HEALTH_POLL_S)
        return None


async def healths(cluster: InstanceCluster,
                  indexes: Iterable[int]) -> list[dict[str, object] | None]:
    """Return the /health documents of some members, asked concurrently."""
    return list(await asyncio.gather(*(asyncio.to_thread(cluster.health, i) for i in indexes)))


async def find_leader(cluster: InstanceCluster, timeout_s: float) -> tuple[int, int] | None:
    """Return (index, term) of the member that leads the newest term, or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        docs = await healths(cluster, range(len(cluster.members)))
        leaders = [(_term(doc), i) for i, doc in enumerate(docs)
                   if doc and doc.get("role") == "leader"]
        if leaders:
            term, index = max(leaders)
            return index, term
        await asyncio.sleep(HEALTH_POLL_S)
    return None


def _term(doc: Mapping[str, object]) -> int:
    term = doc.get("term")
    return term if isinstance(term, int) else 0

