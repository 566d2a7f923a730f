"""Bot handlers: one router per feature module, all included here (fallback last)."""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage

from services.telegram.handlers import balance, fallback, help, start


def build_dispatcher(storage: BaseStorage, **services: object) -> Dispatcher:
    """Return an aiogram Dispatcher with every feature router and the product services."""
    dispatcher = Dispatcher(storage=storage)
    # Handlers receive these by parameter name (e.g. `accounts`), never as imported globals;
    # only product services: no handler sees the pool, the settings or a secret.
    dispatcher.workflow_data.update(services)
    dispatcher.include_routers(start.router, help.router, balance.router, fallback.router)
    return dispatcher
