-- The unsettled transactions by status and age, for the health signals: the count and
-- the oldest of each status without visiting the rows.
--
-- Not CONCURRENTLY, in any of 0015-0017: several instances migrating at once wait on
-- sqlx's advisory lock inside a statement, which a concurrent index build waits for in
-- turn; the deadlock would leave an invalid index behind. A plain build blocks writes
-- to the table while it runs (seconds on millions of rows): on a large database, run
-- this release's migration Job at a quiet time.
CREATE INDEX transactions_unsettled_by_status
    ON transactions (status, created_at)
    WHERE status IN ('created', 'pending', 'requires_action');
