//! The schema as migrated agrees with the Rust definitions it was written from: each
//! partial index's set of statuses or states is the Rust set the queries use, and the
//! queries' predicates let PostgreSQL use those indexes.

use std::collections::BTreeSet;

use payments_core::{TransactionStatus, store, store::EventState, testing::TestDb};
use sqlx::{Connection as _, PgConnection};

/// The predicate of a partial index, as PostgreSQL prints it.
async fn index_predicate(conn: &mut PgConnection, index: &str) -> String {
    sqlx::query_scalar(
        "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
    )
    .bind(index)
    .fetch_one(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("index {index}: {e}"))
}

/// The text values of `column = ANY (ARRAY[…])` (or `<> ALL`) in a printed predicate.
fn listed(predicate: &str, column: &str, operator: &str) -> BTreeSet<String> {
    let start = format!("{column} {operator} (ARRAY[");
    let Some(from) = predicate.find(&start) else {
        panic!("no `{start}` in {predicate}");
    };
    let rest = &predicate[from + start.len()..];
    let list = &rest[..rest.find(']').expect("a closed array")];
    list.split(", ")
        .map(|item| {
            item.trim_end_matches("::text")
                .trim_matches('\'')
                .to_owned()
        })
        .collect()
}

fn texts<T: Copy>(values: &[T], text: impl Fn(T) -> &'static str) -> BTreeSet<String> {
    values.iter().map(|v| text(*v).to_owned()).collect()
}

#[tokio::test]
async fn the_unsettled_index_holds_exactly_the_unsettled_statuses() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let predicate = index_predicate(&mut conn, "transactions_unsettled").await;
    assert_eq!(
        listed(&predicate, "status", "= ANY"),
        texts(TransactionStatus::UNSETTLED, TransactionStatus::as_str),
        "{predicate}"
    );
}

#[tokio::test]
async fn the_retry_index_holds_exactly_the_retryable_event_states() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let predicate = index_predicate(&mut conn, "stripe_events_retry").await;
    assert_eq!(
        listed(&predicate, "state", "= ANY"),
        texts(EventState::RETRYABLE, EventState::as_str),
        "{predicate}"
    );
}

#[tokio::test]
async fn the_coupon_once_index_leaves_out_exactly_the_unsuccessful_statuses() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let predicate = index_predicate(&mut conn, "transactions_coupon_once").await;
    assert_eq!(
        listed(&predicate, "status", "<> ALL"),
        texts(TransactionStatus::UNSUCCESSFUL, TransactionStatus::as_str),
        "{predicate}"
    );
}

/// PostgreSQL uses a partial index only for a query whose condition it can prove
/// implies the index's: the queries' predicates, written from the Rust sets, do.
#[tokio::test]
async fn the_queries_predicates_reach_their_partial_indexes() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .expect("set");
    for (query, index) in [
        (
            format!(
                "SELECT id FROM transactions WHERE {} AND updated_at < now()",
                store::unsettled_predicate()
            ),
            "transactions_unsettled",
        ),
        (
            format!(
                "SELECT id FROM stripe_events WHERE {} AND next_attempt_at <= now()",
                store::retryable_predicate()
            ),
            "stripe_events_retry",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {query}")))
            .fetch_all(&mut *tx)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{query}\n{plan}");
    }
}
