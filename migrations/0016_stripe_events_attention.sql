-- Events not yet done or needing an operator, by state and age, for the health signals
-- ('flagged' had no index at all). Why not CONCURRENTLY: 0015.
CREATE INDEX stripe_events_attention
    ON stripe_events (state, received_at)
    WHERE state IN ('received', 'unmatched', 'deferred', 'flagged', 'dead');
