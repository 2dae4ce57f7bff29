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
    // A column of a domain over text is compared as text: `(column)::text = ANY (…)`.
    let predicate = &predicate.replace(&format!("({column})::text"), column);
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
/// exactly their Rust sets: the `unsettled_transactions` table (kept by a trigger), and
/// the once-per-coupon indexes filter on `coupon_live` (its values are the next test's).
#[tokio::test]
async fn settling_a_transaction_is_a_hot_update_and_the_sets_still_hold() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let (check, value) = column_check(&mut conn, "unsettled_transactions", "status").await;
    assert_eq!(
        listed(&check, &value, "= ANY"),
        texts(TransactionStatus::UNSETTLED, TransactionStatus::as_str),
        "{check}"
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

/// The CHECK that rules `table.column`, as PostgreSQL prints it, and the name it gives
/// the checked value there: the column's own domain's (`VALUE`), or else the table's.
async fn column_check(conn: &mut PgConnection, table: &str, column: &str) -> (String, String) {
    let domain: Option<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_attribute a \
         JOIN pg_constraint c ON c.contypid = a.atttypid AND c.contype = 'c' \
         WHERE a.attrelid = $1::regclass AND a.attname = $2",
    )
    .bind(table)
    .bind(column)
    .fetch_optional(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("domain CHECK on {table}.{column}: {e}"));
    if let Some(check) = domain {
        return (check, "VALUE".to_owned());
    }
    let check = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = $1::regclass AND contype = 'c' \
           AND pg_get_constraintdef(oid) LIKE '%(' || $2 || ' = %'",
    )
    .bind(table)
    .bind(column)
    .fetch_one(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("CHECK on {table}.{column}: {e}"));
    (check, column.to_owned())
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
        let (check, value) = column_check(&mut conn, table, column).await;
        assert_eq!(
            listed(&check, &value, "= ANY"),
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

/// `coupon_live`, which the once-per-coupon indexes filter on, is true exactly for a coupon
/// whose status is not one of the unsuccessful ones, at every status a coupon reaches, and
/// NULL for every other row; what a writer puts there itself is overruled.
#[tokio::test]
async fn coupon_live_is_true_exactly_for_a_coupon_not_unsuccessful() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let legal = payments_core::transitions();
    let created = TransactionStatus::Created;
    for to in TransactionStatus::ALL {
        for kind in [TransactionKind::Coupon, TransactionKind::Payment] {
            if *to != created && !legal.contains(&(kind, created, *to)) {
                continue;
            }
            let mut tx = conn.begin().await.expect("begin");
            let id = TransactionId::new();
            sqlx::query(
                "INSERT INTO transactions (id, user_id, kind, status, amount, currency, \
                 idempotency_key, request_fingerprint, coupon_code, coupon_live) \
                 VALUES ($1, 'u', $2, 'created', 100, 'usd', 'k', 'f', 'WELCOME', false)",
            )
            .bind(id.as_uuid())
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await
            .expect("insert");
            sqlx::query(
                "UPDATE transactions SET status = $2, coupon_live = NOT coalesce(coupon_live, false) \
                 WHERE id = $1",
            )
            .bind(id.as_uuid())
            .bind(to.as_str())
            .execute(&mut *tx)
            .await
            .expect("update");
            let live: Option<bool> =
                sqlx::query_scalar("SELECT coupon_live FROM transactions WHERE id = $1")
                    .bind(id.as_uuid())
                    .fetch_one(&mut *tx)
                    .await
                    .expect("read");
            let expected = (kind == TransactionKind::Coupon
                && !TransactionStatus::UNSUCCESSFUL.contains(to))
            .then_some(true);
            assert_eq!(live, expected, "{kind:?} {to}");
            tx.rollback().await.expect("rollback");
        }
    }
}

