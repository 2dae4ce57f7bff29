//! The schema as migrated agrees with the Rust definitions it was written from: each
//! partial index's set of statuses or states is the Rust set the queries use, and the
//! queries' predicates let PostgreSQL use those indexes.

use std::collections::BTreeSet;

use payments_core::{
    TransactionId, TransactionKind, TransactionStatus,
    store::{self, EventSource, EventState, MovementKind, OutboxKind, StoreError, TrialState},
    testing::TestDb,
};
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

/// The text values of `column = ANY (ARRAY[…])` (or `<> ALL`) in a printed predicate;
/// PostgreSQL prints a list of one as `column = 'value'::text`.
fn listed(predicate: &str, column: &str, operator: &str) -> BTreeSet<String> {
    let start = format!("{column} {operator} (ARRAY[");
    let single = format!("({column} = '");
    let list = match (predicate.find(&start), predicate.find(&single)) {
        (Some(from), _) => {
            let rest = &predicate[from + start.len()..];
            &rest[..rest.find(']').expect("a closed array")]
        }
        (None, Some(from)) if operator == "= ANY" => {
            let rest = &predicate[from + single.len() - 1..];
            &rest[..rest.find(')').expect("a closed comparison")]
        }
        _ => panic!("no `{start}` in {predicate}"),
    };
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

/// Each partial index over a set of statuses or states holds exactly the Rust set the
/// queries are written from.
#[tokio::test]
async fn every_partial_index_holds_exactly_its_rust_set() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let indexes = [
        (
            "stripe_events_retry",
            "state",
            "= ANY",
            texts(EventState::RETRYABLE, EventState::as_str),
        ),
        (
            "stripe_events_attention",
            "state",
            "= ANY",
            texts(EventState::ATTENTION, EventState::as_str),
        ),
    ];
    for (index, column, operator, rust) in indexes {
        let predicate = index_predicate(&mut conn, index).await;
        assert_eq!(
            listed(&predicate, column, operator),
            rust,
            "{index}: {predicate}"
        );
    }
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
    for (query, index) in [(
        format!(
            "SELECT id FROM stripe_events WHERE {} AND next_attempt_at <= now()",
            store::retryable_predicate()
        ),
        "stripe_events_retry",
    )] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {query}")))
            .fetch_all(&mut *tx)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{query}\n{plan}");
    }
}

/// No index of `transactions` holds or filters on a column that settling changes, so the
/// settling update is HOT; the sets those indexes held live elsewhere and still hold
/// exactly their Rust sets: the `unsettled_transactions` table (kept by a trigger) and the
/// generated `coupon_live` column the once-per-coupon indexes filter on.
#[tokio::test]
async fn settling_a_transaction_is_a_hot_update_and_the_sets_still_hold() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let check = check_constraint(&mut conn, "unsettled_transactions", "status").await;
    assert_eq!(
        listed(&check, "status", "= ANY"),
        texts(TransactionStatus::UNSETTLED, TransactionStatus::as_str),
        "{check}"
    );
    let live: String = sqlx::query_scalar(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d \
         JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
         WHERE d.adrelid = 'transactions'::regclass AND a.attname = 'coupon_live'",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("coupon_live");
    assert_eq!(
        listed(&live, "status", "<> ALL"),
        texts(TransactionStatus::UNSUCCESSFUL, TransactionStatus::as_str),
        "{live}"
    );
    for index in [
        "transactions_coupon_once",
        "transactions_coupon_once_per_coupon",
    ] {
        let predicate = index_predicate(&mut conn, index).await;
        assert!(
            predicate.trim_start_matches('(').starts_with("coupon_live"),
            "{index}: {predicate}"
        );
    }

    // Every status a transaction can reach from CREATED, through the store's own writer.
    let legal = payments_core::transitions();
    for to in TransactionStatus::ALL {
        let from = TransactionStatus::Created;
        let kind = TransactionKind::Payment;
        let path: &[TransactionStatus] = match legal.contains(&(kind, from, *to)) {
            true => &[*to],
            false if *to == TransactionStatus::Refunded => {
                &[TransactionStatus::Succeeded, TransactionStatus::Refunded]
            }
            false => &[],
        };
        let mut tx = conn.begin().await.expect("begin");
        let id = created(&mut tx, to.as_str()).await;
        // The backend's counts are flushed between transactions, never within one.
        let hot_before = hot_updates(&mut tx).await;
        for step in path {
            let current = store::lock_transaction(&mut tx, id)
                .await
                .expect("lock")
                .expect("exists");
            let change = store::StatusChange {
                to: *step,
                amount_refunded: 0,
                failure: None,
                charge: (*step == TransactionStatus::Succeeded).then_some("ch_hot"),
                cause: "request",
                stripe_event_id: None,
            };
            store::change_status(&mut tx, &current, None, &change)
                .await
                .expect("change");
        }
        let hot = hot_updates(&mut tx).await - hot_before;
        assert_eq!(hot, path.len() as i64, "every update to {to} is HOT");
        let tracked: Option<String> = sqlx::query_scalar(
            "SELECT status FROM unsettled_transactions WHERE transaction_id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .expect("unsettled");
        let unsettled = TransactionStatus::UNSETTLED.contains(to);
        assert_eq!(tracked.as_deref(), unsettled.then_some(to.as_str()), "{to}");
        let charge: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT transaction_id FROM transaction_charges WHERE charge_id = 'ch_hot'",
        )
        .fetch_optional(&mut *tx)
        .await
        .expect("charge");
        let succeeded = path.contains(&TransactionStatus::Succeeded);
        assert_eq!(charge, succeeded.then_some(id.as_uuid()), "{to}");
        tx.rollback().await.expect("rollback");
    }
}

