//! The inbox's one-statement success against a real PostgreSQL, a fresh database per
//! test: it writes exactly what the general path writes, only where its guard holds,
//! and every case it leaves alone still ends as the rules say.

mod support;

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use payments_core::{
    Currency, Money, Signal, StripeEvent, StripeMode, TRANSACTION_CHANNEL, TransactionId,
    TransactionKind, TransactionStatus,
    inbox::{self, Received, Rules},
    retry::RetryPolicy,
    settle::Context,
    store::{self, EventSource, EventState, MovementKind, StripeRefs, SuccessWrite, TrialState},
    testing::TestDb,
};
use serde_json::{Value, json};
use sqlx::postgres::PgListener;
use support::{apply, balance, insert, payment, read, usd, user, validation};

const RULES: Rules = Rules {
    retry: RetryPolicy::DEFAULT,
    mode: StripeMode::Test,
};

struct Uncounted;

impl store::DoorbellMetrics for Uncounted {
    fn doorbells_rung(&self, _: usize) {}
    fn doorbells_lost(&self, _: usize) {}
}

/// A top-up of `amount` cents for `user_id` with its PaymentIntent `pi` recorded, as
/// payments-api leaves it once Stripe answered.
async fn top_up(db: &TestDb, user_id: &str, pi: &str, amount: i64) -> TransactionId {
    let id = insert(db, &payment(user_id, &format!("k-{pi}"), amount)).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let refs = StripeRefs {
        payment_intent_id: Some(pi),
        ..StripeRefs::default()
    };
    store::set_stripe_refs(&mut conn, id, &refs)
        .await
        .expect("refs");
    id
}

async fn wallet(db: &TestDb, user_id: &str, currency: &str) {
    let mut conn = db.pool.acquire().await.expect("connection");
    let currency = Currency::parse(currency).expect("currency");
    store::ensure_wallet(&mut conn, &user(user_id), currency)
        .await
        .expect("wallet");
}

fn succeeded(event_id: &str, id: TransactionId, pi: &str, amount: i64) -> StripeEvent {
    let object = json!({
        "id": pi, "object": "payment_intent", "status": "succeeded", "amount": amount,
        "amount_received": amount, "currency": "usd", "latest_charge": format!("ch_{pi}"),
        "metadata": { "transaction_id": id.to_string() }
    });
    event(event_id, object)
}

fn event(event_id: &str, object: Value) -> StripeEvent {
    StripeEvent::from_value(json!({
        "id": event_id, "object": "event", "type": "payment_intent.succeeded",
        "api_version": "2024-06-20", "created": 1_700_000_000, "livemode": false,
        "data": { "object": object }
    }))
    .expect("valid event")
}

/// The write the inbox plans for a payment waiting on Stripe.
fn write(id: TransactionId, pi: &str, amount: i64) -> SuccessWrite<'_> {
    SuccessWrite {
        transaction_id: id,
        from: TransactionStatus::UNSETTLED
            .iter()
            .map(|status| (TransactionKind::Payment, *status))
            .collect(),
        payment_intent: pi,
        amount: usd(amount),
        charge: Some(format!("ch_{pi}")),
        credit: MovementKind::PaymentCredit,
        cause: "stripe_event",
    }
}

async fn write_success(
    db: &TestDb,
    write: &SuccessWrite<'_>,
    event: &StripeEvent,
) -> Result<Option<TransactionStatus>, store::StoreError> {
    let mut conn = db.pool.acquire().await.expect("connection");
    let written =
        store::write_success(&mut conn, write, event, EventSource::Webhook, false).await?;
    Ok(written.map(|w| w.from))
}

