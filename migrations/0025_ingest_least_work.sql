-- The least database work per webhook that keeps every guarantee.
--
-- The settling update of a transaction (status, updated_at, the charge, version) runs for
-- every applied event. PostgreSQL makes an update HOT (the new version on the same page,
-- no new index entries) only when no index holds, or filters on, a column it changes. So
-- the indexes that held those columns move off them, keeping what each one guaranteed:
--
-- * the unsettled transactions (the sweeper's and the health signals' set) are a table of
--   their own, kept by a trigger, instead of two partial indexes on `status`;
-- * the charge behind a success is found through `transaction_charges`, kept by a trigger
--   and unique on the charge, instead of a UNIQUE on `transactions.stripe_charge_id`;
-- * the once-per-coupon rules filter on `coupon_live`, a stored generated column that is
--   NULL for every row but a live coupon redemption, instead of on `status`;
-- * `updated_at` is in no index any more, and each page keeps room for new versions
--   (of wallets too).
--
-- Foreign keys whose check locks a row the event's own transaction has just written (a
-- WAL record each) are replaced by the checks the triggers already make, and the rows they
-- guarded are never deleted:
--
-- * a ledger entry's transaction and wallet: `ledger_entries_belong` already reads the
--   transaction (it now refuses a missing one), and `ledger_entries_apply` moves the wallet
--   of the entry's user *in the entry's currency*, refusing the entry if there is none;
-- * an audit row's transaction: written from the updated row in the same statement.
--
-- Indexes nothing reads are dropped (`stripe_events_created`, `ledger_entries_user`), and
-- the audit trail keeps one index, its primary key, in the order it is read.

-- Transactions and wallets are never deleted: what referred to them by foreign key
-- relies on it.
CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER transactions_never_deleted BEFORE DELETE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER wallets_never_deleted BEFORE DELETE ON wallets
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();

CREATE FUNCTION wallets_keep_owner_and_currency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet of % cannot change its user or currency', OLD.user_id
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER wallets_keep_owner_and_currency AFTER UPDATE OF user_id, currency ON wallets
    FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.currency IS DISTINCT FROM NEW.currency)
    EXECUTE FUNCTION wallets_keep_owner_and_currency();

-- A row trigger BEFORE UPDATE makes PostgreSQL lock the old row first (a WAL record on
-- every credit); checking AFTER refuses the same changes, with the statement.
DROP TRIGGER wallets_balance_from_ledger ON wallets;
CREATE TRIGGER wallets_balance_from_ledger AFTER INSERT OR UPDATE ON wallets
    FOR EACH ROW EXECUTE FUNCTION wallets_balance_from_ledger();

-- The unsettled set, with each one's status and creation time. Only the trigger below
-- writes it: a row enters created, follows the transaction while unsettled and leaves
-- when it settles (a settled transaction never becomes unsettled again:
-- `transactions_legal_transition`).
CREATE TABLE unsettled_transactions (
    transaction_id uuid PRIMARY KEY,
    status         text NOT NULL CHECK (status IN ('created', 'pending', 'requires_action')),
    created_at     timestamptz NOT NULL
);
CREATE INDEX unsettled_transactions_by_status ON unsettled_transactions (status, created_at);

CREATE FUNCTION transactions_track_unsettled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('created', 'pending', 'requires_action') THEN
        INSERT INTO unsettled_transactions (transaction_id, status, created_at)
        VALUES (NEW.id, NEW.status, NEW.created_at)
        ON CONFLICT (transaction_id) DO UPDATE SET status = EXCLUDED.status, created_at = EXCLUDED.created_at;
    ELSE
        DELETE FROM unsettled_transactions WHERE transaction_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER transactions_track_unsettled_insert AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_track_unsettled();
CREATE TRIGGER transactions_track_unsettled_update AFTER UPDATE OF status, created_at ON transactions
    FOR EACH ROW WHEN (OLD.status IN ('created', 'pending', 'requires_action')
                       AND (OLD.status IS DISTINCT FROM NEW.status
                            OR OLD.created_at IS DISTINCT FROM NEW.created_at))
    EXECUTE FUNCTION transactions_track_unsettled();

INSERT INTO unsettled_transactions (transaction_id, status, created_at)
SELECT id, status, created_at FROM transactions
 WHERE status IN ('created', 'pending', 'requires_action');

DROP INDEX transactions_unsettled;
DROP INDEX transactions_unsettled_by_status;

-- The charge behind a success. Only the trigger below writes it; a transaction's charge,
-- once recorded, never changes.
CREATE TABLE transaction_charges (
    charge_id      text PRIMARY KEY,
    transaction_id uuid NOT NULL
);