/// HOT updates of `transactions` this backend counted and has not flushed yet.
async fn hot_updates(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT pg_stat_get_xact_tuples_hot_updated('transactions'::regclass)")
        .fetch_one(&mut *conn)
        .await
        .expect("HOT updates")
}

/// A CREATED payment, committed by the caller.
async fn created(conn: &mut PgConnection, key: &str) -> TransactionId {
    let id = TransactionId::new();
    sqlx::query(
        "INSERT INTO transactions (id, user_id, kind, status, amount, currency, idempotency_key, \
         request_fingerprint) VALUES ($1, 'hot', 'payment', 'created', 100, 'usd', $2, 'f')",
    )
    .bind(id.as_uuid())
    .bind(key)
    .execute(&mut *conn)
    .await
    .expect("insert");
    id
}

/// The CHECK constraint on `table.column`, as PostgreSQL prints it.
async fn check_constraint(conn: &mut PgConnection, table: &str, column: &str) -> String {
    sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = $1::regclass AND contype = 'c' \
           AND pg_get_constraintdef(oid) LIKE '%(' || $2 || ' = %'",
    )
    .bind(table)
    .bind(column)
    .fetch_one(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("CHECK on {table}.{column}: {e}"))
}

/// Each enum stored as text can hold exactly what its column accepts.
#[tokio::test]
async fn every_text_enum_is_exactly_what_its_column_accepts() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let columns = [
        (
            "transactions",
            "kind",
            texts(TransactionKind::ALL, TransactionKind::as_str),
        ),
        (
            "transactions",
            "status",
            texts(TransactionStatus::ALL, TransactionStatus::as_str),
        ),
        (
            "ledger_entries",
            "kind",
            texts(MovementKind::ALL, MovementKind::as_str),
        ),
        (
            "stripe_events",
            "state",
            texts(EventState::ALL, EventState::as_str),
        ),
        (
            "stripe_events",
            "source",
            texts(EventSource::ALL, EventSource::as_str),
        ),
        ("outbox", "kind", texts(OutboxKind::ALL, OutboxKind::as_str)),
        (
            "wallets",
            "trial_state",
            texts(TrialState::ALL, TrialState::as_str),
        ),
    ];
    for (table, column, rust) in columns {
        let check = check_constraint(&mut conn, table, column).await;
        assert_eq!(
            listed(&check, column, "= ANY"),
            rust,
            "{table}.{column}: {check}"
        );
    }
}

/// A stored value its type refuses is reported as a corrupt row, not passed along.
#[tokio::test]
async fn a_row_holding_a_value_its_type_refuses_is_corrupt() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let id = TransactionId::new();
    sqlx::query(
        "INSERT INTO transactions (id, user_id, kind, status, amount, currency, idempotency_key, \
         request_fingerprint) VALUES ($1, ' padded', 'payment', 'created', 100, 'usd', 'k', 'f')",
    )
    .bind(id.as_uuid())
    .execute(&mut *conn)
    .await
    .expect("the schema allows it");
    let read = store::get_transaction(&mut conn, id).await;
    assert!(
        matches!(read, Err(StoreError::Corrupt(ref why)) if why.contains("user_id")),
        "{read:?}"
    );
}