/// Everything one transaction's events wrote, to compare two runs: the row's
/// status, charge, version and failure, its audit trail, its ledger, its events.
async fn written(db: &TestDb, id: TransactionId) -> Value {
    let mut conn = db.pool.acquire().await.expect("connection");
    sqlx::query_scalar(
        "SELECT json_build_object( \
           'row', (SELECT json_build_array(status, stripe_charge_id, version, failure_code, \
                     amount_refunded, flagged) FROM transactions WHERE id = $1), \
           'audit', (SELECT json_agg(json_build_array(from_status, to_status, version, cause, \
                       stripe_event_id) ORDER BY version) FROM transaction_transitions \
                     WHERE transaction_id = $1), \
           'ledger', (SELECT json_agg(json_build_array(kind, movement_key, amount, currency, \
                        stripe_event_id) ORDER BY kind) FROM ledger_entries WHERE transaction_id = $1), \
           'events', (SELECT json_agg(json_build_array(id, state, attempts, last_error, \
                        next_attempt_at IS NULL, processed_at IS NULL, source) ORDER BY id) \
                      FROM stripe_events WHERE transaction_id = $1))",
    )
    .bind(id.as_uuid())
    .fetch_one(&mut *conn)
    .await
    .expect("read")
}

async fn events_stored(db: &TestDb) -> i64 {
    let mut conn = db.pool.acquire().await.expect("connection");
    sqlx::query_scalar("SELECT count(*) FROM stripe_events")
        .fetch_one(&mut *conn)
        .await
        .expect("count")
}

/// The distinct commits the stored events were written by.
async fn commits_of_events(db: &TestDb) -> i64 {
    let mut conn = db.pool.acquire().await.expect("connection");
    sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM stripe_events")
        .fetch_one(&mut *conn)
        .await
        .expect("count")
}

/// The state an event was stored in, or None for a duplicate.
fn state(received: Received) -> Option<EventState> {
    match received {
        Received::Stored(report) => Some(report.state),
        Received::Duplicate => None,
    }
}

fn states(received: Vec<Received>) -> Vec<Option<EventState>> {
    received.into_iter().map(state).collect()
}

#[tokio::test]
async fn the_one_statement_writes_what_the_general_path_writes() {
    let db = TestDb::new().await;
    // Twins: one success through the one statement, the other through the general path
    // (its guard wants a wallet, which the general path creates).
    let one = top_up(&db, "ann", "pi_ann", 1_500).await;
    let general = top_up(&db, "ben", "pi_ben", 1_500).await;
    wallet(&db, "ann", "usd").await;
    let first = succeeded("evt_ann", one, "pi_ann", 1_500);
    let applied = write_success(&db, &write(one, "pi_ann", 1_500), &first).await;
    assert_eq!(applied.expect("written"), Some(TransactionStatus::Created));
    let second = succeeded("evt_ben", general, "pi_ben", 1_500);
    let (doorbell, ringer) = store::Doorbell::after_commit(db.pool.clone(), Arc::new(Uncounted));
    let cache = store::ConnectionCache::new(db.pool.clone(), 1, Duration::from_secs(60));
    let received = inbox::receive_cached(&cache, &second, EventSource::Webhook, &RULES, &doorbell)
        .await
        .expect("general path");
    assert!(matches!(received, Received::Stored(_)));
    drop(doorbell);
    ringer.await.expect("rung");

    let (mut a, b) = (written(&db, one).await, written(&db, general).await);
    // The same rows, but for the names that differ between the twins.
    let text = a.to_string().replace("ann", "ben");
    a = serde_json::from_str(&text).expect("json");
    assert_eq!(a, b);
    assert_eq!(a["row"][0], "succeeded");
    assert_eq!(a["ledger"][0][2], 1_500);
    assert_eq!(balance(&db, "ann").await, 1_500);
    assert_eq!(balance(&db, "ben").await, 1_500);
}

