-- name: insert_broadcast
-- Create a broadcast once per confirm press; returns nothing when the press was seen before.
INSERT INTO broadcasts (idempotency_key, operator_id, text, recipients, language,
                        progress_chat_id)
SELECT %(idempotency_key)s, %(operator_id)s, %(text)s, count(*), %(language)s,
       %(progress_chat_id)s
  FROM users
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, recipients;

-- name: broadcast_by_key
-- The broadcast a confirm press created.
SELECT id, recipients FROM broadcasts WHERE idempotency_key = %(idempotency_key)s;

-- name: insert_recipients
-- One row per user known at confirm time (the durable list the sender works through).
INSERT INTO broadcast_recipients (broadcast_id, user_id)
SELECT %(broadcast_id)s, user_id FROM users
ON CONFLICT DO NOTHING;

-- name: set_progress_message
-- Remember the operator's progress message (edited as the broadcast goes).
UPDATE broadcasts SET progress_message_id = %(message_id)s
 WHERE id = %(broadcast_id)s AND progress_message_id IS NULL;

-- name: listen
-- Wake the sender when a broadcast is confirmed.
LISTEN broadcast_ready;

-- name: notify
-- Tell the sender a broadcast's recipients are written.
SELECT pg_notify('broadcast_ready', %(broadcast_id)s::text);

-- name: claim
-- Claim up to limit ready recipients for this term, oldest broadcast first, counting an
-- attempt on each; the text comes along so the sender needs no other read.
WITH picked AS (
    SELECT broadcast_id, user_id FROM broadcast_recipients
     WHERE status = 'pending' AND ready_at <= now()
     ORDER BY broadcast_id, user_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE broadcast_recipients r
   SET status = 'sending', claimed_term = %(term)s, claimed_at = now(),
       attempts = r.attempts + 1
  FROM picked, broadcasts b
 WHERE r.broadcast_id = picked.broadcast_id AND r.user_id = picked.user_id
   AND b.id = r.broadcast_id AND r.status = 'pending'
RETURNING r.broadcast_id, r.user_id, r.attempts, b.text;

-- name: settle
-- Write outcomes of this term's claims: sent, blocked, failed, or back in line after a delay.
UPDATE broadcast_recipients r
   SET status = o.status, last_error = o.error, claimed_term = NULL, claimed_at = NULL,
       ready_at = now() + make_interval(secs => o.delay_s),
       settled_at = CASE WHEN o.status = 'pending' THEN NULL ELSE now() END
  FROM unnest(%(broadcast_ids)s::bigint[], %(user_ids)s::bigint[], %(statuses)s::text[],
              %(errors)s::text[], %(delays)s::float8[])
       AS o(broadcast_id, user_id, status, error, delay_s)
 WHERE r.broadcast_id = o.broadcast_id AND r.user_id = o.user_id
   AND r.status = 'sending' AND r.claimed_term = %(term)s;

-- name: release_claims
-- Free claims no task of ours holds (older terms'; ours after a restart; ours stuck past the
-- timeout): back in line, or failed once their attempts are used up.
UPDATE broadcast_recipients r
   SET status = CASE WHEN r.attempts >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
       last_error = CASE WHEN r.attempts >= %(max_attempts)s
                         THEN 'claim released after ' || r.attempts || ' attempts'
                         ELSE r.last_error END,
       settled_at = CASE WHEN r.attempts >= %(max_attempts)s THEN now() END,
       claimed_term = NULL, claimed_at = NULL
 WHERE r.status = 'sending'
   AND r.claimed_at <= now() - make_interval(secs => %(older_than_s)s)
   AND NOT ((r.broadcast_id::text || ':' || r.user_id::text) = ANY(%(held)s::text[]))
RETURNING r.broadcast_id, r.user_id, r.attempts, r.status;

-- name: unfinished
-- Broadcasts whose final progress was not shown yet, with their counts by status.
SELECT b.id, b.recipients, b.language, b.progress_chat_id, b.progress_message_id,
       count(*) FILTER (WHERE r.status = 'sent') AS sent,
       count(*) FILTER (WHERE r.status = 'blocked') AS blocked,
       count(*) FILTER (WHERE r.status = 'failed') AS failed,
       count(*) FILTER (WHERE r.status IN ('pending', 'sending')) AS open
  FROM broadcasts b
  LEFT JOIN broadcast_recipients r ON r.broadcast_id = b.id
 WHERE b.finished_at IS NULL
 GROUP BY b.id
 ORDER BY b.id;

-- name: finish
-- Mark a broadcast's final progress shown (it is edited no more).
UPDATE broadcasts SET finished_at = now() WHERE id = %(broadcast_id)s AND finished_at IS NULL;

-- name: counts
-- One broadcast's recipients by status.
SELECT status, count(*) AS n FROM broadcast_recipients
 WHERE broadcast_id = %(broadcast_id)s GROUP BY status;
