-- Queries of the demo (`python -m supervisor demo`): read-only views of the Telegram inbox,
-- the generation jobs and the ledger (sandbox/harness/demo_store.py reads them).

-- name: counts_by_status
-- Stored Telegram updates per status, for the live table.
SELECT status, count(*)::bigint AS n
  FROM telegram_updates
 GROUP BY status;

-- name: unhandled
-- The given update ids that are not handled to the end yet, with their status ('missing' when
-- never stored); an empty answer means every one is done or dead-lettered.
SELECT u.update_id, coalesce(t.status, 'missing') AS status
  FROM unnest(%(update_ids)s::bigint[]) AS u(update_id)
  LEFT JOIN telegram_updates t ON t.update_id = u.update_id
 WHERE t.status IS NULL OR t.status NOT IN ('done', 'failed')
 ORDER BY u.update_id;

-- name: generation_totals
-- Generation jobs by outcome: requested; delivered (succeeded, result sent); failed (failed or
-- expired, the user told); undeliverable (delivery gave up, e.g. the bot was blocked);
-- unfinished (still pending or submitted, or finished and not yet sent); and the kopecks
-- charged for them (committed holds: the money the shoppers topped up, spent).
SELECT count(*)::bigint AS requested,
       count(*) FILTER (WHERE status = 'succeeded' AND delivered_at IS NOT NULL
                          AND undeliverable_reason IS NULL)::bigint AS delivered,
       count(*) FILTER (WHERE status IN ('failed', 'expired') AND delivered_at IS NOT NULL
                          AND undeliverable_reason IS NULL)::bigint AS failed,
       count(*) FILTER (WHERE undeliverable_reason IS NOT NULL)::bigint AS undeliverable,
       count(*) FILTER (WHERE delivered_at IS NULL)::bigint AS unfinished,
       (SELECT coalesce(-sum(hold_delta_kop), 0) FROM ledger WHERE kind = 'commit')::bigint
           AS charged_kop
  FROM generation_jobs;

-- name: double_charges
-- Holds and commits beyond one per job: a job charged twice (0 when money is right).
SELECT coalesce(sum(n - 1), 0)::bigint AS extra
  FROM (SELECT job_id, kind, count(*) AS n
          FROM ledger
         WHERE job_id IS NOT NULL AND kind IN ('hold', 'commit')
         GROUP BY job_id, kind) AS per_job;

-- name: topup_totals
-- Top-ups by bank transfer by outcome: requested (a receipt sent), approved (of which with
-- another amount than asked), rejected, still pending, and the kopecks credited.
SELECT count(*)::bigint AS requested,
       count(*) FILTER (WHERE status = 'approved')::bigint AS approved,
       count(*) FILTER (WHERE status = 'approved' AND credited_kop <> amount_kop)::bigint
           AS amended,
       count(*) FILTER (WHERE status = 'rejected')::bigint AS rejected,
       count(*) FILTER (WHERE status = 'pending')::bigint AS pending,
       coalesce(sum(credited_kop) FILTER (WHERE status = 'approved'), 0)::bigint AS credited_kop
  FROM payments
 WHERE method = 'card_transfer';

-- name: double_topups
-- Top-up entries beyond one per payment: a payment credited twice (0 when money is right).
SELECT coalesce(sum(n - 1), 0)::bigint AS extra
  FROM (SELECT payment_id, count(*) AS n
          FROM ledger
         WHERE kind = 'topup' AND payment_id IS NOT NULL
         GROUP BY payment_id) AS per_payment;
