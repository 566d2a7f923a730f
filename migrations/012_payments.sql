-- Money in (reserved number 013; the lead renumbers at merge): bank transfers approved by an
-- operator, Telegram Stars, the operators' audit, and two outboxes (messages to operators and
-- users about a payment; Stars refunds) that the leader retries until Telegram confirms.

ALTER TABLE payments DROP CONSTRAINT payments_method_check;
ALTER TABLE payments ADD CONSTRAINT payments_method_check CHECK (method IN (
    'card_transfer',  -- bank transfer (card or SBP) with a receipt, decided by an operator
    'sbp',            -- the seed's SBP transfer (no new rows)
    'stars'           -- Telegram Stars (XTR), credited on successful_payment
));
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN (
    'pending',    -- receipt received, waiting for an operator
    'approved',   -- credited (operator approved, or Telegram charged the stars)
    'rejected',   -- an operator refused it (reason in decision_note)
    'cancelled',  -- the user withdrew it before a decision
    'expired',    -- no decision within PAYMENT_PENDING_HOURS
    'refunded'    -- Stars returned to the user (balance debited, refund in the outbox)
));

ALTER TABLE payments
    ADD COLUMN reference TEXT UNIQUE CHECK (length(reference) <= 32),  -- the transfer comment
    ADD COLUMN receipt_kind TEXT CHECK (receipt_kind IN ('photo', 'document')),
    ADD COLUMN receipt_file_unique_id TEXT,       -- one receipt backs one live payment
    ADD COLUMN credited_kop BIGINT CHECK (credited_kop > 0),  -- what the ledger got
    ADD COLUMN decided_by_name TEXT,
    ADD COLUMN decision_note TEXT CHECK (length(decision_note) <= 500),  -- e.g. reject reason
    ADD COLUMN expires_at TIMESTAMPTZ,            -- a pending payment expires then
    ADD COLUMN stars INT CHECK (stars > 0),       -- XTR paid (method stars)
    ADD COLUMN telegram_payment_charge_id TEXT UNIQUE,  -- Telegram may deliver a payment twice
    ADD COLUMN invoice_payload TEXT,
    ADD CONSTRAINT payments_credited_when_approved_check
        CHECK (status NOT IN ('approved', 'refunded') OR credited_kop IS NOT NULL),
    ADD CONSTRAINT payments_stars_have_charge_check
        CHECK ((method = 'stars') = (telegram_payment_charge_id IS NOT NULL));
-- A receipt (Telegram's file_unique_id) backs at most one payment that is or was in force:
-- a cancelled or expired one frees it for a new attempt.
CREATE UNIQUE INDEX payments_one_payment_per_receipt_idx ON payments (receipt_file_unique_id)
    WHERE status IN ('pending', 'approved', 'rejected');
CREATE INDEX payments_user_idx ON payments (user_id, id);
CREATE INDEX payments_expiry_idx ON payments (expires_at) WHERE status = 'pending';

-- Every operator decision: who, what, when, the row before and after.
CREATE TABLE operator_audit (
    id           BIGSERIAL PRIMARY KEY,
    operator_id  BIGINT NOT NULL,                -- Telegram user id of the operator
    action       TEXT NOT NULL CHECK (action IN (
                     'payment_approve',   -- credited the amount asked
                     'payment_amend',     -- credited another amount
                     'payment_reject',    -- refused, with a reason
                     'payment_refund'     -- Stars refund requested
                 )),
    subject      TEXT NOT NULL,                  -- e.g. 'payment:42'
    before       JSONB,
    after        JSONB,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX operator_audit_subject_idx ON operator_audit (subject, id);

-- Messages about a payment, sent (or edited) by the leader until Telegram confirms.
CREATE TABLE payment_notices (
    id            BIGSERIAL PRIMARY KEY,
    payment_id    BIGINT NOT NULL REFERENCES payments (id),
    kind          TEXT NOT NULL CHECK (kind IN (
                      'operator_receipt',   -- the receipt with the decision buttons
                      'operator_decision',  -- that message edited to show who decided
                      'user_decision'       -- the user told the outcome
                  )),
    chat_id       BIGINT NOT NULL,
    language      TEXT NOT NULL,
    message_id    BIGINT,                      -- the receipt message (for its later edit)
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending',  -- to send (or being sent under a lease)
                      'sent',     -- Telegram confirmed
                      'failed'    -- refused for good (e.g. the chat blocked the bot)
                  )),
    attempts      INT NOT NULL DEFAULT 0,
    leased_until  TIMESTAMPTZ,                 -- a sender holds it until then
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at       TIMESTAMPTZ,
    UNIQUE (payment_id, kind, chat_id)
);
CREATE INDEX payment_notices_pending_idx ON payment_notices (id) WHERE status = 'pending';

-- Stars refunds (refundStarPayment), retried until Telegram confirms.
CREATE TABLE star_refunds (
    payment_id                  BIGINT PRIMARY KEY REFERENCES payments (id),
    user_id                     BIGINT NOT NULL,
    telegram_payment_charge_id  TEXT NOT NULL,
    status                      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                                    'pending',  -- to send
                                    'done'      -- Telegram refunded (or had already)
                                )),
    attempts                    INT NOT NULL DEFAULT 0,
    last_error                  TEXT,
    requested_by                BIGINT NOT NULL,
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at                     TIMESTAMPTZ
);
CREATE INDEX star_refunds_pending_idx ON star_refunds (created_at) WHERE status = 'pending';
