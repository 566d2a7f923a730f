-- The durable Telegram inbox (the seed's processed_updates role) and the FSM storage.

CREATE TABLE telegram_updates (
    update_id     BIGINT PRIMARY KEY,                 -- Telegram's id: replays deduplicate here
    chat_id       BIGINT,                             -- per-chat ordering key; NULL when none
    payload       JSONB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending',      -- stored, not yet handled
                      'processing',   -- claimed by a dispatcher
                      'done',         -- handled to completion
                      'failed'        -- dead-lettered after the last retry
                  )),
    attempts      INT NOT NULL DEFAULT 0,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    received_by   TEXT,                               -- instance that stored it
    claimed_by    TEXT,
    claimed_term  BIGINT,
    claimed_at    TIMESTAMPTZ,
    retry_at      TIMESTAMPTZ,                        -- backoff after a failed attempt
    processed_at  TIMESTAMPTZ,
    last_error    TEXT
);
CREATE INDEX telegram_updates_open_idx ON telegram_updates (update_id)
    WHERE status IN ('pending', 'processing');
CREATE INDEX telegram_updates_processed_idx ON telegram_updates (processed_at)
    WHERE status IN ('done', 'failed');

CREATE TABLE fsm_states (
    bot_id                  BIGINT NOT NULL,
    chat_id                 BIGINT NOT NULL,
    user_id                 BIGINT NOT NULL,
    thread_id               BIGINT NOT NULL DEFAULT 0,
    business_connection_id  TEXT NOT NULL DEFAULT '',
    destiny                 TEXT NOT NULL DEFAULT 'default',
    state                   TEXT,
    data                    JSONB NOT NULL DEFAULT '{}'::jsonb,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
);
