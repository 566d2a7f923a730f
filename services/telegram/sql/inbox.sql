-- name: insert_updates
-- Store a batch of one bot's updates once each (replays are no-ops), add or lower their
-- chats' heads, and wake the dispatcher.
-- The payloads arrive as ONE json array text (the raw bodies joined), not a jsonb[]: no
-- per-element escaping on the client, no re-serialization of what Telegram sent.
-- A head is lowered only while it is not running (a busy chat picks the new update up when
-- its head settles); heads are upserted in chat order so concurrent batches cannot deadlock.
WITH batch AS (
    SELECT b.update_id, b.chat_id, p.payload
      FROM unnest(%(update_ids)s::bigint[], %(chat_ids)s::bigint[]) WITH ORDINALITY
               AS b(update_id, chat_id, n)
      JOIN jsonb_array_elements(%(payloads)s::jsonb) WITH ORDINALITY AS p(payload, n)
           USING (n)
), inserted AS (
    INSERT INTO telegram_updates (bot_id, update_id, chat_id, payload, received_by)
    SELECT %(bot_id)s, update_id, chat_id, payload, %(instance_id)s FROM batch
    ON CONFLICT (bot_id, update_id) DO NOTHING
    RETURNING update_id, chat_id
), heads AS (
    INSERT INTO telegram_chat_heads AS h (bot_id, chat_id, head_id)
    SELECT %(bot_id)s, chat_id, min(update_id) FROM inserted
     WHERE chat_id IS NOT NULL GROUP BY chat_id ORDER BY chat_id
    ON CONFLICT (bot_id, chat_id) DO UPDATE SET head_id = EXCLUDED.head_id, ready_at = NULL
     WHERE NOT h.busy AND EXCLUDED.head_id < h.head_id
)
SELECT n AS inserted, CASE WHEN n > 0 THEN pg_notify('telegram_inbox', '') END AS notified
  FROM (SELECT count(*) AS n FROM inserted) AS c;

-- name: insert_dead_letter
-- Store an update that cannot be handled as already failed, with the reason (no head: it
-- never runs, so it blocks nobody). A replay of a stored update is a no-op.
INSERT INTO telegram_updates (bot_id, update_id, chat_id, payload, received_by, status,
                              processed_at, last_error)
VALUES (%(bot_id)s, %(update_id)s, NULL, %(payload)s, %(instance_id)s, 'failed', now(),
        %(error)s)
ON CONFLICT (bot_id, update_id) DO NOTHING;

-- name: listen
-- Subscribe this session to inbox wake-ups.
LISTEN telegram_inbox;

-- name: claim
-- Claim up to limit ready updates oldest first: the heads of chats that are neither running
-- nor backing off, and chatless updates. Only a chat's head is ever claimed, so each chat is
-- handled strictly in order; the walk reads ready chats only, never a chat's backlog.
-- The attempt is counted here, so an update that kills its leader still uses one up.
WITH heads AS (
    SELECT h.chat_id, h.head_id AS update_id
      FROM telegram_chat_heads h
     WHERE h.bot_id = %(bot_id)s AND NOT h.busy AND (h.ready_at IS NULL OR h.ready_at <= now())
     ORDER BY h.head_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), chatless AS (
    SELECT t.update_id
      FROM telegram_updates t
     WHERE t.bot_id = %(bot_id)s AND t.chat_id IS NULL AND t.status = 'pending'
       AND (t.retry_at IS NULL OR t.retry_at <= now())
     ORDER BY t.update_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT update_id FROM heads UNION ALL SELECT update_id FROM chatless
     ORDER BY update_id
     LIMIT %(limit)s
), claimed AS (
    UPDATE telegram_updates u
       SET status = 'processing', claimed_by = %(instance_id)s, claimed_term = %(term)s,
           claimed_at = now(), attempts = u.attempts + 1
      FROM picked
     WHERE u.bot_id = %(bot_id)s AND u.update_id = picked.update_id AND u.status = 'pending'
    RETURNING u.update_id, u.chat_id, u.payload::text AS payload, u.attempts
), running AS (
    UPDATE telegram_chat_heads h SET busy = true
      FROM claimed
     WHERE h.bot_id = %(bot_id)s AND h.chat_id = claimed.chat_id
)
SELECT update_id, chat_id, payload, attempts FROM claimed ORDER BY update_id;

