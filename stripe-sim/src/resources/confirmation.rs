//! Confirming a PaymentIntent: the card decides. Succeeds → `succeeded` (or `requires_capture`
//! for manual capture); 3DS card → `requires_action` until `/test/.../authenticate`; declined →
//! 402 `card_error` and back to `requires_payment_method`, ready for another card.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::cards::Behaviour;
use crate::resources::charges::{self, Failure, NewCharge};
use crate::resources::payment_intents::{self, Status, get, get_mut};
use crate::resources::{dispute_lifecycle, payment_methods};
use crate::store::Store;

/// Parameters of a confirmation attempt.
#[derive(Debug, Clone, Default)]
pub struct ConfirmArgs {
    pub payment_method: Option<String>,
    pub off_session: bool,
    pub error_on_requires_action: bool,
    pub return_url: Option<String>,
}

impl ConfirmArgs {
    pub fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            payment_method: params.str("payment_method").map(str::to_owned),
            // `off_session` may be `true` or `one_off`/`recurring`.
            off_session: matches!(
                params.str("off_session"),
                Some("true" | "one_off" | "recurring")
            ),
            error_on_requires_action: params.bool("error_on_requires_action")?.unwrap_or(false),
            return_url: params.str("return_url").map(str::to_owned),
        })
    }
}

pub fn confirm(store: &mut Store, id: &str, args: ConfirmArgs) -> ApiResult {
    let intent = get(store, id, "intent")?;
    if !matches!(
        intent.status,
        Status::RequiresPaymentMethod | Status::RequiresConfirmation | Status::RequiresAction
    ) {
        return Err(ApiError::unexpected_state(
            "payment_intent_unexpected_state",
            format!(
                "You cannot confirm this PaymentIntent because it has a status of {}.",
                intent.status.as_str()
            ),
        ));
    }
    let customer = intent.customer.clone();
    let pm_id = match args.payment_method.as_deref() {
        Some(pm) => payment_methods::resolve(store, pm, "payment_method")?,
        None => intent.payment_method.clone().ok_or_else(|| {
            let mut error = ApiError::invalid_request(
                "payment_intent_unexpected_state",
                "You cannot confirm this PaymentIntent because it's missing a payment method. Update the PaymentIntent with a payment method and then confirm it again.",
            );
            error.param = Some("payment_method".to_owned());
            error
        })?,
    };
    let pm = payment_methods::get(store, &pm_id, "payment_method")?;
    pm.check_usable()?;
    if let Some(owner) = pm.customer.as_deref()
        && customer.as_deref() != Some(owner)
    {
        let mut error = ApiError::invalid_request(
            "payment_method_unexpected_state",
            format!(
                "The provided PaymentMethod {pm_id} belongs to another Customer; pass `customer={owner}` on the PaymentIntent."
            ),
        );
        error.param = Some("payment_method".to_owned());
        return Err(error);
    }
    let behaviour = pm.card.behaviour;
    let intent = get_mut(store, id)?;
    intent.payment_method = Some(pm_id);
    intent.last_payment_error = None;
    intent.next_action = None;
    match behaviour {
        Behaviour::Succeeds => authorize(store, id),
        Behaviour::Declines(decline) => Err(fail_attempt(
            store,
            id,
            Failure {
                code: "card_declined".to_owned(),
                decline_code: Some(decline.decline_code().to_owned()),
                message: decline.message().to_owned(),
            },
        )?),
        Behaviour::RequiresAuthentication if args.off_session || args.error_on_requires_action => {
            Err(fail_attempt(
                store,
                id,
                Failure {
                    code: "authentication_required".to_owned(),
                    decline_code: Some("authentication_required".to_owned()),
                    message: "Your card was declined. This transaction requires authentication."
                        .to_owned(),
                },
            )?)
        }
        Behaviour::RequiresAuthentication => require_action(store, id, args.return_url),
    }
}

/// The card was charged: `succeeded`, or `requires_capture` for manual capture.
fn authorize(store: &mut Store, id: &str) -> ApiResult {
    let intent = get(store, id, "intent")?.clone();
    let charge = charges::create(store, new_charge(&intent, None))?;
    let intent = get_mut(store, id)?;
    let previous_status = intent.status.as_str();
    intent.latest_charge = Some(charge.clone());
    intent.next_action = None;
    if intent.manual_capture() {
        intent.status = Status::RequiresCapture;
        intent.amount_capturable = intent.amount;
        let json = intent.to_json();
        let previous = json!({"amount_capturable": 0, "status": previous_status});
        store.emit(
            "payment_intent.amount_capturable_updated",
            json.clone(),
            Some(previous),
        );
        Ok(json)
    } else {
        intent.status = Status::Succeeded;
        intent.amount_received = intent.amount;
        let json = intent.to_json();
        let previous = json!({"amount_received": 0, "status": previous_status});
        store.emit("payment_intent.succeeded", json.clone(), Some(previous));
        dispute_lifecycle::after_capture(store, &charge)?;
        Ok(json)
    }
}

