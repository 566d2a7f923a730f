-- name: insert_transfer
-- Record a bank transfer's receipt as a pending payment, once per receipt message (key), per
-- reference and per live receipt file. No row: one of those was used; the caller looks which.
INSERT INTO payments (user_id, amount_kop, method, status, reference, receipt_file_id,
                      receipt_kind, receipt_file_unique_id, idempotency_key, expires_at)
VALUES (%(user_id)s, %(amount_kop)s, 'card_transfer', 'pending', %(reference)s,
        %(receipt_file_id)s, %(receipt_kind)s, %(receipt_file_unique_id)s,
        %(idempotency_key)s, now() + make_interval(secs => %(pending_s)s))
ON CONFLICT DO NOTHING
RETURNING *;

-- name: payment
-- One payment by id.
SELECT * FROM payments WHERE id = %(payment_id)s;

-- name: payment_by_key
-- The payment recorded under an idempotency key (a replayed receipt or charge).
SELECT * FROM payments WHERE idempotency_key = %(idempotency_key)s;

-- name: payment_by_reference
-- The payment recorded for a transfer reference.
SELECT * FROM payments WHERE reference = %(reference)s;

-- name: live_payment_by_receipt
-- The pending, approved or rejected payment a receipt file already backs.
SELECT * FROM payments
 WHERE receipt_file_unique_id = %(receipt_file_unique_id)s
   AND status IN ('pending', 'approved', 'rejected');

-- name: user_pending
-- The user's pending payments, oldest first.
SELECT * FROM payments WHERE user_id = %(user_id)s AND status = 'pending' ORDER BY id;

