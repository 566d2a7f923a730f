"""Bot handlers: one router per feature module, all included here (fallback last)."""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage

from services.telegram.handlers import balance, fallback, help, start


def build_dispatcher(storage: BaseStorage, **workflow_data: object) -> Dispatcher:
    """Return an aiogram Dispatcher with every feature router and the shared services."""
    dispatcher = Dispatcher(storage=storage)
    # Handlers receive these by parameter name (e.g. `pool`), never as imported globals.
    dispatcher.workflow_data.update(workflow_data)
    dispatcher.include_routers(start.router, help.router, balance.router, fallback.router)
    return dispatcher
