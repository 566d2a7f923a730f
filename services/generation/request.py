"""Turn a confirm press into a job: validate, price, hold, create, under one idempotency key.

`request_generation` runs inside the caller's fenced transaction (the handler did
`async with leadership.fenced(pool) as conn`) and does, in order:

1. check the params against the model's typed inputs and pick their SKU (no I/O);
2. lock the user's wallet row (`SELECT ... FOR UPDATE`): every request of one user queues
   here, so the checks below see all of that user's committed requests;
3. look the key up: a job already made under it is returned as `Duplicate` (a retried or
   re-run handler creates nothing twice; the same key with another request is a conflict);
4. read the model's operator override *in this transaction*: a model switched off is
   `ModelUnavailable`; the price is `storefront.user_price_kop` (the override, else the SKU's
   price x markup); when the caller says which price the user agreed to (the card's Generate
   button carries the price it showed) and it differs, `PriceChanged` with the live price:
   nobody is charged a price they did not see. An override committed after this read is
   for the next request: this one is charged the price the user saw and we just read;
5. count the user's active jobs (`MAX_ACTIVE_JOBS`) and, for a free generation (price 0),
   their free jobs since midnight UTC (`FREE_DAILY_QUOTA`), and check the balance covers
   the price;
6. insert the job (`pending`, with the SKU's Kie cost for the operators' margin figures;
   with the confirm card's message id as its status message, showing `queued`), then the
   ledger `hold` entry keyed by the job.

The limits are enforced by the database, race-free: the count of step 5 is a new statement
after the lock of step 2, so in READ COMMITTED it sees every request of the user that
committed before ours; two concurrent requests cannot both pass.

Round trips: the statements run in psycopg's pipeline mode. The lock, the key's job, the
override, the load and a new job id (a sequence's nextval) are sent together: one round trip,
each statement still executed after the one before it (so the reads after the lock see what
committed while it waited). The job's insert and its hold (which names the id taken) are the
second. With the caller's BEGIN and COMMIT, a confirm costs four round trips (it was eight).

Crash analysis: everything is in the caller's one transaction. A crash (or an error) before
its commit leaves nothing: no job, no hold, the limits untouched; the handler's re-run starts
afresh. After the commit, the re-run finds the job under its key and returns `Duplicate`.
A refusal (every outcome but Created and Duplicate) writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from config import Settings
from services.billing.ledger import EntryKind, LedgerStore, apply_entry
from services.catalog import Catalog, InputError, PricingError, select_sku
from services.generation.errors import GenerationError, RequestConflict
from services.generation.store import Job, JobStore
from services.storefront import OverrideStore, kie_cost_kop, user_price_kop

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobLimits:
    """Per-user limits a request must pass (from MAX_ACTIVE_JOBS and FREE_DAILY_QUOTA)."""

    max_active_jobs: int
    free_daily_quota: int

    @classmethod
    def from_settings(cls, settings: Settings) -> JobLimits:
        """Return the limits configured by MAX_ACTIVE_JOBS and FREE_DAILY_QUOTA."""
        return cls(max_active_jobs=settings.max_active_jobs,
                   free_daily_quota=settings.free_daily_quota)


@dataclass(frozen=True, slots=True)
class Created:
    """A new job was made (and its price held)."""

    job: Job


@dataclass(frozen=True, slots=True)
class Duplicate:
    """This key already made a job; nothing new was made."""

    job: Job


@dataclass(frozen=True, slots=True)
class InsufficientFunds:
    """The balance is short of the price by shortfall_kop."""

    shortfall_kop: int


@dataclass(frozen=True, slots=True)
class ActiveJobsLimit:
    """The user already has `limit` jobs running."""

    limit: int


@dataclass(frozen=True, slots=True)
class InvalidParams:
    """A parameter (or the model id) breaks a rule; `rule` is a human-readable reason."""

    field: str
    rule: str


@dataclass(frozen=True, slots=True)
class FreeQuotaExhausted:
    """The user made `limit` free generations today (UTC)."""

    limit: int


@dataclass(frozen=True, slots=True)
class ModelUnavailable:
    """An operator switched the model off; nothing was held."""

    model_id: str


@dataclass(frozen=True, slots=True)
class PriceChanged:
    """The price is no longer the one the user was shown; it is price_kop now."""

    price_kop: int


RequestOutcome = (Created | Duplicate | InsufficientFunds | ActiveJobsLimit | InvalidParams
                  | FreeQuotaExhausted | ModelUnavailable | PriceChanged)


def hold_key(job_id: int) -> str:
    """Return the idempotency key of the job's hold entry."""
    return f"job:{job_id}:hold"


