-- The catch-up pass's place in Stripe's event list: the newest event up to which every
-- listed event has been stored. One row; the pass pages `GET /v1/events` forward from it
-- (`ending_before`) until it reaches the present, however many events that is.
CREATE TABLE catch_up_cursor (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    event_id      text NOT NULL,
    event_created timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The reconciliation sweeper's per-transaction backoff: a transaction Stripe keeps
-- answering the same way about (an abandoned 3DS, a request that never reached Stripe)
-- is read back again later and later instead of at every sweep. Kept apart from
-- `transactions` so that bookkeeping neither bumps a row's version nor rings its doorbell.
CREATE TABLE reconcile_backoff (
    transaction_id  uuid PRIMARY KEY REFERENCES transactions (id),
    attempts        integer NOT NULL CHECK (attempts > 0),
    next_attempt_at timestamptz NOT NULL
);

-- Voiding (or, for a draft, deleting) the invoice of a coupon attempt that failed or was
-- abandoned, so nothing can still be paid (or redeemed) through it.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('cancel_payment_intent', 'void_invoice'));
