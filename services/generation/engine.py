"""The generation engine's wiring: the leader's loops and the callback route of every instance.

    submitter  (leader)  pending jobs -> createTask -> task id
    ingress    (every)   POST /kie/callback/{job}/{token} -> stored (+ wake-up) -> 200
    applier    (leader)  stored callbacks and poll answers -> settlement (fenced)
    poller     (leader)  recordInfo for quiet jobs -> stored like a callback; expiry
    delivery   (leader)  finished jobs -> Telegram -> file_ids recorded
    status     (leader)  each job's status message: "generating" (submitter), the final
                         stage (delivery), elapsed time and catch-up (refresher)
    invariants (leader, run by the audit alerts) audit() -> /health and /metrics

Wake-ups. Each loop also polls, so a lost wake-up costs at most a poll interval. Where the
producer and the loop share the leader's process, the wake-up is in process, after the
commit: a job requested (handlers run on the leader: `Engine.requested` wakes the
submitter), a job finished (the applier, the poller's expiry and the submitter's failures
wake the delivery worker; the applier's transaction even claims the jobs it finished and
hands them over once committed, no claim transaction on a result's way out), a result
delivered (the submitter's backpressure is nudged). A callback that reaches the leader's own
ingress needs no wake-up: it is settled (and its result claimed) in the transaction that
stores it. Only what may come from another process crosses PostgreSQL: a callback stored by
a follower's ingress and a poll answer NOTIFY `job_callbacks`. PostgreSQL serializes the
commits of every notifying transaction on one lock held through the WAL flush, so the hot
path does not NOTIFY (docs/performance.md: the burst's tail with and without the request's
NOTIFY).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psycopg
from aiogram import Bot
from psycopg_pool import AsyncConnectionPool

from config import Settings
from services.catalog import Catalog
from services.delivery.status import StatusBoard
from services.generation import delivery_worker as delivery_loop
from services.generation import submitter as submit_loop
from services.generation.applier import CallbackApplier
from services.generation.callback_ingress import CallbackIngress
from services.generation.delivery_worker import DELIVERY_LEASE_S, DeliveryWorker
from services.generation.invariants_job import InvariantsJob
from services.generation.poller import POLL_INTERVAL_S, StatusPoller
from services.generation.settlement import expiry_deadlines
from services.generation.status_messages import JobStatusMessages, StatusRefresher
from services.generation.submission import (
    FIRST_POLL_AFTER_S,
    POLL_BASE_INTERVAL_S,
    POLL_MAX_INTERVAL_S,
)
from services.generation.submitter import SUBMIT_LEASE_S, Submitter, submit_bucket
from services.kie import KieClient
from supervisor.http import RouteInstaller
from supervisor.runtime_state import RuntimeState
from supervisor.services import Service


@dataclass(frozen=True, slots=True)
class Timings:
    """The engine's clocks; production keeps the defaults, tests and benchmarks shorten them."""

    first_poll_s: float = FIRST_POLL_AFTER_S
    poll_base_s: float = POLL_BASE_INTERVAL_S
    poll_max_s: float = POLL_MAX_INTERVAL_S
    poll_interval_s: float = POLL_INTERVAL_S
    submit_lease_s: float = SUBMIT_LEASE_S
    delivery_lease_s: float = DELIVERY_LEASE_S
    # The first backoff (then doubling, capped) of a refused submission or failed delivery.
    submit_retry_s: float = submit_loop.RETRY_INITIAL_S
    submit_retry_max_s: float = submit_loop.RETRY_MAX_S
    delivery_retry_s: float = delivery_loop.RETRY_INITIAL_S
    delivery_retry_max_s: float = delivery_loop.RETRY_MAX_S


@dataclass(slots=True)
class Engine:
    """What the composition root hands the supervisor for generations."""

    leader_only: list[Service]
    routes: list[RouteInstaller]
    # The audit the leader's audit alerts run (and publish on /health and /metrics).
    invariants: InvariantsJob
    status: JobStatusMessages
    # Call once a job request committed on this instance: wakes the submitter (in process).
    requested: Callable[[], None]
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def build_engine(settings: Settings, pool: AsyncConnectionPool, state: RuntimeState, *,
                 bot: Bot, catalog: Catalog,
                 listen_connect: Callable[[], Awaitable[psycopg.AsyncConnection]],
                 kie: KieClient | None = None, timings: Timings = Timings(),
                 status_board: StatusBoard | None = None) -> Engine:
    """Wire the generation loops for one instance (no I/O); status_board is the one the
    chat's confirm handler notes its "queued" edits on (else the engine makes its own)."""
    if kie is None:
        kie = KieClient.from_settings(settings)
        kie.bucket = submit_bucket(settings.kie_create_limit)
    status = JobStatusMessages(pool, status_board or StatusBoard(bot), catalog)
    # Delivery is built last (it nudges the submitter); the settlers wake it through this.
    def finished() -> None:
        delivery.wake()

    poller = StatusPoller(pool, kie, catalog, state, deadlines_s=expiry_deadlines(settings),
                          poll_base_s=timings.poll_base_s, poll_max_s=timings.poll_max_s,
                          poll_interval_s=timings.poll_interval_s, on_finished=finished)
    submitter = Submitter(pool, kie, catalog, state, webhook_base_url=settings.webhook_base_url,
                          max_attempts=settings.max_submit_attempts,
                          lease_s=timings.submit_lease_s,
                          first_poll_s=timings.first_poll_s, status=status,
                          retry_initial_s=timings.submit_retry_s,
                          retry_max_s=timings.submit_retry_max_s, on_finished=finished)
    delivery = DeliveryWorker(pool, bot, catalog, state, instance_id=settings.instance_id,
                              lease_s=timings.delivery_lease_s,
                              retry_initial_s=timings.delivery_retry_s,
                              retry_max_s=timings.delivery_retry_max_s,
                              on_progress=submitter.nudge, status=status)
    applier = CallbackApplier(pool, catalog, state, listen_connect=listen_connect,
                              deliveries=delivery)
    ingress = CallbackIngress(pool, state, hmac_key=settings.kie_webhook_hmac_key,
                              applier=applier)
    return Engine(leader_only=[submitter, applier, poller, delivery, StatusRefresher(status)],
                  routes=[ingress.install], invariants=InvariantsJob(pool, state),
                  status=status, requested=submitter.wake, on_close=[kie.close])
