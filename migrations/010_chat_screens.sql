-- The chat screens' data: the user's chosen UI language, their first /start deep-link payload,
-- and operators' per-model overrides beside the catalog file (never an edit of it).

ALTER TABLE users
    ADD COLUMN ui_language TEXT CHECK (ui_language IN (
        'ru',  -- Russian
        'en'   -- English
    )),                                  -- NULL: follow Telegram's language_code
    ADD COLUMN start_payload TEXT CHECK (length(start_payload) <= 64),  -- first deep link
    ADD COLUMN start_payload_at TIMESTAMPTZ;

CREATE TABLE model_overrides (
    model_id    TEXT PRIMARY KEY,                    -- a catalog model id
    enabled     BOOLEAN NOT NULL DEFAULT true,       -- false: hidden from every catalog screen
    price_kop   BIGINT CHECK (price_kop >= 0),       -- NULL: the catalog's price x markup
    updated_by  BIGINT NOT NULL,                     -- operator's Telegram user id
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
