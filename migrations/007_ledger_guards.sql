-- The ledger's rules enforced by the database itself, not by the callers' good manners:
--   * each entry kind has one sign pattern (a commit can never add to the balance);
--   * one top-up per payment, one hold per job, one settlement (commit or release) per job;
--   * ledger rows are append-only;
--   * a wallet moves only through the ledger: an AFTER INSERT trigger on ledger applies the
--     entry's deltas, and wallets refuse any other change (pg_trigger_depth() tells them
--     whether the change comes from that trigger). New wallets start empty.
-- The wallet CHECKs (balance_kop >= 0, hold_kop >= 0) still abort the inserting statement,
-- entry included, when funds are short: the trigger runs inside that statement.

ALTER TABLE ledger ADD CONSTRAINT ledger_kind_sign_check CHECK (
    CASE kind
        WHEN 'topup' THEN balance_delta_kop > 0 AND hold_delta_kop = 0
        WHEN 'hold' THEN hold_delta_kop > 0 AND balance_delta_kop = -hold_delta_kop
        WHEN 'commit' THEN hold_delta_kop < 0 AND balance_delta_kop = 0
        WHEN 'release' THEN hold_delta_kop < 0 AND balance_delta_kop = -hold_delta_kop
        WHEN 'adjustment' THEN hold_delta_kop = 0
    END
);
-- Job movements name their job.
ALTER TABLE ledger ADD CONSTRAINT ledger_job_kinds_name_job_check
    CHECK (kind NOT IN ('hold', 'commit', 'release') OR job_id IS NOT NULL);

CREATE UNIQUE INDEX ledger_one_topup_per_payment_idx ON ledger (payment_id)
    WHERE kind = 'topup' AND payment_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_one_hold_per_job_idx ON ledger (job_id) WHERE kind = 'hold';
CREATE UNIQUE INDEX ledger_one_settlement_per_job_idx ON ledger (job_id)
    WHERE kind IN ('commit', 'release');

CREATE FUNCTION ledger_move_wallet() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wallets
       SET balance_kop = balance_kop + NEW.balance_delta_kop,
           hold_kop = hold_kop + NEW.hold_delta_kop,
           updated_at = now()
     WHERE user_id = NEW.user_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER ledger_move_wallet AFTER INSERT ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_move_wallet();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'KB001';
END
$$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE FUNCTION wallets_only_through_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.balance_kop <> 0 OR NEW.hold_kop <> 0 THEN
            RAISE EXCEPTION 'a new wallet starts empty; money enters through the ledger'
                USING ERRCODE = 'KB001';
        END IF;
        RETURN NEW;
    END IF;
    -- Depth 1: this statement was issued directly; depth 2+: by ledger_move_wallet.
    IF pg_trigger_depth() < 2 AND (NEW.balance_kop IS DISTINCT FROM OLD.balance_kop
                                   OR NEW.hold_kop IS DISTINCT FROM OLD.hold_kop
                                   OR NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        RAISE EXCEPTION 'wallets change only through ledger entries' USING ERRCODE = 'KB001';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER wallets_only_through_ledger BEFORE INSERT OR UPDATE ON wallets
    FOR EACH ROW EXECUTE FUNCTION wallets_only_through_ledger();