/// Migration 0030 moves the single-column rules of the tables an event writes into
/// domains without rewriting a row: over data an earlier schema holds, every row and its
/// coupon flag stay as they were, the rows read back through the store, and each rule
/// still refuses what it refused, now named by its domain.
#[tokio::test]
async fn the_column_rules_move_to_domains_over_existing_rows() {
    let db = TestDb::at_migration(29).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let (payment, coupon, failed) = (
        TransactionId::new(),
        TransactionId::new(),
        TransactionId::new(),
    );
    for (id, kind, key) in [
        (payment, "payment", "p"),
        (coupon, "coupon", "c"),
        (failed, "coupon", "f"),
    ] {
        sqlx::query(
            "INSERT INTO transactions (id, user_id, kind, status, amount, currency, \
             idempotency_key, request_fingerprint, coupon_code, trial_credit) \
             VALUES ($1, 'u1', $2, 'created', 500, 'usd', $3, 'f', \
             CASE WHEN $2 = 'coupon' THEN 'C-' || $3 END, CASE WHEN $2 = 'payment' THEN 200 END)",
        )
        .bind(id.as_uuid())
        .bind(kind)
        .bind(key)
        .execute(&mut *conn)
        .await
        .expect("transaction");
    }
    sqlx::query("INSERT INTO wallets (user_id, currency) VALUES ('u1', 'usd')")
        .execute(&mut *conn)
        .await
        .expect("wallet");
    sqlx::query("UPDATE transactions SET status = 'failed' WHERE id = $1")
        .bind(failed.as_uuid())
        .execute(&mut *conn)
        .await
        .expect("fail the coupon");
    sqlx::query("UPDATE transactions SET status = 'succeeded' WHERE id = $1")
        .bind(payment.as_uuid())
        .execute(&mut *conn)
        .await
        .expect("settle the payment");
    sqlx::query(
        "INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency) \
         VALUES ('u1', $1, 'payment_credit', '', 500, 'usd')",
    )
    .bind(payment.as_uuid())
    .execute(&mut *conn)
    .await
    .expect("credit");
    sqlx::query(
        "INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source, state) \
         VALUES ('evt_1', 'payment_intent.succeeded', '2024-06-20', now(), false, '{}', 'webhook', 'applied')",
    )
    .execute(&mut *conn)
    .await
    .expect("event");
    let rows = "SELECT coalesce(json_agg(t ORDER BY t::text), '[]')::text FROM ( \
          SELECT to_json(x)::text AS t FROM transactions x UNION ALL \
          SELECT to_json(x)::text FROM wallets x UNION ALL \
          SELECT to_json(x)::text FROM ledger_entries x UNION ALL \
          SELECT to_json(x)::text FROM stripe_events x) rows";
    let before: String = sqlx::query_scalar(rows)
        .fetch_one(&mut *conn)
        .await
        .expect("rows");
    drop(conn);

    db.migrate()
        .await
        .expect("the rest of the migrations apply over the rows");

    let mut conn = db.pool.acquire().await.expect("connection");
    let after: String = sqlx::query_scalar(rows)
        .fetch_one(&mut *conn)
        .await
        .expect("rows");
    assert_eq!(after, before, "no row changed");
    let live: Vec<(uuid::Uuid, Option<bool>)> =
        sqlx::query_as("SELECT id, coupon_live FROM transactions")
            .fetch_all(&mut *conn)
            .await
            .expect("coupon_live");
    for (id, flag) in live {
        let expected = (id == coupon.as_uuid()).then_some(true);
        assert_eq!(flag, expected, "{id}");
    }
    let read = store::get_transaction(&mut conn, payment)
        .await
        .expect("read through the store")
        .expect("exists");
    assert_eq!(read.status, TransactionStatus::Succeeded);
    assert_eq!(read.amount.minor(), 500);

    let single_column_checks: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE contype = 'c' AND cardinality(conkey) = 1 \
         AND conrelid IN ('transactions'::regclass, 'wallets'::regclass, \
                          'ledger_entries'::regclass, 'stripe_events'::regclass, 'customers'::regclass)",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("checks");
    assert_eq!(single_column_checks, Vec::<String>::new());
    for (statement, rule) in [
        (
            "INSERT INTO wallets (user_id, currency) VALUES ('u2', 'USD')",
            "currency_code_iso",
        ),
        (
            "INSERT INTO wallets (user_id, currency) VALUES ('', 'usd')",
            "user_ref_length",
        ),
        (
            "UPDATE wallets SET trial_state = 'over'",
            "trial_state_known",
        ),
        (
            "UPDATE transactions SET status = 'lost'",
            "transaction_status_known",
        ),
        (
            "UPDATE transactions SET amount = -1",
            "minor_units_not_negative",
        ),
        (
            "UPDATE transactions SET trial_credit = 0",
            "positive_minor_units_positive",
        ),
        (
            "UPDATE transactions SET idempotency_key = ''",
            "idempotency_key_length",
        ),
        (
            "UPDATE stripe_events SET state = 'gone'",
            "event_state_known",
        ),
        (
            "UPDATE stripe_events SET source = 'mail'",
            "event_source_known",
        ),
        (
            "INSERT INTO customers (user_id, stripe_customer_id) VALUES (repeat('u', 129), 'cus_1')",
            "user_ref_length",
        ),
    ] {
        let refused = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await
            .expect_err(statement);
        let db_error = refused.as_database_error().expect("a database error");
        assert_eq!(
            db_error.code().as_deref(),
            Some("23514"),
            "{statement}: {db_error}"
        );
        assert!(db_error.message().contains(rule), "{statement}: {db_error}");
    }
}