CREATE FUNCTION transactions_record_charge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.stripe_charge_id IS NOT NULL THEN
        RAISE EXCEPTION 'transaction % already has charge %', OLD.id, OLD.stripe_charge_id
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO transaction_charges (charge_id, transaction_id) VALUES (NEW.stripe_charge_id, NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER transactions_record_charge_insert AFTER INSERT ON transactions
    FOR EACH ROW WHEN (NEW.stripe_charge_id IS NOT NULL)
    EXECUTE FUNCTION transactions_record_charge();
CREATE TRIGGER transactions_record_charge_update AFTER UPDATE OF stripe_charge_id ON transactions
    FOR EACH ROW WHEN (OLD.stripe_charge_id IS DISTINCT FROM NEW.stripe_charge_id)
    EXECUTE FUNCTION transactions_record_charge();

INSERT INTO transaction_charges (charge_id, transaction_id)
SELECT stripe_charge_id, id FROM transactions WHERE stripe_charge_id IS NOT NULL;

ALTER TABLE transactions DROP CONSTRAINT transactions_stripe_charge_id_key;

-- Once per coupon, filtered on a column that only a coupon's own failure or cancel changes.
ALTER TABLE transactions ADD COLUMN coupon_live boolean GENERATED ALWAYS AS (
    CASE WHEN kind = 'coupon' AND status NOT IN ('failed', 'canceled') THEN true END
) STORED;

DROP INDEX transactions_coupon_once;
CREATE UNIQUE INDEX transactions_coupon_once ON transactions (user_id, lower(coupon_code))
    WHERE coupon_live;
DROP INDEX transactions_coupon_once_per_coupon;
CREATE UNIQUE INDEX transactions_coupon_once_per_coupon ON transactions (user_id, stripe_coupon_id)
    WHERE coupon_live AND stripe_coupon_id IS NOT NULL;

-- Room on each page for the new versions of a transaction (its updates come soon after it
-- is created) and of a wallet (one per credit or debit), so they stay HOT.
ALTER TABLE transactions SET (fillfactor = 70);
ALTER TABLE wallets SET (fillfactor = 70);

-- Ledger entries: the triggers' checks instead of the foreign keys.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transaction_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_user_id_currency_fkey;
DROP INDEX ledger_entries_user;

-- Reads the entry's transaction, refusing a missing one; locks it only for the refund
-- and dispute families, whose cap (`ledger_entries_within_transaction`) adds entries up.
CREATE OR REPLACE FUNCTION ledger_entries_belong() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t transactions%ROWTYPE;
BEGIN
    IF split_part(NEW.kind, '_', 1) IN ('refund', 'dispute') THEN
        SELECT * INTO t FROM transactions WHERE id = NEW.transaction_id FOR NO KEY UPDATE;
    ELSE
        SELECT * INTO t FROM transactions WHERE id = NEW.transaction_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger entry for transaction %, which does not exist', NEW.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NEW.user_id IS DISTINCT FROM t.user_id OR NEW.currency IS DISTINCT FROM t.currency THEN
        RAISE EXCEPTION 'ledger entry for % in % on transaction % of % in %',
            NEW.user_id, NEW.currency, t.id, t.user_id, t.currency
            USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.kind IN ('payment_credit', 'coupon_credit') AND NEW.amount <> t.amount)
       OR (NEW.kind = 'trial_grant' AND NEW.amount IS DISTINCT FROM t.trial_credit) THEN
        RAISE EXCEPTION 'a % of % on transaction % of %', NEW.kind, NEW.amount, t.id, t.amount
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind IN ('refund_reversal', 'dispute_reversal') AND NOT EXISTS (
        SELECT 1 FROM ledger_entries d
         WHERE d.transaction_id = NEW.transaction_id
           AND d.kind = replace(NEW.kind, '_reversal', '_debit')
           AND d.movement_key = NEW.movement_key AND d.amount = -NEW.amount) THEN
        RAISE EXCEPTION 'a % of % without its debit on transaction %', NEW.kind, NEW.movement_key, t.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

-- Moves the wallet of the entry's user in the entry's currency; there must be one.
CREATE OR REPLACE FUNCTION ledger_entries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('payments.applying_ledger_entry', NEW.id::text, true);
    UPDATE wallets SET balance = balance + NEW.amount, updated_at = now()
     WHERE user_id = NEW.user_id AND currency = NEW.currency;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger entry for % in %: no such wallet', NEW.user_id, NEW.currency
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    PERFORM set_config('payments.applying_ledger_entry', '', true);
    RETURN NULL;
END $$;

-- Only the refund and dispute families have a cap to check at commit.
DROP TRIGGER ledger_entries_within_transaction ON ledger_entries;
CREATE CONSTRAINT TRIGGER ledger_entries_within_transaction AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (split_part(NEW.kind, '_', 1) IN ('refund', 'dispute'))
    EXECUTE FUNCTION ledger_entries_within_transaction();

-- The audit trail: one index, read per transaction in order.
ALTER TABLE transaction_transitions DROP CONSTRAINT transaction_transitions_transaction_id_fkey;
ALTER TABLE transaction_transitions DROP CONSTRAINT transaction_transitions_pkey;
DROP INDEX transaction_transitions_tx;
ALTER TABLE transaction_transitions ADD PRIMARY KEY (transaction_id, id);

DROP INDEX stripe_events_created;
