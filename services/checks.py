"""The product's probes for `python -m supervisor check`: catalog baseline, billing idempotency.

Apart from the composition root on purpose: `check` must answer in about a second, so this
module imports nothing of aiogram (whose import alone takes seconds).
"""

from __future__ import annotations

import asyncio
import secrets

from psycopg_pool import AsyncConnectionPool

from config import Settings
from services.billing.ledger import (
    EntryKind,
    LedgerConflict,
    apply_entry,
    count_entries,
    read_wallet,
)
from services.catalog import Catalog, load_catalog, price_kopecks
from services.users import ensure_user
from supervisor.services import Check

# The smoke test's baseline model: it must always be in the catalog and priced.
BASELINE_MODEL_ID = "z-image"
# A user id no Telegram user can have (ids are positive); only used inside a rolled-back probe.
PROBE_USER_ID = -1
PROBE_AMOUNT_KOP = 100


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
            wallet = await read_wallet(conn, PROBE_USER_ID)
            entries = await count_entries(conn, key)
            try:
                await apply_entry(conn, **(entry | {"balance_delta_kop": 1}))  # type: ignore[arg-type]
            except LedgerConflict:
                conflict = True
            else:
                conflict = False
        if not (first and not second and entries == 1 and conflict
                and wallet and wallet.balance_kop == PROBE_AMOUNT_KOP):
            raise RuntimeError(f"same key applied twice or a conflicting replay accepted: "
                               f"entries={entries}, conflict={conflict}, wallet={wallet}")
        return "same ledger key twice -> one entry, another amount -> conflict (rolled back)"

    return [Check("catalog", catalog_probe), Check("billing_idempotency", billing_probe)]
