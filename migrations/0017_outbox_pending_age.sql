-- The oldest pending outbox call, for the health signals. Why not CONCURRENTLY: 0015.
CREATE INDEX outbox_pending_age
    ON outbox (created_at)
    WHERE state = 'pending';
