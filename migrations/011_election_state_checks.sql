-- Mirror the election's persisted states by CHECKs: leader_events.reason is
-- supervisor.stores.TransitionReason, instances.role is supervisor.runtime_state.Role.
-- NOT VALID: rows written before this migration (free-text reasons that could carry error
-- text) stay readable; every new row is checked.

ALTER TABLE leader_events ADD CONSTRAINT leader_events_reason_check CHECK (reason IN (
    'lock acquired',          -- promoted: this session won the lock
    'stopping',               -- resigned: SIGTERM/SIGINT, drained
    'term superseded',        -- demoted: renew matched no row
    'trust window expired',   -- demoted: no good renew within the trust window
    'lock session lost',      -- demoted: the lock's session failed
    'lease expired'           -- takeover: the holder stopped renewing
)) NOT VALID;

ALTER TABLE instances ADD CONSTRAINT instances_role_check CHECK (role IN (
    'follower',    -- not leading; serves /health and webhook deliveries
    'candidate',   -- waiting for the leader lock
    'leader',      -- holds the lock and a current term
    'demoting',    -- leadership ended; leader services are stopping
    'stopped'      -- exited cleanly
)) NOT VALID;
