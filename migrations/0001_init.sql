-- The shared schema of payments-api and webhook-ingestor.
-- Money is bigint minor units with a lower-case ISO 4217 currency; every side
-- effect on money is guarded by a unique constraint, not only by application code.

CREATE TABLE customers (
    user_id            text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 128),
    stripe_customer_id text UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    user_id          text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 128),
    currency         text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    balance          bigint NOT NULL DEFAULT 0,
    trial_state      text NOT NULL DEFAULT 'none' CHECK (trial_state IN ('none', 'active', 'ended')),
    trial_credit     bigint NOT NULL DEFAULT 0 CHECK (trial_credit >= 0),
    trial_started_at timestamptz,
    trial_ended_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((trial_state = 'none') = (trial_started_at IS NULL)),
    CHECK ((trial_state = 'ended') = (trial_ended_at IS NOT NULL)),
    UNIQUE (user_id, currency)
);

CREATE TABLE payment_methods (
    id             text PRIMARY KEY,                -- Stripe's pm_...
    user_id        text NOT NULL,
    brand          text NOT NULL DEFAULT '',
    last4          text NOT NULL DEFAULT '',
    fingerprint    text NOT NULL DEFAULT '',
    validated_at   timestamptz,
    detached_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_user ON payment_methods (user_id) WHERE detached_at IS NULL;

CREATE TABLE transactions (
    id                       uuid PRIMARY KEY,
    user_id                  text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
    kind                     text NOT NULL CHECK (kind IN ('payment', 'coupon', 'card_validation')),
    status                   text NOT NULL CHECK (status IN ('created', 'pending', 'requires_action',
                                 'succeeded', 'failed', 'canceled', 'refunded')),
    amount                   bigint NOT NULL CHECK (amount >= 0),
    currency                 text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    amount_refunded          bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    failure_code             text,
    failure_message          text,
    payment_method_id        text,
    coupon_code              text,
    card_fingerprint         text,
    trial_credit             bigint CHECK (trial_credit > 0),   -- set when a validation grants the trial
    flagged                  text,                   -- why the transaction needs an operator (e.g. currency mismatch)
    stripe_payment_intent_id text UNIQUE,
    stripe_invoice_id        text UNIQUE,
    stripe_charge_id         text UNIQUE,
    client_secret            text,
    idempotency_key          text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_fingerprint      text NOT NULL,          -- what the idempotency key was first used for
    version                  bigint NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX transactions_user_newest ON transactions (user_id, created_at DESC, id DESC);
CREATE INDEX transactions_unsettled ON transactions (updated_at)
    WHERE status IN ('created', 'pending', 'requires_action');
-- A coupon redeems once per user unless the attempt failed.
CREATE UNIQUE INDEX transactions_coupon_once ON transactions (user_id, lower(coupon_code))
    WHERE kind = 'coupon' AND status NOT IN ('failed', 'canceled');

-- Every committed change bumps the version and rings the WatchTransaction doorbell in
-- the same database transaction, whoever the writer is. The payload is id:version only;
-- listeners read the state from the table. Identical payloads in one transaction are
-- folded into one notification by PostgreSQL.
CREATE FUNCTION transactions_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW IS NOT DISTINCT FROM OLD THEN
            RETURN NEW;
        END IF;
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transactions_touch BEFORE UPDATE ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_touch();

CREATE FUNCTION transactions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('transaction_changed', NEW.id::text || ':' || NEW.version::text);
    RETURN NULL;
END $$;
CREATE TRIGGER transactions_notify_insert AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_notify();
CREATE TRIGGER transactions_notify_update AFTER UPDATE ON transactions
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION transactions_notify();

CREATE TABLE transaction_transitions (
    id              bigserial PRIMARY KEY,
    transaction_id  uuid NOT NULL REFERENCES transactions (id),
    from_status     text,
    to_status       text NOT NULL,
    version         bigint NOT NULL,
    cause           text NOT NULL,                  -- 'request', 'reconciliation', or 'stripe_event'
    stripe_event_id text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transaction_transitions_tx ON transaction_transitions (transaction_id, id);

CREATE TABLE ledger_entries (
    id             bigserial PRIMARY KEY,
    user_id        text NOT NULL,
    transaction_id uuid NOT NULL REFERENCES transactions (id),
    kind           text NOT NULL CHECK (kind IN ('payment_credit', 'coupon_credit', 'trial_grant',
                       'refund_debit', 'dispute_debit', 'dispute_reversal')),
    -- What makes this movement unique within (transaction, kind): '' for the single credit,
    -- the cumulative refunded amount for a refund step, the dispute id for disputes.
    movement_key   text NOT NULL DEFAULT '',
    amount         bigint NOT NULL CHECK (amount <> 0),  -- signed: credits > 0, debits < 0
    currency       text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    stripe_event_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (transaction_id, kind, movement_key),
    -- A movement is always in its wallet's currency.
    FOREIGN KEY (user_id, currency) REFERENCES wallets (user_id, currency)
);
CREATE INDEX ledger_entries_user ON ledger_entries (user_id);

-- The ledger is append-only and the balance is derived from it in the same statement,
-- so wallet.balance = sum(ledger) cannot drift whatever code writes a movement.
CREATE FUNCTION ledger_entries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wallets SET balance = balance + NEW.amount, updated_at = now()
     WHERE user_id = NEW.user_id;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_apply();

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- One trial per card, whoever holds it.
CREATE TABLE trial_grants (
    fingerprint    text PRIMARY KEY CHECK (fingerprint <> ''),
    user_id        text NOT NULL,
    transaction_id uuid NOT NULL UNIQUE REFERENCES transactions (id),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stripe_events (
    id              text PRIMARY KEY,
    type            text NOT NULL,
    api_version     text,
    created         timestamptz NOT NULL,
    livemode        boolean NOT NULL,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL DEFAULT 'webhook' CHECK (source IN ('webhook', 'catch_up', 'replay')),
    state           text NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'applied', 'stale',
                        'ignored', 'unmatched', 'deferred', 'flagged', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz,
    transaction_id  uuid,
    processed_at    timestamptz
);
CREATE INDEX stripe_events_retry ON stripe_events (next_attempt_at)
    WHERE state IN ('received', 'unmatched', 'deferred');
CREATE INDEX stripe_events_dead ON stripe_events (received_at) WHERE state = 'dead';
CREATE INDEX stripe_events_created ON stripe_events (created DESC);

-- Calls to Stripe that must follow a commit (e.g. releasing a validation hold).
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('cancel_payment_intent')),
    transaction_id  uuid NOT NULL REFERENCES transactions (id),
    target          text NOT NULL,                  -- the Stripe object the call acts on
    idempotency_key text NOT NULL UNIQUE,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
