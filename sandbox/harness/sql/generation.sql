-- Queries of the generation stack (sandbox/harness/generation.py): read-only views of jobs.

-- name: jobs_by_id
-- The jobs with these ids, as committed.
SELECT * FROM generation_jobs WHERE id = ANY(%(job_ids)s::bigint[]);

-- name: open_deliveries
-- How many of these jobs have no closed delivery yet (delivered or undeliverable).
SELECT count(*) AS n FROM generation_jobs
 WHERE id = ANY(%(job_ids)s::bigint[]) AND delivered_at IS NULL;
