-- name: insert_audit
-- One operator action: who, what, on what, the state before and after.
INSERT INTO operator_audit (operator_id, action, subject, before, after)
VALUES (%(operator_id)s, %(action)s, %(subject)s, %(before)s, %(after)s);

-- name: audit_of
-- The audit rows of one subject, oldest first.
SELECT operator_id, action, subject, before, after, created_at FROM operator_audit
 WHERE subject = %(subject)s ORDER BY id;

-- name: user_by_id
-- A user with their wallet (zeros without one).
SELECT u.user_id, u.username, u.first_name, u.created_at,
       coalesce(w.balance_kop, 0) AS balance_kop, coalesce(w.hold_kop, 0) AS hold_kop
  FROM users u LEFT JOIN wallets w ON w.user_id = u.user_id
 WHERE u.user_id = %(user_id)s;

-- name: user_by_username
-- A user by @username (case-insensitive), with their wallet.
SELECT u.user_id, u.username, u.first_name, u.created_at,
       coalesce(w.balance_kop, 0) AS balance_kop, coalesce(w.hold_kop, 0) AS hold_kop
  FROM users u LEFT JOIN wallets w ON w.user_id = u.user_id
 WHERE lower(u.username) = lower(%(username)s)
 ORDER BY u.user_id
 LIMIT 1;

-- name: recent_jobs
-- A user's latest generations, newest first.
SELECT id, model_id, status, price_kop, created_at FROM generation_jobs
 WHERE user_id = %(user_id)s ORDER BY id DESC LIMIT %(limit)s;

-- name: recent_payments
-- A user's latest payments, newest first.
SELECT id, method, status, amount_kop, credited_kop, created_at FROM payments
 WHERE user_id = %(user_id)s ORDER BY id DESC LIMIT %(limit)s;

-- name: job_for_refund
-- A job locked for a refund decision, with what its ledger says about it.
SELECT j.id, j.user_id, j.status, j.price_kop, j.free,
       EXISTS (SELECT 1 FROM ledger l WHERE l.job_id = j.id AND l.kind = 'commit') AS committed
  FROM generation_jobs j WHERE j.id = %(job_id)s
   FOR UPDATE OF j;

-- name: user_stats
-- Users: total, new today, and active (a job or a payment) within 1, 7 and 30 days.
WITH active AS (
    SELECT user_id, max(created_at) AS last_at FROM (
        SELECT user_id, created_at FROM generation_jobs
         WHERE created_at > now() - interval '30 days'
        UNION ALL
        SELECT user_id, created_at FROM payments WHERE created_at > now() - interval '30 days'
    ) a GROUP BY user_id
)
SELECT (SELECT count(*) FROM users) AS total,
       (SELECT count(*) FROM users WHERE created_at > now() - interval '1 day') AS new_1d,
       count(*) FILTER (WHERE last_at > now() - interval '1 day') AS active_1d,
       count(*) FILTER (WHERE last_at > now() - interval '7 days') AS active_7d,
       count(*) AS active_30d
  FROM active;

-- name: money_stats
-- Money in (approved top-ups) and earned (committed generations), in kopecks, all time.
SELECT coalesce(sum(balance_delta_kop) FILTER (WHERE kind = 'topup'), 0)::bigint AS topups_kop,
       coalesce(-sum(hold_delta_kop) FILTER (WHERE kind = 'commit'), 0)::bigint AS revenue_kop
  FROM ledger;

-- name: kie_cost
-- What Kie billed, in kopecks: the SKU cost of every succeeded job (free ones too; the user's
-- price may be an operator's override). Jobs from before migration 014: price / markup.
SELECT coalesce(sum(coalesce(kie_cost_kop, floor(price_kop / %(markup)s::numeric))),
                0)::bigint AS kie_cost_kop
  FROM generation_jobs
 WHERE status = 'succeeded';

-- name: job_stats
-- Jobs by model and status, with the median seconds from request to result of the succeeded.
SELECT model_id, status, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - created_at)) AS median_s
  FROM generation_jobs
 GROUP BY model_id, status
 ORDER BY model_id, status;

-- name: median_result_s
-- Median seconds from request to result over every succeeded job.
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
  FROM generation_jobs WHERE status = 'succeeded';

-- name: payment_violations
-- Money-in invariants: an approved (or later refunded) payment has exactly one top-up entry of
-- its credited amount, and no other payment has one; a Stars charge id backs one payment.
SELECT 'approved_has_one_topup' AS rule, p.user_id, p.id AS payment_id,
       'status ' || p.status || ', ' || coalesce(t.n, 0) || ' top-up entries of '
           || coalesce(t.total, 0) || ' kop, credited ' || coalesce(p.credited_kop, 0)
           AS detail
  FROM payments p
  LEFT JOIN (SELECT payment_id, count(*) AS n, sum(balance_delta_kop) AS total FROM ledger
              WHERE kind = 'topup' AND payment_id IS NOT NULL GROUP BY payment_id) t
         ON t.payment_id = p.id
 WHERE (p.status IN ('approved', 'refunded')) <> (coalesce(t.n, 0) = 1)
    OR (p.status IN ('approved', 'refunded') AND t.total IS DISTINCT FROM p.credited_kop)
UNION ALL
SELECT 'stars_charge_unique', min(user_id), min(id),
       count(*) || ' payments share charge ' || telegram_payment_charge_id
  FROM payments WHERE telegram_payment_charge_id IS NOT NULL
 GROUP BY telegram_payment_charge_id HAVING count(*) > 1;

-- name: remember_violation
-- Record a violation the first time it is found; nothing when it was found before.
INSERT INTO alerted_violations (fingerprint, rule, detail)
VALUES (%(fingerprint)s, %(rule)s, %(detail)s)
ON CONFLICT (fingerprint) DO NOTHING;

-- name: unalerted
-- Violations found whose alert has not been sent yet.
SELECT fingerprint, rule, detail FROM alerted_violations
 WHERE alerted_at IS NULL ORDER BY found_at, fingerprint LIMIT %(limit)s;

-- name: mark_alerted
-- The operators were told about this violation.
UPDATE alerted_violations SET alerted_at = now()
 WHERE fingerprint = %(fingerprint)s AND alerted_at IS NULL;
