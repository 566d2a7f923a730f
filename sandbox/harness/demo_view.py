"""What the demo shows: the live table, a one-line status for logs, and the final totals."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sandbox.harness.demo_store import GenerationTotals, TopUpTotals
from services.telegram.texts import rubles

CLEAR: Final = "\x1b[H\x1b[J"  # cursor home, clear to the end of the screen
FAILOVERS_SHOWN: Final = 8  # the table lists this many most recent failovers
LOST_SHOWN: Final = 10  # the totals list this many unhandled update ids
VIOLATIONS_SHOWN: Final = 10  # ... and this many broken invariants


@dataclass(frozen=True)
class Failover:
    """One fault of the leader and what followed."""

    number: int
    kind: str  # SIGKILL or SIGTERM
    at_s: float  # seconds since the users started
    old_leader: str
    old_term: int
    new_leader: str | None = None  # None: no new leader within the timeout
    new_term: int | None = None
    gap_ms: float | None = None

    def describe(self) -> str:
        """Return one line: kind, leaders, terms, gap."""
        head = f"#{self.number:<3} {self.at_s:7.1f} s  {self.kind:<7}  {self.old_leader}"
        if self.new_leader is None or self.gap_ms is None:
            return f"{head} -> no new leader (timed out)"
        return (f"{head} -> {self.new_leader}  term {self.old_term} -> {self.new_term}"
                f"  gap {self.gap_ms:.0f} ms")


@dataclass(frozen=True)
class MemberRow:
    """One instance slot as the table shows it."""

    instance_id: str
    pid: int | None
    alive: bool
    health: Mapping[str, Any] | None  # the /health document, None if it does not answer


@dataclass
class Snapshot:
    """Everything one refresh of the table shows."""

    mode: str
    phase: str
    elapsed_s: float
    logs_dir: str
    members: list[MemberRow] = field(default_factory=list)
    chats: int = 0
    sent: int = 0
    inject_errors: int = 0
    confirmed: int | None = None  # sandbox counter
    statuses: dict[str, int] = field(default_factory=dict)  # telegram_updates by status
    replies: int = 0
    generations: GenerationTotals = field(default_factory=GenerationTotals)
    topups: TopUpTotals = field(default_factory=TopUpTotals)
    failovers: list[Failover] = field(default_factory=list)
    next_fault: str = ""
    problem: str = ""

    @property
    def leader(self) -> str:
        """Return the instance(s) whose /health says leader, with the term."""
        leaders = [f"{m.instance_id} (term {m.health.get('term')})" for m in self.members
                   if m.health and m.health.get("role") == "leader"]
        return ", ".join(leaders) or "none"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def render(snap: Snapshot) -> str:
    """Return the whole table as text (the caller clears the screen first)."""
    rate = snap.sent / snap.elapsed_s if snap.elapsed_s > 0 else 0.0
    stored = sum(snap.statuses.values())
    lines = [
        f"kiebot demo   mode {snap.mode}   {snap.phase}   elapsed {snap.elapsed_s:5.0f} s"
        f"   {snap.next_fault}",
        f"logs: {snap.logs_dir}",
        "",
        f"  {'instance':<12} {'pid':>7}  {'role':<10} {'term':>5}  {'alive':<5}"
        f"  {'stored':>7} {'handled':>8}  /health",
    ]
    for m in snap.members:
        doc = m.health or {}
        counters = doc.get("counters") or {}
        stored_here = (counters.get("updates_received", 0) + counters.get("webhook_updates", 0)
                       if m.health else None)
        lines.append(
            f"  {m.instance_id:<12} {_cell(m.pid):>7}  {_cell(doc.get('role')):<10}"
            f" {_cell(doc.get('term')):>5}  {'yes' if m.alive else 'no':<5}"
            f"  {_cell(stored_here):>7} {_cell(counters.get('updates_processed')):>8}"
            f"  {doc.get('status', 'ok') if m.health else 'no answer'}")
    lines += [
        "",
        f"  sent {snap.sent} ({rate:.1f}/s, {snap.chats} chats)   confirmed"
        f" {_cell(snap.confirmed)}   stored {stored}   pending {snap.statuses.get('pending', 0)}"
        f"   processing {snap.statuses.get('processing', 0)}",
        f"  processed {snap.statuses.get('done', 0) + snap.statuses.get('failed', 0)}"
        f" (failed {snap.statuses.get('failed', 0)})   replies {snap.replies}"
        f"   inject errors {snap.inject_errors}",
        f"  generations {snap.generations.requested}   delivered"
        f" {snap.generations.delivered}   failed {snap.generations.failed}   in progress"
        f" {snap.generations.unfinished}",
        f"  top-ups {snap.topups.requested}   approved {snap.topups.approved}   rejected"
        f" {snap.topups.rejected}   waiting for the operator {snap.topups.pending}"
        f"   credited {rubles(snap.topups.credited_kop)}",
        f"  leader {snap.leader}   failovers {len(snap.failovers)}",
        "",
        "  stored / handled: by that process since it started (its /health counters)",
        "",
        "  failovers (fault -> new leader says so on /health):",
    ]
    lines += [f"    {f.describe()}" for f in snap.failovers[-FAILOVERS_SHOWN:]] or ["    none yet"]
    if snap.problem:
        lines += ["", f"  ! {snap.problem}"]
    lines += ["", "Ctrl-C stops the users and prints the totals."]
    return "\n".join(lines) + "\n"


def status_line(snap: Snapshot) -> str:
    """Return one line for output that is not a terminal."""
    processed = snap.statuses.get("done", 0) + snap.statuses.get("failed", 0)
    line = (f"[{snap.elapsed_s:5.0f} s] {snap.phase}: sent {snap.sent} confirmed"
            f" {_cell(snap.confirmed)} processed {processed} replies {snap.replies}"
            f" generations {snap.generations.requested} delivered"
            f" {snap.generations.delivered} top-ups {snap.topups.requested} approved"
            f" {snap.topups.approved} rejected {snap.topups.rejected} leader {snap.leader}"
            f" failovers {len(snap.failovers)}")
    return f"{line} ! {snap.problem}" if snap.problem else line


@dataclass(frozen=True)
class Totals:
    """The demo's outcome."""

    mode: str
    duration_s: float
    chats: int
    sent: int
    inject_errors: int
    confirmed: int | None
    done: int
    failed: int
    unhandled: Sequence[tuple[int, str]]  # (update_id, status) of sent updates not handled
    replies: int
    error_replies: int
    other_replies: int
    unanswered: int
    duplicated: int
    duplicated_texts: int
    failovers: Sequence[Failover]
    logs_dir: str
    generations: GenerationTotals = field(default_factory=GenerationTotals)
    double_charges: int = 0  # holds or commits beyond one per job
    violations: Sequence[str] = ()  # broken invariants (generation audit, payment_violations)
    shoppers: int = 0  # chats that top up, browse and generate (demo_shoppers)
    confirms: int = 0  # their taps on a confirm card's Generate
    results_seen: int = 0  # results that reached them
    topups: TopUpTotals = field(default_factory=TopUpTotals)  # by bank transfer, from the DB
    decisions_told: int = 0  # top-up decisions that reached the shoppers
    double_topups: int = 0  # top-up entries beyond one per payment

    @property
    def lost(self) -> int:
        """Return the sent updates not handled (done or failed) after the final wait."""
        return len(self.unhandled)

    @property
    def nothing_lost(self) -> bool:
        """Tell whether every update was handled, every generation ended and was told, every
        top-up was decided, and the money is right (no double charge or top-up, every
        invariant of generations and payments holds)."""
        return (self.lost == 0 and self.generations.unfinished == 0
                and self.topups.pending == 0 and self.double_charges == 0
                and self.double_topups == 0 and not self.violations)


