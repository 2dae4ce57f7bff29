//! The database's health signals in `GET /metrics`: events waiting by state,
//! unsettled transactions by status, each with the age of its oldest row, read by
//! the signals worker (not per request or per scrape).

use std::time::Duration;

use crate::{
    events::{event_id, payment_method},
    helpers::{Result, TestApp, eventually},
};

/// The value of the sample `series` (name and labels as exported).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_events_and_unsettled_transactions_are_counted_with_their_age() -> Result {
    let app = TestApp::start_with(|c| {
        c.signals_interval = Some(Duration::from_millis(50));
        c.retry.max_attempts = 100;
    })
    .await?;
    let tx = app.payment("olive", 1_500, "pi_signals").await?;
    // An attach for a customer nobody has: stored and kept as unmatched.
    let event = payment_method(
        "payment_method.attached",
        "pm_sig",
        Some("cus_nobody"),
        "fp_s",
    );
    app.deliver(&event).await?;
    assert_eq!(app.event_state(&event_id(&event)).await?, "unmatched");
    // As if both had waited: the event an hour, the transaction two.
    sqlx::query("UPDATE stripe_events SET received_at = now() - interval '1 hour'")
        .execute(app.pool())
        .await?;
    sqlx::query("UPDATE transactions SET created_at = now() - interval '2 hours' WHERE id = $1")
        .bind(tx.id.as_uuid())
        .execute(app.pool())
        .await?;
    let status = tx.status.as_str();
    let unsettled_age =
        format!("payments_transactions_oldest_unsettled_age_seconds{{status=\"{status}\"}}");
    let (app, series) = (&app, &unsettled_age);
    eventually("the signals see the backdated rows", || async move {
        let (_, text) = app.get("/metrics").await?;
        Ok(sample(&text, series).is_some_and(|age| age >= 7_200.0))
    })
    .await?;
    let (_, text) = app.get("/metrics").await?;
    let value = |series: &str| {
        sample(&text, series).unwrap_or_else(|| panic!("{series} missing from\n{text}"))
    };
    assert_eq!(value(r#"payments_events{state="unmatched"}"#), 1.0);
    assert_eq!(value(r#"payments_events{state="dead"}"#), 0.0);
    let event_age = value(r#"payments_events_oldest_age_seconds{state="unmatched"}"#);
    assert!((3_600.0..3_700.0).contains(&event_age), "{event_age}");
    assert_eq!(
        value(r#"payments_events_oldest_age_seconds{state="dead"}"#),
        0.0
    );
    let unsettled = format!("payments_transactions_unsettled{{status=\"{status}\"}}");
    assert_eq!(value(&unsettled), 1.0);
    assert!(value(&unsettled_age) < 7_300.0);
    assert_eq!(value("payments_outbox_oldest_age_seconds"), 0.0);
    let refreshed = value("payments_signals_refreshed_timestamp_seconds");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - 60.0..=now + 1.0).contains(&refreshed), "{refreshed}");
    Ok(())
}
