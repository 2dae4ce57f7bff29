-- The last CHECK constraints of the tables a settled payment writes become checks in the
-- row triggers those writes run anyway.
--
-- Migration 0030 moved the single-column rules to domains because PostgreSQL reads a
-- table's CHECK constraints back from their stored text and plans them again for every
-- statement that inserts or updates the table, whatever columns it writes (and for every
-- run of a trigger's query). The four rules that span columns stayed, and each settled
-- top-up still re-read and re-planned all four: the transaction's refunded cap, the
-- ledger entry's sign, and the wallet's two trial-date rules on the ledger's update of
-- its balance. Profiled while replaying the ingestor's statement with pgbench, that was
-- about 6% of PostgreSQL's CPU. A check in a PL/pgSQL trigger is compiled once per
-- session.
--
-- * `transactions_check` (nothing refunded below 0 or above the amount) moves into
--   `transactions_before_write`, which runs for every insert and update. A new row starts
--   with nothing refunded (that trigger already refuses anything else) and an amount
--   that cannot be negative (its domain), so the update is what is checked.
-- * `ledger_entries_sign_by_kind` moves into `ledger_entries_after_insert`. Entries are
--   never updated (`ledger_entries_append_only`), so the insert is what is checked.
-- * `wallets_check` and `wallets_check1` (a trial's dates match its state) move into a
--   trigger of their own that runs only on an insert or on an update that writes a trial
--   column: the ledger's update of a balance no longer pays for them. It runs AFTER, as
--   the wallets' other triggers do: a BEFORE row trigger makes each credit lock its
--   wallet first, a WAL record more (migration 0025).
--
-- Each error keeps the code (check_violation) and the constraint name the constraint
-- reported. The constraints are dropped last, after the triggers that replace them exist.
-- One thing changes: a session with `session_replication_role = replica` (which only a
-- superuser can set) skips these checks, as it skips every other trigger-held rule here.

CREATE OR REPLACE FUNCTION transactions_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Once per coupon: the unique indexes filter on it, and only a coupon's own failure or
    -- cancel changes it, so a settling update stays HOT.
    NEW.coupon_live := CASE WHEN NEW.kind = 'coupon' AND NEW.status NOT IN ('failed', 'canceled')
                            THEN true END;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'created' OR NEW.amount_refunded <> 0 THEN
            RAISE EXCEPTION 'a transaction starts created with nothing refunded, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NEW;
    END IF;
    IF NEW.kind IS DISTINCT FROM OLD.kind THEN
        RAISE EXCEPTION 'transaction % cannot change kind', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.amount_refunded < 0 OR NEW.amount_refunded > NEW.amount THEN
        RAISE EXCEPTION 'transaction % of % cannot have % refunded', OLD.id, NEW.amount, NEW.amount_refunded
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_check';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
        (OLD.status, NEW.status) IN (
            ('created', 'pending'), ('created', 'requires_action'), ('created', 'succeeded'),
            ('created', 'failed'), ('created', 'canceled'),
            ('pending', 'requires_action'), ('pending', 'succeeded'), ('pending', 'failed'),
            ('pending', 'canceled'),
            ('requires_action', 'pending'), ('requires_action', 'succeeded'),
            ('requires_action', 'failed'), ('requires_action', 'canceled'),
            ('failed', 'succeeded'))
        OR (OLD.kind <> 'coupon' AND (OLD.status, NEW.status) = ('failed', 'canceled'))
        OR (OLD.kind = 'payment' AND (OLD.status, NEW.status) IN (
            ('succeeded', 'refunded'), ('refunded', 'succeeded')))
    ) THEN
        RAISE EXCEPTION 'illegal transition of % transaction % from % to %',
            OLD.kind, OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION ledger_entries_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t_user text;
    t_currency text;
    t_amount bigint;
    t_trial_credit bigint;
BEGIN
    -- Debits take money out, every other kind puts it in (an amount is never 0: its domain).
    IF (NEW.kind IN ('refund_debit', 'dispute_debit')) = (NEW.amount > 0) THEN
        RAISE EXCEPTION 'a % of %: the wrong sign for its kind', NEW.kind, NEW.amount
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entries_sign_by_kind';
    END IF;
    IF split_part(NEW.kind, '_', 1) IN ('refund', 'dispute') THEN
        SELECT user_id, currency, amount, trial_credit
          INTO t_user, t_currency, t_amount, t_trial_credit
          FROM transactions WHERE id = NEW.transaction_id FOR NO KEY UPDATE;
    ELSE
        SELECT user_id, currency, amount, trial_credit
          INTO t_user, t_currency, t_amount, t_trial_credit
          FROM transactions WHERE id = NEW.transaction_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger entry for transaction %, which does not exist', NEW.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NEW.user_id IS DISTINCT FROM t_user OR NEW.currency IS DISTINCT FROM t_currency THEN
        RAISE EXCEPTION 'ledger entry for % in % on transaction % of % in %',
            NEW.user_id, NEW.currency, NEW.transaction_id, t_user, t_currency
            USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.kind IN ('payment_credit', 'coupon_credit') AND NEW.amount <> t_amount)
       OR (NEW.kind = 'trial_grant' AND NEW.amount IS DISTINCT FROM t_trial_credit) THEN
        RAISE EXCEPTION 'a % of % on transaction % of %', NEW.kind, NEW.amount, NEW.transaction_id, t_amount
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind IN ('refund_reversal', 'dispute_reversal') THEN
        IF NOT EXISTS (
            SELECT 1 FROM ledger_entries d
             WHERE d.transaction_id = NEW.transaction_id
               AND d.kind = replace(NEW.kind, '_reversal', '_debit')
               AND d.movement_key = NEW.movement_key AND d.amount = -NEW.amount) THEN
            RAISE EXCEPTION 'a % of % without its debit on transaction %',
                NEW.kind, NEW.movement_key, NEW.transaction_id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    UPDATE wallets SET balance = balance + NEW.amount, updated_at = now()
     WHERE user_id = NEW.user_id AND currency = NEW.currency;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger entry for % in %: no such wallet', NEW.user_id, NEW.currency
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

-- A trial has started exactly when its state is not `none`, and has ended exactly when
-- its state is `ended`.
CREATE FUNCTION wallets_trial_dates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.trial_state = 'none') IS DISTINCT FROM (NEW.trial_started_at IS NULL) THEN
        RAISE EXCEPTION 'wallet of % in trial state % with trial start %',
            NEW.user_id, NEW.trial_state, NEW.trial_started_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_check';
    END IF;
    IF (NEW.trial_state = 'ended') IS DISTINCT FROM (NEW.trial_ended_at IS NOT NULL) THEN
        RAISE EXCEPTION 'wallet of % in trial state % with trial end %',
            NEW.user_id, NEW.trial_state, NEW.trial_ended_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_check1';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER wallets_trial_dates AFTER INSERT OR UPDATE OF trial_state, trial_started_at, trial_ended_at
    ON wallets FOR EACH ROW EXECUTE FUNCTION wallets_trial_dates();

ALTER TABLE transactions DROP CONSTRAINT transactions_check;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_sign_by_kind;
ALTER TABLE wallets DROP CONSTRAINT wallets_check, DROP CONSTRAINT wallets_check1;
