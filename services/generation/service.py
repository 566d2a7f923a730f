"""Generations: the product service the chat's form uses to price and request jobs.

Handlers get a `Generations`, never the pool, the settings or the markup: it prices a form's
values as the storefront does (`services.storefront.pricing`: an operator's override, else
the SKU at PRICE_MARKUP; overrides from the storefront's short cache), and `request` makes the
job in ONE fenced unit of work under the current leadership (the term the dispatcher runs
under), so a deposed leader's handler changes nothing. `request` is given the price the card
showed; `request_generation` re-reads the override in its transaction and answers
`PriceChanged` instead of charging a price the user did not see.

Crash analysis of `request` (one transaction: validate, price, wallet lock, key look-up,
limits, job row, hold entry, all inside `request_generation`): a crash before the commit
leaves nothing (no job, no hold) and the re-run update requests afresh under the same key; a
crash after the commit and before the reply makes the re-run find the job under its key
(`Duplicate`), so it shows the job instead of making a second one.

The per-user rate limit is checked first and in memory (`RequestThrottle`): only the leader
handles updates and it handles every one, so a count in its process is exact without a
database round trip (a new leader starts with empty windows: at worst one more window's
worth). At most REQUESTS_PER_WINDOW requests per user in any sliding WINDOW_S; a refusal
writes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from services.catalog import Catalog, InputError, PricingError
from services.generation.request import (
    Created,
    InvalidParams,
    JobLimits,
    ModelUnavailable,
    PriceChanged,
    RequestOutcome,
    request_generation,
)
from services.storefront import Price, Storefront, quote
from supervisor.election import FencedError, Leadership

logger = logging.getLogger(__name__)

# A person confirming forms by hand makes a few a minute; scripts hammering the button are
# what this stops (each request is a fenced transaction and a wallet lock).
REQUESTS_PER_WINDOW = 5
WINDOW_S = 60.0
# Forget idle users' windows once this many users are tracked (memory stays bounded).
MAX_TRACKED_USERS = 100_000


@dataclass(frozen=True, slots=True)
class RateLimited:
    """The user requested too many generations lately; retry after retry_after_s."""

    retry_after_s: float


class RequestThrottle:
    """Allow each user REQUESTS_PER_WINDOW requests per sliding WINDOW_S."""

    def __init__(self, *, limit: int = REQUESTS_PER_WINDOW, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[int, deque[float]] = {}

    def try_acquire(self, user_id: int) -> float:
        """Count a request of user_id; return 0.0 if allowed, else seconds until one is."""
        now = self._clock()
        stamps = self._seen.get(user_id)
        if stamps is None:
            self._maybe_forget(now)
            stamps = self._seen[user_id] = deque()
        while stamps and stamps[0] <= now - self._window_s:
            stamps.popleft()
        if len(stamps) >= self._limit:
            return stamps[0] + self._window_s - now
        stamps.append(now)
        return 0.0

    def _maybe_forget(self, now: float) -> None:
        if len(self._seen) < MAX_TRACKED_USERS:
            return
        self._seen = {user: stamps for user, stamps in self._seen.items()
                      if stamps and stamps[-1] > now - self._window_s}


class Generations:
    """Price forms and request generation jobs for the chat."""

    def __init__(self, pool: AsyncConnectionPool, *, leadership: Callable[[], Leadership | None],
                 storefront: Storefront, limits: JobLimits,
                 throttle: RequestThrottle | None = None,
                 on_requested: Callable[[], None] | None = None) -> None:
        """on_requested: called once a new job committed (`Engine.requested`: the submitter
        of this process claims it now)."""
        self._pool = pool
        self._on_requested = on_requested
        self._leadership = leadership
        self._storefront = storefront
        self.catalog: Catalog = storefront.catalog
        self._limits = limits
        self._throttle = throttle or RequestThrottle()

    async def price(self, model_id: str, params: Mapping[str, object]) -> Price | InvalidParams:
        """Return the user's price of params (defaults filled), as the screens show it."""
        model = self.catalog.get(model_id)
        if model is None:
            return InvalidParams("model_id", f"{model_id!r} is not a model in the catalog")
        overrides = await self._storefront.overrides()
        try:
            return quote(model, params, markup=self._storefront.markup,
                         override=overrides.get(model_id))
        except InputError as exc:
            return InvalidParams(exc.field, exc.reason)
        except PricingError:
            return InvalidParams("params", "no price is set for this combination of parameters")

    async def request(self, *, user_id: int, chat_id: int, model_id: str,
                      params: Mapping[str, object], idempotency_key: str,
                      shown_price_kop: int | None = None,
                      status_message_id: int | None = None) -> RequestOutcome | RateLimited:
        """Request a job once per idempotency key, in one fenced unit of work.

        shown_price_kop: the price the user agreed to; a different live price is refused
        (`PriceChanged`), nothing written. status_message_id, if given, becomes the job's
        status message.
        """
        wait_s = self._throttle.try_acquire(user_id)
        if wait_s > 0:
            logger.info("generation_rate_limited", extra={"user_id": user_id,
                                                          "retry_after_s": round(wait_s, 1)})
            return RateLimited(wait_s)
        leadership = self._leadership()
        if leadership is None:
            raise FencedError("no current term")
        # Pipelined: BEGIN and the fence travel with request_generation's reads.
        async with leadership.fenced(self._pool, pipeline=True) as conn:
            outcome = await request_generation(
                conn, catalog=self.catalog, markup=self._storefront.markup,
                limits=self._limits, user_id=user_id, chat_id=chat_id, model_id=model_id,
                params=params, idempotency_key=idempotency_key,
                expected_price_kop=shown_price_kop, status_message_id=status_message_id)
        if isinstance(outcome, Created) and self._on_requested is not None:
            self._on_requested()
        if isinstance(outcome, PriceChanged | ModelUnavailable):
            # The screens' cached overrides are behind the database: re-read them next.
            self._storefront.forget()
        return outcome
