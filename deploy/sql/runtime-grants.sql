-- What the services' runtime role needs when they run with migrations at start off
-- (PAYMENTS_MIGRATE_AT_START=false, INGESTOR_MIGRATE_AT_START=false): data rights on
-- the tables, no DDL. Run it as the schema owner (the role `payments-api migrate` runs
-- as), after the migrations, in the payments database. `payments_app` is the runtime
-- role, created beforehand: CREATE ROLE payments_app LOGIN PASSWORD '…';
-- payments-api's test `least_privilege` runs this file as written (the role renamed).

-- No role but the owner creates objects (already the default from PostgreSQL 15 on).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO payments_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO payments_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO payments_app;

-- The migration history is read (the services refuse to start while a migration is
-- pending) and never written.
REVOKE INSERT, UPDATE, DELETE ON _sqlx_migrations FROM payments_app;

-- Tables and sequences that later migrations create (as this same owner) get the
-- same rights, so a release needs no new grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO payments_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO payments_app;