/// Collecting, the statement rings nothing inside its commit and returns the doorbell
/// the trigger would have rung (the row at the version it committed), for the caller to
/// ring once the commit is done; the setting ends with the statement's own commit.
#[tokio::test]
async fn the_one_statement_can_leave_its_doorbell_to_the_caller() {
    let db = TestDb::new().await;
    let quiet = top_up(&db, "ivy", "pi_ivy", 400).await;
    let loud = top_up(&db, "jon", "pi_jon", 400).await;
    wallet(&db, "ivy", "usd").await;
    wallet(&db, "jon", "usd").await;
    let mut listener = PgListener::connect_with(&db.pool).await.expect("listener");
    listener.listen(TRANSACTION_CHANNEL).await.expect("listen");

    let mut conn = db.pool.acquire().await.expect("connection");
    let ivy = succeeded("evt_ivy", quiet, "pi_ivy", 400);
    let collected = store::write_success(
        &mut conn,
        &write(quiet, "pi_ivy", 400),
        &ivy,
        EventSource::Webhook,
        true,
    )
    .await
    .expect("written")
    .expect("its guard holds");
    let jon = succeeded("evt_jon", loud, "pi_jon", 400);
    let rung = store::write_success(
        &mut conn,
        &write(loud, "pi_jon", 400),
        &jon,
        EventSource::Webhook,
        false,
    )
    .await
    .expect("written")
    .expect("its guard holds");

    let (ivy, jon) = (read(&db, quiet).await, read(&db, loud).await);
    assert_eq!(ivy.status, TransactionStatus::Succeeded);
    assert_eq!(collected.from, TransactionStatus::Created);
    assert_eq!(
        collected.doorbell(quiet),
        format!("{}:{}", quiet, ivy.version)
    );
    assert_eq!(rung.doorbell(loud), format!("{}:{}", loud, jon.version));
    // Notifications arrive in commit order: had the collecting statement rung, its
    // doorbell would come first.
    let first = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a doorbell within 10 s")
        .expect("notification");
    assert_eq!(first.payload(), rung.doorbell(loud));
    assert_eq!(balance(&db, "ivy").await, 400);
}

#[tokio::test]
async fn a_stored_event_id_is_refused_and_a_settled_row_is_left_alone() {
    let db = TestDb::new().await;
    let id = top_up(&db, "cat", "pi_cat", 900).await;
    wallet(&db, "cat", "usd").await;
    let write = write(id, "pi_cat", 900);
    // Stored before the row could take it (kept unmatched for the retry worker), then
    // delivered again: the event's key refuses the statement, which undoes it all.
    let early = succeeded("evt_cat_early", id, "pi_cat", 900);
    let kept = store::EventOutcome {
        state: EventState::Unmatched,
        transaction_id: None,
        error: Some("no transaction matches the event yet"),
        next_attempt_at: None,
        count_attempt: true,
    };
    let mut conn = db.pool.acquire().await.expect("connection");
    store::insert_event(&mut conn, &early, EventSource::Webhook, &kept)
        .await
        .expect("stored");
    let again = write_success(&db, &write, &early)
        .await
        .expect_err("the event's key refuses it");
    assert!(again.is_repeated_event(), "{again}");
    assert_eq!(read(&db, id).await.status, TransactionStatus::Created);
    assert_eq!(balance(&db, "cat").await, 0);

    let event = succeeded("evt_cat", id, "pi_cat", 900);
    let from = write_success(&db, &write, &event).await.expect("first");
    assert_eq!(from, Some(TransactionStatus::Created));
    // The same event again, or another of the same success: the row is SUCCEEDED,
    // outside the guard, so the general path finds the duplicate or the stale event.
    for repeat in [&event, &succeeded("evt_cat_2", id, "pi_cat", 900)] {
        assert_eq!(
            write_success(&db, &write, repeat).await.expect("again"),
            None
        );
    }
    assert_eq!(balance(&db, "cat").await, 900);
    assert_eq!(events_stored(&db).await, 2);
}