/// A declined attempt: a failed charge, `requires_payment_method`, and the 402 to return.
fn fail_attempt(store: &mut Store, id: &str, failure: Failure) -> Result<ApiError, ApiError> {
    let intent = get(store, id, "intent")?.clone();
    let pm_id = intent.payment_method.clone().unwrap_or_default();
    let pm_json = payment_methods::get(store, &pm_id, "payment_method")?.to_json();
    let charge = charges::create(store, new_charge(&intent, Some(failure.clone())))?;
    let code: &'static str = if failure.code == "authentication_required" {
        "authentication_required"
    } else {
        "card_declined"
    };
    let error = ApiError::card(code, failure.decline_code.as_deref(), failure.message)
        .with_extra("charge", json!(charge))
        .with_extra("payment_method", pm_json);
    let intent = get_mut(store, id)?;
    let previous = json!({"status": intent.status.as_str(), "last_payment_error": null});
    intent.status = Status::RequiresPaymentMethod;
    intent.latest_charge = Some(charge);
    intent.payment_method = None;
    intent.next_action = None;
    intent.last_payment_error = Some(error.body());
    let json = intent.to_json();
    store.emit(
        "payment_intent.payment_failed",
        json.clone(),
        Some(previous),
    );
    Ok(error.with_extra("payment_intent", json))
}

fn new_charge(intent: &payment_intents::PaymentIntent, failure: Option<Failure>) -> NewCharge {
    NewCharge {
        amount: intent.amount,
        currency: intent.currency.clone(),
        customer: intent.customer.clone(),
        description: intent.description.clone(),
        metadata: intent.metadata.clone(),
        payment_intent: intent.id.clone(),
        payment_method: intent.payment_method.clone().unwrap_or_default(),
        captured: !intent.manual_capture(),
        failure,
    }
}

/// A 3DS challenge is needed: `requires_action` with a `next_action` pointing at the test page.
fn require_action(store: &mut Store, id: &str, return_url: Option<String>) -> ApiResult {
    let base_url = store.base_url.clone();
    let source = store.new_id("src");
    let intent = get_mut(store, id)?;
    let previous = json!({"status": intent.status.as_str(), "next_action": null});
    let url = format!(
        "{base_url}/test/payment_intents/{}/authenticate?client_secret={}",
        intent.id, intent.client_secret
    );
    intent.status = Status::RequiresAction;
    intent.next_action = Some(match return_url {
        Some(return_url) => json!({
            "type": "redirect_to_url",
            "redirect_to_url": {"return_url": return_url, "url": format!("{url}&return_url={}", encode(&return_url))},
        }),
        None => json!({
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": url, "source": source},
        }),
    });
    let json = intent.to_json();
    store.emit(
        "payment_intent.requires_action",
        json.clone(),
        Some(previous),
    );
    Ok(json)
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Completes (or fails) the 3DS challenge, as the browser's `confirmCardPayment` would.
/// `client_secret`, when given, must match the intent's.
pub fn authenticate(
    store: &mut Store,
    id: &str,
    succeed: bool,
    client_secret: Option<&str>,
) -> ApiResult {
    let intent = get(store, id, "intent")?;
    if let Some(secret) = client_secret
        && secret != intent.client_secret
    {
        return Err(ApiError::invalid_param(
            "client_secret",
            "The client_secret does not match this PaymentIntent.",
        ));
    }
    if intent.status != Status::RequiresAction {
        return Err(ApiError::unexpected_state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent has a status of {}; only requires_action can be authenticated.",
                intent.status.as_str()
            ),
        ));
    }
    if succeed {
        return authorize(store, id);
    }
    let pm_json: Option<Value> = intent
        .payment_method
        .as_deref()
        .and_then(|pm| store.payment_methods.get(pm))
        .map(|pm| pm.to_json());
    let mut error = ApiError::invalid_request(
        "payment_intent_authentication_failure",
        "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
    );
    if let Some(pm_json) = pm_json {
        error = error.with_extra("payment_method", pm_json);
    }
    let intent = get_mut(store, id)?;
    intent.status = Status::RequiresPaymentMethod;
    intent.payment_method = None;
    intent.next_action = None;
    intent.last_payment_error = Some(error.body());
    let json = intent.to_json();
    let previous = json!({"status": "requires_action", "last_payment_error": null});
    store.emit(
        "payment_intent.payment_failed",
        json.clone(),
        Some(previous),
    );
    Ok(json)
}
