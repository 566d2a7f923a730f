-- name: insert_entry
-- Append a ledger entry once per idempotency key; the ledger_move_wallet trigger moves the
-- wallet by the same deltas in this statement. No row: the key was used before, nothing
-- changed. A CHECK violation (wallet below zero, kind and sign disagreeing) aborts the whole
-- statement, entry included.
INSERT INTO ledger (user_id, kind, balance_delta_kop, hold_delta_kop, idempotency_key,
                    job_id, payment_id, note)
VALUES (%(user_id)s, %(kind)s, %(balance_delta_kop)s, %(hold_delta_kop)s,
        %(idempotency_key)s, %(job_id)s, %(payment_id)s, %(note)s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: entry_by_key
-- The entry stored under an idempotency key, to tell a true replay from a conflicting one.
SELECT user_id, kind, balance_delta_kop, hold_delta_kop, job_id, payment_id
  FROM ledger WHERE idempotency_key = %(idempotency_key)s;

-- name: wallet
-- The user's balance and hold.
SELECT balance_kop, hold_kop FROM wallets WHERE user_id = %(user_id)s;

-- name: lock_wallet
-- The user's balance and hold, locked until the transaction ends: every check-then-write on
-- one user's money (funds, job limits, free quota) queues here, so two cannot both pass.
SELECT balance_kop, hold_kop FROM wallets WHERE user_id = %(user_id)s FOR UPDATE;

-- name: count_entries
-- How many ledger entries carry this key (the idempotency probe).
SELECT count(*) AS n FROM ledger WHERE idempotency_key = %(idempotency_key)s;

-- name: recent_entries
-- The user's latest ledger entries, newest first (the balance screen's statement).
SELECT id, kind, balance_delta_kop, hold_delta_kop, job_id, payment_id, created_at
  FROM ledger WHERE user_id = %(user_id)s
 ORDER BY id DESC LIMIT %(limit)s;
