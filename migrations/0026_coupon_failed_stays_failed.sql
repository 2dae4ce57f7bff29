-- A FAILED coupon attempt stays FAILED: its invoice is voided by our own outbox (the
-- failure queued it), and `invoice.voided` no longer turns it CANCELED. The transitions
-- trigger follows the state machine (`state_machine::transitions()`, which a test compares
-- with it): FAILED → CANCELED only for payments and card validations.
CREATE OR REPLACE FUNCTION transactions_legal_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'created' OR NEW.amount_refunded <> 0 THEN
            RAISE EXCEPTION 'a transaction starts created with nothing refunded, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.kind IS DISTINCT FROM OLD.kind THEN
        RAISE EXCEPTION 'transaction % cannot change kind', OLD.id USING ERRCODE = 'check_violation';
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
    RETURN NEW;
END $$;