#[tokio::test]
async fn outside_its_guard_the_statement_writes_nothing() {
    let db = TestDb::new().await;
    let event = |id, pi| succeeded(&format!("evt_{pi}"), id, pi, 700);

    // No wallet yet: the general path makes it.
    let id = top_up(&db, "dan", "pi_dan", 700).await;
    let none = write_success(&db, &write(id, "pi_dan", 700), &event(id, "pi_dan")).await;
    assert_eq!(none.expect("no wallet"), None);

    // A wallet in another currency: the general path flags the payment.
    let id = top_up(&db, "eve", "pi_eve", 700).await;
    wallet(&db, "eve", "eur").await;
    let none = write_success(&db, &write(id, "pi_eve", 700), &event(id, "pi_eve")).await;
    assert_eq!(none.expect("other currency"), None);

    // A trial running: the general path ends it.
    let v = insert(&db, &validation("fay", "fp_fay")).await;
    apply(&db, v, &Signal::Authorized, Context::default()).await;
    let id = top_up(&db, "fay", "pi_fay", 700).await;
    let none = write_success(&db, &write(id, "pi_fay", 700), &event(id, "pi_fay")).await;
    assert_eq!(none.expect("trial"), None);

    // Another PaymentIntent recorded, another amount, another currency, a status or a
    // kind the plan does not name.
    let id = top_up(&db, "gus", "pi_gus", 700).await;
    wallet(&db, "gus", "usd").await;
    let e = event(id, "pi_gus");
    let outside = [
        ("PaymentIntent", write(id, "pi_other", 700)),
        ("amount", write(id, "pi_gus", 701)),
        (
            "currency",
            SuccessWrite {
                amount: Money::new(700, Currency::parse("eur").expect("eur")).expect("money"),
                ..write(id, "pi_gus", 700)
            },
        ),
        (
            "status",
            SuccessWrite {
                from: vec![(TransactionKind::Payment, TransactionStatus::Pending)],
                ..write(id, "pi_gus", 700)
            },
        ),
        (
            "kind",
            SuccessWrite {
                from: vec![(TransactionKind::Coupon, TransactionStatus::Created)],
                ..write(id, "pi_gus", 700)
            },
        ),
    ];
    for (what, other) in &outside {
        let none = write_success(&db, other, &e).await.expect(what);
        assert_eq!(none, None, "another {what}");
    }

    // A failure recorded: the general path decides whether a late success replaces it.
    let id = top_up(&db, "hal", "pi_hal", 700).await;
    wallet(&db, "hal", "usd").await;
    let declined = Signal::Failed {
        code: "card_declined".into(),
        message: "declined".into(),
    };
    apply(&db, id, &declined, Context::default()).await;
    let late = SuccessWrite {
        from: vec![(TransactionKind::Payment, TransactionStatus::Failed)],
        ..write(id, "pi_hal", 700)
    };
    let none = write_success(&db, &late, &event(id, "pi_hal")).await;
    assert_eq!(none.expect("failure"), None);

    assert_eq!(events_stored(&db).await, 0);
    for name in ["dan", "eve", "gus", "hal"] {
        assert_eq!(balance(&db, name).await, 0, "{name}");
    }
    assert_eq!(balance(&db, "fay").await, 2_500, "the trial's grant only");
}

