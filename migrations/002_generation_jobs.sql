-- Generation jobs sent to Kie.ai, and callbacks that matched no job.

CREATE TABLE generation_jobs (
    id                   BIGSERIAL PRIMARY KEY,
    user_id              BIGINT NOT NULL REFERENCES users (user_id),
    chat_id              BIGINT NOT NULL,
    model_id             TEXT NOT NULL,               -- catalog id
    params               JSONB NOT NULL,              -- validated input, defaults filled
    price_kop            BIGINT NOT NULL CHECK (price_kop >= 0),
    status               TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                             'pending',     -- held, not yet accepted by Kie
                             'submitted',   -- Kie returned a task id
                             'succeeded',   -- Kie reported success; results known
                             'failed',      -- Kie or we gave up; hold released
                             'expired'      -- no result within the deadline; hold released
                         )),
    idempotency_key      TEXT NOT NULL UNIQUE,        -- one confirm press = one job
    kie_task_id          TEXT UNIQUE,
    callback_token_hash  BYTEA NOT NULL,              -- sha256 of the per-job callback token
    result_urls          JSONB,
    fail_code            TEXT,
    fail_message         TEXT,
    submit_attempts      INT NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    submitted_at         TIMESTAMPTZ,
    finished_at          TIMESTAMPTZ,
    delivering_at        TIMESTAMPTZ,                 -- delivery lease start
    delivering_by        TEXT,                        -- instance holding the delivery lease
    delivered_at         TIMESTAMPTZ,
    CHECK ((status IN ('succeeded', 'failed', 'expired')) = (finished_at IS NOT NULL))
);
CREATE INDEX generation_jobs_user_idx ON generation_jobs (user_id, id);
CREATE INDEX generation_jobs_open_idx ON generation_jobs (created_at)
    WHERE status IN ('pending', 'submitted');
CREATE INDEX generation_jobs_undelivered_idx ON generation_jobs (finished_at)
    WHERE finished_at IS NOT NULL AND delivered_at IS NULL;

CREATE TABLE orphan_callbacks (
    id           BIGSERIAL PRIMARY KEY,
    kie_task_id  TEXT NOT NULL,
    payload      JSONB NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ
);
CREATE INDEX orphan_callbacks_open_idx ON orphan_callbacks (kie_task_id) WHERE resolved_at IS NULL;
