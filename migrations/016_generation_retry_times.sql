-- Retries of a failed submission or delivery come after a short backoff, not after the claim's
-- lease (migration 016). A failed attempt frees
-- its claim and sets the time before which the job is not claimed again; the leases
-- (submit_claimed_at, delivering_at) stay only as the backstop for a claimant that died.
ALTER TABLE generation_jobs
    ADD COLUMN submit_retry_at   TIMESTAMPTZ,  -- a retryable createTask refusal: next attempt not before
    ADD COLUMN delivery_retry_at TIMESTAMPTZ;  -- a failed delivery attempt: next attempt not before
