-- name: job
-- One job by id.
SELECT * FROM generation_jobs WHERE id = %(job_id)s;

-- name: job_by_key
-- The job created under a request's idempotency key (the press), if any.
SELECT * FROM generation_jobs WHERE idempotency_key = %(idempotency_key)s;

-- name: user_load
-- The user's active jobs and free jobs since midnight UTC (failed or expired ones not counted).
-- Run after locking the wallet: in READ COMMITTED this statement's snapshot then sees every
-- request of the user that committed before us, so two requests cannot both pass a limit.
SELECT (SELECT count(*) FROM generation_jobs
         WHERE user_id = %(user_id)s AND status IN ('pending', 'submitted')) AS active,
       (SELECT count(*) FROM generation_jobs
         WHERE user_id = %(user_id)s AND free
           AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           AND status NOT IN ('failed', 'expired')) AS free_today;

-- name: next_job_id
-- Take a new job's id before inserting it: the job's hold entry names it and travels in the
-- same round trip as the insert. A refused or rolled-back request leaves a gap, as any
-- sequence does.
SELECT nextval(pg_get_serial_sequence('generation_jobs', 'id')) AS id;

-- name: insert_job
-- Create a pending job (its hold, if priced, is the next ledger entry of the transaction).
-- A job with a status message (the confirm card) starts as showing `queued`. No NOTIFY: the
-- request runs on the leader, which wakes its submitter in process once this commits.
INSERT INTO generation_jobs (id, user_id, chat_id, model_id, params, price_kop, category,
                             free, idempotency_key, kie_cost_kop, status_message_id,
                             status_shown)
VALUES (%(job_id)s, %(user_id)s, %(chat_id)s, %(model_id)s, %(params)s, %(price_kop)s,
        %(category)s, %(free)s, %(idempotency_key)s, %(kie_cost_kop)s, %(status_message_id)s,
        CASE WHEN %(status_message_id)s::bigint IS NOT NULL THEN 'queued' END)
RETURNING *;

-- name: listen_callbacks
-- Wake this session on every stored callback or poll answer (store_callback notifies).
LISTEN job_callbacks;

