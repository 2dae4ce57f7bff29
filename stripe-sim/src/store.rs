//! The in-memory state of one account in one mode: every object, the event log, the seeded id
//! generator. A simulator has two, test mode and live mode, as a Stripe account does.
//!
//! Each `Store` sits behind a `std::sync::Mutex`; a request locks its mode's, runs one
//! synchronous operation from `resources/`, and unlocks. Nothing awaits while holding it.
//! Events are appended here and handed to the webhook outbox in the same critical section, so
//! their order is the order of the changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::{
    charges::Charge,
    coupons::{Coupon, PromotionCode},
    customers::Customer,
    disputes::Dispute,
    events::{Event, EventLog},
    invoice_items::{Discount, InvoiceItem},
    invoice_payments::{self, InvoicePayment},
    invoices::Invoice,
    payment_intents::PaymentIntent,
    payment_methods::PaymentMethod,
    refunds::Refund,
};
use crate::webhooks::Outbox;

/// The Stripe API version the simulator speaks (the one async-stripe 1.0.0-rc.10 targets).
pub const API_VERSION: &str = "2026-09-30.endive";

/// Test mode or live mode: chosen by the key of a request, as on Stripe. Each mode is a
/// separate account's worth of objects and events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    #[default]
    Test,
    Live,
}

impl Mode {
    pub fn is_live(self) -> bool {
        self == Mode::Live
    }
}

/// Who caused a change: copied into each event's `request` field.
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub mode: Mode,
}

pub struct Store {
    rng: StdRng,
    next_seq: u64,
    pub mode: Mode,
    /// The simulator's own URL, used in `next_action` links.
    pub base_url: String,
    pub request: RequestCtx,
    pub customers: HashMap<String, Customer>,
    pub payment_methods: HashMap<String, PaymentMethod>,
    pub payment_intents: HashMap<String, PaymentIntent>,
    pub charges: HashMap<String, Charge>,
    pub refunds: HashMap<String, Refund>,
    pub disputes: HashMap<String, Dispute>,
    pub coupons: HashMap<String, Coupon>,
    pub promotion_codes: HashMap<String, PromotionCode>,
    pub invoices: HashMap<String, Invoice>,
    pub invoice_items: HashMap<String, InvoiceItem>,
    pub discounts: HashMap<String, Discount>,
    pub invoice_payments: HashMap<String, InvoicePayment>,
    pub events: EventLog,
    outbox: Outbox,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Store {
    /// An empty account in `mode`; `event_retention` bounds its event log.
    pub fn new(
        mode: Mode,
        seed: u64,
        base_url: String,
        outbox: Outbox,
        event_retention: usize,
    ) -> Self {
        // The live account draws other ids than the test one from the same seed.
        let seed = match mode {
            Mode::Test => seed,
            Mode::Live => seed ^ 0x4C49_5645_4D4F_4445,
        };
        Self {
            rng: StdRng::seed_from_u64(seed),
            next_seq: 0,
            mode,
            base_url,
            request: RequestCtx::default(),
            customers: HashMap::new(),
            payment_methods: HashMap::new(),
            payment_intents: HashMap::new(),
            charges: HashMap::new(),
            refunds: HashMap::new(),
            disputes: HashMap::new(),
            coupons: HashMap::new(),
            promotion_codes: HashMap::new(),
            invoices: HashMap::new(),
            invoice_items: HashMap::new(),
            discounts: HashMap::new(),
            invoice_payments: HashMap::new(),
            events: EventLog::new(event_retention),
            outbox,
        }
    }

    /// A creation counter: lists are ordered newest first by it.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// `len` random characters from `[A-Za-z0-9]` (or `[A-Z0-9]` when `upper`).
    pub fn random_string(&mut self, len: usize, upper: bool) -> String {
        let alphabet: &[u8] = if upper {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        } else {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        };
        (0..len)
            .map(|_| alphabet[self.rng.random_range(0..alphabet.len())] as char)
            .collect()
    }

    /// A new id such as `pi_3Qx…`; deterministic for a given seed and request order.
    pub fn new_id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{}", self.random_string(24, false))
    }

