use std::collections::HashMap;

use stripe_core::customer::CreateCustomer;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CancelPaymentIntentCancellationReason, CapturePaymentIntent,
    ConfirmPaymentIntent, CreatePaymentIntent, RetrievePaymentIntent,
};
use stripe_core::{PaymentIntentCaptureMethod, PaymentIntentStatus};
use stripe_types::Currency;

use crate::support::{call, client, sim, stripe_error};

fn event_types(sim: &stripe_sim::StripeSim) -> Vec<String> {
    sim.events()
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn an_automatic_capture_payment_succeeds_in_one_call() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new().send(&client).await.expect("customer");
    let intent = CreatePaymentIntent::new(2000, Currency::USD)
        .customer(customer.id.as_str())
        .payment_method("pm_card_visa")
        .confirm(true)
        .metadata(HashMap::from([(
            "transaction_id".to_owned(),
            "tx_42".to_owned(),
        )]))
        .description("order 42")
        .send(&client)
        .await
        .expect("created");
    assert_eq!(intent.status, PaymentIntentStatus::Succeeded);
    assert_eq!(intent.amount_received, 2000);
    assert_eq!(intent.amount_capturable, 0);
    assert_eq!(intent.metadata["transaction_id"], "tx_42");
    let secret = intent.client_secret.clone().expect("client secret");
    assert!(secret.starts_with(&format!("{}_secret_", intent.id.as_str())));
    let charge_id = intent
        .latest_charge
        .as_ref()
        .expect("charge")
        .id()
        .as_str()
        .to_owned();

    let (status, charge) = call(&sim, "GET", &format!("/v1/charges/{charge_id}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(charge["status"], "succeeded");
    assert_eq!(charge["captured"], true);
    assert_eq!(charge["payment_intent"], intent.id.as_str());
    assert_eq!(charge["metadata"]["transaction_id"], "tx_42");

    let fetched = RetrievePaymentIntent::new(intent.id.clone())
        .send(&client)
        .await
        .expect("retrieved");
    assert_eq!(fetched.status, PaymentIntentStatus::Succeeded);
    assert_eq!(
        event_types(&sim)[1..],
        [
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded"
        ]
    );
}

#[tokio::test]
async fn a_payment_can_be_created_then_confirmed_separately_with_mastercard() {
    let sim = sim().await;
    let client = client(&sim);
    let intent = CreatePaymentIntent::new(500, Currency::EUR)
        .send(&client)
        .await
        .expect("created");
    assert_eq!(intent.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(intent.payment_method_types, ["card"]);
    let confirmed = ConfirmPaymentIntent::new(intent.id.clone())
        .payment_method("pm_card_mastercard")
        .send(&client)
        .await
        .expect("confirmed");
    assert_eq!(confirmed.status, PaymentIntentStatus::Succeeded);
    assert!(
        confirmed
            .payment_method
            .expect("pm")
            .id()
            .as_str()
            .starts_with("pm_")
    );
}

#[tokio::test]
async fn a_manual_capture_payment_waits_for_capture() {
    let sim = sim().await;
    let client = client(&sim);
    let intent = CreatePaymentIntent::new(3000, Currency::USD)
        .payment_method("pm_card_visa")
        .capture_method(PaymentIntentCaptureMethod::Manual)
        .confirm(true)
        .send(&client)
        .await
        .expect("created");
    assert_eq!(intent.status, PaymentIntentStatus::RequiresCapture);
    assert_eq!(intent.amount_capturable, 3000);
    assert!(event_types(&sim).contains(&"payment_intent.amount_capturable_updated".to_owned()));

    let captured = CapturePaymentIntent::new(intent.id.clone())
        .amount_to_capture(2500)
        .send(&client)
        .await
        .expect("captured");
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!(captured.amount_received, 2500);
    assert_eq!(captured.amount_capturable, 0);
    let charge_id = captured
        .latest_charge
        .expect("charge")
        .id()
        .as_str()
        .to_owned();
    let (_, charge) = call(&sim, "GET", &format!("/v1/charges/{charge_id}"), &[]).await;
    assert_eq!(charge["amount_captured"], 2500);
    assert_eq!(
        charge["amount_refunded"], 500,
        "the uncaptured rest is released"
    );

    let (error, status) = stripe_error(
        CapturePaymentIntent::new(intent.id.clone())
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        error.code.expect("code").as_str(),
        "payment_intent_unexpected_state"
    );
}

#[tokio::test]
async fn a_manual_capture_payment_can_be_canceled_instead() {
    let sim = sim().await;
    let client = client(&sim);
    let intent = CreatePaymentIntent::new(3000, Currency::USD)
        .payment_method("pm_card_visa")
        .capture_method(PaymentIntentCaptureMethod::Manual)
        .confirm(true)
        .send(&client)
        .await
        .expect("created");
    let canceled = CancelPaymentIntent::new(intent.id.clone())
        .cancellation_reason(CancelPaymentIntentCancellationReason::RequestedByCustomer)
        .send(&client)
        .await
        .expect("canceled");
    assert_eq!(canceled.status, PaymentIntentStatus::Canceled);
    assert_eq!(
        canceled.cancellation_reason.expect("reason").as_str(),
        "requested_by_customer"
    );
    assert!(canceled.canceled_at.is_some());
    assert_eq!(
        event_types(&sim).last().map(String::as_str),
        Some("payment_intent.canceled")
    );
    let (error, status) = stripe_error(
        CancelPaymentIntent::new(intent.id.clone())
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        error.code.expect("code").as_str(),
        "payment_intent_unexpected_state"
    );
}

#[tokio::test]
async fn a_declined_card_is_a_402_with_the_payment_intent_and_a_retry_with_another_card_succeeds() {
    let sim = sim().await;
    let client = client(&sim);
    let intent = CreatePaymentIntent::new(1500, Currency::USD)
        .send(&client)
        .await
        .expect("created");
    let (error, status) = stripe_error(
        ConfirmPaymentIntent::new(intent.id.clone())
            .payment_method("pm_card_chargeDeclined")
            .send(&client)
            .await,
    );
    assert_eq!(status, 402);
    assert_eq!(error.type_.as_str(), "card_error");
    assert_eq!(error.code.as_ref().expect("code").as_str(), "card_declined");
    assert_eq!(error.decline_code.as_deref(), Some("generic_decline"));
    assert!(
        error
            .charge
            .as_deref()
            .is_some_and(|c| c.starts_with("ch_"))
    );
    let failed = error.payment_intent.expect("payment intent in the error");
    assert_eq!(failed.id, intent.id);
    assert_eq!(failed.status, PaymentIntentStatus::RequiresPaymentMethod);
    let last_error = failed.last_payment_error.expect("last_payment_error");
    assert_eq!(last_error.decline_code.as_deref(), Some("generic_decline"));
    assert_eq!(last_error.type_.as_str(), "card_error");

    let types = event_types(&sim);
    assert!(
        types.contains(&"charge.failed".to_owned())
            && types.contains(&"payment_intent.payment_failed".to_owned())
    );

    let retried = ConfirmPaymentIntent::new(intent.id.clone())
        .payment_method("pm_card_visa")
        .send(&client)
        .await
        .expect("second card works");
    assert_eq!(retried.status, PaymentIntentStatus::Succeeded);
    assert!(retried.last_payment_error.is_none());
}

#[tokio::test]
async fn insufficient_funds_has_its_own_decline_code() {
    let sim = sim().await;
    let client = client(&sim);
    let (error, status) = stripe_error(
        CreatePaymentIntent::new(1500, Currency::USD)
            .payment_method("pm_card_chargeDeclinedInsufficientFunds")
            .confirm(true)
            .send(&client)
            .await,
    );
    assert_eq!(status, 402);
    assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(error.code.expect("code").as_str(), "card_declined");
}

#[tokio::test]
async fn invalid_parameters_are_400s_naming_the_parameter() {
    let sim = sim().await;
    let (status, body) = call(&sim, "POST", "/v1/payment_intents", &[("currency", "usd")]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "amount");
    assert_eq!(body["error"]["code"], "parameter_missing");
    let (status, body) = call(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[("amount", "ten"), ("currency", "usd")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "parameter_invalid_integer");
    let (status, body) = call(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "100"),
            ("currency", "usd"),
            ("payment_method", "pm_nope"),
        ],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "resource_missing");
}

#[tokio::test]
async fn payment_intents_and_invoices_are_found_by_their_metadata() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new().send(&client).await.expect("customer");
    for tx in ["tx_a", "tx_b", "tx_a"] {
        CreatePaymentIntent::new(500, Currency::USD)
            .customer(customer.id.as_str())
            .payment_method("pm_card_visa")
            .confirm(true)
            .metadata(HashMap::from([(
                "transaction_id".to_owned(),
                tx.to_owned(),
            )]))
            .send(&client)
            .await
            .expect("created");
    }
    let query = "metadata['transaction_id']:'tx_a'";
    let (status, found) = call(
        &sim,
        "GET",
        "/v1/payment_intents/search",
        &[("query", query)],
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["object"], "search_result");
    let data = found["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert!(
        data.iter()
            .all(|pi| pi["metadata"]["transaction_id"] == "tx_a")
    );

    let (status, none) = call(
        &sim,
        "GET",
        "/v1/payment_intents/search",
        &[("query", "metadata['transaction_id']:'tx_zzz'")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));

    let (status, refused) = call(
        &sim,
        "GET",
        "/v1/payment_intents/search",
        &[("query", "amount>100")],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "query");

    let (status, invoices) = call(&sim, "GET", "/v1/invoices/search", &[("query", query)]).await;
    assert_eq!(status, 200, "{invoices}");
    assert_eq!(invoices["data"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn amounts_above_stripes_ceiling_are_refused() {
    let sim = crate::support::sim().await;
    let create = |amount: &'static str| {
        let sim = &sim;
        async move {
            crate::support::call(
                sim,
                "POST",
                "/v1/payment_intents",
                &[("amount", amount), ("currency", "usd")],
            )
            .await
        }
    };
    let (status, largest) = create("99999999").await;
    assert_eq!(
        (status, largest["amount"].as_i64()),
        (200, Some(99_999_999))
    );
    for amount in ["100000000", "4611686018427387904"] {
        let (status, refused) = create(amount).await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["error"]["code"], "amount_too_large");
        assert_eq!(refused["error"]["param"], "amount");
        assert_eq!(
            refused["error"]["message"],
            "Amount must be no more than $999,999.99"
        );
    }
}
