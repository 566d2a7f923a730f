"""apply_entry takes no savepoint: a refusal inside a caller's transaction aborts that
transaction (as any failed statement does) unless the caller wrapped the entry in its own
savepoint; the savepoint case is in test_billing_ledger.py."""

from __future__ import annotations

import psycopg
import pytest

from services.billing.ledger import EntryKind, InsufficientFunds, count_entries, read_wallet
from tests.integration.test_billing_ledger import USER, move, new_user


async def test_a_refusal_without_a_savepoint_aborts_the_callers_transaction(
        database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as c:
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            async with c.transaction():
                await new_user(c)
                assert await move(c, EntryKind.TOPUP, 100, "topup") is True
                with pytest.raises(InsufficientFunds):
                    await move(c, EntryKind.HOLD, 1000, "too-much")
                # The refusal left the transaction aborted: the next statement fails...
                await move(c, EntryKind.HOLD, 60, "ok")
        # ...and the block ends rolled back: nothing of it was committed.
        assert await read_wallet(c, USER) is None
        assert await count_entries(c, "topup") == 0
        assert await count_entries(c, "ok") == 0
