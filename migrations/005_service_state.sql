-- Small facts the leader keeps across terms (e.g. the fingerprint of the webhook it set).

CREATE TABLE service_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
