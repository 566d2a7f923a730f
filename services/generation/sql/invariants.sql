-- name: violations
-- Every broken money or job invariant, one row each (rule, user_id, job_id, detail); none
-- when all hold.
WITH sums AS (
    SELECT user_id, sum(balance_delta_kop) AS balance, sum(hold_delta_kop) AS hold
      FROM ledger GROUP BY user_id
), job_entries AS (
    SELECT job_id,
           count(*) FILTER (WHERE kind = 'hold') AS holds,
           coalesce(sum(hold_delta_kop) FILTER (WHERE kind = 'hold'), 0) AS held,
           count(*) FILTER (WHERE kind = 'commit') AS commits,
           count(*) FILTER (WHERE kind = 'release') AS releases,
           coalesce(sum(hold_delta_kop) FILTER (WHERE kind IN ('commit', 'release')), 0)
               AS settled,
           -- A refund of a job's charge (automatic for an undeliverable result, or an
           -- operator's): an adjustment naming the job.
           count(*) FILTER (WHERE kind = 'adjustment') AS refunds,
           coalesce(sum(balance_delta_kop) FILTER (WHERE kind = 'adjustment'), 0) AS refunded
      FROM ledger WHERE job_id IS NOT NULL GROUP BY job_id
), open_holds AS (
    SELECT user_id, sum(price_kop) AS held FROM generation_jobs
     WHERE status IN ('pending', 'submitted') AND NOT free GROUP BY user_id
)
SELECT 'wallet_equals_ledger' AS rule, w.user_id, NULL::bigint AS job_id,
       format('wallet %s/%s, ledger %s/%s', w.balance_kop, w.hold_kop,
              coalesce(s.balance, 0), coalesce(s.hold, 0)) AS detail
  FROM wallets w LEFT JOIN sums s USING (user_id)
 WHERE w.balance_kop <> coalesce(s.balance, 0) OR w.hold_kop <> coalesce(s.hold, 0)
UNION ALL
SELECT 'hold_equals_open_jobs', w.user_id, NULL,
       format('hold %s, open jobs %s', w.hold_kop, coalesce(o.held, 0))
  FROM wallets w LEFT JOIN open_holds o USING (user_id)
 WHERE w.hold_kop <> coalesce(o.held, 0)
UNION ALL
SELECT 'open_job_has_its_hold', j.user_id, j.id,
       format('price %s, held %s in %s entries, settled %s', j.price_kop,
              coalesce(e.held, 0), coalesce(e.holds, 0), coalesce(e.settled, 0))
  FROM generation_jobs j LEFT JOIN job_entries e ON e.job_id = j.id
 WHERE j.status IN ('pending', 'submitted') AND NOT j.free
   AND (coalesce(e.holds, 0) <> 1 OR e.held <> j.price_kop
        OR e.commits + e.releases <> 0)
UNION ALL
SELECT 'finished_job_has_no_open_hold', j.user_id, j.id,
       format('%s, held %s, settled %s', j.status, coalesce(e.held, 0),
              coalesce(e.settled, 0))
  FROM generation_jobs j LEFT JOIN job_entries e ON e.job_id = j.id
 WHERE j.status IN ('succeeded', 'failed', 'expired')
   AND coalesce(e.held, 0) + coalesce(e.settled, 0) <> 0
UNION ALL
SELECT 'one_settlement_per_job', NULL, e.job_id,
       format('%s commits, %s releases, %s holds', e.commits, e.releases, e.holds)
  FROM job_entries e
 WHERE e.commits + e.releases > 1 OR e.holds > 1
UNION ALL
SELECT 'charged_only_for_success', j.user_id, j.id,
       format('%s with %s commits, %s releases', j.status, e.commits, e.releases)
  FROM generation_jobs j JOIN job_entries e ON e.job_id = j.id
 WHERE (j.status = 'succeeded' AND e.releases > 0)
    OR (j.status IN ('failed', 'expired') AND e.commits > 0)
    OR (j.free AND e.holds > 0)
UNION ALL
SELECT 'refund_only_of_a_charge', j.user_id, j.id,
       format('%s, price %s, %s commits, %s refunds of %s', j.status, j.price_kop, e.commits,
              e.refunds, e.refunded)
  FROM generation_jobs j JOIN job_entries e ON e.job_id = j.id
 WHERE e.refunds > 0
   AND (j.status <> 'succeeded' OR e.commits <> 1 OR e.refunds <> 1
        OR e.refunded <> j.price_kop)
UNION ALL
-- A charged result that could not be delivered (its attempts spent; the reason's prefix is
-- services.generation.delivery.UNAVAILABLE_REASON) is refunded.
SELECT 'undeliverable_result_refunded', j.user_id, j.id,
       format('price %s, refunded %s (%s)', j.price_kop, coalesce(e.refunded, 0),
              left(j.undeliverable_reason, 80))
  FROM generation_jobs j LEFT JOIN job_entries e ON e.job_id = j.id
 WHERE j.status = 'succeeded' AND j.price_kop > 0
   AND j.undeliverable_reason LIKE 'result\_unavailable%'
   AND coalesce(e.refunded, 0) <> j.price_kop
ORDER BY rule, user_id, job_id;