#[tokio::test]
async fn through_the_inbox_every_case_ends_as_the_rules_say() {
    let db = TestDb::new().await;
    let receive = async |event: &StripeEvent| {
        inbox::receive(&db.pool, event, EventSource::Webhook, &RULES)
            .await
            .expect("receive")
    };

    // The common case, then its redelivery, then a second event of the same success.
    let ivy = top_up(&db, "ivy", "pi_ivy", 1_000).await;
    wallet(&db, "ivy", "usd").await;
    let e = succeeded("evt_ivy", ivy, "pi_ivy", 1_000);
    assert_eq!(state(receive(&e).await), Some(EventState::Applied));
    assert!(matches!(receive(&e).await, Received::Duplicate));
    let again = succeeded("evt_ivy_2", ivy, "pi_ivy", 1_000);
    assert_eq!(state(receive(&again).await), Some(EventState::Stale));
    assert_eq!(balance(&db, "ivy").await, 1_000);

    // No wallet yet: made, then credited.
    let jon = top_up(&db, "jon", "pi_jon", 400).await;
    let e = succeeded("evt_jon", jon, "pi_jon", 400);
    assert_eq!(state(receive(&e).await), Some(EventState::Applied));
    assert_eq!(balance(&db, "jon").await, 400);

    // A running trial: credited and ended.
    let v = insert(&db, &validation("kim", "fp_kim")).await;
    apply(&db, v, &Signal::Authorized, Context::default()).await;
    let kim = top_up(&db, "kim", "pi_kim", 1_000).await;
    let e = succeeded("evt_kim", kim, "pi_kim", 1_000);
    assert_eq!(state(receive(&e).await), Some(EventState::Applied));
    let mut conn = db.pool.acquire().await.expect("connection");
    let trial = store::get_wallet(&mut conn, &user("kim"))
        .await
        .expect("wallet")
        .expect("exists");
    assert_eq!(
        (trial.balance, trial.trial_state),
        (3_500, TrialState::Ended)
    );

    // A wallet in another currency: succeeded, flagged, not credited.
    let lea = top_up(&db, "lea", "pi_lea", 600).await;
    wallet(&db, "lea", "eur").await;
    let e = succeeded("evt_lea", lea, "pi_lea", 600);
    assert_eq!(state(receive(&e).await), Some(EventState::Applied));
    let row = store::get_transaction(&mut conn, lea)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(row.status, TransactionStatus::Succeeded);
    assert!(row.flagged.is_some_and(|f| f.contains("wallet is in eur")));
    assert_eq!(balance(&db, "lea").await, 0);

    // Another PaymentIntent than the one recorded: flagged, nothing moves.
    let max = top_up(&db, "max", "pi_max", 600).await;
    wallet(&db, "max", "usd").await;
    let e = succeeded("evt_max", max, "pi_intruder", 600);
    assert_eq!(state(receive(&e).await), Some(EventState::Flagged));
    assert_eq!(read(&db, max).await.status, TransactionStatus::Created);

    // Nothing recorded yet (the webhook beat payments-api's write): adopted, applied.
    let ned = insert(&db, &payment("ned", "k-ned", 800)).await;
    wallet(&db, "ned", "usd").await;
    let e = succeeded("evt_ned", ned, "pi_ned", 800);
    assert_eq!(state(receive(&e).await), Some(EventState::Applied));
    assert_eq!(balance(&db, "ned").await, 800);

    // No transaction yet: kept, to be retried.
    let e = succeeded("evt_ola", TransactionId::new(), "pi_ola", 800);
    assert_eq!(state(receive(&e).await), Some(EventState::Unmatched));

    let report = store::check_ledger(&mut conn).await.expect("check");
    assert!(report.mismatches.is_empty(), "{report:?}");
}

#[tokio::test]
async fn concurrent_deliveries_credit_exactly_once() {
    let db = TestDb::new().await;
    let id = top_up(&db, "pam", "pi_pam", 2_000).await;
    wallet(&db, "pam", "usd").await;
    // The same event delivered eight times at once, and three other events of the same
    // success (Stripe's own duplicates have their own ids).
    let same = succeeded("evt_pam", id, "pi_pam", 2_000);
    let others: Vec<StripeEvent> = (0..3)
        .map(|n| succeeded(&format!("evt_pam_{n}"), id, "pi_pam", 2_000))
        .collect();
    let deliveries = std::iter::repeat_n(&same, 8).chain(&others).map(|event| {
        let pool = db.pool.clone();
        async move { inbox::receive(&pool, event, EventSource::Webhook, &RULES).await }
    });
    let results = join_all(deliveries).await;
    let states: Vec<Option<EventState>> = results
        .into_iter()
        .map(|r| state(r.expect("receive")))
        .collect();
    let count = |state| states.iter().filter(|s| **s == state).count();
    assert_eq!(count(Some(EventState::Applied)), 1, "{states:?}");
    assert_eq!(count(Some(EventState::Stale)), 3, "{states:?}");
    assert_eq!(count(None), 7, "{states:?}");
    assert_eq!(balance(&db, "pam").await, 2_000);
    assert_eq!(events_stored(&db).await, 4);
}

