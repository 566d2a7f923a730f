-- name: insert_updates
-- Store a batch of updates once each (replays are no-ops) and wake the dispatcher.
-- The payloads arrive as ONE json array text (the raw bodies joined), not a jsonb[]: no
-- per-element escaping on the client, no re-serialization of what Telegram sent.
WITH batch AS (
    SELECT b.update_id, b.chat_id, p.payload
      FROM unnest(%(update_ids)s::bigint[], %(chat_ids)s::bigint[]) WITH ORDINALITY
               AS b(update_id, chat_id, n)
      JOIN jsonb_array_elements(%(payloads)s::jsonb) WITH ORDINALITY AS p(payload, n)
           USING (n)
), inserted AS (
    INSERT INTO telegram_updates (update_id, chat_id, payload, received_by)
    SELECT update_id, chat_id, payload, %(instance_id)s FROM batch
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
)
SELECT n AS inserted, CASE WHEN n > 0 THEN pg_notify('telegram_inbox', '') END AS notified
  FROM (SELECT count(*) AS n FROM inserted) AS c;

-- name: listen
-- Subscribe this session to inbox wake-ups.
LISTEN telegram_inbox;

-- name: max_update_id
-- The newest stored update id (polling resumes after it).
SELECT max(update_id) AS update_id FROM telegram_updates;

-- name: release_stale_claims
-- Put updates claimed by an older term back in line (that leader is gone; fenced by caller).
UPDATE telegram_updates
   SET status = 'pending', claimed_by = NULL, claimed_term = NULL, claimed_at = NULL
 WHERE status = 'processing' AND claimed_term < %(term)s;

-- name: claim
-- Claim ready updates oldest first, each only if no older update of its chat is still open
-- (pending, backing off or processing), so each chat is handled strictly in order. The scan
-- walks open updates in id order and stops at the limit; the chat check is an index probe.
WITH ready AS (
    SELECT t.update_id
      FROM telegram_updates t
     WHERE t.status = 'pending' AND (t.retry_at IS NULL OR t.retry_at <= now())
       AND (t.chat_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM telegram_updates o
                WHERE o.chat_id = t.chat_id AND o.update_id < t.update_id
                  AND o.status IN ('pending', 'processing')))
     ORDER BY t.update_id
     LIMIT %(limit)s
       FOR UPDATE OF t SKIP LOCKED
)
UPDATE telegram_updates u
   SET status = 'processing', claimed_by = %(instance_id)s, claimed_term = %(term)s,
       claimed_at = now(), attempts = u.attempts + 1
  FROM ready
 WHERE u.update_id = ready.update_id
RETURNING u.update_id, u.chat_id, u.payload::text AS payload, u.attempts;

-- name: mark_done
-- Record updates handled to completion by our term.
UPDATE telegram_updates
   SET status = 'done', processed_at = now(), last_error = NULL
 WHERE update_id = ANY(%(update_ids)s) AND status = 'processing' AND claimed_term = %(term)s;

-- name: mark_retry
-- Put a failed update back in line after a backoff, keeping the error.
UPDATE telegram_updates
   SET status = 'pending', retry_at = now() + make_interval(secs => %(delay_s)s),
       last_error = %(error)s, claimed_by = NULL, claimed_term = NULL, claimed_at = NULL
 WHERE update_id = %(update_id)s AND status = 'processing' AND claimed_term = %(term)s;

-- name: mark_failed
-- Dead-letter an update after its last attempt, keeping the error.
UPDATE telegram_updates
   SET status = 'failed', processed_at = now(), last_error = %(error)s
 WHERE update_id = %(update_id)s AND status = 'processing' AND claimed_term = %(term)s;

-- name: prune_processed
-- Delete handled updates older than the retention period (leader maintenance, fenced).
DELETE FROM telegram_updates
 WHERE status IN ('done', 'failed')
   AND processed_at < now() - make_interval(hours => %(retention_hours)s);

-- name: counts
-- Inbox totals by status, for /health and the demo.
SELECT status, count(*) AS n FROM telegram_updates GROUP BY status;
