-- Scope every per-bot row by the bot's id (the numeric prefix of its token), so two bots can
-- share one database, and keep one "chat head" row per chat with open updates, so a claim
-- reads only ready chats and costs the same behind any one chat's backlog.
--
-- Rows stored before this migration get bot_id 0 (no bot has that id): the schema cannot
-- know which bot they came from. They are kept, for the record, but no bot claims them.

ALTER TABLE telegram_updates ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE telegram_updates ALTER COLUMN bot_id DROP DEFAULT;
ALTER TABLE telegram_updates DROP CONSTRAINT telegram_updates_pkey,
    ADD PRIMARY KEY (bot_id, update_id);

-- The open updates of one chat in order: the next head after a settle is one index probe.
DROP INDEX telegram_updates_open_idx;
DROP INDEX telegram_updates_chat_open_idx;
CREATE INDEX telegram_updates_chat_open_idx ON telegram_updates (bot_id, chat_id, update_id)
    WHERE status IN ('pending', 'processing');
-- Updates without a chat need no order: claimed straight from here.
CREATE INDEX telegram_updates_chatless_idx ON telegram_updates (bot_id, update_id)
    WHERE status = 'pending' AND chat_id IS NULL;
-- Claims to release on restart and to reap when their handler never settled them.
CREATE INDEX telegram_updates_claimed_idx ON telegram_updates (bot_id, claimed_at)
    WHERE status = 'processing';

-- One row per chat that has open updates: its oldest open update is the only one that may
-- run. Kept by the writers of telegram_updates: the inbox insert adds or lowers the head, a
-- settle or a released claim moves it to the chat's next open update (or deletes the row).
CREATE TABLE telegram_chat_heads (
    bot_id    BIGINT NOT NULL,
    chat_id   BIGINT NOT NULL,
    head_id   BIGINT NOT NULL,                  -- update_id of the chat's oldest open update
    busy      BOOLEAN NOT NULL DEFAULT false,   -- the head is processing
    ready_at  TIMESTAMPTZ,                      -- the head backs off until then (NULL: ready)
    PRIMARY KEY (bot_id, chat_id)
);
-- The claim walks this in head order and stops at its limit: only chats that can run.
CREATE INDEX telegram_chat_heads_ready_idx ON telegram_chat_heads (bot_id, head_id)
    WHERE NOT busy;

INSERT INTO telegram_chat_heads (bot_id, chat_id, head_id, busy, ready_at)
SELECT DISTINCT ON (bot_id, chat_id) bot_id, chat_id, update_id, status = 'processing', retry_at
  FROM telegram_updates
 WHERE status IN ('pending', 'processing') AND chat_id IS NOT NULL
 ORDER BY bot_id, chat_id, update_id;

ALTER TABLE service_state ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE service_state ALTER COLUMN bot_id DROP DEFAULT;
ALTER TABLE service_state DROP CONSTRAINT service_state_pkey, ADD PRIMARY KEY (bot_id, key);