#[tokio::test]
async fn a_batch_writes_the_common_success_in_one_statement_and_reads_the_row_anew_after_it() {
    let db = TestDb::new().await;
    let id = top_up(&db, "quin", "pi_quin", 1_100).await;
    let other = top_up(&db, "rex", "pi_rex", 300).await;
    wallet(&db, "quin", "usd").await;
    wallet(&db, "rex", "usd").await;
    // The batch locks both rows first; the first event settles quin's in one statement,
    // so the second event about it must not decide from the row read before.
    let events = [
        succeeded("evt_quin", id, "pi_quin", 1_100),
        succeeded("evt_quin_2", id, "pi_quin", 1_100),
        succeeded("evt_rex", other, "pi_rex", 300),
    ];
    let batch: Vec<_> = events.iter().map(|e| (e, EventSource::Webhook)).collect();
    let cache = store::ConnectionCache::new(db.pool.clone(), 1, Duration::from_secs(60));
    let received = inbox::receive_batch(&cache, &batch, &RULES, &store::Doorbell::in_commit())
        .await
        .expect("batch");
    let applied = Some(EventState::Applied);
    assert_eq!(
        states(received),
        [applied, Some(EventState::Stale), applied]
    );
    assert_eq!(balance(&db, "quin").await, 1_100);
    assert_eq!(balance(&db, "rex").await, 300);
    let audit = written(&db, id).await["audit"].clone();
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
    // One commit for all three: the batch did not fail over to one event at a time.
    assert_eq!(commits_of_events(&db).await, 1);
}

#[tokio::test]
async fn a_batch_of_successes_meeting_a_stored_event_still_answers_each_one() {
    let db = TestDb::new().await;
    let sam = top_up(&db, "sam", "pi_sam", 500).await;
    let tia = top_up(&db, "tia", "pi_tia", 600).await;
    wallet(&db, "sam", "usd").await;
    wallet(&db, "tia", "usd").await;
    let first = succeeded("evt_sam", sam, "pi_sam", 500);
    let cache = store::ConnectionCache::new(db.pool.clone(), 1, Duration::from_secs(60));
    let in_commit = store::Doorbell::in_commit();
    inbox::receive_cached(&cache, &first, EventSource::Webhook, &RULES, &in_commit)
        .await
        .expect("first delivery");
    // A batch repeating an id takes the general batch path: its look-up finds the
    // redelivered event, and the repeat within the batch is a duplicate too.
    let second = succeeded("evt_tia", tia, "pi_tia", 600);
    let batch = [
        (&second, EventSource::Webhook),
        (&first, EventSource::Webhook),
        (&second, EventSource::Webhook),
    ];
    let received = inbox::receive_batch(&cache, &batch, &RULES, &in_commit)
        .await
        .expect("batch");
    assert_eq!(states(received), [Some(EventState::Applied), None, None]);
    assert_eq!(balance(&db, "sam").await, 500);
    assert_eq!(balance(&db, "tia").await, 600);
    assert_eq!(events_stored(&db).await, 2);
}

