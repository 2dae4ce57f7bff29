-- The doorbell may ring after the commit instead of inside it.
--
-- PostgreSQL serializes the commits of transactions that NOTIFY: PreCommit_Notify takes
-- a lock on the notification queue that is held until the commit's WAL flush is done.
-- On the webhook path every commit settles a transaction and so rings inside it: where
-- the flush is slow, its commits go one flush after another however many run side by
-- side.
--
-- A writer that sets `payments.doorbell = 'after_commit'` for its database transaction
-- (SET LOCAL) now collects the doorbells it would have rung in the transaction-local
-- setting `payments.doorbells`, as space-separated `id:version` payloads, reads them
-- before it commits and rings them once the commit is done (payments-core's `doorbell`).
-- Only the ingestor's webhook path does, and only when configured to
-- (`INGESTOR_DOORBELL_AFTER_COMMIT`); every other writer (payments-api, the background
-- workers, SQL run by hand) rings inside the commit as before. A doorbell lost between that commit and the ring (the
-- writer crashed) is caught by the watch hub's safety pass, which compares the
-- versions of watched rows every few seconds.
--
-- Everything else in the trigger is unchanged from migration 0027.
CREATE OR REPLACE FUNCTION transactions_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR (OLD.status IN ('created', 'pending', 'requires_action')
           AND (OLD.status IS DISTINCT FROM NEW.status OR OLD.created_at IS DISTINCT FROM NEW.created_at)) THEN
        IF NEW.status IN ('created', 'pending', 'requires_action') THEN
            INSERT INTO unsettled_transactions (transaction_id, status, created_at)
            VALUES (NEW.id, NEW.status, NEW.created_at)
            ON CONFLICT (transaction_id) DO UPDATE SET status = EXCLUDED.status, created_at = EXCLUDED.created_at;
        ELSE
            DELETE FROM unsettled_transactions WHERE transaction_id = NEW.id;
        END IF;
    END IF;
    -- OLD is NULL on INSERT: a new row's charge, and its first version, count as changes.
    IF OLD.stripe_charge_id IS DISTINCT FROM NEW.stripe_charge_id THEN
        IF OLD.stripe_charge_id IS NOT NULL THEN
            RAISE EXCEPTION 'transaction % already has charge %', OLD.id, OLD.stripe_charge_id
                USING ERRCODE = 'check_violation';
        END IF;
        INSERT INTO transaction_charges (charge_id, transaction_id) VALUES (NEW.stripe_charge_id, NEW.id);
    END IF;
    IF OLD.version IS DISTINCT FROM NEW.version THEN
        IF current_setting('payments.doorbell', true) = 'after_commit' THEN
            PERFORM set_config('payments.doorbells',
                concat_ws(' ', nullif(current_setting('payments.doorbells', true), ''),
                          NEW.id::text || ':' || NEW.version::text),
                true);
        ELSE
            PERFORM pg_notify('transaction_changed', NEW.id::text || ':' || NEW.version::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;
