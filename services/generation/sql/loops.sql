-- name: user_language
-- The language delivery speaks to a user in: the one they chose in the bot, else Telegram's.
SELECT COALESCE(ui_language, language_code) FROM users WHERE user_id = %(user_id)s;

-- name: job_answers
-- A job's stored Kie answers (callbacks and poll answers), newest first: a text result
-- (speech to text) lives only in its answer, the job row keeps result URLs.
SELECT source, payload FROM job_callbacks WHERE job_id = %(job_id)s ORDER BY id DESC;
