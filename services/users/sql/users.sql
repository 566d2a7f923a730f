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

-- name: member
-- A registered user's profile, chosen language and wallet (no row: not registered yet).
SELECT u.username, u.first_name, u.language_code, u.ui_language, w.balance_kop, w.hold_kop
  FROM users u JOIN wallets w ON w.user_id = u.user_id
 WHERE u.user_id = %(user_id)s;

-- name: enter_user
-- Register a user with a wallet, or refresh their profile only when a field changed (a
-- returning user with the same profile costs no write); return whether they are new, their
-- chosen UI language and their wallet (a new user's wallet is empty).
WITH upserted AS (
    INSERT INTO users (user_id, username, first_name, language_code)
    VALUES (%(user_id)s, %(username)s, %(first_name)s, %(language_code)s)
    ON CONFLICT (user_id) DO UPDATE
       SET username = EXCLUDED.username, first_name = EXCLUDED.first_name,
           language_code = EXCLUDED.language_code, updated_at = now()
     WHERE (users.username, users.first_name, users.language_code)
           IS DISTINCT FROM (EXCLUDED.username, EXCLUDED.first_name, EXCLUDED.language_code)
    RETURNING user_id, ui_language, (xmax = 0) AS created
), wallet AS (
    INSERT INTO wallets (user_id) SELECT user_id FROM upserted
    ON CONFLICT (user_id) DO NOTHING
), profile AS (
    SELECT user_id, ui_language, created FROM upserted
    UNION ALL
    SELECT user_id, ui_language, false FROM users
     WHERE user_id = %(user_id)s AND NOT EXISTS (SELECT 1 FROM upserted)
)
SELECT p.created, p.ui_language,
       COALESCE(w.balance_kop, 0) AS balance_kop, COALESCE(w.hold_kop, 0) AS hold_kop
  FROM profile p LEFT JOIN wallets w ON w.user_id = p.user_id;

-- name: set_ui_language
-- Store the UI language the user chose (NULL: follow Telegram's language_code again).
UPDATE users SET ui_language = %(ui_language)s, updated_at = now()
 WHERE user_id = %(user_id)s
   AND ui_language IS DISTINCT FROM %(ui_language)s;

-- name: remember_start_payload
-- Keep the first /start deep-link payload of a user (later ones never overwrite it).
UPDATE users SET start_payload = %(payload)s, start_payload_at = now()
 WHERE user_id = %(user_id)s AND start_payload IS NULL;

-- name: languages
-- The known users' interface languages: the one chosen in the bot, and Telegram's code.
SELECT user_id, ui_language, language_code FROM users WHERE user_id = ANY(%(user_ids)s);
