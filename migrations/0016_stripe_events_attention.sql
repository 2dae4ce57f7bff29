-- no-transaction
-- Events not yet done or needing an operator, by state and age, for the health
-- signals ('flagged' had no index at all). Built without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS stripe_events_attention
    ON stripe_events (state, received_at)
    WHERE state IN ('received', 'unmatched', 'deferred', 'flagged', 'dead');
