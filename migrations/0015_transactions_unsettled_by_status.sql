-- no-transaction
-- The unsettled transactions by status and age, for the health signals (count and
-- oldest of each status without visiting the rows). Built without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS transactions_unsettled_by_status
    ON transactions (status, created_at)
    WHERE status IN ('created', 'pending', 'requires_action');