#[tokio::test]
async fn a_batch_of_successes_is_written_by_one_statement_and_the_rest_on_their_own() {
    let db = TestDb::new().await;
    let mut events = Vec::new();
    for (name, amount) in [("uma", 100), ("vic", 200), ("wes", 300)] {
        let pi = format!("pi_{name}");
        let id = top_up(&db, name, &pi, amount).await;
        wallet(&db, name, "usd").await;
        events.push(succeeded(&format!("evt_{name}"), id, &pi, amount));
    }
    let cache = store::ConnectionCache::new(db.pool.clone(), 1, Duration::from_secs(60));
    let in_commit = store::Doorbell::in_commit();
    let batch: Vec<_> = events.iter().map(|e| (e, EventSource::Webhook)).collect();
    let received = inbox::receive_batch(&cache, &batch, &RULES, &in_commit)
        .await
        .expect("batch");
    assert_eq!(states(received), [Some(EventState::Applied); 3]);
    assert_eq!(commits_of_events(&db).await, 1, "one statement, one commit");
    for (name, amount) in [("uma", 100), ("vic", 200), ("wes", 300)] {
        assert_eq!(balance(&db, name).await, amount, "{name}");
    }

    // One without a wallet fails its guard: the others are written together, it is
    // received on its own (its wallet made), in a commit of its own.
    let mut events = Vec::new();
    for (name, amount, has_wallet) in [("xia", 400, true), ("yan", 500, false), ("zed", 600, true)]
    {
        let pi = format!("pi_{name}");
        let id = top_up(&db, name, &pi, amount).await;
        if has_wallet {
            wallet(&db, name, "usd").await;
        }
        events.push(succeeded(&format!("evt_{name}"), id, &pi, amount));
    }
    let batch: Vec<_> = events.iter().map(|e| (e, EventSource::Webhook)).collect();
    let received = inbox::receive_batch(&cache, &batch, &RULES, &in_commit)
        .await
        .expect("batch");
    assert_eq!(states(received), [Some(EventState::Applied); 3]);
    assert_eq!(commits_of_events(&db).await, 3);
    for (name, amount) in [("xia", 400), ("yan", 500), ("zed", 600)] {
        assert_eq!(balance(&db, name).await, amount, "{name}");
    }

    // A batch meeting an event stored before: the statement is refused as a whole, and
    // the batch's general path answers the repeat and writes the rest in one commit.
    let late = top_up(&db, "amy", "pi_amy", 700).await;
    wallet(&db, "amy", "usd").await;
    let new = succeeded("evt_amy", late, "pi_amy", 700);
    let batch = [
        (&new, EventSource::Webhook),
        (&events[0], EventSource::Webhook),
    ];
    let received = inbox::receive_batch(&cache, &batch, &RULES, &in_commit)
        .await
        .expect("batch");
    assert_eq!(states(received), [Some(EventState::Applied), None]);
    assert_eq!(balance(&db, "amy").await, 700);
    assert_eq!(balance(&db, "xia").await, 400);
    assert_eq!(commits_of_events(&db).await, 4);
}

#[tokio::test]
async fn the_success_statement_is_planned_once_and_kept() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    // PostgreSQL plans a prepared statement for its values the first five times, then
    // keeps one plan for all values if that plan costs no more: the statement must let
    // it, or every event pays for planning again. The costs differ only on tables of
    // some size.
    sqlx::query(
        "INSERT INTO transactions (id, user_id, kind, status, amount, currency, \
           payment_method_id, idempotency_key, request_fingerprint, stripe_payment_intent_id) \
         SELECT gen_random_uuid(), 'many-' || (g % 1000), 'payment', 'created', 100, 'usd', \
           'pm_many', 'k-' || g, 'f', 'pi_many_' || g FROM generate_series(1, 100000) g",
    )
    .execute(&mut *conn)
    .await
    .expect("rows");
    sqlx::query("ANALYZE")
        .execute(&mut *conn)
        .await
        .expect("analyze");
    for n in 0..8 {
        let (name, pi) = (format!("plan-{n}"), format!("pi_plan_{n}"));
        let id = top_up(&db, &name, &pi, 100).await;
        wallet(&db, &name, "usd").await;
        let event = succeeded(&format!("evt_plan_{n}"), id, &pi, 100);
        let written = store::write_success(
            &mut conn,
            &write(id, &pi, 100),
            &event,
            EventSource::Webhook,
            false,
        )
        .await
        .expect("written");
        assert_eq!(written.map(|w| w.from), Some(TransactionStatus::Created));
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
    )
    .bind(store::WRITE_SUCCESSES)
    .fetch_one(&mut *conn)
    .await
    .expect("the statement is prepared on this connection");
    assert_eq!((generic, custom), (3, 5));
}

