-- The generation job's lifecycle: submission attempts with their callback tokens, the durable
-- callback inbox, poll backoff, delivery records, and free-tier accounting.

-- Tokens are per submission attempt (job_submissions), no longer one per job: the column is
-- kept for the rows of migration 002 but is no longer written.
ALTER TABLE generation_jobs ALTER COLUMN callback_token_hash DROP NOT NULL;

ALTER TABLE generation_jobs
    ADD COLUMN category TEXT NOT NULL DEFAULT 'image'
        CHECK (category IN ('image', 'video', 'audio', 'upscale')),  -- picks the deadline
    ADD COLUMN free BOOLEAN NOT NULL DEFAULT false,   -- free SKU: no hold, counts on the quota
    ADD COLUMN submit_claimed_at TIMESTAMPTZ,         -- submitter's claim (a lease)
    ADD COLUMN poll_attempts INT NOT NULL DEFAULT 0,
    ADD COLUMN next_poll_at TIMESTAMPTZ,              -- status poller's next look, backing off
    ADD COLUMN delivery_attempts INT NOT NULL DEFAULT 0,
    ADD COLUMN delivered_file_ids JSONB,              -- Telegram file_ids: re-send from history
    ADD COLUMN delivered_message_ids JSONB,
    ADD COLUMN undeliverable_reason TEXT,             -- delivery gave up (e.g. bot blocked)
    ADD CONSTRAINT generation_jobs_free_is_unpriced_check CHECK (NOT free OR price_kop = 0),
    ADD CONSTRAINT generation_jobs_delivered_when_finished_check
        CHECK (delivered_at IS NULL OR finished_at IS NOT NULL);

-- Request checks: a user's active jobs, and their free jobs of the day.
CREATE INDEX generation_jobs_user_active_idx ON generation_jobs (user_id)
    WHERE status IN ('pending', 'submitted');
CREATE INDEX generation_jobs_user_free_idx ON generation_jobs (user_id, created_at) WHERE free;
CREATE INDEX generation_jobs_poll_idx ON generation_jobs (next_poll_at)
    WHERE status = 'submitted';

CREATE TABLE job_submissions (
    job_id       BIGINT NOT NULL REFERENCES generation_jobs (id),
    attempt      INT NOT NULL CHECK (attempt >= 1),
    token_hash   BYTEA NOT NULL CHECK (length(token_hash) = 32),  -- sha256 of the URL token
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE job_callbacks (
    id            BIGSERIAL PRIMARY KEY,
    job_id        BIGINT NOT NULL REFERENCES generation_jobs (id),
    source        TEXT NOT NULL CHECK (source IN (
                      'callback',   -- Kie called the job's URL with a valid token
                      'poll',       -- the status poller's recordInfo answer
                      'orphan'      -- matched later by task id (orphan_callbacks)
                  )),
    payload       JSONB NOT NULL,
    payload_hash  BYTEA NOT NULL,                      -- sha256 of the canonical payload
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at    TIMESTAMPTZ,                         -- the leader settled from it
    UNIQUE (job_id, payload_hash)                      -- a duplicate delivery changes nothing
);
CREATE INDEX job_callbacks_unapplied_idx ON job_callbacks (id) WHERE applied_at IS NULL;

ALTER TABLE orphan_callbacks ADD COLUMN payload_hash BYTEA;
CREATE UNIQUE INDEX orphan_callbacks_payload_idx ON orphan_callbacks (kie_task_id, payload_hash);
