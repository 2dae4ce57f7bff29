use std::time::Duration;

use stripe_sim::StripeSim;

use crate::support::{Receiver, call, signed_by};

const FAST: [Duration; 4] = [Duration::from_millis(20); 4];

async fn sim_for(receiver: &Receiver, secret: &str) -> StripeSim {
    StripeSim::builder()
        .webhook_url(&receiver.url)
        .webhook_secret(secret)
        .seed(1)
        .retry_schedule(FAST.to_vec())
        .start()
        .await
        .expect("sim starts")
}

#[tokio::test]
async fn events_are_delivered_signed_with_stripes_scheme() {
    let receiver = Receiver::start(0).await;
    let sim = sim_for(&receiver, "whsec_test_one").await;
    let (_, customer) = call(
        &sim,
        "POST",
        "/v1/customers",
        &[("email", "hook@example.com")],
    )
    .await;
    receiver
        .wait_until(Duration::from_secs(5), |r| !r.is_empty())
        .await;
    let delivery = &receiver.received()[0];
    assert!(
        signed_by(&delivery.signature, "whsec_test_one", &delivery.body),
        "{}",
        delivery.signature
    );
    assert!(!signed_by(
        &delivery.signature,
        "whsec_other",
        &delivery.body
    ));
    assert!(delivery.signature.starts_with("t="));
    assert!(delivery.content_type.starts_with("application/json"));
    assert!(delivery.user_agent.starts_with("Stripe/"));
    let event = delivery.event();
    assert_eq!(event["type"], "customer.created");
    assert_eq!(event["data"]["object"]["id"], customer["id"]);
    assert_eq!(event["pending_webhooks"], 1);
    assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
    assert_eq!(sim.delivery_stats().delivered, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn during_rotation_every_active_secret_signs() {
    let receiver = Receiver::start(0).await;
    let sim = sim_for(&receiver, "whsec_old").await;
    sim.set_webhook_secrets(vec!["whsec_old", "whsec_new"]);
    call(&sim, "POST", "/v1/customers", &[]).await;
    receiver
        .wait_until(Duration::from_secs(5), |r| !r.is_empty())
        .await;
    let delivery = &receiver.received()[0];
    assert_eq!(delivery.signature.matches("v1=").count(), 2);
    assert!(signed_by(&delivery.signature, "whsec_old", &delivery.body));
    assert!(signed_by(&delivery.signature, "whsec_new", &delivery.body));

    sim.set_webhook_secrets(vec!["whsec_new"]);
    call(&sim, "POST", "/v1/customers", &[]).await;
    receiver
        .wait_until(Duration::from_secs(5), |r| r.len() == 2)
        .await;
    let later = &receiver.received()[1];
    assert!(signed_by(&later.signature, "whsec_new", &later.body));
    assert!(!signed_by(&later.signature, "whsec_old", &later.body));
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_until_it_answers_2xx() {
    let receiver = Receiver::start(3).await;
    let sim = sim_for(&receiver, "whsec_retry").await;
    call(&sim, "POST", "/v1/customers", &[]).await;
    assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
    let received = receiver.received();
    assert_eq!(
        received.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    let ids: Vec<String> = received
        .iter()
        .map(|r| r.event()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "the same event each time"
    );
    let stats = sim.delivery_stats();
    assert_eq!((stats.attempts, stats.delivered, stats.failed), (4, 1, 0));
}

#[tokio::test]
async fn delivery_gives_up_after_the_schedule_and_unreachable_endpoints_count_as_failures() {
    let sim = StripeSim::builder()
        .webhook_url("http://127.0.0.1:9/unreachable")
        .retry_schedule(vec![Duration::from_millis(10); 2])
        .start()
        .await
        .expect("sim");
    call(&sim, "POST", "/v1/customers", &[]).await;
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);
    let stats = sim.delivery_stats();
    assert_eq!((stats.attempts, stats.failed, stats.delivered), (3, 1, 0));
}

#[tokio::test]
async fn an_endpoint_added_at_runtime_receives_later_events() {
    let sim = StripeSim::builder()
        .webhook_secret("whsec_late")
        .start()
        .await
        .expect("sim");
    call(&sim, "POST", "/v1/customers", &[]).await;
    let receiver = Receiver::start(0).await;
    sim.add_webhook_endpoint(&receiver.url);
    call(&sim, "POST", "/v1/customers", &[]).await;
    receiver
        .wait_until(Duration::from_secs(5), |r| !r.is_empty())
        .await;
    assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
    assert_eq!(
        receiver.received().len(),
        1,
        "only the event created after the endpoint was added"
    );
}

/// Creates `n` customers one after the other and waits for delivery to settle.
async fn chaos_run(
    seed: u64,
    n: usize,
) -> (
    Vec<String>,
    Vec<stripe_sim::EventFate>,
    Vec<String>,
    Vec<String>,
) {
    let receiver = Receiver::start(0).await;
    let sim = StripeSim::builder()
        .webhook_url(&receiver.url)
        .webhook_secret("whsec_chaos")
        .seed(seed)
        .drop_rate(0.25)
        .duplicate_rate(0.25)
        .reorder_window(Duration::from_millis(200))
        .start()
        .await
        .expect("sim");
    for i in 0..n {
        call(
            &sim,
            "POST",
            "/v1/customers",
            &[("email", &format!("{i}@example.com"))],
        )
        .await;
    }
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);
    let (_, listed) = call(&sim, "GET", "/v1/events", &[("limit", "100")]).await;
    let listed: Vec<String> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    let created: Vec<String> = sim
        .events()
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    let fates = sim.event_fates();
    sim.shutdown().await;
    (created, fates, receiver.delivered_ids(), listed)
}

#[tokio::test]
async fn chaos_with_a_fixed_seed_drops_and_duplicates_the_same_events_every_run() {
    let (created_a, fates_a, delivered_a, listed_a) = chaos_run(7, 30).await;
    let (created_b, fates_b, delivered_b, _) = chaos_run(7, 30).await;
    assert_eq!(created_a, created_b, "a seeded run makes the same ids");
    assert_eq!(fates_a, fates_b);

    let dropped: Vec<&String> = fates_a
        .iter()
        .filter(|f| f.dropped)
        .map(|f| &f.event_id)
        .collect();
    let duplicated: Vec<&String> = fates_a
        .iter()
        .filter(|f| !f.dropped && f.copies == 2)
        .map(|f| &f.event_id)
        .collect();
    assert!(
        !dropped.is_empty() && !duplicated.is_empty(),
        "the rates are high enough to see both"
    );
    for delivered in [&delivered_a, &delivered_b] {
        for id in &created_a {
            let times = delivered.iter().filter(|d| *d == id).count();
            let expected = if dropped.contains(&id) {
                0
            } else if duplicated.contains(&id) {
                2
            } else {
                1
            };
            assert_eq!(times, expected, "{id}");
        }
    }
    let mut sorted_a = delivered_a.clone();
    let mut sorted_b = delivered_b.clone();
    sorted_a.sort();
    sorted_b.sort();
    assert_eq!(sorted_a, sorted_b);
    for id in &dropped {
        assert!(listed_a.contains(id), "dropped events are still listed");
    }
    let first_seen: Vec<&String> = delivered_a.iter().fold(Vec::new(), |mut seen, id| {
        if !seen.contains(&id) {
            seen.push(id);
        }
        seen
    });
    let in_creation_order: Vec<&String> = created_a
        .iter()
        .filter(|id| first_seen.contains(id))
        .collect();
    assert_ne!(
        first_seen, in_creation_order,
        "the reorder window shuffles arrival"
    );

    let (_, fates_other_seed, _, _) = chaos_run(8, 30).await;
    let pattern = |fates: &[stripe_sim::EventFate]| {
        fates
            .iter()
            .map(|f| (f.dropped, f.copies))
            .collect::<Vec<_>>()
    };
    assert_ne!(pattern(&fates_a), pattern(&fates_other_seed));
}

#[tokio::test]
async fn a_slow_endpoint_does_not_slow_the_api() {
    let sim = StripeSim::builder()
        .webhook_url("http://127.0.0.1:9/unreachable")
        .delay(Duration::from_secs(30))
        .start()
        .await
        .expect("sim");
    let started = std::time::Instant::now();
    for _ in 0..20 {
        call(&sim, "POST", "/v1/customers", &[]).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(sim.delivery_stats().in_flight, 20);
    sim.shutdown().await;
}
