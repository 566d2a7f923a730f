-- name: apply_entry
-- Append a ledger entry and move the wallet by the same deltas, once per idempotency key.
-- Zero rows: the key was used before and nothing changed. A CHECK violation (balance or hold
-- below zero) aborts the whole statement, entry included.
WITH entry AS (
    INSERT INTO ledger (user_id, kind, balance_delta_kop, hold_delta_kop, idempotency_key,
                        job_id, payment_id, note)
    VALUES (%(user_id)s, %(kind)s, %(balance_delta_kop)s, %(hold_delta_kop)s,
            %(idempotency_key)s, %(job_id)s, %(payment_id)s, %(note)s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING user_id, balance_delta_kop, hold_delta_kop
)
UPDATE wallets w
   SET balance_kop = w.balance_kop + e.balance_delta_kop,
       hold_kop = w.hold_kop + e.hold_delta_kop,
       updated_at = now()
  FROM entry e
 WHERE w.user_id = e.user_id
RETURNING w.balance_kop, w.hold_kop;

-- name: wallet
-- The user's balance and hold.
SELECT balance_kop, hold_kop FROM wallets WHERE user_id = %(user_id)s;

-- name: count_entries
-- How many ledger entries carry this key (the idempotency probe).
SELECT count(*) AS n FROM ledger WHERE idempotency_key = %(idempotency_key)s;

