//! Integration tests: the real HTTP server on port 0, a fresh PostgreSQL database per
//! test, events signed the way Stripe signs them.
//!
//! Tests run on the multi-thread runtime: dropping a `TestDb` blocks its thread until
//! the pool is closed, and a pool connection's return runs as a task, which needs a
//! second worker to make progress.

mod events;
mod helpers;

mod availability;
mod cards;
mod catch_up;
mod concurrency;
mod connections;
mod doorbell;
mod fixtures;
mod flows;
mod group_commit;
mod kill;
mod modes_and_holds;
mod money_in_any_order;
mod proxy;
mod randomized;
mod rejections;
mod retries;
mod signals;
mod telemetry;
mod with_sim;
