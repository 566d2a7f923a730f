-- name: get_state
-- The FSM state of one key (no row: no state).
SELECT state
  FROM fsm_states
 WHERE bot_id = %(bot_id)s AND chat_id = %(chat_id)s AND user_id = %(user_id)s
   AND thread_id = %(thread_id)s AND business_connection_id = %(business_connection_id)s
   AND destiny = %(destiny)s;

-- name: get_data
-- The FSM data of one key (no row: empty data).
SELECT data
  FROM fsm_states
 WHERE bot_id = %(bot_id)s AND chat_id = %(chat_id)s AND user_id = %(user_id)s
   AND thread_id = %(thread_id)s AND business_connection_id = %(business_connection_id)s
   AND destiny = %(destiny)s;

-- Every write fences itself (`Leadership.fence_params`): it runs alone in autocommit, so the
-- term check and the write are one transaction and one round trip. Unfenced (tools, tests):
-- fence_name NULL.

-- name: set_state
-- Set (or, with NULL, clear) the state of one key, keeping its data.
-- Returns whether the row is now empty (no state, no data) and may be pruned.
WITH fenced AS (  -- the leader's term check (its row FOR SHARE); none when unfenced
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
INSERT INTO fsm_states (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny,
                        state)
SELECT %(bot_id)s, %(chat_id)s, %(user_id)s, %(thread_id)s, %(business_connection_id)s,
       %(destiny)s, %(state)s
  FROM fenced
ON CONFLICT (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
DO UPDATE SET state = EXCLUDED.state, updated_at = now()
RETURNING state IS NULL AND data = '{}'::jsonb AS empty;

-- name: set_data
-- Replace the data of one key, keeping its state.
-- Returns whether the row is now empty (no state, no data) and may be pruned.
WITH fenced AS (  -- the leader's term check (its row FOR SHARE); none when unfenced
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
INSERT INTO fsm_states (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny,
                        data)
SELECT %(bot_id)s, %(chat_id)s, %(user_id)s, %(thread_id)s, %(business_connection_id)s,
       %(destiny)s, %(data)s
  FROM fenced
ON CONFLICT (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
DO UPDATE SET data = EXCLUDED.data, updated_at = now()
RETURNING state IS NULL AND data = '{}'::jsonb AS empty;

-- name: update_data
-- Merge a patch into the data of one key (top-level keys, like dict.update) in one statement:
-- the row lock of the upsert serialises concurrent patches, so none is lost.
-- Returns the merged data and whether the row is now empty and may be pruned.
WITH fenced AS (  -- the leader's term check (its row FOR SHARE); none when unfenced
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
INSERT INTO fsm_states (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny,
                        data)
SELECT %(bot_id)s, %(chat_id)s, %(user_id)s, %(thread_id)s, %(business_connection_id)s,
       %(destiny)s, %(data)s
  FROM fenced
ON CONFLICT (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
DO UPDATE SET data = fsm_states.data || EXCLUDED.data, updated_at = now()
RETURNING data, state IS NULL AND data = '{}'::jsonb AS empty;

-- name: update_state_data
-- Set (or clear) the state of one key and merge a patch into its data, in one statement (a
-- form step: set_state + update_data at the cost of one write).
-- Returns the merged data and whether the row is now empty and may be pruned.
WITH fenced AS (  -- the leader's term check (its row FOR SHARE); none when unfenced
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
INSERT INTO fsm_states (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny,
                        state, data)
SELECT %(bot_id)s, %(chat_id)s, %(user_id)s, %(thread_id)s, %(business_connection_id)s,
       %(destiny)s, %(state)s, %(data)s
  FROM fenced
ON CONFLICT (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
DO UPDATE SET state = EXCLUDED.state, data = fsm_states.data || EXCLUDED.data,
              updated_at = now()
RETURNING data, state IS NULL AND data = '{}'::jsonb AS empty;

-- name: prune
-- Delete the row of one key if it holds neither state nor data. Run right after an upsert that
-- reported the row empty; a write that slipped in between made the row non-empty again, and
-- the emptiness condition keeps it (no fence is evaluated when no row matches: nothing is
-- written then).
WITH fenced AS (  -- the leader's term check (its row FOR SHARE); none when unfenced
    SELECT CASE WHEN %(fence_name)s::text IS NULL THEN NULL
                ELSE fence(%(fence_name)s, %(fence_term)s) END
)
DELETE FROM fsm_states USING fenced
 WHERE bot_id = %(bot_id)s AND chat_id = %(chat_id)s AND user_id = %(user_id)s
   AND thread_id = %(thread_id)s AND business_connection_id = %(business_connection_id)s
   AND destiny = %(destiny)s
   AND state IS NULL AND data = '{}'::jsonb;
