-- What Kie bills for a job (migration 017): its SKU's catalog price in kopecks, written when
-- the job is requested. The user's price can be an operator's override, so the operators'
-- Kie cost and margin figures cannot be derived from what users paid. NULL: a job made
-- before this migration (the figures fall back to price / markup for those).

ALTER TABLE generation_jobs
    ADD COLUMN kie_cost_kop BIGINT CHECK (kie_cost_kop >= 0);