-- name: pending
-- Pending payments oldest first (the operators' queue).
SELECT * FROM payments WHERE status = 'pending' ORDER BY id LIMIT %(limit)s;

-- name: decide
-- Move a pending payment to its decision; no row: it was decided already (by another
-- operator, the user's cancel or the expiry), so nothing changes.
UPDATE payments
   SET status = %(status)s, decided_at = now(), decided_by = %(decided_by)s,
       decided_by_name = %(decided_by_name)s, decision_note = %(note)s,
       credited_kop = %(credited_kop)s
 WHERE id = %(payment_id)s AND status = 'pending'
RETURNING *;

-- name: cancel
-- The user withdraws their own pending payment; no row: not theirs or no longer pending.
UPDATE payments
   SET status = 'cancelled', decided_at = now(), decided_by = %(user_id)s
 WHERE id = %(payment_id)s AND user_id = %(user_id)s AND status = 'pending'
RETURNING *;

-- name: expire_overdue
-- Expire pending payments past their time, oldest first, at most limit per run.
UPDATE payments p
   SET status = 'expired', decided_at = now()
  FROM (SELECT id FROM payments
         WHERE status = 'pending' AND expires_at <= now()
         ORDER BY expires_at LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED) AS due
 WHERE p.id = due.id AND p.status = 'pending'
RETURNING p.*;

-- name: insert_star_payment
-- Record a Stars charge as an approved payment once per telegram_payment_charge_id (Telegram
-- may deliver successful_payment twice). No row: recorded before.
INSERT INTO payments (user_id, amount_kop, method, status, credited_kop, stars,
                      telegram_payment_charge_id, invoice_payload, idempotency_key,
                      decided_at)
VALUES (%(user_id)s, %(amount_kop)s, 'stars', 'approved', %(amount_kop)s, %(stars)s,
        %(charge_id)s, %(invoice_payload)s, %(idempotency_key)s, now())
ON CONFLICT DO NOTHING
RETURNING *;

-- name: mark_refunded
-- Mark an approved Stars payment refunded; no row: not Stars, not approved, or refunded.
UPDATE payments SET status = 'refunded'
 WHERE id = %(payment_id)s AND method = 'stars' AND status = 'approved'
RETURNING *;

-- name: insert_audit
-- One operator decision: who, what, when, the payment before and after.
INSERT INTO operator_audit (operator_id, action, subject, before, after)
VALUES (%(operator_id)s, %(action)s, %(subject)s, %(before)s, %(after)s);

-- name: audit_of
-- The audit rows of one subject, oldest first.
SELECT operator_id, action, subject, before, after, created_at
  FROM operator_audit WHERE subject = %(subject)s ORDER BY id;

-- name: insert_notices
-- Queue one message per chat about a payment (a replay queues nothing new).
INSERT INTO payment_notices (payment_id, kind, chat_id, language)
SELECT %(payment_id)s, %(kind)s, chat_id, language
  FROM unnest(%(chat_ids)s::bigint[], %(languages)s::text[]) AS n(chat_id, language)
ON CONFLICT (payment_id, kind, chat_id) DO NOTHING;

-- name: insert_decision_edits
-- Queue the edit of every operator's receipt message already sent, to show the decision.
INSERT INTO payment_notices (payment_id, kind, chat_id, language, message_id)
SELECT n.payment_id, 'operator_decision', n.chat_id, n.language, n.message_id
  FROM payment_notices n
  JOIN payments p ON p.id = n.payment_id AND p.status <> 'pending'
 WHERE n.payment_id = %(payment_id)s AND n.kind = 'operator_receipt'
   AND n.message_id IS NOT NULL
ON CONFLICT (payment_id, kind, chat_id) DO NOTHING;

-- name: lock_payment_shared
-- Hold the payment's row against a concurrent decision until this transaction ends.
SELECT status FROM payments WHERE id = %(payment_id)s FOR SHARE;

-- name: lease_notices
-- Lease due notices (one payment's, or any) to this term's sender for lease_s, counting the
-- attempt. A notice leased by an older term is free at once: that term's sender is gone (its
-- fenced record could no longer commit); the time lease only guards a lease of this term.
UPDATE payment_notices n
   SET leased_until = now() + make_interval(secs => %(lease_s)s), leased_term = %(term)s,
       attempts = n.attempts + 1
  FROM (SELECT id FROM payment_notices
         WHERE status = 'pending'
           AND (leased_until IS NULL OR leased_until <= now() OR leased_term < %(term)s)
           AND (%(payment_id)s::bigint IS NULL OR payment_id = %(payment_id)s::bigint)
         ORDER BY id LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED) AS due
 WHERE n.id = due.id
RETURNING n.id, n.payment_id, n.kind, n.chat_id, n.language, n.message_id, n.attempts;

-- name: mark_notice_sent
-- Record that Telegram confirmed a notice (and the message it made).
UPDATE payment_notices
   SET status = 'sent', sent_at = now(), leased_until = NULL, leased_term = NULL,
       last_error = NULL,
       message_id = coalesce(%(message_id)s, message_id)
 WHERE id = %(notice_id)s AND status = 'pending';

-- name: mark_notice_retry
-- Put a notice back for a later attempt, keeping the error: the backoff holds for every term
-- (it is Telegram's trouble, not a sender's), so the row belongs to no term meanwhile.
UPDATE payment_notices
   SET leased_until = now() + make_interval(secs => %(delay_s)s), leased_term = NULL,
       last_error = %(error)s
 WHERE id = %(notice_id)s AND status = 'pending';

-- name: mark_notice_failed
-- Give a notice up for good (Telegram refuses it whatever we do), keeping the error.
UPDATE payment_notices
   SET status = 'failed', leased_until = NULL, leased_term = NULL, last_error = %(error)s
 WHERE id = %(notice_id)s AND status = 'pending';

-- name: notices_of
-- A payment's notices, for tests and the operators' console.
SELECT id, payment_id, kind, chat_id, language, message_id, status, attempts, last_error
  FROM payment_notices WHERE payment_id = %(payment_id)s ORDER BY id;

-- name: insert_refund
-- Queue the refund of a Stars payment (once per payment).
INSERT INTO star_refunds (payment_id, user_id, telegram_payment_charge_id, requested_by)
VALUES (%(payment_id)s, %(user_id)s, %(charge_id)s, %(requested_by)s)
ON CONFLICT (payment_id) DO NOTHING;

-- name: due_refunds
-- Refunds still to confirm, oldest first (one sender: the leader's job, runs never overlap).
SELECT payment_id, user_id, telegram_payment_charge_id, attempts
  FROM star_refunds WHERE status = 'pending'
 ORDER BY created_at LIMIT %(limit)s;

-- name: mark_refund_done
-- Record that Telegram refunded (or had refunded) the charge.
UPDATE star_refunds SET status = 'done', done_at = now(), attempts = attempts + 1
 WHERE payment_id = %(payment_id)s AND status = 'pending';

-- name: mark_refund_retry
-- Count a failed refund attempt, keeping the error; the next run tries again.
UPDATE star_refunds SET attempts = attempts + 1, last_error = %(error)s
 WHERE payment_id = %(payment_id)s AND status = 'pending';

-- name: refund_of
-- One payment's refund row.
SELECT payment_id, status, attempts, last_error FROM star_refunds
 WHERE payment_id = %(payment_id)s;
