"""The invariants hold after any sequence of requests, callbacks, duplicates, poll answers,
expiries, deliveries and crashes (transactions rolled back midway); audit() finds breaks."""

from __future__ import annotations

import asyncio
import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from services.generation import (
    Created,
    Duplicate,
    Failed,
    JobLimits,
    Outcome,
    Succeeded,
    apply_callbacks,
    audit,
    begin_submit,
    claim_deliveries,
    expire_overdue,
    pending_callbacks,
    record_delivered,
    record_submitted,
    store_callback,
    store_poll_result,
)
from tests.integration.generation_support import (
    DEADLINES_S,
    FREE,
    PRICED,
    PROMPT,
    USER,
    new_user,
    request,
)

LIMITS = JobLimits(max_active_jobs=3, free_daily_quota=3)
MAX_ATTEMPTS = 2
ACTIONS = ("request", "submit", "begin_only", "callback", "duplicate", "poll", "expire",
           "deliver", "crash")
USER_IDS = itertools.count(900_000)


@dataclass
class Model:
    """What the test knows of the jobs it made (restored when a transaction rolls back)."""

    user_id: int
    jobs: list[int] = field(default_factory=list)
    tokens: dict[int, str] = field(default_factory=dict)
    payloads: dict[int, dict[str, object]] = field(default_factory=dict)


def outcome_of(payload: dict[str, object]) -> Outcome | None:
    """Read a test payload as the Kie client would."""
    if payload.get("state") == "success":
        return Succeeded([f"https://cdn/{payload['n']}.png"])
    if payload.get("state") == "fail":
        return Failed(code="kie", message="generation failed")
    return None


async def apply_pending(conn: psycopg.AsyncConnection) -> None:
    for callback in await pending_callbacks(conn, limit=100):
        await apply_callbacks(conn, [(callback, outcome_of(callback.payload))])


async def step(conn: psycopg.AsyncConnection, model: Model, action: str, pick: int,
               flag: bool) -> None:
    """Run one action in its own transaction."""
    if action == "crash":
        saved = copy.deepcopy(model)
        async with conn.transaction(force_rollback=True):
            await step_body(conn, model, ACTIONS[pick % (len(ACTIONS) - 1)], pick, flag)
        model.jobs, model.tokens, model.payloads = saved.jobs, saved.tokens, saved.payloads
        return
    async with conn.transaction():
        await step_body(conn, model, action, pick, flag)


async def step_body(conn: psycopg.AsyncConnection, model: Model, action: str, pick: int,
                    flag: bool) -> None:
    if action == "request":
        key = f"{model.user_id}:{pick}"
        outcome = await request(conn, key, user_id=model.user_id, limits=LIMITS,
                                model_id=FREE if pick % 2 else PRICED, params=PROMPT)
        if isinstance(outcome, Created):
            model.jobs.append(outcome.job.id)
        elif isinstance(outcome, Duplicate):
            assert outcome.job.id in model.jobs
        return
    if action == "expire":
        now = datetime.now(UTC) + (timedelta(days=1) if flag else timedelta(0))
        await expire_overdue(conn, now, DEADLINES_S)
        return
    if action == "deliver":
        for job in await claim_deliveries(conn, instance_id="t", limit=10, lease_s=0):
            await record_delivered(conn, job, file_ids=["f"], message_ids=[1])
        return
    if not model.jobs:
        return
    job_id = model.jobs[pick % len(model.jobs)]
    if action in ("submit", "begin_only"):
        ticket = await begin_submit(conn, job_id, max_attempts=MAX_ATTEMPTS)
        if ticket is not None:
            model.tokens[job_id] = ticket.token
            if action == "submit":
                await record_submitted(conn, job_id, f"task-{job_id}")
    elif action == "callback" and job_id in model.tokens:
        payload: dict[str, object] = {"taskId": f"task-{job_id}", "n": pick,
                                      "state": "success" if flag else "fail"}
        await store_callback(conn, job_id, model.tokens[job_id], payload)
        model.payloads[job_id] = payload
    elif action == "duplicate" and job_id in model.payloads:
        assert await store_callback(conn, job_id, model.tokens[job_id],
                                    model.payloads[job_id]) is None
    elif action == "poll":
        await store_poll_result(conn, job_id, {"taskId": f"task-{job_id}", "n": pick,
                                               "state": "success" if flag else "generating"})
    await apply_pending(conn)


async def run_sequence(url: str, ops: list[tuple[str, int, bool]]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        model = Model(user_id=next(USER_IDS))
        await new_user(conn, model.user_id, balance_kop=3000)
        for action, pick, flag in ops:
            await step(conn, model, action, pick, flag)
            assert await audit(conn) == [], (action, pick, flag)


operations = st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 7), st.booleans()),
                      min_size=1, max_size=30)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_any_sequence_of_job_events_keeps_every_invariant(
        database_url: str, ops: list[tuple[str, int, bool]]) -> None:
    asyncio.run(run_sequence(database_url, ops))


async def test_audit_names_each_broken_invariant(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await new_user(conn)
        held = await request(conn, "press:1")
        assert isinstance(held, Created)
        assert await audit(conn) == []
        # Break the books behind the functions' backs (no trigger guards jobs).
        await conn.execute(
            "INSERT INTO generation_jobs (user_id, chat_id, model_id, params, price_kop, "
            "idempotency_key) VALUES (%s, %s, 'x', '{}', 500, 'rogue')", (USER, USER))
        await conn.execute("UPDATE generation_jobs SET status = 'failed', finished_at = now() "
                           "WHERE id = %s", (held.job.id,))
        rules = {(v.rule, v.job_id) for v in await audit(conn)}
    rogue_rules = {rule for rule, job_id in rules if job_id not in (None, held.job.id)}
    assert ("finished_job_has_no_open_hold", held.job.id) in rules
    assert ("hold_equals_open_jobs", None) in rules
    assert rogue_rules == {"open_job_has_its_hold"}