-- name: claim_pending
-- Claim pending jobs for submission, fair across users: a job's slot is its user's jobs in
-- flight plus its rank among the user's pending jobs, so one user's long queue delays another
-- user's first job by at most one slot. A claim is a lease (submit_claimed_at): a submitter
-- that died mid-call leaves the job to be claimed again after lease_s; a refused attempt
-- frees its claim itself (release_submit) and waits until submit_retry_at. Jobs with a
-- callback already stored are left alone (Kie has them; the callback will settle them).
-- Cost: one pass over the ready jobs (rank them, keep the best `limit` by slot), then only
-- the chosen rows are locked. A job ranked below `limit` in its user's queue never makes the
-- cut (the user's earlier jobs all come before it), so ranks above `limit` are not kept.
WITH inflight AS (
    SELECT user_id, count(*) AS n FROM generation_jobs WHERE status = 'submitted'
     GROUP BY user_id
), ready AS (
    SELECT j.id, j.user_id, j.created_at,
           row_number() OVER (PARTITION BY j.user_id ORDER BY j.created_at, j.id) AS rank
      FROM generation_jobs j
     WHERE j.status = 'pending'
       AND (j.submit_claimed_at IS NULL
            OR j.submit_claimed_at < now() - make_interval(secs => %(lease_s)s))
       AND (j.submit_retry_at IS NULL OR j.submit_retry_at <= now())
       AND NOT EXISTS (SELECT 1 FROM job_callbacks c WHERE c.job_id = j.id)
), best AS (
    SELECT r.id, coalesce(i.n, 0) + r.rank AS slot
      FROM ready r
      LEFT JOIN inflight i ON i.user_id = r.user_id
     WHERE r.rank <= %(limit)s
     ORDER BY slot, r.created_at, r.id
     LIMIT %(limit)s
), picked AS (
    SELECT j.id, b.slot
      FROM generation_jobs j
      JOIN best b ON b.id = j.id
       FOR UPDATE OF j SKIP LOCKED
)
UPDATE generation_jobs g
   SET submit_claimed_at = now()
  FROM picked
 WHERE g.id = picked.id AND g.status = 'pending'
RETURNING g.*, picked.slot;

-- name: release_submissions
-- Free the submission claims (leases on submit_claimed_at) of pending jobs that no running
-- submitter holds and that are at least older_than_s old: a new leader frees a dead
-- leader's claims at once instead of after the lease.
UPDATE generation_jobs
   SET submit_claimed_at = NULL
 WHERE status = 'pending' AND submit_claimed_at IS NOT NULL
   AND submit_claimed_at <= now() - make_interval(secs => %(older_than_s)s)
   AND NOT (id = ANY(%(held)s::bigint[]))
RETURNING *;

-- name: recent_submissions
-- How long ago (s) the last `limit` submission attempts started within the last window_s:
-- every createTask follows its attempt's start, so these are Kie's window as seen from here.
SELECT extract(epoch FROM now() - started_at)::float8 AS age_s
  FROM job_submissions
 WHERE started_at > now() - make_interval(secs => %(window_s)s)
 ORDER BY started_at DESC
 LIMIT %(limit)s;

-- name: downstream_backlog
-- How much work after Kie's answer is in the leader's hands, counted up to `bound`: stored
-- callbacks not applied yet, plus finished jobs not delivered (waiting or being sent) whose
-- retry time (if any) has come. Jobs backing off after a failed attempt are not counted.
SELECT (SELECT count(*) FROM (SELECT 1 FROM job_callbacks WHERE applied_at IS NULL
                               LIMIT %(bound)s) AS c)
     + (SELECT count(*) FROM (SELECT 1 FROM generation_jobs
                               WHERE finished_at IS NOT NULL AND delivered_at IS NULL
                                 AND (delivery_retry_at IS NULL OR delivery_retry_at <= now())
                               LIMIT %(bound)s) AS d) AS n;

-- name: begin_submit
-- Count one more submission attempt of a pending job and keep its token's hash beside the
-- earlier ones (a late callback of an earlier attempt still verifies). No row: the job is not
-- pending, or its attempts are used up.
WITH job AS (
    UPDATE generation_jobs
       SET submit_attempts = submit_attempts + 1, submit_claimed_at = now()
     WHERE id = %(job_id)s AND status = 'pending' AND submit_attempts < %(max_attempts)s
    RETURNING id, submit_attempts
)
INSERT INTO job_submissions (job_id, attempt, token_hash)
SELECT id, submit_attempts, %(token_hash)s FROM job
RETURNING attempt;

-- name: release_submit
-- Free a pending job's claim after a refused attempt (Kie answered 5xx/429/455: no task was
-- made) and hold the next attempt back by delay_s. Guarded by the attempt: a claim taken
-- again since (a lease that passed) is not touched.
UPDATE generation_jobs
   SET submit_claimed_at = NULL, submit_retry_at = now() + make_interval(secs => %(delay_s)s)
 WHERE id = %(job_id)s AND status = 'pending' AND submit_attempts = %(attempt)s
RETURNING id;

