"""The composition root: the one place that builds every service and hands it to the supervisor.

`compose()` does no network or database I/O (the pool is not connected yet): it loads and
validates the catalog (a broken catalog refuses start, naming model and field) and wires the
services. `checks()` lists the product's probes for `python -m supervisor check`.
"""

from __future__ import annotations

import asyncio
import secrets

import psycopg
from psycopg_pool import AsyncConnectionPool

from config import Settings
from services.accounts import Accounts
from services.billing.ledger import EntryKind, LedgerConflict, apply_entry, count_entries
from services.catalog import Catalog, load_catalog, price_kopecks
from services.maintenance import Maintenance
from services.telegram.bot import create_bot
from services.telegram.dead_letters import apology
from services.telegram.dispatcher import CurrentTerm, InboxDispatcher
from services.telegram.fsm_storage import PostgresStorage
from services.telegram.handlers import build_dispatcher
from services.telegram.inbox import InboxStore, bot_id_of
from services.telegram.poller import TelegramPoller
from services.telegram.pressure import IngressPressure
from services.telegram.service_state import ServiceStateStore
from services.telegram.webhook import (
    WebhookIngress,
    WebhookRegistrar,
    webhook_secret,
    webhook_url,
)
from services.users import ensure_user
from supervisor import db
from supervisor.http import RouteInstaller
from supervisor.runtime_state import RuntimeState
from supervisor.services import Check, Composition, Service

# The smoke test's baseline model: it must always be in the catalog and priced.
BASELINE_MODEL_ID = "z-image"
# A user id no Telegram user can have (ids are positive); only used inside a rolled-back probe.
PROBE_USER_ID = -1
PROBE_AMOUNT_KOP = 100
# FSM states kept in memory by the leader (a few MB at most); misses read the database.
FSM_STATE_CACHE_SIZE = 50_000


async def compose(settings: Settings, pool: AsyncConnectionPool,
                  state: RuntimeState) -> Composition:
    """Build the product's services for one instance."""
    catalog = await asyncio.to_thread(load_catalog)
    state.catalog_models = len(catalog)
    term = CurrentTerm()

    def leading() -> bool:
        # The same local test Leadership.fence makes before it asks the database.
        leadership = term.leadership
        return leadership is not None and not leadership.lost.is_set() and leadership.trusted()

    bot = create_bot(settings, leading=leading)
    secret = webhook_secret(settings)

    async def listen_connect() -> psycopg.AsyncConnection:
        return await db.connect(settings, purpose="listen")

    bot_id = bot_id_of(settings.telegram_bot_token.get())
    inbox = InboxStore(bot_id, instance_id=settings.instance_id)
    storage = PostgresStorage(pool, fenced=term.fenced, state_cache_size=FSM_STATE_CACHE_SIZE,
                              cache_scope=lambda: term.leadership)
    accounts = Accounts(pool, leadership=lambda: term.leadership)
    aiogram_dp = build_dispatcher(storage=storage, accounts=accounts)
    pressure = IngressPressure()
    dispatcher = InboxDispatcher(pool, bot, aiogram_dp, state, inbox=inbox, term=term,
                                 listen_connect=listen_connect,
                                 concurrency=settings.dispatch_concurrency,
                                 on_dead_letter=apology(bot), flooded=pressure.high)
    allowed_updates = aiogram_dp.resolve_used_update_types()
    leader_only: list[Service] = [
        dispatcher,  # first: it makes its leadership current before a sibling calls the Bot
        Maintenance(pool, inbox=inbox, inbox_retention_hours=settings.inbox_retention_hours),
    ]
    routes: list[RouteInstaller] = []
    if settings.bot_mode == "polling":
        leader_only.append(TelegramPoller(
            pool, state, api_base=settings.telegram_api_base,
            token=settings.telegram_bot_token.get(), allowed_updates=allowed_updates,
            inbox=inbox))
    else:
        leader_only.append(WebhookRegistrar(pool, bot, url=webhook_url(settings), secret=secret,
                                            allowed_updates=allowed_updates,
                                            service_state=ServiceStateStore(bot_id)))
        # The webhook route exists only in webhook mode: in polling mode nothing may inject.
        routes.append(WebhookIngress(pool, state, secret=secret, inbox=inbox,
                                     pressure=pressure).install)
    return Composition(leader_only=leader_only, routes=routes,
                       checks=checks(settings, pool, catalog), on_close=[bot.session.close])


def checks(settings: Settings, pool: AsyncConnectionPool,
           catalog: Catalog | None = None) -> list[Check]:
    """Return the product's smoke-test probes: catalog baseline and billing idempotency."""

    async def catalog_probe() -> str:
        loaded = catalog if catalog is not None else await asyncio.to_thread(load_catalog)
        model = loaded.get(BASELINE_MODEL_ID)
        if model is None:
            raise RuntimeError(f"baseline model {BASELINE_MODEL_ID!r} is missing")
        price = price_kopecks(model, model.with_defaults({}), settings.price_markup)
        inputs = ", ".join(f.name for f in model.inputs)
        return (f"{len(loaded)} models; {BASELINE_MODEL_ID}: {model.endpoint}, "
                f"{price} kop at markup {settings.price_markup}, inputs: {inputs}")

    async def billing_probe() -> str:
        key = f"check-probe:{secrets.token_hex(8)}"
        entry = {"user_id": PROBE_USER_ID, "kind": EntryKind.TOPUP,
                 "balance_delta_kop": PROBE_AMOUNT_KOP, "hold_delta_kop": 0,
                 "idempotency_key": key, "note": "supervisor check probe"}
        async with pool.connection() as conn, conn.transaction(force_rollback=True):
            await ensure_user(conn, user_id=PROBE_USER_ID, username=None, first_name="probe",
                              language_code=None)
            first = await apply_entry(conn, **entry)  # type: ignore[arg-type]
            second = await apply_entry(conn, **entry)  # type: ignore[arg-type]
            entries = await count_entries(conn, key)
            try:
                await apply_entry(conn, **(entry | {"balance_delta_kop": 1}))  # type: ignore[arg-type]
            except LedgerConflict:
                conflict = True
            else:
                conflict = False
        if not (first.applied and not second.applied and entries == 1 and conflict
                and second.wallet and second.wallet.balance_kop == PROBE_AMOUNT_KOP):
            raise RuntimeError(f"same key applied twice or a conflicting replay accepted: "
                               f"entries={entries}, conflict={conflict}, "
                               f"wallet={second.wallet}")
        return "same ledger key twice -> one entry, another amount -> conflict (rolled back)"

    return [Check("catalog", catalog_probe), Check("billing_idempotency", billing_probe)]
