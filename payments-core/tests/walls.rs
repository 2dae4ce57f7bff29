//! The database as the second wall: what the code never does, hand-written SQL cannot do
//! either. Each rule is tried directly against the schema, and tied to the Rust rule it
//! repeats (the movement kinds' signs, the state machine's transitions).

mod support;

use payments_core::{
    Signal, TransactionId, TransactionKind, TransactionStatus, settle::Context,
    store::MovementKind, testing::TestDb, transitions,
};
use sqlx::{Connection as _, PgConnection};
use support::{apply, insert, payment};

/// Runs `sql` with `binds` (text) inside a savepoint, its deferred checks included: the
/// code and constraint name of the error it meets, or None if the database took it.
async fn refusal(
    conn: &mut PgConnection,
    sql: &str,
    id: TransactionId,
    binds: &[&str],
) -> Option<(String, String)> {
    let mut savepoint = conn.begin().await.expect("savepoint");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).bind(id.as_uuid());
    for bind in binds {
        query = query.bind(*bind);
    }
    let done = match query.execute(&mut *savepoint).await {
        // Deferred checks run at commit: the savepoint's release does not run them.
        Ok(_) => sqlx::query("SET CONSTRAINTS ALL IMMEDIATE")
            .execute(&mut *savepoint)
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    savepoint.rollback().await.expect("rollback");
    match done {
        Ok(()) => None,
        Err(sqlx::Error::Database(e)) => Some((
            e.code().unwrap_or_default().into_owned(),
            e.constraint().unwrap_or_default().to_owned(),
        )),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// Whether the database took `sql` ([`refusal`]).
async fn accepted(conn: &mut PgConnection, sql: &str, id: TransactionId, binds: &[&str]) -> bool {
    refusal(conn, sql, id, binds).await.is_none()
}

const MOVE: &str = "INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency) \
                    VALUES ($2, $1, $3, $4, $5::bigint, $6)";

/// A succeeded payment of 1,000 for `user`, credited through settle.
async fn paid(db: &TestDb, user: &str) -> TransactionId {
    let id = insert(db, &payment(user, "k", 1_000)).await;
    apply(db, id, &Signal::Succeeded, Context::default()).await;
    id
}

#[tokio::test]
async fn each_movement_kind_moves_money_one_way_only() {
    let db = TestDb::new().await;
    let id = paid(&db, "ann").await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let mut tx = conn.begin().await.expect("begin");
    for kind in MovementKind::ALL {
        let (right, wrong) = match kind.is_debit() {
            true => ("-1", "1"),
            false => ("1", "-1"),
        };
        let row = |amount| ["ann", kind.as_str(), "key", amount, "usd"];
        assert!(
            !accepted(&mut tx, MOVE, id, &row(wrong)).await,
            "{kind} of {wrong}"
        );
        // The right sign is refused only by the other rules (credits are the amount).
        let credit = matches!(
            kind,
            MovementKind::PaymentCredit | MovementKind::CouponCredit | MovementKind::TrialGrant
        );
        let reversal = matches!(
            kind,
            MovementKind::RefundReversal | MovementKind::DisputeReversal
        );
        if !credit && !reversal {
            assert!(accepted(&mut tx, MOVE, id, &row(right)).await, "{kind}");
        }
    }
}

/// The ledger's key is the movement: whatever writes it, a credit happens once per
/// transaction and a refund or dispute step once per its key.
#[tokio::test]
async fn a_movement_happens_once_whatever_writes_it() {
    let db = TestDb::new().await;
    let id = paid(&db, "amy").await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let again = ["amy", "payment_credit", "", "1000", "usd"];
    assert!(
        !accepted(&mut conn, MOVE, id, &again).await,
        "a second credit"
    );
    let step = ["amy", "refund_debit", "re_1", "-100", "usd"];
    assert!(
        accepted(&mut conn, MOVE, id, &step).await,
        "a first refund step"
    );
    let mut tx = conn.begin().await.expect("begin");
    assert!(accepted(&mut tx, MOVE, id, &step).await);
    record(&mut tx, id, &step).await;
    assert!(
        !accepted(&mut tx, MOVE, id, &step).await,
        "the same step again"
    );
    let other = ["amy", "refund_debit", "re_2", "-100", "usd"];
    assert!(accepted(&mut tx, MOVE, id, &other).await, "another step");
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM wallets WHERE user_id = 'amy'")
        .fetch_one(&mut *tx)
        .await
        .expect("balance");
    assert_eq!(balance, 900, "the credit once and the step once");
}

#[tokio::test]
async fn a_movement_belongs_to_its_transaction() {
    let db = TestDb::new().await;
    let id = paid(&db, "bea").await;
    paid(&db, "cal").await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let cases: [(&[&str], bool); 7] = [
        (&["bea", "refund_debit", "re_1", "-100", "usd"], true),
        (&["cal", "refund_debit", "re_1", "-100", "usd"], false), // another user's wallet
        (&["bea", "payment_credit", "again", "1000", "usd"], true), // the audit refuses this one
        (&["bea", "payment_credit", "more", "999", "usd"], false), // not the amount
        (&["bea", "refund_reversal", "re_1", "100", "usd"], false), // nothing to give back
        (&["bea", "dispute_reversal", "dp_1", "100", "usd"], false),
        (&["bea", "refund_debit", "re_9", "-1001", "usd"], false), // more than the payment
    ];
    for (row, expected) in cases {
        assert_eq!(
            accepted(&mut conn, MOVE, id, row).await,
            expected,
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn the_disputes_and_refunds_of_a_payment_never_take_more_than_it_brought() {
    let db = TestDb::new().await;
    let id = paid(&db, "dan").await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let mut tx = conn.begin().await.expect("begin");
    for (family, first, second) in [("dispute", "dp_1", "dp_2"), ("refund", "re_1", "re_2")] {
        let (debit, reversal) = (format!("{family}_debit"), format!("{family}_reversal"));
        let row = |key| ["dan", debit.as_str(), key, "-600", "usd"];
        record(&mut tx, id, &row(first)).await;
        assert!(
            !accepted(&mut tx, MOVE, id, &row(second)).await,
            "a second {family} of 600 on 1,000"
        );
        // Once the first is given back, the second may take it.
        record(
            &mut tx,
            id,
            &["dan", reversal.as_str(), first, "600", "usd"],
        )
        .await;
        assert!(accepted(&mut tx, MOVE, id, &row(second)).await, "{family}");
    }
}

async fn record(conn: &mut PgConnection, id: TransactionId, row: &[&str]) {
    let mut query = sqlx::query(MOVE).bind(id.as_uuid());
    for value in row {
        query = query.bind(*value);
    }
    query.execute(&mut *conn).await.expect("recorded");
}

#[tokio::test]
async fn a_wallet_balance_moves_only_with_a_ledger_entry() {
    let db = TestDb::new().await;
    let id = paid(&db, "eve").await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let refused = [
        "UPDATE wallets SET balance = balance + 1 WHERE user_id = 'eve' AND $1 IS NOT NULL",
        "INSERT INTO wallets (user_id, currency, balance) SELECT 'fay', 'usd', 5 WHERE $1 IS NOT NULL",
        // Naming a ledger entry by hand does not help: only the ledger's trigger may.
        "WITH named AS (SELECT set_config('payments.applying_ledger_entry', \
           (SELECT id::text FROM ledger_entries WHERE transaction_id = $1), true)) \
         UPDATE wallets SET balance = balance + 1000 FROM named WHERE user_id = 'eve'",
        // Nor does a function of one's own: it is not a trigger.
        "DO $$ BEGIN UPDATE wallets SET balance = balance + 1 WHERE user_id = 'eve'; END $$",
    ];
    for sql in refused {
        assert!(!accepted(&mut conn, sql, id, &[]).await, "{sql}");
    }
    let allowed = [
        "UPDATE wallets SET trial_state = 'active', trial_started_at = now() WHERE user_id = 'eve' AND $1 IS NOT NULL",
        "INSERT INTO wallets (user_id, currency) SELECT 'fay', 'usd' WHERE $1 IS NOT NULL",
    ];
    for sql in allowed {
        assert!(accepted(&mut conn, sql, id, &[]).await, "{sql}");
    }
}

/// The rules that span columns are held by the row triggers the writes run anyway (a
/// table's CHECK constraints are re-read and re-planned by every statement): they refuse
/// what the constraints refused, with the same code and constraint names, and no table
/// an event writes has a CHECK constraint left.
#[tokio::test]
async fn the_rules_across_columns_refuse_under_their_constraint_names() {
    let db = TestDb::new().await;
    let id = paid(&db, "joy").await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let refused = [
        (
            "UPDATE transactions SET amount_refunded = amount + 1 WHERE id = $1",
            "transactions_check",
        ),
        (
            "UPDATE transactions SET amount_refunded = -1 WHERE id = $1",
            "transactions_check",
        ),
        (
            "INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency) \
             VALUES ('joy', $1, 'refund_debit', 're_1', 100, 'usd')",
            "ledger_entries_sign_by_kind",
        ),
        (
            "INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency) \
             VALUES ('joy', $1, 'payment_credit', 'again', -1000, 'usd')",
            "ledger_entries_sign_by_kind",
        ),
        (
            "UPDATE wallets SET trial_state = 'active' WHERE user_id = 'joy' AND $1 IS NOT NULL",
            "wallets_check",
        ),
        (
            "UPDATE wallets SET trial_started_at = now() WHERE user_id = 'joy' AND $1 IS NOT NULL",
            "wallets_check",
        ),
        (
            "UPDATE wallets SET trial_state = 'ended', trial_started_at = now() \
             WHERE user_id = 'joy' AND $1 IS NOT NULL",
            "wallets_check1",
        ),
        (
            "INSERT INTO wallets (user_id, currency, trial_state, trial_started_at, trial_ended_at) \
             SELECT 'kim', 'usd', 'active', now(), now() WHERE $1 IS NOT NULL",
            "wallets_check1",
        ),
    ];
    for (sql, constraint) in refused {
        assert_eq!(
            refusal(&mut conn, sql, id, &[]).await,
            Some(("23514".to_owned(), constraint.to_owned())),
            "{sql}"
        );
    }
    let allowed = [
        "UPDATE transactions SET amount_refunded = amount WHERE id = $1",
        "UPDATE wallets SET trial_state = 'ended', trial_started_at = now(), trial_ended_at = now() \
         WHERE user_id = 'joy' AND $1 IS NOT NULL",
        "INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency) \
         VALUES ('joy', $1, 'refund_debit', 're_1', -100, 'usd')",
    ];
    for sql in allowed {
        assert_eq!(refusal(&mut conn, sql, id, &[]).await, None, "{sql}");
    }
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE contype = 'c' \
         AND conrelid IN ('transactions'::regclass, 'ledger_entries'::regclass, 'wallets'::regclass, \
                          'stripe_events'::regclass, 'transaction_transitions'::regclass)",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("constraints");
    assert_eq!(checks, Vec::<String>::new());
}

/// The balance wall lets a change through only inside a trigger, trusting that the one
/// trigger writing `wallets` is the ledger's, which moves the balance by the entry's
/// amount: any other trigger function that writes `wallets` would open it.
#[tokio::test]
async fn the_ledgers_trigger_is_the_only_trigger_that_writes_wallets() {
    let db = TestDb::new().await;
    let writers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT p.proname::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE NOT t.tgisinternal AND p.prosrc ~* '(update|insert\\s+into|delete\\s+from)\\s+wallets\\M' \
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("trigger functions");
    assert_eq!(writers, ["ledger_entries_after_insert"]);
}

/// What the foreign keys of the ledger guarded, the triggers guard now: an entry needs
/// its transaction and a wallet of its user in its currency, and neither a transaction
/// nor a wallet is ever deleted or moved to another user or currency.
#[tokio::test]
async fn a_movement_needs_its_transaction_and_a_wallet_in_its_currency() {
    let db = TestDb::new().await;
    let id = paid(&db, "gus").await;
    let mut conn = db.pool.acquire().await.expect("connection");
    assert!(
        accepted(
            &mut conn,
            MOVE,
            id,
            &["gus", "refund_debit", "re_1", "-100", "usd"]
        )
        .await,
        "the reference case"
    );
    let unknown = TransactionId::new();
    assert!(
        !accepted(
            &mut conn,
            MOVE,
            unknown,
            &["gus", "refund_debit", "re_1", "-100", "usd"]
        )
        .await,
        "no such transaction"
    );
    // A payment in euros whose user has a dollar wallet: no wallet in the entry's currency.
    let euros = insert(&db, &payment("hal", "k", 1_000)).await;
    let setup = [
        "UPDATE transactions SET currency = 'eur' WHERE id = $1",
        "INSERT INTO wallets (user_id, currency) SELECT 'hal', 'usd' WHERE $1 IS NOT NULL",
    ];
    for sql in setup {
        sqlx::query(sql)
            .bind(euros.as_uuid())
            .execute(&mut *conn)
            .await
            .expect("setting up");
    }
    assert!(
        !accepted(
            &mut conn,
            MOVE,
            euros,
            &["hal", "payment_credit", "", "1000", "eur"]
        )
        .await,
        "an entry in euros with only a dollar wallet"
    );
    let never = [
        "DELETE FROM transactions WHERE id = $1",
        "DELETE FROM wallets WHERE user_id = 'gus' AND $1 IS NOT NULL",
        "UPDATE wallets SET currency = 'eur' WHERE user_id = 'gus' AND $1 IS NOT NULL",
        "UPDATE wallets SET user_id = 'ivy' WHERE user_id = 'gus' AND $1 IS NOT NULL",
    ];
    for sql in never {
        assert!(!accepted(&mut conn, sql, id, &[]).await, "{sql}");
    }
}

/// The trigger on `transactions` allows exactly the changes of status the state
/// machine makes: every (kind, from, to) is tried from hand-written SQL.
#[tokio::test]
async fn the_status_trigger_allows_exactly_the_state_machines_transitions() {
    let db = TestDb::new().await;
    let legal = transitions();
    let mut conn = db.pool.acquire().await.expect("connection");
    let mut tx = conn.begin().await.expect("begin");
    for kind in TransactionKind::ALL {
        let new = payments_core::store::NewTransaction {
            kind: *kind,
            ..payment("gil", kind.as_str(), 1_000)
        };
        let id = match payments_core::store::insert_transaction(&mut tx, &new)
            .await
            .expect("insert")
        {
            payments_core::store::Inserted::New(t)
            | payments_core::store::Inserted::Existing(t) => t.id,
        };
        for from in TransactionStatus::ALL {
            // Put the row in `from` with the triggers off, as only a superuser can.
            sqlx::query("SET LOCAL session_replication_role = replica")
                .execute(&mut *tx)
                .await
                .expect("triggers off");
            sqlx::query("UPDATE transactions SET status = $2 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(from)
                .execute(&mut *tx)
                .await
                .expect("set up");
            sqlx::query("SET LOCAL session_replication_role = origin")
                .execute(&mut *tx)
                .await
                .expect("triggers on");
            for to in TransactionStatus::ALL.iter().filter(|to| *to != from) {
                let sql = "UPDATE transactions SET status = $2 WHERE id = $1";
                let took = accepted(&mut tx, sql, id, &[to.as_str()]).await;
                let rule = legal.contains(&(*kind, *from, *to));
                assert_eq!(took, rule, "{kind} from {from} to {to}");
            }
        }
        let change_kind = "UPDATE transactions SET kind = $2 WHERE id = $1";
        let other = if *kind == TransactionKind::Coupon {
            "payment"
        } else {
            "coupon"
        };
        assert!(
            !accepted(&mut tx, change_kind, id, &[other]).await,
            "{kind}"
        );
    }
    let born_settled = "INSERT INTO transactions (id, user_id, kind, status, amount, currency, \
                        idempotency_key, request_fingerprint) \
                        VALUES ($1, 'hal', 'payment', $2, 100, 'usd', 'k', 'f')";
    assert!(!accepted(&mut tx, born_settled, TransactionId::new(), &["succeeded"]).await);
    assert!(accepted(&mut tx, born_settled, TransactionId::new(), &["created"]).await);
}
