-- name: ensure_user
-- Register a Telegram user (or refresh their profile fields) and make sure they have a wallet.
WITH upserted AS (
    INSERT INTO users (user_id, username, first_name, language_code)
    VALUES (%(user_id)s, %(username)s, %(first_name)s, %(language_code)s)
    ON CONFLICT (user_id) DO UPDATE
       SET username = EXCLUDED.username, first_name = EXCLUDED.first_name,
           language_code = EXCLUDED.language_code, updated_at = now()
    RETURNING user_id, (xmax = 0) AS created
), wallet AS (
    INSERT INTO wallets (user_id) SELECT user_id FROM upserted
    ON CONFLICT (user_id) DO NOTHING
)
SELECT created FROM upserted;
