//! The scripted demo: the three flows the frontend needs, each resolved by its
//! WatchTransaction stream, against stripe-sim (whose test endpoint completes 3DS the
//! way the browser's `stripe.confirmCardPayment` would).

use anyhow::Context;
use payments_proto::payments::v1::{self as pb, TransactionStatus};

use crate::{client::Api, commands::watch, print};

const SIM_KEY: &str = "sk_test_demo";

pub async fn run(api: &mut Api, sim: &str) -> anyhow::Result<()> {
    let user = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let u = Some(user.as_str());
    let http = reqwest::Client::new();
    println!("== signed in as {user}");

    println!("\n== 1. top up $25.00 with a card that requires 3D Secure");
    let card = attach(api, &user, "pm_card_threeDSecure2Required").await?;
    let req = pb::CreatePaymentRequest {
        user_id: user.clone(),
        payment_method_id: card.id.clone(),
        amount: 2_500,
        currency: "usd".into(),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    };
    let created = api
        .payments
        .create_payment(api.request(u, req)?)
        .await?
        .into_inner();
    let tx = created.transaction.context("no transaction")?;
    println!(
        "CreatePayment → {} (client_secret {})",
        print::transaction(&tx),
        short(&created.client_secret)
    );
    watch(api, u, &tx.id, Some(TransactionStatus::RequiresAction)).await?;
    println!("the customer completes the 3DS challenge…");
    authenticate(
        &http,
        sim,
        &tx.stripe_payment_intent_id,
        &created.client_secret,
    )
    .await?;
    watch(api, u, &tx.id, None).await?;

    println!("\n== 2. apply a $5.00 coupon");
    let code = create_promotion_code(&http, sim, 500).await?;
    let req = pb::ApplyCouponRequest {
        user_id: user.clone(),
        code: code.clone(),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    };
    let tx = api
        .payments
        .apply_coupon(api.request(u, req)?)
        .await?
        .into_inner()
        .transaction
        .context("no transaction")?;
    println!("ApplyCoupon({code}) → {}", print::transaction(&tx));
    watch(api, u, &tx.id, None).await?;

    println!("\n== 3. validate a card and start the trial");
    let visa = attach(api, &user, "pm_card_visa").await?;
    let req = pb::StartTrialRequest {
        user_id: user.clone(),
        payment_method_id: visa.id.clone(),
    };
    let trial = api
        .payments
        .start_trial(api.request(u, req)?)
        .await?
        .into_inner();
    let tx = trial.transaction.context("no transaction")?;
    println!("StartTrial → {}", print::transaction(&tx));
    watch(api, u, &tx.id, None).await?;

    let wallet = api
        .payments
        .get_wallet(api.request(
            u,
            pb::GetWalletRequest {
                user_id: user.clone(),
            },
        )?)
        .await?
        .into_inner();
    println!("\n== wallet: {}", print::wallet(&wallet));
    Ok(())
}

async fn attach(api: &mut Api, user: &str, token: &str) -> anyhow::Result<pb::PaymentMethod> {
    let req = pb::AttachPaymentMethodRequest {
        user_id: user.into(),
        payment_method_id: token.into(),
    };
    let card = api
        .payments
        .attach_payment_method(api.request(Some(user), req)?)
        .await?
        .into_inner();
    println!("AttachPaymentMethod({token}) → {}", print::card(&card));
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
