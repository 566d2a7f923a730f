-- The operators' console (migration 013): more audited
-- actions, broadcasts with one durable row per recipient, and the audit alerts already sent.

ALTER TABLE operator_audit DROP CONSTRAINT operator_audit_action_check;
ALTER TABLE operator_audit ADD CONSTRAINT operator_audit_action_check CHECK (action IN (
    'payment_approve',   -- credited the amount asked
    'payment_amend',     -- credited another amount
    'payment_reject',    -- refused, with a reason
    'payment_refund',    -- Stars refund requested
    'balance_adjust',    -- a manual ledger adjustment, with a reason
    'job_refund',        -- a charged job credited back
    'model_toggle',      -- a model enabled or disabled
    'model_price',       -- a model's price override set or cleared
    'broadcast_start'    -- a broadcast confirmed (its recipients written)
));

CREATE TABLE broadcasts (
    id               BIGSERIAL PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,            -- the confirm press: one press, one broadcast
    operator_id      BIGINT NOT NULL,
    text             TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 4096),
    recipients       INT NOT NULL CHECK (recipients >= 0),
    language         TEXT NOT NULL DEFAULT 'en',      -- the operator's, for the progress text
    progress_chat_id     BIGINT,                      -- the operator's progress message
    progress_message_id  BIGINT,
    finished_at      TIMESTAMPTZ,                     -- the final progress was shown
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE broadcast_recipients (
    broadcast_id  BIGINT NOT NULL REFERENCES broadcasts (id),
    user_id       BIGINT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending',  -- to send (after ready_at)
                      'sending',  -- claimed by the leader of claimed_term
                      'sent',     -- Telegram accepted the message
                      'blocked',  -- 403: the user blocked the bot
                      'failed'    -- refused for good (e.g. chat not found) or attempts used up
                  )),
    attempts      INT NOT NULL DEFAULT 0,
    claimed_term  BIGINT,
    claimed_at    TIMESTAMPTZ,
    ready_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error    TEXT,
    settled_at    TIMESTAMPTZ,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX broadcast_recipients_pending_idx ON broadcast_recipients (broadcast_id, user_id)
    WHERE status = 'pending';
CREATE INDEX broadcast_recipients_sending_idx ON broadcast_recipients (claimed_at)
    WHERE status = 'sending';

-- Audit violations the operators were told about: one alert per violation, ever.
CREATE TABLE alerted_violations (
    fingerprint  TEXT PRIMARY KEY,                    -- rule + where (user, job, payment)
    rule         TEXT NOT NULL,
    detail       TEXT NOT NULL,
    found_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    alerted_at   TIMESTAMPTZ                          -- NULL: found, operators not told yet
);
