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
-- unfinished (still pending or submitted, or finished and not yet sent).
SELECT count(*)::bigint AS requested,
       count(*) FILTER (WHERE status = 'succeeded' AND delivered_at IS NOT NULL
                          AND undeliverable_reason IS NULL)::bigint AS delivered,
       count(*) FILTER (WHERE status IN ('failed', 'expired') AND delivered_at IS NOT NULL
                          AND undeliverable_reason IS NULL)::bigint AS failed,
       count(*) FILTER (WHERE undeliverable_reason IS NOT NULL)::bigint AS undeliverable,
       count(*) FILTER (WHERE delivered_at IS NULL)::bigint AS unfinished
  FROM generation_jobs;

-- name: double_charges
-- Holds and commits beyond one per job: a job charged twice (0 when money is right).
SELECT coalesce(sum(n - 1), 0)::bigint AS extra
  FROM (SELECT job_id, kind, count(*) AS n
          FROM ledger
         WHERE job_id IS NOT NULL AND kind IN ('hold', 'commit')
         GROUP BY job_id, kind) AS per_job;
