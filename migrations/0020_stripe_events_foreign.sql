-- Events about objects that are not ours (another integration on a shared Stripe
-- account) are recorded as `foreign` and never retried into the dead-letter list.
ALTER TABLE stripe_events DROP CONSTRAINT stripe_events_state_check;
ALTER TABLE stripe_events ADD CONSTRAINT stripe_events_state_check CHECK (state IN ('received',
    'applied', 'stale', 'ignored', 'unmatched', 'deferred', 'flagged', 'dead', 'foreign'));
