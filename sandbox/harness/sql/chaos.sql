-- Queries of the real-process chaos runs (sandbox/harness/chaos.py): read-only views of
-- terms, jobs, money and broadcast rows, times as Unix seconds.

-- name: terms
-- Every term with the instance that won it and when (the promotion's transaction start,
-- before any of its leader services ran).
SELECT term, instance_id, extract(epoch FROM at)::float8 AS began
  FROM leader_events WHERE event = 'promoted' AND term IS NOT NULL
 ORDER BY term;

-- name: open_jobs
-- Jobs of these users whose delivery is not closed yet (delivered or undeliverable).
SELECT count(*) AS n FROM generation_jobs
 WHERE user_id = ANY(%(user_ids)s::bigint[]) AND delivered_at IS NULL;

-- name: jobs
-- The jobs of these users as they ended, with their settlement entries counted.
SELECT j.id, j.user_id, j.chat_id, j.status, j.price_kop, j.undeliverable_reason,
       extract(epoch FROM j.delivered_at)::float8 AS delivered_s,
       (SELECT count(*) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'commit') AS commits,
       (SELECT count(*) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'release') AS releases
  FROM generation_jobs j
 WHERE j.user_id = ANY(%(user_ids)s::bigint[])
 ORDER BY j.id;

-- name: open_holds
-- Wallets of these users still holding money (every job is finished: none should).
SELECT count(*) AS n FROM wallets
 WHERE user_id = ANY(%(user_ids)s::bigint[]) AND hold_kop <> 0;

-- name: open_recipients
-- Recipients of a broadcast not settled yet.
SELECT count(*) AS n FROM broadcast_recipients
 WHERE broadcast_id = %(broadcast_id)s AND status IN ('pending', 'sending');

-- name: recipients
-- A broadcast's rows as they ended.
SELECT user_id, status, extract(epoch FROM settled_at)::float8 AS settled_s
  FROM broadcast_recipients WHERE broadcast_id = %(broadcast_id)s ORDER BY user_id;
