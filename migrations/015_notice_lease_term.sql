-- Payment notices leased by term (migration 015): a new leader
-- takes over the notices a dead term had leased at once, instead of waiting out their time
-- lease. The time lease (leased_until) stays as the backstop inside one term (a sender
-- restarted within its term) and as the retry backoff, which belongs to no term.
ALTER TABLE payment_notices ADD COLUMN leased_term BIGINT;  -- the term whose sender holds it
