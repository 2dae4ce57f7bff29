//! payments-core's reconciliation sequence through this crate's reader, against
//! stripe-sim and a fresh PostgreSQL database.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use payments_core::{
    Currency, Money, Transaction, TransactionId, TransactionKind, TransactionStatus, UserId,
    reconcile::{self, ObjectKind, ObjectRef, Reconciled, Scope, StripeReader},
    store::{self, Inserted, NewTransaction, StripeRefs},
    testing::TestDb,
};
use payments_stripe::{StripeClient, StripeConfig, StripeFailure};
use serde_json::Value;
use sqlx::PgPool;
use stripe::StripeRequest as _;
use stripe_core::payment_intent::CreatePaymentIntent;
use stripe_sim::StripeSim;

struct Setup {
    db: TestDb,
    sim: StripeSim,
    client: StripeClient,
}

async fn setup() -> Setup {
    let db = TestDb::new().await;
    let sim = StripeSim::builder()
        .seed(7)
        .bind("127.0.0.1:0".parse().expect("address"))
        .start()
        .await
        .expect("stripe-sim starts");
    let client = StripeClient::new(&StripeConfig {
        api_base: sim.base_url().to_owned(),
        secret_key: "sk_test_reconcile".to_owned().into(),
        timeout: Duration::from_secs(5),
    })
    .expect("client");
    Setup { db, sim, client }
}

/// A top-up whose PaymentIntent succeeded at Stripe, with every webhook lost.
async fn paid_at_stripe(s: &Setup, user: &str) -> Transaction {
    let mut conn = s.db.pool.acquire().await.expect("connection");
    let new = NewTransaction {
        user_id: UserId::parse(user).expect("user"),
        kind: TransactionKind::Payment,
        amount: Money::new(1_500, Currency::USD).expect("positive"),
        payment_method_id: Some("pm_card_visa".into()),
        coupon_code: None,
        card_fingerprint: None,
        trial_credit: None,
        idempotency_key: "k".into(),
        request_fingerprint: "f".into(),
    };
    let Inserted::New(tx) = store::insert_transaction(&mut conn, &new)
        .await
        .expect("insert")
    else {
        panic!("a new transaction");
    };
    let metadata = HashMap::from([("transaction_id".to_owned(), tx.id.to_string())]);
    let create = CreatePaymentIntent::new(1_500, stripe_types::Currency::USD)
        .payment_method("pm_card_visa")
        .confirm(true)
        .metadata(metadata)
        .customize();
    let pi = s.client.send("create", create).await.expect("created");
    let refs = StripeRefs {
        payment_intent_id: Some(pi.id.as_str()),
        ..StripeRefs::default()
    };
    store::set_stripe_refs(&mut conn, tx.id, &refs)
        .await
        .expect("refs");
    store::get_transaction(&mut conn, tx.id)
        .await
        .expect("read")
        .expect("exists")
}

/// The real reader, which first checks from another connection whether the
/// transaction's row could be locked right now, while Stripe is being asked.
struct Probe<'a> {
    inner: &'a StripeClient,
    pool: &'a PgPool,
    id: TransactionId,
    calls: AtomicUsize,
    found_locked: AtomicUsize,
}

impl<'a> Probe<'a> {
    fn new(inner: &'a StripeClient, pool: &'a PgPool, id: TransactionId) -> Self {
        Probe {
            inner,
            pool,
            id,
            calls: AtomicUsize::new(0),
            found_locked: AtomicUsize::new(0),
        }
    }

    async fn check_row_free(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut other = self.pool.begin().await.expect("another connection");
        let free = sqlx::query("SELECT 1 FROM transactions WHERE id = $1 FOR UPDATE NOWAIT")
            .bind(self.id.as_uuid())
            .execute(&mut *other)
            .await
            .is_ok();
        if !free {
            self.found_locked.fetch_add(1, Ordering::SeqCst);
        }
        other.rollback().await.expect("rollback");
    }
}

