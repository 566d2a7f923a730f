"""Bot handlers: one router per feature module, all included here (fallback last).

Every update first gets its `member` (registered or refreshed once, `MemberMiddleware`) and
an `i18n` context in the member's language; every callback query is answered exactly once
(`AnswerEveryCallback`). Handlers receive product services by parameter name (`accounts`,
`storefront`, `support`, ...), never the pool, the settings or a secret.
"""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiogram_i18n.cores import FluentRuntimeCore

from services.telegram import texts
from services.telegram.handlers import (
    admin,
    balance,
    catalog,
    fallback,
    generate,
    help,
    history,
    language,
    menu,
    results,
    stars,
    support,
    topup,
)
from services.telegram.i18n import setup_i18n
from services.telegram.middlewares import AnswerEveryCallback, MemberMiddleware

# Feature routers in the order they get an update; fallback takes what none of them took.
# topup and stars come last but fallback: a prompt awaiting a receipt takes any message, so
# every command and every other feature's prompt is routed before it. admin passes operators'
# updates only (the rest fall through, so /admin from anyone else gets the ordinary fallback).
FEATURES = (menu, admin, catalog, history, balance, help, language, support, generate, results,
            stars, topup, fallback)


def build_dispatcher(storage: BaseStorage, *, i18n_core: FluentRuntimeCore | None = None,
                     **services: object) -> Dispatcher:
    """Return an aiogram Dispatcher with every feature router and the product services."""
    dispatcher = Dispatcher(storage=storage)
    # Handlers receive these by parameter name (e.g. `accounts`), never as imported globals;
    # only product services: no handler sees the pool, the settings or a secret.
    dispatcher.workflow_data.update(services)
    dispatcher.update.outer_middleware(MemberMiddleware())  # before i18n: it reads the member
    setup_i18n(dispatcher, i18n_core or texts.core())
    dispatcher.callback_query.outer_middleware(AnswerEveryCallback())
    dispatcher.include_routers(*(feature.router for feature in FEATURES))
    return dispatcher
