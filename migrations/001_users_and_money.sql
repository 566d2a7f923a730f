-- Users, wallets, the money ledger, holds and top-up payments.
-- Money is integer kopecks (BIGINT). A wallet always equals the sum of its ledger:
--   balance_kop = SUM(balance_delta_kop), hold_kop = SUM(hold_delta_kop).

CREATE TABLE users (
    user_id        BIGINT PRIMARY KEY,                  -- Telegram user id
    username       TEXT,
    first_name     TEXT,
    language_code  TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    user_id      BIGINT PRIMARY KEY REFERENCES users (user_id),
    balance_kop  BIGINT NOT NULL DEFAULT 0 CHECK (balance_kop >= 0),  -- spendable
    hold_kop     BIGINT NOT NULL DEFAULT 0 CHECK (hold_kop >= 0),     -- reserved by running jobs
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE ledger (
    id                 BIGSERIAL PRIMARY KEY,
    user_id            BIGINT NOT NULL REFERENCES wallets (user_id),
    kind               TEXT NOT NULL CHECK (kind IN (
                           'topup',       -- approved payment: balance +
                           'hold',        -- generation confirmed: balance -, hold +
                           'commit',      -- generation succeeded: hold -
                           'release',     -- generation failed or expired: hold -, balance +
                           'adjustment'   -- operator correction
                       )),
    balance_delta_kop  BIGINT NOT NULL,
    hold_delta_kop     BIGINT NOT NULL,
    idempotency_key    TEXT NOT NULL UNIQUE,  -- one money movement happens once, whatever retries
    job_id             BIGINT,
    payment_id         BIGINT,
    note               TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (balance_delta_kop <> 0 OR hold_delta_kop <> 0)
);
CREATE INDEX ledger_user_id_idx ON ledger (user_id, id);

CREATE TABLE holds (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES wallets (user_id),
    job_id      BIGINT NOT NULL UNIQUE,              -- a generation is held at most once
    amount_kop  BIGINT NOT NULL CHECK (amount_kop > 0),
    status      TEXT NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'committed', 'released')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at  TIMESTAMPTZ,
    CHECK ((status = 'held') = (settled_at IS NULL))
);
CREATE INDEX holds_open_idx ON holds (created_at) WHERE status = 'held';

CREATE TABLE payments (
    id               BIGSERIAL PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users (user_id),
    amount_kop       BIGINT NOT NULL CHECK (amount_kop > 0),
    method           TEXT NOT NULL CHECK (method IN ('card_transfer', 'sbp')),
    status           TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'approved', 'rejected')),
    receipt_file_id  TEXT,                           -- Telegram file id of the user's receipt
    idempotency_key  TEXT NOT NULL UNIQUE,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at       TIMESTAMPTZ,
    decided_by       BIGINT,                         -- operator's Telegram user id
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX payments_pending_idx ON payments (created_at) WHERE status = 'pending';