async def request_generation(conn: psycopg.AsyncConnection, *, catalog: Catalog,
                             markup: Decimal, limits: JobLimits, user_id: int, chat_id: int,
                             model_id: str, params: Mapping[str, object],
                             idempotency_key: str,
                             expected_price_kop: int | None = None,
                             status_message_id: int | None = None) -> RequestOutcome:
    """Validate, price, hold and create a job once per idempotency key; return the outcome.

    expected_price_kop: the price the user was shown (None: charge the live price unseen,
    for tools and tests). Raise GenerationError if the user has no wallet, RequestConflict if
    the key already made a different job.
    """
    model = catalog.get(model_id)
    if model is None:
        return InvalidParams("model_id", f"{model_id!r} is not a model in the catalog")
    try:
        clean = model.validate_params(params)
        sku = select_sku(model, clean)
    except InputError as exc:
        return InvalidParams(exc.field, exc.reason)
    except PricingError:
        return InvalidParams("params", "no price is set for this combination of parameters")

    jobs = JobStore(conn)
    async with conn.pipeline():  # the reads in one round trip, the writes in another
        locked = await LedgerStore(conn).send_lock_wallet(user_id)
        by_key = await jobs.send_job_by_key(idempotency_key)
        overridden = await OverrideStore(conn).send_override(model_id)
        loaded = await jobs.send_user_load(user_id)
        new_id = await jobs.send_next_job_id()
        wallet = await locked.result()
        if wallet is None:
            raise GenerationError(f"user {user_id} has no wallet")
        existing = await by_key.result()
        if existing is not None:
            if (existing.user_id, existing.model_id, existing.params) != (user_id, model_id,
                                                                           clean):
                raise RequestConflict(f"idempotency key {idempotency_key!r} made job "
                                      f"{existing.id} for another request")
            return Duplicate(existing)
        override = await overridden.result()
        if override is not None and not override.enabled:
            return ModelUnavailable(model_id)
        price_kop = user_price_kop(sku, markup=markup, override=override)
        if expected_price_kop is not None and expected_price_kop != price_kop:
            return PriceChanged(price_kop)
        free = price_kop == 0
        load = await loaded.result()
        if load.active >= limits.max_active_jobs:
            return ActiveJobsLimit(limits.max_active_jobs)
        if free and load.free_today >= limits.free_daily_quota:
            return FreeQuotaExhausted(limits.free_daily_quota)
        if wallet.balance_kop < price_kop:
            return InsufficientFunds(price_kop - wallet.balance_kop)

        job_id = await new_id.result()
        inserted = await jobs.send_insert_job(
            job_id=job_id, user_id=user_id, chat_id=chat_id, model_id=model_id, params=clean,
            price_kop=price_kop, category=model.category, free=free,
            idempotency_key=idempotency_key, kie_cost_kop=kie_cost_kop(sku),
            status_message_id=status_message_id)
        if price_kop > 0:  # its result brings the insert's too: one round trip
            await apply_entry(conn, user_id=user_id, kind=EntryKind.HOLD,
                              balance_delta_kop=-price_kop, hold_delta_kop=price_kop,
                              idempotency_key=hold_key(job_id), job_id=job_id,
                              note=f"hold for job {job_id} ({model_id})")
        job = await inserted.result()
    logger.info("job_requested", extra={"job_id": job.id, "user_id": user_id,
                                        "model_id": model_id, "price_kop": price_kop})
    return Created(job)
