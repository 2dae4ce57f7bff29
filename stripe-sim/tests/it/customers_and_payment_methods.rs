use std::collections::HashMap;

use stripe_core::customer::{
    CreateCustomer, ListPaymentMethodsCustomer, RetrieveCustomer, RetrieveCustomerReturned,
};
use stripe_payment::payment_method::{
    AttachPaymentMethod, DetachPaymentMethod, ListPaymentMethod, RetrievePaymentMethod,
};

use crate::support::{call, client, sim, stripe_error};

#[tokio::test]
async fn a_customer_is_created_and_retrieved_with_its_metadata() {
    let sim = sim().await;
    let client = client(&sim);
    let created = CreateCustomer::new()
        .email("ada@example.com")
        .name("Ada")
        .metadata(HashMap::from([("user_id".to_owned(), "u_1".to_owned())]))
        .send(&client)
        .await
        .expect("created");
    assert!(created.id.as_str().starts_with("cus_"));
    let RetrieveCustomerReturned::Customer(fetched) = RetrieveCustomer::new(created.id.clone())
        .send(&client)
        .await
        .expect("retrieved")
    else {
        panic!("not deleted");
    };
    assert_eq!(fetched.email.as_deref(), Some("ada@example.com"));
    assert_eq!(fetched.name.as_deref(), Some("Ada"));
    assert_eq!(fetched.metadata.expect("metadata")["user_id"], "u_1");
    assert!(!fetched.livemode);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_customer_is_a_404_resource_missing() {
    let sim = sim().await;
    let (error, status) = stripe_error(RetrieveCustomer::new("cus_nope").send(&client(&sim)).await);
    assert_eq!(status, 404);
    assert_eq!(error.code.expect("code").as_str(), "resource_missing");
    assert_eq!(error.type_.as_str(), "invalid_request_error");
}

#[tokio::test]
async fn attaching_a_test_token_creates_a_new_payment_method_with_a_stable_fingerprint() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new().send(&client).await.expect("customer");
    let first = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("attached");
    let second = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("attached");
    assert!(first.id.as_str().starts_with("pm_") && first.id.as_str() != "pm_card_visa");
    assert_ne!(first.id, second.id);
    let (card_a, card_b) = (first.card.expect("card"), second.card.expect("card"));
    assert_eq!(card_a.brand, "visa");
    assert_eq!(card_a.last4, "4242");
    assert_eq!(card_a.fingerprint, card_b.fingerprint);
    assert!(card_a.exp_year > 2025 && (1..=12).contains(&card_a.exp_month));
    let customer_id = first.customer.expect("attached").id().as_str().to_owned();
    assert_eq!(customer_id, customer.id.as_str());

    let mastercard = AttachPaymentMethod::new("pm_card_mastercard")
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("attached");
    let card = mastercard.card.expect("card");
    assert_eq!(
        (card.brand.as_str(), card.last4.as_str()),
        ("mastercard", "4444")
    );
    assert_ne!(card.fingerprint, card_a.fingerprint);
}