-- name: settle
-- Record the outcomes of our term's claims in one statement: done, pending again after a
-- backoff (retry), or failed (dead letter). Returns the chats whose head must move on.
UPDATE telegram_updates u
   SET status = s.status,
       retry_at = CASE WHEN s.status = 'pending'
                       THEN now() + make_interval(secs => s.delay_s) END,
       processed_at = CASE WHEN s.status <> 'pending' THEN now() END,
       last_error = s.error,
       claimed_by = CASE WHEN s.status = 'pending' THEN NULL ELSE u.claimed_by END,
       claimed_term = CASE WHEN s.status = 'pending' THEN NULL ELSE u.claimed_term END,
       claimed_at = CASE WHEN s.status = 'pending' THEN NULL ELSE u.claimed_at END
  FROM unnest(%(update_ids)s::bigint[], %(statuses)s::text[], %(delays_s)s::float8[],
              %(errors)s::text[]) AS s(update_id, status, delay_s, error)
 WHERE u.bot_id = %(bot_id)s AND u.update_id = s.update_id
   AND u.status = 'processing' AND u.claimed_term = %(term)s
RETURNING u.chat_id;

-- name: release_claims
-- Free claims no handler of ours holds (any older term's; ours after a restart; ours past
-- the handler timeout): back in line, or dead-lettered once their attempts are used up (an
-- update that killed or froze every leader that ran it). Returns what was released.
UPDATE telegram_updates u
   SET status = CASE WHEN u.attempts >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
       processed_at = CASE WHEN u.attempts >= %(max_attempts)s THEN now() END,
       last_error = CASE WHEN u.attempts >= %(max_attempts)s
                         THEN 'claim released after ' || u.attempts || ' attempts: no handler'
                              || ' finished it (the process died or froze)'
                         ELSE u.last_error END,
       claimed_by = NULL, claimed_term = NULL, claimed_at = NULL
 WHERE u.bot_id = %(bot_id)s AND u.status = 'processing'
   AND u.claimed_at <= now() - make_interval(secs => %(older_than_s)s)
   AND NOT (u.update_id = ANY(%(held)s::bigint[]))
RETURNING u.update_id, u.chat_id, u.status, u.payload::text AS payload, u.attempts;

-- name: lock_heads
-- Lock the heads of these chats, in chat order, before recomputing them: the recompute then
-- starts after every insert that touched them committed, and later inserts wait for us.
SELECT chat_id FROM telegram_chat_heads
 WHERE bot_id = %(bot_id)s AND chat_id = ANY(%(chat_ids)s::bigint[])
 ORDER BY chat_id
   FOR UPDATE;

-- name: refresh_heads
-- Move each chat's head to its oldest open update (running if that one is processing, ready
-- at its retry time), or delete the head when the chat has none left.
WITH next AS (
    SELECT c.chat_id, o.update_id, o.status, o.retry_at
      FROM unnest(%(chat_ids)s::bigint[]) AS c(chat_id)
      LEFT JOIN LATERAL (
          SELECT t.update_id, t.status, t.retry_at
            FROM telegram_updates t
           WHERE t.bot_id = %(bot_id)s AND t.chat_id = c.chat_id
             AND t.status IN ('pending', 'processing')
           ORDER BY t.update_id
           LIMIT 1) o ON true
), emptied AS (
    DELETE FROM telegram_chat_heads h
     USING next
     WHERE h.bot_id = %(bot_id)s AND h.chat_id = next.chat_id AND next.update_id IS NULL
)
INSERT INTO telegram_chat_heads AS h (bot_id, chat_id, head_id, busy, ready_at)
SELECT %(bot_id)s, chat_id, update_id, status = 'processing', retry_at
  FROM next WHERE update_id IS NOT NULL ORDER BY chat_id
ON CONFLICT (bot_id, chat_id) DO UPDATE
   SET head_id = EXCLUDED.head_id, busy = EXCLUDED.busy, ready_at = EXCLUDED.ready_at;

-- name: prune_processed
-- Delete this bot's handled updates older than the retention period (leader, fenced).
DELETE FROM telegram_updates
 WHERE bot_id = %(bot_id)s AND status IN ('done', 'failed')
   AND processed_at < now() - make_interval(hours => %(retention_hours)s);