    /// Records an event and hands it to webhook delivery. `object` is a snapshot taken now.
    pub fn emit(&mut self, event_type: &str, object: Value, previous_attributes: Option<Value>) {
        let id = self.new_id("evt");
        let mut data = json!({ "object": object });
        if let Some(previous) = previous_attributes {
            data["previous_attributes"] = previous;
        }
        let created = now();
        let body = self.present(json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": created,
            "data": data,
            "livemode": false,
            "pending_webhooks": self.outbox.endpoint_count(),
            "request": {"id": self.request.request_id, "idempotency_key": self.request.idempotency_key},
            "type": event_type,
        }));
        let body = match serde_json::to_vec(&body) {
            Ok(bytes) => Bytes::from(bytes),
            Err(error) => {
                tracing::error!(%error, event_type, "could not serialize an event; not recorded");
                return;
            }
        };
        let event = Arc::new(Event {
            seq: self.outbox.next_event_seq(),
            id,
            event_type: event_type.to_owned(),
            created,
            body,
        });
        self.events.push(Arc::clone(&event));
        self.outbox.publish(event);
    }

    /// An object or response as this account shows it.
    pub fn present(&self, value: Value) -> Value {
        present(self.mode, value)
    }

    /// Any object by id, for `expand[]`.
    pub fn render(&self, id: &str) -> Option<Value> {
        let prefix = id.split('_').next().unwrap_or_default();
        match prefix {
            "cus" => self.customers.get(id).map(Customer::to_json),
            "pm" => self.payment_methods.get(id).map(PaymentMethod::to_json),
            "pi" => self.payment_intents.get(id).map(PaymentIntent::to_json),
            "ch" => self.charges.get(id).map(|c| c.to_json(self)),
            "re" => self.refunds.get(id).map(Refund::to_json),
            "dp" | "du" => self.disputes.get(id).map(Dispute::to_json),
            "in" => self.invoices.get(id).map(|i| i.to_json(self)),
            "ii" => self.invoice_items.get(id).map(InvoiceItem::to_json),
            "promo" => self.promotion_codes.get(id).map(|p| p.to_json(self)),
            "di" => self.discounts.get(id).map(Discount::to_json),
            "evt" => self.events.get(id).map(|e| e.json()),
            "inpay" => self.invoice_payments.get(id).map(InvoicePayment::to_json),
            _ => None,
        }
        .or_else(|| self.coupons.get(id).map(Coupon::to_json))
    }

    /// Replaces id strings named by `expand[]` paths (`latest_charge`, `data.customer`,
    /// `promotion.coupon`, `latest_charge.payment_intent`) with the objects.
    pub fn expand(&self, mut value: Value, params: &Params) -> Value {
        for path in params.expand() {
            let segments: Vec<&str> = path.split('.').collect();
            self.expand_path(&mut value, &segments);
        }
        value
    }

    /// Fields Stripe returns only when `expand[]` names them: an invoice's `payments`.
    fn includable(&self, object: &Value, field: &str) -> Option<Value> {
        let id = object.get("id")?.as_str()?;
        match (object.get("object")?.as_str()?, field) {
            ("invoice", "payments") => Some(invoice_payments::included(self, id)),
            _ => None,
        }
    }

    fn expand_path(&self, value: &mut Value, segments: &[&str]) {
        let Some((first, rest)) = segments.split_first() else {
            return;
        };
        if value.get(*first).is_none()
            && let Some(included) = self.includable(value, first)
            && let Value::Object(map) = value
        {
            map.insert((*first).to_owned(), included);
        }
        let Some(field) = value.get_mut(*first) else {
            return;
        };
        if let Value::String(id) = field
            && let Some(object) = self.render(id)
        {
            *field = object;
        }
        match field {
            Value::Array(items) => {
                for item in items {
                    if let Value::String(id) = item
                        && let Some(object) = self.render(id)
                    {
                        *item = object;
                    }
                    self.expand_path(item, rest);
                }
            }
            Value::Object(_) => self.expand_path(field, rest),
            _ => {}
        }
    }
}

/// An object as an account of `mode` shows it: in live mode every `livemode` (nested objects
/// included) says so. The objects render as test mode; this is the one place that changes it.
pub fn present(mode: Mode, mut value: Value) -> Value {
    if mode.is_live() {
        mark_live(&mut value);
    }
    value
}

/// Sets every `livemode` field in `value` (nested objects included) to `true`.
fn mark_live(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if key == "livemode" {
                    *field = Value::Bool(true);
                } else {
                    mark_live(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mark_live),
        _ => {}
    }
}

/// One page of a list, Stripe style: `items` must be newest first.
pub fn paginate<I>(items: I, params: &Params, url: &str) -> ApiResult
where
    I: IntoIterator<Item = (String, Value)>,
{
    let items: Vec<(String, Value)> = items.into_iter().collect();
    paginate_with(
        &items,
        |(id, _)| id,
        |(_, value)| value.clone(),
        params,
        url,
    )
}

/// `paginate` that renders only the page it returns.
pub fn paginate_with<T>(
    items: &[T],
    id_of: impl Fn(&T) -> &str,
    render: impl Fn(&T) -> Value,
    params: &Params,
    url: &str,
) -> ApiResult {
    let limit = params.i64("limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "This value must be between 1 and 100.",
        ));
    }
    let limit = usize::try_from(limit).unwrap_or(10);
    let position = |param: &str, id: &str| {
        items
            .iter()
            .position(|item| id_of(item) == id)
            .ok_or_else(|| ApiError::missing("object", id, param))
    };
    let (page, has_more): (&[T], bool) = if let Some(after) = params.str("starting_after") {
        let rest = &items[position("starting_after", after)? + 1..];
        (&rest[..rest.len().min(limit)], rest.len() > limit)
    } else if let Some(before) = params.str("ending_before") {
        let end = position("ending_before", before)?;
        let start = end.saturating_sub(limit);
        (&items[start..end], start > 0)
    } else {
        (&items[..items.len().min(limit)], items.len() > limit)
    };
    let data: Vec<Value> = page.iter().map(render).collect();
    Ok(json!({"object": "list", "data": data, "has_more": has_more, "url": url}))
}

/// Sorts `(seq, id, json)` newest first and drops the sequence numbers.
pub fn newest_first(mut items: Vec<(u64, String, Value)>) -> Vec<(String, Value)> {
    items.sort_by_key(|item| std::cmp::Reverse(item.0));
    items
        .into_iter()
        .map(|(_, id, value)| (id, value))
        .collect()
}

/// Approximate calendar year, for card expiry dates a few years ahead.
pub fn current_year() -> i64 {
    1970 + now() / 31_556_952
}
