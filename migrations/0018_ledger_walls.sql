-- The ledger as the second wall: what the code never does, no writer can do, hand-written
-- SQL included. Refunds and disputes move money per Stripe object (the movement key is the
-- refund or dispute id), and a failed refund gives its debit back with a movement of its own.

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('payment_credit', 'coupon_credit', 'trial_grant',
                    'refund_debit', 'refund_reversal', 'dispute_debit', 'dispute_reversal'));

-- Each kind moves one way: debits take (negative), credits and reversals give (positive).
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_sign_by_kind
    CHECK (sign(amount) = CASE kind WHEN 'refund_debit' THEN -1 WHEN 'dispute_debit' THEN -1 ELSE 1 END);

-- A movement belongs to its transaction: same user, same currency; a credit is the
-- transaction's amount (a trial: its credit); a reversal gives back exactly its debit.
-- The transaction row is locked, so movements of one transaction are checked one at a time.
CREATE FUNCTION ledger_entries_belong() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t transactions%ROWTYPE;
BEGIN
    SELECT * INTO t FROM transactions WHERE id = NEW.transaction_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NEW; -- the foreign key refuses it
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
CREATE TRIGGER ledger_entries_belong BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_belong();

-- A transaction's refunds, and its disputes, never take more than it brought nor give back
-- more than they took. Checked at commit: a refund seen only once it failed is debited
-- and given back in one database transaction, its debit alone may exceed for a moment.
CREATE FUNCTION ledger_entries_within_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    family text := split_part(NEW.kind, '_', 1);
    cap bigint;
    net bigint;
BEGIN
    IF family NOT IN ('refund', 'dispute') THEN
        RETURN NULL;
    END IF;
    SELECT amount INTO cap FROM transactions WHERE id = NEW.transaction_id;
    SELECT COALESCE(sum(amount), 0) INTO net FROM ledger_entries
     WHERE transaction_id = NEW.transaction_id AND split_part(kind, '_', 1) = family;
    IF net > 0 OR net < -cap THEN
        RAISE EXCEPTION 'the %s of transaction % would move % of its %', family, NEW.transaction_id, net, cap
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_within_transaction AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_within_transaction();

-- wallets.balance moves only with a ledger entry: the ledger's trigger names the entry it
-- applies, and the wallet accepts exactly that entry's amount from it. A wallet starts at 0.
CREATE OR REPLACE FUNCTION ledger_entries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('payments.applying_ledger_entry', NEW.id::text, true);
    UPDATE wallets SET balance = balance + NEW.amount, updated_at = now()
     WHERE user_id = NEW.user_id;
    PERFORM set_config('payments.applying_ledger_entry', '', true);
    RETURN NULL;
END $$;

CREATE FUNCTION wallets_balance_from_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.balance <> 0 THEN
            RAISE EXCEPTION 'a wallet starts at 0; its balance moves through ledger_entries'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.balance IS NOT DISTINCT FROM OLD.balance THEN
        RETURN NEW;
    END IF;
    IF pg_trigger_depth() > 1 THEN
        SELECT amount INTO moved FROM ledger_entries
         WHERE id = NULLIF(current_setting('payments.applying_ledger_entry', true), '')::bigint
           AND user_id = NEW.user_id;
        IF moved IS NOT NULL AND NEW.balance = OLD.balance + moved THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'wallets.balance of % moves only through ledger_entries', OLD.user_id
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER wallets_balance_from_ledger BEFORE INSERT OR UPDATE ON wallets
    FOR EACH ROW EXECUTE FUNCTION wallets_balance_from_ledger();
