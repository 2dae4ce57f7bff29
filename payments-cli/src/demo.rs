//! The scripted demo: the three flows the frontend needs, each resolved by its
//! WatchTransaction stream, against stripe-sim (whose test endpoint completes 3DS the
//! way the browser's `stripe.confirmCardPayment` would).

use anyhow::Context;
use payments_client::{IdempotencyKey, PaymentsClient, pb, pb::TransactionStatus};

use crate::{
    commands::watch,
    output::{self, Output},
};

const SIM_KEY: &str = "sk_test_demo";

pub async fn run(
    client: &PaymentsClient,
    user: &str,
    sim: &str,
    out: Output,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    println!("== signed in as {user}");

    println!("\n== 1. top up $25.00 with a card that requires 3D Secure");
    let card = attach(client, user, "pm_card_threeDSecure2Required").await?;
    let created = client
        .create_payment(pb::CreatePaymentRequest {
            user_id: user.into(),
            payment_method_id: card.id.clone(),
            amount: 2_500,
            currency: "usd".into(),
            idempotency_key: IdempotencyKey::new().into(),
        })
        .await?;
    let tx = &created.transaction;
    let secret = created.client_secret.clone().unwrap_or_default();
    println!(
        "CreatePayment → {} (client_secret {})",
        output::transaction(tx),
        short(&secret)
    );
    watch(client, &tx.id, Some(TransactionStatus::RequiresAction), out).await?;
    println!("the customer completes the 3DS challenge…");
    authenticate(&http, sim, &tx.stripe_payment_intent_id, &secret).await?;
    watch(client, &tx.id, None, out).await?;

    println!("\n== 2. apply a $5.00 coupon");
    let code = create_promotion_code(&http, sim, 500).await?;
    let applied = client
        .apply_coupon(pb::ApplyCouponRequest {
            user_id: user.into(),
            code: code.clone(),
            idempotency_key: IdempotencyKey::new().into(),
        })
        .await?;
    println!(
        "ApplyCoupon({code}) → {}",
        output::transaction(&applied.transaction)
    );
    watch(client, &applied.transaction.id, None, out).await?;

    println!("\n== 3. validate a card and start the trial");
    let visa = attach(client, user, "pm_card_visa").await?;
    let trial = client
        .start_trial(pb::StartTrialRequest {
            user_id: user.into(),
            payment_method_id: visa.id.clone(),
        })
        .await?;
    println!("StartTrial → {}", output::transaction(&trial.transaction));
    watch(client, &trial.transaction.id, None, out).await?;

    let wallet = client.get_wallet(user).await?;
    println!("\n== wallet: {}", output::wallet(&wallet));
    Ok(())
}

async fn attach(
    client: &PaymentsClient,
    user: &str,
    token: &str,
) -> anyhow::Result<pb::PaymentMethod> {
    let card = client
        .attach_payment_method(pb::AttachPaymentMethodRequest {
            user_id: user.into(),
            payment_method_id: token.into(),
        })
        .await?;
    println!("AttachPaymentMethod({token}) → {}", output::card(&card));
    Ok(card)
}

async fn authenticate(
    http: &reqwest::Client,
    sim: &str,
    pi: &str,
    client_secret: &str,
) -> anyhow::Result<()> {
    let url = format!(
        "{}/test/payment_intents/{pi}/authenticate",
        sim.trim_end_matches('/')
    );
    let resp = http
        .post(&url)
        .form(&[("outcome", "succeed"), ("client_secret", client_secret)])
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "3DS completion failed: {}",
        resp.status()
    );
    Ok(())
}

/// Creates a coupon and a customer-facing promotion code for it in stripe-sim.
async fn create_promotion_code(
    http: &reqwest::Client,
    sim: &str,
    amount_off: i64,
) -> anyhow::Result<String> {
    let base = sim.trim_end_matches('/');
    let coupon: serde_json::Value = http
        .post(format!("{base}/v1/coupons"))
        .bearer_auth(SIM_KEY)
        .form(&[
            ("amount_off", amount_off.to_string().as_str()),
            ("currency", "usd"),
            ("duration", "once"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let coupon_id = coupon["id"].as_str().context("coupon without id")?;
    let code = format!("DEMO{}", &uuid::Uuid::new_v4().simple().to_string()[..6]).to_uppercase();
    http.post(format!("{base}/v1/promotion_codes"))
        .bearer_auth(SIM_KEY)
        .form(&[
            ("promotion[type]", "coupon"),
            ("promotion[coupon]", coupon_id),
            ("code", code.as_str()),
        ])
        .send()
        .await?
        .error_for_status()?;
    Ok(code)
}

fn short(secret: &str) -> String {
    if secret.is_empty() {
        "none".into()
    } else {
        format!("{}…", &secret[..secret.len().min(12)])
    }
}
