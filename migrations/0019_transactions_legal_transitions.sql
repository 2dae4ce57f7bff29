-- A transaction changes status only as the state machine allows (payments-core's
-- `state_machine::transitions()`, which a test compares with this trigger), whoever writes
-- it: a settled status never regresses, REFUNDED follows SUCCEEDED (and returns to it
-- only when a refund fails), FAILED may still succeed. A transaction starts CREATED with
-- nothing refunded, and never changes kind.
CREATE FUNCTION transactions_legal_transition() RETURNS trigger LANGUAGE plpgsql AS $$
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
            ('failed', 'succeeded'), ('failed', 'canceled'))
        OR (OLD.kind = 'payment' AND (OLD.status, NEW.status) IN (
            ('succeeded', 'refunded'), ('refunded', 'succeeded')))
    ) THEN
        RAISE EXCEPTION 'illegal transition of % transaction % from % to %',
            OLD.kind, OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transactions_legal_transition BEFORE INSERT OR UPDATE OF status, kind ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_legal_transition();
