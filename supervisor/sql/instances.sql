-- name: heartbeat
-- Record that this instance is alive, with its current role and term.
INSERT INTO instances (instance_id, host, pid, version, started_at, last_seen_at, role, term)
VALUES (%(instance_id)s, %(host)s, %(pid)s, %(version)s, to_timestamp(%(started_at)s), now(),
        %(role)s, %(term)s)
ON CONFLICT (instance_id) DO UPDATE
   SET host = EXCLUDED.host, pid = EXCLUDED.pid, version = EXCLUDED.version,
       last_seen_at = now(), role = EXCLUDED.role, term = EXCLUDED.term;

-- name: live
-- List instances seen recently, freshest first.
SELECT instance_id, host, role, term,
       round(EXTRACT(EPOCH FROM (now() - last_seen_at))::numeric, 3)::float8 AS last_seen_s_ago
  FROM instances
 WHERE last_seen_at > now() - make_interval(secs => %(live_s)s)
 ORDER BY instance_id;

-- name: mark_stopped
-- Say goodbye on a clean exit so the cluster view drops us at once.
UPDATE instances SET role = 'stopped', last_seen_at = now() WHERE instance_id = %(instance_id)s;

-- name: prune
-- Delete instances not seen for a long time (leader only, fenced by the caller).
DELETE FROM instances WHERE last_seen_at < now() - make_interval(secs => %(stale_s)s);

-- name: all_instances
-- Every registered instance, for `supervisor status`.
SELECT instance_id, host, pid, version, role, term, started_at, last_seen_at
  FROM instances ORDER BY last_seen_at DESC;