-- name: record_submitted
-- Store Kie's task id on a pending job and schedule its first status poll; say whether
-- orphan callbacks wait for this task id (the caller then moves them: reconcile_orphans).
-- One statement that fences itself like record_delivered: setting the task id (a unique
-- column) locks the job's row against the foreign-key check of a callback being stored
-- for it, so the row is held only while this statement runs, not over round trips.
WITH fenced AS (
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
UPDATE generation_jobs
   SET status = 'submitted', kie_task_id = %(task_id)s, submitted_at = now(),
       next_poll_at = now() + make_interval(secs => %(first_poll_s)s)
  FROM fenced
 WHERE id = %(job_id)s AND status = 'pending'
RETURNING generation_jobs.*,
          EXISTS (SELECT 1 FROM orphan_callbacks o
                   WHERE o.kie_task_id = %(task_id)s AND o.resolved_at IS NULL) AS has_orphans;

-- name: claim_poll
-- Claim submitted jobs with no news whose next poll is due, and back their next poll off
-- (base_s doubling per poll, at most max_s). Jobs with an unapplied callback are skipped.
WITH due AS (
    SELECT j.id
      FROM generation_jobs j
     WHERE j.status = 'submitted' AND j.next_poll_at <= now()
       AND NOT EXISTS (SELECT 1 FROM job_callbacks c
                        WHERE c.job_id = j.id AND c.applied_at IS NULL)
     ORDER BY j.next_poll_at, j.id
     LIMIT %(limit)s
       FOR UPDATE OF j SKIP LOCKED
)
UPDATE generation_jobs g
   SET poll_attempts = g.poll_attempts + 1,
       next_poll_at = now() + make_interval(
           secs => least(%(max_s)s, %(base_s)s * power(2, least(g.poll_attempts, 30))))
  FROM due
 WHERE g.id = due.id AND g.status = 'submitted'
RETURNING g.*;

-- name: store_callback
-- Keep a job's callback (or poll answer) durably, once per distinct payload; return it with
-- the job's model (to read the payload with) and the token hashes of all the job's
-- submission attempts: for Kie's callbacks the caller checks the URL's token against them
-- and rolls the store back if it is refused (the check and the store are one round trip,
-- not two). The NOTIFY names the job's user (the applier wakes only that user's partition).
-- `notify`: wake the leader's applier through PostgreSQL, naming the user (another process
-- stored it); false when the applier runs in this process and is woken there (a NOTIFY
-- serializes the commits of every notifying transaction on one lock). No row: no such job
-- (nothing stored). `id` NULL: the same payload was stored before.
WITH job AS (
    SELECT j.id, j.user_id, j.model_id,
           coalesce(array_agg(s.token_hash) FILTER (WHERE s.token_hash IS NOT NULL),
                    '{}') AS hashes
      FROM generation_jobs j
      LEFT JOIN job_submissions s ON s.job_id = j.id
     WHERE j.id = %(job_id)s
     GROUP BY j.id
), stored AS (
    INSERT INTO job_callbacks (job_id, source, payload, payload_hash)
    SELECT id, %(source)s, %(payload)s, sha256(convert_to(%(payload)s::jsonb::text, 'UTF8'))
      FROM job
    ON CONFLICT (job_id, payload_hash) DO NOTHING
    RETURNING id
)
SELECT job.hashes, job.model_id, stored.id,
       CASE WHEN %(notify)s AND stored.id IS NOT NULL
            THEN pg_notify('job_callbacks', job.user_id::text) END AS notified
  FROM job LEFT JOIN stored ON true;

-- name: job_id_by_task
-- The job Kie knows by this task id.
SELECT id FROM generation_jobs WHERE kie_task_id = %(task_id)s;

-- name: store_orphan
-- Keep a callback whose task id matches no job yet, once per distinct payload.
INSERT INTO orphan_callbacks (kie_task_id, payload, payload_hash)
VALUES (%(task_id)s, %(payload)s, sha256(convert_to(%(payload)s::jsonb::text, 'UTF8')))
ON CONFLICT (kie_task_id, payload_hash) DO NOTHING
RETURNING id;

-- name: reconcile_orphans
-- Move orphan callbacks whose task id now names a job into that job's callbacks (all of
-- them, or those of one task id), mark them resolved, and wake the leader.
WITH matched AS (
    SELECT o.id, j.id AS job_id, o.payload
      FROM orphan_callbacks o
      JOIN generation_jobs j ON j.kie_task_id = o.kie_task_id
     WHERE o.resolved_at IS NULL
       AND (%(task_id)s::text IS NULL OR o.kie_task_id = %(task_id)s::text)
       FOR UPDATE OF o SKIP LOCKED
), moved AS (
    INSERT INTO job_callbacks (job_id, source, payload, payload_hash)
    SELECT job_id, 'orphan', payload, sha256(convert_to(payload::text, 'UTF8')) FROM matched
    ON CONFLICT (job_id, payload_hash) DO NOTHING
), resolved AS (
    UPDATE orphan_callbacks o SET resolved_at = now()
      FROM matched m
     WHERE o.id = m.id AND o.resolved_at IS NULL
    RETURNING o.id
)
SELECT count(*) AS n,
       CASE WHEN count(*) > 0 THEN pg_notify('job_callbacks', '') END AS notified
  FROM resolved;

