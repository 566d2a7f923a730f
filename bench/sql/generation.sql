-- name: job_timings
-- Every job with its status, price and the times of its confirm (request),
-- first callback (stored by the ingress) and delivery record, as Unix seconds.
SELECT j.id, j.user_id, j.status, j.price_kop, j.delivered_file_ids IS NOT NULL AS delivered,
       extract(epoch FROM j.created_at)::float8 AS confirmed_s,
       extract(epoch FROM j.delivered_at)::float8 AS delivered_s,
       (SELECT extract(epoch FROM min(c.received_at))::float8 FROM job_callbacks c
         WHERE c.job_id = j.id AND c.source = 'callback') AS callback_s
  FROM generation_jobs j
 ORDER BY j.id;

-- name: double_charges
-- Jobs charged more than once (commit entries per job), plus wallets whose balance is not
-- their top-ups and refunds (adjustments) minus their succeeded jobs' prices.
SELECT (SELECT count(*) FROM (SELECT job_id FROM ledger WHERE kind = 'commit'
                               GROUP BY job_id HAVING count(*) > 1) AS twice)
     + (SELECT count(*) FROM wallets w
         WHERE w.balance_kop <> (SELECT coalesce(sum(balance_delta_kop), 0) FROM ledger l
                                  WHERE l.user_id = w.user_id
                                    AND l.kind IN ('topup', 'adjustment'))
                              - (SELECT coalesce(sum(price_kop), 0) FROM generation_jobs j
                                  WHERE j.user_id = w.user_id AND j.status = 'succeeded')
                              - w.hold_kop) AS n;
