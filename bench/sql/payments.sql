-- name: load_backlog
-- Queue updates first..last as pending text messages over `chats` chats (bench chat ids from
-- 8,000,000,000), as a flood of webhook deliveries would leave them.
INSERT INTO telegram_updates (bot_id, update_id, chat_id, payload, received_by)
SELECT %(bot_id)s, g, 8000000000 + g %% %(chats)s,
       jsonb_build_object('update_id', g, 'message', jsonb_build_object(
           'message_id', g, 'date', 1767225600, 'text', 'bench message ' || g,
           'chat', jsonb_build_object('id', 8000000000 + g %% %(chats)s, 'type', 'private'),
           'from', jsonb_build_object('id', 8000000000 + g %% %(chats)s, 'is_bot', false,
                                      'first_name', 'Bench'))),
       'bench'
  FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g;

-- name: load_heads
-- Give every chat of the loaded backlog its head (the oldest open update), as the inbox does.
INSERT INTO telegram_chat_heads (bot_id, chat_id, head_id)
SELECT bot_id, chat_id, min(update_id) FROM telegram_updates
 WHERE status = 'pending' AND chat_id >= 8000000000
 GROUP BY bot_id, chat_id
ON CONFLICT (bot_id, chat_id) DO NOTHING;

-- name: drop_backlog
-- Mark the loaded backlog's waiting updates done and drop their chats' idle heads (a running
-- head moves on by itself when it settles and finds nothing left).
WITH dropped AS (
    UPDATE telegram_updates SET status = 'done', processed_at = now()
     WHERE chat_id >= 8000000000 AND status = 'pending'
)
DELETE FROM telegram_chat_heads WHERE chat_id >= 8000000000 AND NOT busy;

-- name: pending_updates
-- Updates still waiting in the inbox.
SELECT count(*) AS n FROM telegram_updates WHERE status IN ('pending', 'processing');

-- name: double_topups
-- Payments credited more than once, plus Stars charges recorded as more than one payment.
SELECT (SELECT count(*) FROM (SELECT payment_id FROM ledger
                               WHERE kind = 'topup' AND payment_id IS NOT NULL
                               GROUP BY payment_id HAVING count(*) > 1) AS twice)
     + (SELECT count(*) FROM (SELECT telegram_payment_charge_id FROM payments
                               WHERE telegram_payment_charge_id IS NOT NULL
                               GROUP BY telegram_payment_charge_id HAVING count(*) > 1) AS c)
       AS n;

-- name: topups
-- Top-up entries in the ledger.
SELECT count(*) AS n FROM ledger WHERE kind = 'topup';
