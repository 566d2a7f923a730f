-- name: get_state
-- Read one of a bot's service_state values.
SELECT value FROM service_state WHERE bot_id = %(bot_id)s AND key = %(key)s;

-- name: put_state
-- Write one of a bot's service_state values (leader only, fenced by the caller).
INSERT INTO service_state (bot_id, key, value) VALUES (%(bot_id)s, %(key)s, %(value)s)
ON CONFLICT (bot_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
