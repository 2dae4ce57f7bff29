use serde_json::Value;

use crate::support::{call, sim};

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn events_are_listed_newest_first_and_paginate_both_ways() {
    let sim = sim().await;
    for n in 0..7 {
        call(
            &sim,
            "POST",
            "/v1/customers",
            &[("email", &format!("{n}@example.com"))],
        )
        .await;
    }
    let all: Vec<String> = sim
        .events()
        .iter()
        .rev()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(all.len(), 7);

    let (status, first) = call(&sim, "GET", "/v1/events", &[("limit", "3")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        (first["object"].as_str(), first["url"].as_str()),
        (Some("list"), Some("/v1/events"))
    );
    assert_eq!(ids(&first), all[0..3]);
    assert_eq!(first["has_more"], true);

    let (_, second) = call(
        &sim,
        "GET",
        "/v1/events",
        &[("limit", "3"), ("starting_after", &all[2])],
    )
    .await;
    assert_eq!(ids(&second), all[3..6]);
    let (_, last) = call(
        &sim,
        "GET",
        "/v1/events",
        &[("limit", "3"), ("starting_after", &all[5])],
    )
    .await;
    assert_eq!(
        (ids(&last), last["has_more"].as_bool()),
        (all[6..].to_vec(), Some(false))
    );
    let (_, back) = call(
        &sim,
        "GET",
        "/v1/events",
        &[("limit", "2"), ("ending_before", &all[3])],
    )
    .await;
    assert_eq!(
        (ids(&back), back["has_more"].as_bool()),
        (all[1..3].to_vec(), Some(true))
    );

    let (status, default) = call(&sim, "GET", "/v1/events", &[]).await;
    assert_eq!((status, ids(&default).len()), (200, 7));
    let (status, _) = call(&sim, "GET", "/v1/events", &[("limit", "101")]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn events_filter_by_type_and_created() {
    let sim = sim().await;
    let (_, customer) = call(&sim, "POST", "/v1/customers", &[]).await;
    let customer = customer["id"].as_str().expect("id");
    call(
        &sim,
        "POST",
        "/v1/payment_methods/pm_card_visa/attach",
        &[("customer", customer)],
    )
    .await;
    call(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "100"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
        ],
    )
    .await;

    let (_, by_type) = call(
        &sim,
        "GET",
        "/v1/events",
        &[("type", "payment_method.attached")],
    )
    .await;
    assert_eq!(ids(&by_type).len(), 1);
    let (_, wildcard) = call(&sim, "GET", "/v1/events", &[("type", "payment_intent.*")]).await;
    assert_eq!(ids(&wildcard).len(), 2);
    let (_, several) = call(
        &sim,
        "GET",
        "/v1/events",
        &[
            ("types[]", "customer.created"),
            ("types[]", "charge.succeeded"),
        ],
    )
    .await;
    let types: Vec<&str> = several["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["charge.succeeded", "customer.created"]);

    let created = sim.events()[0]["created"].as_i64().expect("created");
    let (_, future) = call(
        &sim,
        "GET",
        "/v1/events",
        &[("created[gt]", &created.to_string())],
    )
    .await;
    assert!(ids(&future).len() < 5, "only events of later seconds");
    let (_, range) = call(
        &sim,
        "GET",
        "/v1/events",
        &[
            ("created[gte]", &created.to_string()),
            ("created[lte]", &(created + 60).to_string()),
        ],
    )
    .await;
    assert_eq!(ids(&range).len(), 5);
}

#[tokio::test]
async fn an_event_has_stripes_shape_and_can_be_retrieved() {
    let sim = sim().await;
    let ((_, customer), _) = crate::support::call_with(
        &sim,
        "POST",
        "/v1/customers",
        &[("name", "N")],
        Some(crate::support::KEY),
        Some("idem-evt-1"),
    )
    .await;
    let event = sim.events().pop().expect("event");
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "customer.created");
    assert_eq!(event["api_version"], stripe_sim::API_VERSION);
    assert_eq!(event["livemode"], false);
    assert_eq!(event["data"]["object"]["id"], customer["id"]);
    assert_eq!(event["request"]["idempotency_key"], "idem-evt-1");
    assert!(
        event["request"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("req_"))
    );
    assert!(event["pending_webhooks"].is_number());
    let (status, fetched) = call(
        &sim,
        "GET",
        &format!("/v1/events/{}", event["id"].as_str().expect("id")),
        &[],
    )
    .await;
    assert_eq!((status, &fetched), (200, &event));
    let (status, _) = call(&sim, "GET", "/v1/events/evt_missing", &[]).await;
    assert_eq!(status, 404);
}

/// `count` customers (one `customer.created` each), 32 requests at a time.
pub async fn create_customers(sim: &stripe_sim::StripeSim, count: usize) {
    let client = reqwest::Client::new();
    let url = format!("{}/v1/customers", sim.base_url());
    let mut running = tokio::task::JoinSet::new();
    for n in 0..count {
        if running.len() == 32 {
            running.join_next().await;
        }
        let request = client
            .post(&url)
            .bearer_auth(crate::support::KEY)
            .form(&[("email", format!("{n}@example.com"))]);
        running.spawn(async move {
            let response = request.send().await.expect("sent");
            assert_eq!(response.status(), 200);
        });
    }
    while let Some(done) = running.join_next().await {
        done.expect("request task");
    }
}

/// Pages `GET /v1/events` from the newest event to the oldest with `starting_after`.
async fn page_back(sim: &stripe_sim::StripeSim, extra: &[(&str, &str)]) -> (Vec<String>, usize) {
    let (mut seen, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let mut query: Vec<(&str, &str)> = vec![("limit", "100")];
        query.extend_from_slice(extra);
        if let Some(after) = &cursor {
            query.push(("starting_after", after));
        }
        let (status, page) = call(sim, "GET", "/v1/events", &query).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let ids = ids(&page);
        seen.extend(ids.iter().cloned());
        if page["has_more"] != true {
            return (seen, pages);
        }
        cursor = ids.last().cloned();
    }
}

#[tokio::test]
async fn thousands_of_events_page_back_to_the_first_and_forward_again() {
    let sim = sim().await;
    create_customers(&sim, 2_600).await;
    let newest_first: Vec<String> = sim
        .events()
        .iter()
        .rev()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(newest_first.len(), 2_600);

    let (seen, pages) = page_back(&sim, &[]).await;
    assert_eq!(pages, 26);
    assert_eq!(seen, newest_first, "every event once, newest first");

    // Forward again from the oldest, as a catch-up holding a cursor does.
    let mut cursor = newest_first.last().cloned().expect("oldest");
    let mut forward = Vec::new();
    loop {
        let (_, page) = call(
            &sim,
            "GET",
            "/v1/events",
            &[("limit", "100"), ("ending_before", &cursor)],
        )
        .await;
        let mut ids = ids(&page);
        if ids.is_empty() {
            break;
        }
        cursor = ids[0].clone();
        ids.reverse();
        forward.extend(ids);
        if page["has_more"] != true {
            break;
        }
    }
    let oldest_first: Vec<String> = newest_first.iter().rev().skip(1).cloned().collect();
    assert_eq!(forward, oldest_first);
}

#[tokio::test]
async fn the_log_forgets_beyond_its_retention_and_a_lost_cursor_is_a_404() {
    let sim = stripe_sim::StripeSim::builder()
        .seed(3)
        .event_retention(50)
        .start()
        .await
        .expect("sim starts");
    create_customers(&sim, 10).await;
    let oldest = sim.events()[0]["id"].as_str().expect("id").to_owned();
    create_customers(&sim, 50).await;

    assert_eq!(sim.events().len(), 50);
    let (seen, _) = page_back(&sim, &[]).await;
    assert_eq!(seen.len(), 50);
    assert!(!seen.contains(&oldest));
    let (status, error) = call(&sim, "GET", "/v1/events", &[("starting_after", &oldest)]).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error"]["code"], "resource_missing");
    assert_eq!(error["error"]["param"], "starting_after");
    let (status, _) = call(&sim, "GET", &format!("/v1/events/{oldest}"), &[]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn filters_apply_while_paging() {
    let sim = sim().await;
    for n in 0..30 {
        call(&sim, "POST", "/v1/customers", &[]).await;
        if n % 3 == 0 {
            call(
                &sim,
                "POST",
                "/v1/coupons",
                &[("percent_off", "10"), ("duration", "once")],
            )
            .await;
        }
    }
    let (coupons, pages) = page_back(&sim, &[("type", "coupon.created")]).await;
    assert_eq!((coupons.len(), pages), (10, 1));
    let (_, page) = call(
        &sim,
        "GET",
        "/v1/events",
        &[("type", "coupon.created"), ("limit", "4")],
    )
    .await;
    assert_eq!(ids(&page), coupons[..4]);
    let (_, next) = call(
        &sim,
        "GET",
        "/v1/events",
        &[
            ("type", "coupon.created"),
            ("limit", "4"),
            ("starting_after", &coupons[3]),
        ],
    )
    .await;
    assert_eq!(ids(&next), coupons[4..8]);
    assert_eq!(next["has_more"], true);
}