#[tokio::test]
async fn a_batch_crediting_one_wallet_twice_moves_its_balance_by_both() {
    let db = TestDb::new().await;
    let first = top_up(&db, "bea", "pi_bea_1", 250).await;
    let second = top_up(&db, "bea", "pi_bea_2", 750).await;
    wallet(&db, "bea", "usd").await;
    let events = [
        succeeded("evt_bea_1", first, "pi_bea_1", 250),
        succeeded("evt_bea_2", second, "pi_bea_2", 750),
    ];
    let batch: Vec<_> = events.iter().map(|e| (e, EventSource::Webhook)).collect();
    let cache = store::ConnectionCache::new(db.pool.clone(), 1, Duration::from_secs(60));
    let received = inbox::receive_batch(&cache, &batch, &RULES, &store::Doorbell::in_commit())
        .await
        .expect("batch");
    assert_eq!(states(received), [Some(EventState::Applied); 2]);
    assert_eq!(commits_of_events(&db).await, 1, "one statement");
    assert_eq!(balance(&db, "bea").await, 1_000);
    let mut conn = db.pool.acquire().await.expect("connection");
    let report = store::check_ledger(&mut conn).await.expect("check");
    assert!(report.mismatches.is_empty(), "{report:?}");
}

/// Batches crediting the same wallets in opposite orders, at once, through both batch
/// paths (all successes: the one statement; a repeated id: the general batch): none
/// waits on another in a cycle, so PostgreSQL breaks none (each would cost a second of
/// `deadlock_timeout` and could choose another writer as its victim), and each batch
/// commits its events together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_same_wallets_in_opposite_orders_never_deadlock() {
    const ROUNDS: usize = 8;
    const APP: &str = "batches-in-opposite-orders";
    let db = TestDb::new().await;
    let users: Vec<String> = (0..6).map(|n| format!("dl{n}")).collect();
    for name in &users {
        wallet(&db, name, "usd").await;
    }
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let mut batches = Vec::new();
        for b in 0..4 {
            let order: Vec<&String> = match b % 2 {
                0 => users.iter().collect(),
                _ => users.iter().rev().collect(),
            };
            let mut events = Vec::new();
            for name in order {
                let pi = format!("pi_{name}_{round}_{b}");
                let id = top_up(&db, name, &pi, 100).await;
                events.push(succeeded(&format!("evt_{name}_{round}_{b}"), id, &pi, 100));
            }
            if b >= 2 {
                events.push(events[0].clone());
            }
            batches.push(events);
        }
        rounds.push(batches);
    }
    let options = db
        .url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .expect("url")
        .application_name(APP);
    let workers = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("workers' pool");
    let cache = store::ConnectionCache::new(workers.clone(), 4, Duration::from_secs(60));
    let in_commit = store::Doorbell::in_commit();
    for batches in &rounds {
        let sends = batches.iter().map(|events| {
            let (cache, in_commit) = (&cache, &in_commit);
            async move {
                let batch: Vec<_> = events.iter().map(|e| (e, EventSource::Webhook)).collect();
                inbox::receive_batch(cache, &batch, &RULES, in_commit).await
            }
        });
        for (events, received) in batches.iter().zip(join_all(sends).await) {
            let mut expected = vec![Some(EventState::Applied); users.len()];
            expected.resize(events.len(), None);
            assert_eq!(states(received.expect("batch")), expected);
        }
    }
    for name in &users {
        assert_eq!(balance(&db, name).await, 100 * 4 * ROUNDS as i64, "{name}");
    }
    assert_eq!(commits_of_events(&db).await, 4 * ROUNDS as i64);
    // A backend reports its deadlocks when it exits at the latest.
    drop(cache);
    workers.close().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    for _ in 0..100 {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(APP)
                .fetch_one(&mut *conn)
                .await
                .expect("activity");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("deadlocks");
    assert_eq!(deadlocks, 0, "batches waited on each other in a cycle");
}