-- name: pending_callbacks
-- Stored callbacks the leader has not applied yet, oldest first, locked for this transaction.
SELECT id, job_id, source, payload FROM job_callbacks
 WHERE applied_at IS NULL
 ORDER BY id
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: pending_callbacks_of_users
-- Unapplied callbacks of one partition of the users (user_id mod parts = part), oldest first,
-- with their job's model, locked for this transaction. Appliers of different partitions never
-- touch the same job or wallet, so they run in parallel without lock waits or deadlocks.
SELECT c.id, c.job_id, c.source, c.payload, j.model_id
  FROM job_callbacks c
  JOIN generation_jobs j ON j.id = c.job_id
 WHERE c.applied_at IS NULL AND mod(j.user_id, %(parts)s) = %(part)s
 ORDER BY c.id
 LIMIT %(limit)s
   FOR UPDATE OF c SKIP LOCKED;

-- name: mark_callbacks_applied
-- Record that the leader settled (or read and ignored) stored callbacks.
UPDATE job_callbacks SET applied_at = now()
 WHERE id = ANY(%(callback_ids)s::bigint[]) AND applied_at IS NULL;

-- name: finish_job
-- Move an unfinished job to its final status (its hold is settled in the same transaction).
-- No row: the job was already finished, and nothing changes. No NOTIFY: every settler runs
-- on the leader and wakes its delivery worker in process once this commits.
UPDATE generation_jobs
   SET status = %(status)s, finished_at = now(), result_urls = %(result_urls)s,
       fail_code = %(fail_code)s, fail_message = %(fail_message)s, next_poll_at = NULL
 WHERE id = %(job_id)s AND status IN ('pending', 'submitted')
RETURNING *;

-- name: overdue_jobs
-- Unfinished jobs older than their category's deadline at `now`, locked for expiry.
SELECT j.id
  FROM generation_jobs j
  JOIN unnest(%(categories)s::text[], %(deadlines_s)s::float8[]) AS d(category, deadline_s)
    ON d.category = j.category
 WHERE j.status IN ('pending', 'submitted')
   AND j.created_at < %(now)s - make_interval(secs => d.deadline_s)
 ORDER BY j.id
   FOR UPDATE OF j SKIP LOCKED;