#[tokio::test]
async fn payment_methods_are_listed_per_customer_retrieved_and_detached() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new().send(&client).await.expect("customer");
    let other = CreateCustomer::new().send(&client).await.expect("customer");
    let visa = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("attached");
    let mc = AttachPaymentMethod::new("pm_card_mastercard")
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("attached");
    AttachPaymentMethod::new("pm_card_visa")
        .customer(other.id.as_str())
        .send(&client)
        .await
        .expect("attached");

    let listed = ListPaymentMethod::new()
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("listed");
    let ids: Vec<&str> = listed.data.iter().map(|pm| pm.id.as_str()).collect();
    assert_eq!(ids, [mc.id.as_str(), visa.id.as_str()], "newest first");
    let via_customer = ListPaymentMethodsCustomer::new(customer.id.clone())
        .send(&client)
        .await
        .expect("listed");
    assert_eq!(via_customer.data.len(), 2);

    let fetched = RetrievePaymentMethod::new(visa.id.clone())
        .send(&client)
        .await
        .expect("retrieved");
    assert_eq!(fetched.id, visa.id);

    let detached = DetachPaymentMethod::new(visa.id.clone())
        .send(&client)
        .await
        .expect("detached");
    assert!(detached.customer.is_none());
    let listed = ListPaymentMethod::new()
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("listed");
    assert_eq!(listed.data.len(), 1);

    let (_, status) = stripe_error(
        DetachPaymentMethod::new(visa.id.clone())
            .send(&client)
            .await,
    );
    assert_eq!(status, 400, "detaching twice is refused");

    let types: Vec<String> = sim
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "payment_method.attached")
            .count(),
        3
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "payment_method.detached")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_payment_method_attached_elsewhere_cannot_be_attached_again() {
    let sim = sim().await;
    let client = client(&sim);
    let a = CreateCustomer::new().send(&client).await.expect("customer");
    let b = CreateCustomer::new().send(&client).await.expect("customer");
    let pm = AttachPaymentMethod::new("pm_card_visa")
        .customer(a.id.as_str())
        .send(&client)
        .await
        .expect("attached");
    let (error, status) = stripe_error(
        AttachPaymentMethod::new(pm.id.clone())
            .customer(b.id.as_str())
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        error.code.expect("code").as_str(),
        "payment_method_unexpected_state"
    );
}

#[tokio::test]
async fn a_customer_default_payment_method_can_be_set_by_update() {
    let sim = sim().await;
    let (_, customer) = call(&sim, "POST", "/v1/customers", &[("email", "x@example.com")]).await;
    let id = customer["id"].as_str().expect("id");
    let (_, pm) = call(
        &sim,
        "POST",
        "/v1/payment_methods/pm_card_visa/attach",
        &[("customer", id)],
    )
    .await;
    let pm_id = pm["id"].as_str().expect("pm id");
    let path = format!("/v1/customers/{id}");
    let (status, updated) = call(
        &sim,
        "POST",
        &path,
        &[("invoice_settings[default_payment_method]", pm_id)],
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["invoice_settings"]["default_payment_method"], pm_id);
    let (_, expanded) = call(
        &sim,
        "GET",
        &path,
        &[("expand[]", "invoice_settings.default_payment_method")],
    )
    .await;
    assert_eq!(
        expanded["invoice_settings"]["default_payment_method"]["card"]["last4"],
        "4242"
    );
}

#[tokio::test]
async fn a_detached_payment_method_is_never_attached_or_charged_again() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new().send(&client).await.expect("customer");
    let visa = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("attached");
    DetachPaymentMethod::new(visa.id.clone())
        .send(&client)
        .await
        .expect("detached");
    let events_before = sim.events().len();

    for owner in [
        &customer,
        &CreateCustomer::new().send(&client).await.expect("customer"),
    ] {
        let (error, status) = stripe_error(
            AttachPaymentMethod::new(visa.id.clone())
                .customer(owner.id.as_str())
                .send(&client)
                .await,
        );
        assert_eq!(status, 400);
        assert_eq!(
            error.message.as_deref(),
            Some(
                "This PaymentMethod was previously used without being attached to a Customer or was detached from a Customer, and may not be used again."
            )
        );
    }
    let (status, body) = crate::support::call(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "500"),
            ("currency", "usd"),
            ("payment_method", visa.id.as_str()),
            ("confirm", "true"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("It may not be used again"))
    );
    let fetched = RetrievePaymentMethod::new(visa.id.clone())
        .send(&client)
        .await
        .expect("still retrievable");
    assert!(fetched.customer.is_none());
    let attached_after: Vec<serde_json::Value> = sim.events()[events_before..]
        .iter()
        .filter(|e| e["type"] == "payment_method.attached")
        .cloned()
        .collect();
    assert!(attached_after.is_empty(), "nothing changed at Stripe");
}
