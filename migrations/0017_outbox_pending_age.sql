-- no-transaction
-- The oldest pending outbox call, for the health signals. Built without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_pending_age
    ON outbox (created_at)
    WHERE state = 'pending';
