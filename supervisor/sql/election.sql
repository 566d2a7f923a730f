-- name: lock_session_setup
-- Make PostgreSQL end this session if it stays idle past the lease TTL (a frozen leader).
SELECT set_config('idle_session_timeout', %(idle_ms)s, false),
       set_config('statement_timeout', '0', false),
       pg_backend_pid() AS pid;

-- name: acquire_lock
-- Wait, blocking, for the leader lock; returns when this session holds it.
SELECT pg_advisory_lock(%(key)s);

-- name: release_lock
-- Give the leader lock back (graceful resign).
SELECT pg_advisory_unlock(%(key)s);

-- name: set_statement_timeout
-- Bound every statement of the leader's lock session (renewals must be quick).
SELECT set_config('statement_timeout', %(timeout_ms)s, false);

-- name: ensure_lease
-- Create the lease row of this namespace on first use.
INSERT INTO leader_lease (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING;

-- name: bump_term
-- Take the next term; waits for the old leader's in-flight fenced transactions (FOR SHARE).
UPDATE leader_lease
   SET term = term + 1, holder = %(instance_id)s, acquired_at = now()
 WHERE name = %(name)s
RETURNING term;

-- name: start_heartbeat
-- Write the first heartbeat of a new term.
INSERT INTO leader_heartbeat (name, term, holder, holder_pid, renewed_at, expires_at)
VALUES (%(name)s, %(term)s, %(instance_id)s, pg_backend_pid(), now(),
        now() + make_interval(secs => %(ttl_s)s))
ON CONFLICT (name) DO UPDATE
   SET term = EXCLUDED.term, holder = EXCLUDED.holder, holder_pid = EXCLUDED.holder_pid,
       renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at;

-- name: renew
-- Extend the lease of our term; zero rows means leadership is lost.
UPDATE leader_heartbeat
   SET renewed_at = now(), expires_at = now() + make_interval(secs => %(ttl_s)s)
 WHERE name = %(name)s AND term = %(term)s AND holder_pid = pg_backend_pid();

-- name: expire
-- End our term's lease now so followers need not wait for it (graceful resign).
UPDATE leader_heartbeat SET expires_at = now()
 WHERE name = %(name)s AND term = %(term)s;

-- name: record_event
-- Append one leadership transition to the event log.
INSERT INTO leader_events (name, term, instance_id, event, reason)
VALUES (%(name)s, %(term)s, %(instance_id)s, %(event)s, %(reason)s);

-- name: read_lease
-- Read the current leader as followers and /health see it, with the server's view of expiry.
SELECT h.term, h.holder, h.holder_pid,
       EXTRACT(EPOCH FROM (now() - h.renewed_at))::float8 AS heartbeat_age_s,
       EXTRACT(EPOCH FROM (h.expires_at - now()))::float8 AS expires_in_s,
       EXISTS (SELECT 1 FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted AND l.pid = h.holder_pid
                  AND l.classid = %(key_hi)s::oid AND l.objid = %(key_lo)s::oid
                  AND l.objsubid = 1) AS holder_has_lock
  FROM leader_heartbeat h
 WHERE h.name = %(name)s;

-- name: terminate_holder
-- Kill the expired holder's lock session so the lock passes on (only if it still holds it).
SELECT pg_terminate_backend(l.pid) AS terminated
  FROM pg_locks l
 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = %(pid)s
   AND l.classid = %(key_hi)s::oid AND l.objid = %(key_lo)s::oid AND l.objsubid = 1;

-- name: fence
-- Raise (SQLSTATE LF001) unless term is current; holds the term row FOR SHARE until commit.
SELECT fence(%(name)s, %(term)s);

-- name: lease_overview
-- The term row and heartbeat together, for `supervisor status`.
SELECT l.name, l.term, l.holder, l.acquired_at, h.holder_pid, h.renewed_at, h.expires_at,
       EXTRACT(EPOCH FROM (h.expires_at - now()))::float8 AS expires_in_s
  FROM leader_lease l LEFT JOIN leader_heartbeat h ON h.name = l.name
 WHERE l.name = %(name)s;

-- name: recent_events
-- The last leadership transitions, newest first.
SELECT id, term, instance_id, event, reason, at
  FROM leader_events WHERE name = %(name)s ORDER BY id DESC LIMIT %(limit)s;
