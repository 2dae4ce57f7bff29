-- The reconciliation sweeper asks Stripe about a transaction without holding a row
-- lock or a database transaction (nothing in the database may wait on Stripe). A short
-- lease, taken in its own statement before the call, keeps instances from asking about
-- the same transaction at the same time; it is deleted when the answer is applied and
-- simply expires if the instance dies.
CREATE TABLE reconcile_leases (
    transaction_id uuid PRIMARY KEY REFERENCES transactions (id) ON DELETE CASCADE,
    held_until     timestamptz NOT NULL
);