impl StripeReader for Probe<'_> {
    type Error = StripeFailure;

    async fn retrieve(&self, object: ObjectRef<'_>) -> Result<Value, StripeFailure> {
        self.check_row_free().await;
        self.inner.retrieve(object).await
    }

    async fn search(&self, kind: ObjectKind, query: &str) -> Result<Vec<Value>, StripeFailure> {
        self.check_row_free().await;
        self.inner.search(kind, query).await
    }
}

/// The sweeper held the row (`SKIP LOCKED`) while it asked Stripe; the operator's
/// path did not. The one sequence asks with no lock held and no connection taken,
/// so a slow Stripe never makes a webhook for the same transaction wait.
#[tokio::test]
async fn stripe_is_asked_with_no_row_lock_held_in_either_scope() {
    let s = setup().await;
    let tx = paid_at_stripe(&s, "ana").await;
    let probe = Probe::new(&s.client, &s.db.pool, tx.id);

    let done = reconcile::reconcile(&s.db.pool, tx.id, &probe, Scope::Unsettled)
        .await
        .expect("reconciled");
    assert_eq!(
        done.outcome,
        Reconciled::Applied {
            from: TransactionStatus::Created,
            to: TransactionStatus::Succeeded
        }
    );
    assert_eq!(done.transaction.status, TransactionStatus::Succeeded);

    let again = reconcile::reconcile(&s.db.pool, tx.id, &probe, Scope::Any)
        .await
        .expect("reconciled again");
    assert_eq!(again.outcome, Reconciled::Unchanged);
    assert_eq!(probe.calls.load(Ordering::SeqCst), 2);
    assert_eq!(probe.found_locked.load(Ordering::SeqCst), 0);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn the_sweeper_skips_a_row_another_writer_holds_and_takes_it_next_time() {
    let s = setup().await;
    let tx = paid_at_stripe(&s, "bo").await;
    let mut writer = s.db.pool.begin().await.expect("begin");
    store::lock_transaction(&mut writer, tx.id)
        .await
        .expect("lock")
        .expect("exists");

    let probe = Probe::new(&s.client, &s.db.pool, tx.id);
    let done = reconcile::reconcile(&s.db.pool, tx.id, &probe, Scope::Unsettled)
        .await
        .expect("reconciled");
    assert_eq!(done.outcome, Reconciled::Skipped);
    // The probe sees a lock when there is one.
    assert_eq!(probe.found_locked.load(Ordering::SeqCst), 1);
    writer.rollback().await.expect("rollback");

    let done = reconcile::reconcile(&s.db.pool, tx.id, &s.client, Scope::Unsettled)
        .await
        .expect("reconciled");
    assert_eq!(done.outcome.label(), "applied");
    s.sim.shutdown().await;
}

#[tokio::test]
async fn the_sweeper_does_not_ask_stripe_about_a_settled_transaction_an_operator_does() {
    let s = setup().await;
    let tx = paid_at_stripe(&s, "cy").await;
    reconcile::reconcile(&s.db.pool, tx.id, &s.client, Scope::Any)
        .await
        .expect("settled");
    let probe = Probe::new(&s.client, &s.db.pool, tx.id);

    let swept = reconcile::reconcile(&s.db.pool, tx.id, &probe, Scope::Unsettled)
        .await
        .expect("swept");
    assert_eq!(swept.outcome, Reconciled::Skipped);
    assert_eq!(probe.calls.load(Ordering::SeqCst), 0);

    let asked = reconcile::reconcile(&s.db.pool, tx.id, &probe, Scope::Any)
        .await
        .expect("asked");
    assert_eq!(asked.outcome, Reconciled::Unchanged);
    assert_eq!(probe.calls.load(Ordering::SeqCst), 1);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_transaction_is_an_error_not_an_outcome() {
    let s = setup().await;
    let unknown = TransactionId::new();
    let error = reconcile::reconcile(&s.db.pool, unknown, &s.client, Scope::Any)
        .await
        .expect_err("no such transaction");
    assert!(
        matches!(error, reconcile::ReconcileError::NotFound(id) if id == unknown),
        "{error}"
    );
    s.sim.shutdown().await;
}