def render_totals(t: Totals) -> str:
    """Return the final report; its `lost:` line is what the smoke test reads."""
    rate = t.sent / t.duration_s if t.duration_s > 0 else 0.0
    gaps = [f.gap_ms for f in t.failovers if f.gap_ms is not None]
    gap_text = (f", gap p50 {statistics.median(gaps):.0f} ms, max {max(gaps):.0f} ms"
                if gaps else "")
    timed_out = len(t.failovers) - len(gaps)
    lines = [
        f"== totals ({t.duration_s:.1f} s of users, mode {t.mode}) ==",
        f"sent:         {t.sent} updates from {t.chats} chats ({rate:.1f}/s;"
        f" failed inject calls {t.inject_errors})",
        f"confirmed:    {_cell(t.confirmed)} (by the Telegram sandbox)",
        f"processed:    {t.sent - t.lost} (done or dead-lettered; whole inbox: done {t.done},"
        f" failed {t.failed})",
        f"lost:         {t.lost}",
        f"replies:      {t.replies} (error replies {t.error_replies}, unrecognised"
        f" {t.other_replies}, messages unanswered {t.unanswered})",
        f"duplicated:   {t.duplicated} (replies beyond one per message; free texts quoted more"
        f" than once: {t.duplicated_texts})",
        f"failovers:    {len(t.failovers)}{gap_text}"
        + (f", {timed_out} without a new leader in time" if timed_out else ""),
    ]
    lines += [f"  {f.describe()}" for f in t.failovers]
    g, m = t.generations, t.topups
    lines += [
        f"top-ups:      {m.requested} requested, {m.approved} approved ({m.amended} another"
        f" amount), {m.rejected} rejected, {m.pending} pending; {rubles(m.credited_kop)}"
        f" credited (decisions told to the shoppers: {t.decisions_told})",
        f"double top-ups: {t.double_topups}",
        f"shoppers:     {t.shoppers} chats, {t.confirms} confirmed a generation, {t.results_seen}"
        f" results reached them",
        f"generations:  {g.requested} requested, {g.delivered} delivered, {g.failed} failed"
        f" (the user told), {g.undeliverable} undeliverable, {g.unfinished} unfinished;"
        f" {rubles(g.charged_kop)} charged",
        f"double charges: {t.double_charges}",
        f"invariants:   {'ok' if not t.violations else f'{len(t.violations)} broken'}"
        " (generations and payments)",
    ]
    lines += [f"  {v}" for v in t.violations[:VIOLATIONS_SHOWN]]
    if t.unhandled:
        shown = ", ".join(f"{uid} ({status})" for uid, status in t.unhandled[:LOST_SHOWN])
        lines.append(f"unhandled:    {shown}{' ...' if t.lost > LOST_SHOWN else ''}")
    lines.append(f"logs:         {t.logs_dir}")
    return "\n".join(lines)
