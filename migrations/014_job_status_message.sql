-- A status message per generation job (migration 014): the confirm card the user pressed
-- becomes the job's status message (in the job's chat), edited by the leader's loops as the
-- job moves; the stage it last showed lets a new leader finish what a dead one left.

ALTER TABLE generation_jobs
    ADD COLUMN status_message_id BIGINT,              -- the card pressed; NULL: no status message
    ADD COLUMN status_shown TEXT
        CONSTRAINT generation_jobs_status_shown_check CHECK (status_shown IN (
            'queued',      -- the card says the job is queued (the confirm handler's edit)
            'generating',  -- Kie took the task (the submitter's edit; elapsed time refreshed)
            'done',        -- final: the result was delivered below it
            'failed',      -- final: the reason, and that nothing was charged
            'expired',     -- final: no result in time, nothing charged
            'gone'         -- the message was deleted or the bot blocked: never edited again
        )),
    ADD CONSTRAINT generation_jobs_status_message_check
        CHECK ((status_message_id IS NULL) = (status_shown IS NULL));

-- The status refresher's scan: jobs whose message still shows a stage before the final one
-- (running jobs, and finished ones whose final edit a dead leader never made).
CREATE INDEX generation_jobs_status_open_idx ON generation_jobs (id)
    WHERE status_shown IN ('queued', 'generating');
