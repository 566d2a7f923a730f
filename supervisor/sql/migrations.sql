-- name: lock
-- Serialize migration runs across instances that boot together (session advisory lock).
SELECT pg_advisory_lock(%(key)s);

-- name: unlock
-- Release the migration lock.
SELECT pg_advisory_unlock(%(key)s);

-- name: create_table
-- Create the bookkeeping table on first run.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version      INT PRIMARY KEY,
    name         TEXT NOT NULL,
    checksum     TEXT NOT NULL,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms  DOUBLE PRECISION NOT NULL
);

-- name: table_exists
-- Tell whether any migration has ever run here.
SELECT to_regclass('schema_migrations') IS NOT NULL AS present;

-- name: applied
-- List applied migrations in order.
SELECT version, name, checksum FROM schema_migrations ORDER BY version;

-- name: set_lock_timeout
-- Bound how long this file's DDL waits for a lock (the rest of this transaction only).
SELECT set_config('lock_timeout', %(lock_timeout)s, true);

-- name: record
-- Record one applied migration (in the same transaction as its DDL).
INSERT INTO schema_migrations (version, name, checksum, duration_ms)
VALUES (%(version)s, %(name)s, %(checksum)s, %(duration_ms)s);
