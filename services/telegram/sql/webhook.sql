-- name: get_state
-- Read one service_state value.
SELECT value FROM service_state WHERE key = %(key)s;

-- name: put_state
-- Write one service_state value (leader only, fenced by the caller).
INSERT INTO service_state (key, value) VALUES (%(key)s, %(value)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