-- name: claim_deliveries
-- Claim finished, undelivered jobs whose delivery lease is free or expired and whose retry
-- time (after a failed attempt) has come, oldest first; the claim's attempt number is the
-- claimant's guard for recording the result. Each comes with the language delivery speaks to
-- its user in (as loops.sql's user_language: saves a round trip per delivery). With job_ids,
-- only those jobs (the applier claims the jobs its batch just finished).
WITH due AS (
    SELECT id FROM generation_jobs
     WHERE finished_at IS NOT NULL AND delivered_at IS NULL
       AND (%(job_ids)s::bigint[] IS NULL OR id = ANY(%(job_ids)s::bigint[]))
       AND (delivering_at IS NULL
            OR delivering_at < now() - make_interval(secs => %(lease_s)s))
       AND (delivery_retry_at IS NULL OR delivery_retry_at <= now())
     ORDER BY finished_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE generation_jobs g
   SET delivering_at = now(), delivering_by = %(instance_id)s,
       delivery_attempts = g.delivery_attempts + 1
  FROM due
 WHERE g.id = due.id AND g.delivered_at IS NULL
RETURNING g.*, (SELECT COALESCE(u.ui_language, u.language_code) FROM users u
                 WHERE u.user_id = g.user_id) AS language;

-- name: release_deliveries
-- Free the delivery claims (leases on delivering_at) of undelivered jobs that no running
-- delivery worker holds and that are at least older_than_s old: a new leader frees a dead
-- leader's claims at once instead of after the lease. The attempt count stays, so a
-- recorder of the old claim still matches nothing once the job is claimed again.
UPDATE generation_jobs
   SET delivering_at = NULL
 WHERE delivered_at IS NULL AND delivering_at IS NOT NULL
   AND delivering_at <= now() - make_interval(secs => %(older_than_s)s)
   AND NOT (id = ANY(%(held)s::bigint[]))
RETURNING *;

-- name: record_delivered
-- Close a delivery held by this claim, keeping Telegram's file_ids for later re-sends.
-- Fences itself (`Leadership.fence_params`; fence_name NULL inside a fenced transaction), so
-- the delivery worker records in one autocommit round trip.
WITH fenced AS (
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
UPDATE generation_jobs
   SET delivered_at = now(), delivered_file_ids = %(file_ids)s,
       delivered_message_ids = %(message_ids)s
  FROM fenced
 WHERE id = %(job_id)s AND delivered_at IS NULL AND delivery_attempts = %(attempt)s
RETURNING id;

-- name: release_delivery
-- Free the claim of a failed delivery attempt and hold the next attempt back by delay_s
-- (the lease would hold it for minutes). Guarded by the claim's attempt number.
UPDATE generation_jobs
   SET delivering_at = NULL, delivery_retry_at = now() + make_interval(secs => %(delay_s)s)
 WHERE id = %(job_id)s AND delivered_at IS NULL AND delivery_attempts = %(attempt)s
RETURNING id;

-- name: record_undeliverable
-- Close a delivery held by this claim that cannot succeed (e.g. the user blocked the bot).
-- Fences itself like record_delivered.
WITH fenced AS (
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
UPDATE generation_jobs
   SET delivered_at = now(), undeliverable_reason = %(reason)s
  FROM fenced
 WHERE id = %(job_id)s AND delivered_at IS NULL AND delivery_attempts = %(attempt)s
RETURNING id;

-- name: record_status_shown
-- Record the stage a job's status message shows now. A final stage is never replaced (an
-- older edit landing late changes nothing), and a job without a status message has none.
UPDATE generation_jobs SET status_shown = %(shown)s
 WHERE id = %(job_id)s AND status_shown IN ('queued', 'generating')
RETURNING id;

-- name: open_statuses
-- Jobs whose status message shows a stage before the final one: running jobs (for the
-- elapsed time) and finished ones whose final edit was never made (a leader died before
-- it), oldest first, with the language to speak.
SELECT j.*, COALESCE(u.ui_language, u.language_code) AS language
  FROM generation_jobs j
  JOIN users u ON u.user_id = j.user_id
 WHERE j.status_shown IN ('queued', 'generating')
   AND (j.status = 'submitted' OR j.delivered_at IS NOT NULL)
 ORDER BY j.id
 LIMIT %(limit)s;

-- name: recent_jobs
-- The user's latest jobs, newest first (history; delivered ones carry Telegram file_ids).
SELECT * FROM generation_jobs WHERE user_id = %(user_id)s ORDER BY id DESC LIMIT %(limit)s;

-- name: user_jobs
-- One page of the user's jobs, newest first, with how many jobs they have in all.
SELECT *, count(*) OVER () AS total FROM generation_jobs
 WHERE user_id = %(user_id)s
 ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: user_job
-- One job of this user (another user's job id finds nothing).
SELECT * FROM generation_jobs WHERE id = %(job_id)s AND user_id = %(user_id)s;

-- name: last_model
-- The model of the user's latest job, if they ever made one.
SELECT model_id FROM generation_jobs WHERE user_id = %(user_id)s ORDER BY id DESC LIMIT 1;
