-- Leader election state: the term row, the heartbeat row, the event log, the instances.
--
-- The term lives apart from the heartbeat on purpose: fence() holds the term row FOR SHARE for
-- the length of every leader write transaction, so a promotion (which bumps the term) waits for
-- the old leader's in-flight writes, while the leader's own renewals (which touch only the
-- heartbeat row) never queue behind its own writes.

CREATE TABLE leader_lease (
    name         TEXT PRIMARY KEY,                    -- lease namespace, derived from the bot token
    term         BIGINT NOT NULL DEFAULT 0 CHECK (term >= 0),  -- the fencing token
    holder       TEXT,                                -- instance id of the term's leader
    acquired_at  TIMESTAMPTZ
);

CREATE TABLE leader_heartbeat (
    name         TEXT PRIMARY KEY REFERENCES leader_lease (name),
    term         BIGINT NOT NULL,
    holder       TEXT NOT NULL,
    holder_pid   INT NOT NULL,                        -- backend pid of the lock session
    renewed_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE leader_events (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    term         BIGINT,
    instance_id  TEXT NOT NULL,
    event        TEXT NOT NULL CHECK (event IN (
                     'promoted',      -- won the lock and bumped the term
                     'demoted',       -- lost leadership (renewal failed, lock lost, trust expired)
                     'resigned',      -- gave leadership up on shutdown
                     'takeover'       -- terminated an expired holder's lock session
                 )),
    reason       TEXT,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX leader_events_at_idx ON leader_events (name, id DESC);

CREATE TABLE instances (
    instance_id   TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INT NOT NULL,
    version       TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    role          TEXT NOT NULL,
    term          BIGINT
);

-- Raise unless p_term is the current term of lease p_name. Call first in every leader-side
-- write transaction: the FOR SHARE lock holds off a promotion until this transaction ends.
CREATE FUNCTION fence(p_name TEXT, p_term BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    current_term BIGINT;
BEGIN
    SELECT term INTO current_term FROM leader_lease WHERE name = p_name FOR SHARE;
    IF current_term IS DISTINCT FROM p_term THEN
        RAISE EXCEPTION 'fenced: term % of lease % is not current (current %)',
            p_term, p_name, current_term
            USING ERRCODE = 'LF001';
    END IF;
END
$$;
