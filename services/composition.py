"""The composition root: the one place that builds every service and hands it to the supervisor.

`compose()` does no network or database I/O (the pool is not connected yet): it loads and
validates the catalog (a broken catalog refuses start, naming model and field) and wires the
services; the product's probes for `python -m supervisor check` are `services.checks`.
"""

from __future__ import annotations

import asyncio

import psycopg
from psycopg_pool import AsyncConnectionPool

from config import Settings
from services.accounts import Accounts
from services.admin.alerts import AuditAlerts
from services.admin.service import Admin
from services.broadcast.sender import BroadcastSender
from services.catalog import load_catalog
from services.checks import checks
from services.delivery.status import StatusBoard
from services.generation import JobLimits
from services.generation.engine import build_engine
from services.generation.service import Generations
from services.maintenance import Maintenance, ScheduledJob
from services.payments.service import Payments, PaymentTerms
from services.storefront import Storefront
from services.telegram import texts
from services.telegram.bot import create_bot
from services.telegram.commands import CommandsPublisher
from services.telegram.dispatcher import CurrentTerm, InboxDispatcher
from services.telegram.fsm_storage import PostgresStorage
from services.telegram.handlers import build_dispatcher
from services.telegram.handlers.support import Support
from services.telegram.inbox import InboxStore, bot_id_of
from services.telegram.notices import dead_letter_notice
from services.telegram.poller import TelegramPoller
from services.telegram.pressure import IngressPressure
from services.telegram.retention import inbox_jobs
from services.telegram.service_state import ServiceStateStore
from services.telegram.webhook import (
    WebhookIngress,
    WebhookRegistrar,
    webhook_url,
)
from supervisor import db
from supervisor.election import lease_name
from supervisor.http import RouteInstaller
from supervisor.runtime_state import RuntimeState
from supervisor.services import Composition, Service

# FSM states kept in memory by the leader (a few MB at most); misses read the database.
FSM_STATE_CACHE_SIZE = 50_000
# Users' profiles and chosen languages kept in memory by the leader (about 200 B each).
KNOWN_USERS_CACHE_SIZE = 50_000
# FSM data (a form is about 1 KB of JSON) of the chats that moved most recently: ~10 MB.
FSM_DATA_CACHE_SIZE = 10_000


def payment_terms(settings: Settings) -> PaymentTerms:
    """Return what the payment screens show and accept."""
    return PaymentTerms(operators=settings.admin_ids, bank=settings.payment_bank,
                        card_holder=settings.payment_card_holder, phone=settings.payment_phone,
                        card=settings.payment_card, min_rub=settings.topup_min_rub,
                        max_rub=settings.topup_max_rub,
                        pending_s=settings.payment_pending_hours * 3600,
                        stars_rub_rate=settings.stars_rub_rate)


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
    secret = settings.webhook_secret_token.get()

    async def listen_connect() -> psycopg.AsyncConnection:
        return await db.connect(settings, purpose="listen")

    bot_id = bot_id_of(settings.telegram_bot_token.get())
    inbox = InboxStore(bot_id, instance_id=settings.instance_id)
    storage = PostgresStorage(pool, fence=term.fence_params, state_cache_size=FSM_STATE_CACHE_SIZE,
                              data_cache_size=FSM_DATA_CACHE_SIZE,
                              cache_scope=term.current)
    accounts = Accounts(pool, leadership=term.current,
                        known_cache_size=KNOWN_USERS_CACHE_SIZE)
    storefront = Storefront(pool, catalog, markup=settings.price_markup,
                            leadership=term.current)
    payments = Payments(pool, bot, payment_terms(settings), leadership=term.current)
    admin = Admin(pool, storefront, operators=settings.admin_ids, markup=settings.price_markup,
                  lease_name=lease_name(settings.telegram_bot_token.get()),
                  leadership=term.current)
    i18n_core = await asyncio.to_thread(texts.core)
    # One board per process: the confirm handler notes the card it turns into a job's status
    # message, and the engine's loops edit it under the same per-message throttle.
    status_board = StatusBoard(bot)
    engine = build_engine(settings, pool, state, bot=bot, catalog=catalog,
                          listen_connect=listen_connect, status_board=status_board)
    alerts = AuditAlerts(pool, bot, engine.invariants, operators=settings.admin_ids)
    generations = Generations(pool, leadership=term.current, storefront=storefront,
                              limits=JobLimits.from_settings(settings),
                              on_requested=engine.requested)
    aiogram_dp = build_dispatcher(
        storage=storage, i18n_core=i18n_core, accounts=accounts, storefront=storefront,
        generations=generations, payments=payments, admin=admin, status_board=status_board,
        support=Support(username=settings.support_telegram, text=settings.support_text))
    pressure = IngressPressure()
    dispatcher = InboxDispatcher(pool, bot, aiogram_dp, state, inbox=inbox, term=term,
                                 listen_connect=listen_connect,
                                 concurrency=settings.dispatch_concurrency,
                                 on_dead_letter=dead_letter_notice(bot, accounts),
                                 flooded=pressure.high)
    allowed_updates = aiogram_dp.resolve_used_update_types()
    leader_only: list[Service] = [
        dispatcher,  # first: it makes its leadership current before a sibling calls the Bot
        # Each area registers its periodic jobs here; Maintenance only schedules them.
        Maintenance([*inbox_jobs(pool, inbox, retention_hours=settings.inbox_retention_hours),
                     *payments.jobs(),
                     ScheduledJob(alerts.name, alerts.every_s, alerts.run)]),
        *engine.leader_only,
        BroadcastSender(pool, bot, rate_per_s=settings.broadcast_rate,
                        listen_connect=listen_connect),
        CommandsPublisher(bot, i18n_core),
    ]
    routes: list[RouteInstaller] = [*engine.routes]  # Kie's callbacks, on every instance
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
                       checks=checks(settings, pool, catalog),
                       on_close=[bot.session.close, *engine.on_close])
