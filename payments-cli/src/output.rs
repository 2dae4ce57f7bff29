//! How answers are shown: a line of text per object, or with `--json` one line of JSON
//! per answer in the shape of the response message (proto field names, enum values by
//! their proto names, timestamps in RFC 3339, amounts as integers of minor units).

use payments_client::pb::{
    self, PaymentMethod, Transaction, TransactionKind, TransactionStatus, TrialState, Wallet,
};
use serde_json::{Value, json};

/// Text or JSON, chosen once by `--json`.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or each of `lines` as text.
    pub fn show(self, value: impl FnOnce() -> Value, lines: impl FnOnce() -> Vec<String>) {
        if self.json {
            println!("{}", value());
        } else {
            for line in lines() {
                println!("{line}");
            }
        }
    }
}

pub fn status_name(status: i32) -> String {
    TransactionStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("TRANSACTION_STATUS_")
                .to_owned()
        })
        .unwrap_or_else(|_| format!("status {status}"))
}

pub fn transaction(t: &Transaction) -> String {
    let mut line = format!(
        "{} v{} {:<15} {} {} {}",
        t.id,
        t.version,
        status_name(t.status),
        t.amount,
        t.currency,
        kind_name(t.kind)
    );
    if !t.failure_code.is_empty() {
        line.push_str(&format!(" ({}: {})", t.failure_code, t.failure_message));
    }
    if t.amount_refunded > 0 {
        line.push_str(&format!(" refunded {}", t.amount_refunded));
    }
    line
}

fn kind_name(kind: i32) -> String {
    TransactionKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("TRANSACTION_KIND_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

pub fn wallet(w: &Wallet) -> String {
    let trial = w.trial.as_ref().map_or(String::new(), |t| {
        let state = TrialState::try_from(t.state)
            .map(|s| {
                s.as_str_name()
                    .trim_start_matches("TRIAL_STATE_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        format!(", trial {state} (credit {})", t.credit)
    });
    format!(
        "{}: balance {} {}{trial}, {} validated card(s)",
        w.user_id,
        w.balance,
        w.currency,
        w.validated_payment_methods.len()
    )
}

pub fn card(c: &PaymentMethod) -> String {
    format!(
        "{} {} •••• {} fingerprint {}{}",
        c.id,
        c.brand,
        c.last4,
        c.fingerprint,
        if c.validated { " (validated)" } else { "" }
    )
}

pub fn event(e: &pb::StripeEvent) -> String {
    format!(
        "{} {} {} attempts={} tx={} error={}",
        e.id, e.r#type, e.state, e.attempts, e.transaction_id, e.last_error
    )
}

// JSON, one function per message.

/// An enum value by its proto name, or its number when this build does not know it.
fn enum_json<E: TryFrom<i32>>(value: i32, name: impl Fn(&E) -> &'static str) -> Value {
    E::try_from(value).map_or(json!(value), |e| json!(name(&e)))
}

fn timestamp_json(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map_or(Value::Null, |at| {
            json!(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
}

pub fn transaction_json(t: &Transaction) -> Value {
    json!({
        "id": t.id,
        "user_id": t.user_id,
        "kind": enum_json(t.kind, TransactionKind::as_str_name),
        "status": enum_json(t.status, TransactionStatus::as_str_name),
        "amount": t.amount,
        "currency": t.currency,
        "amount_refunded": t.amount_refunded,
        "failure_code": t.failure_code,
        "failure_message": t.failure_message,
        "stripe_payment_intent_id": t.stripe_payment_intent_id,
        "stripe_invoice_id": t.stripe_invoice_id,
        "version": t.version,
        "created_at": timestamp_json(t.created_at.as_ref()),
        "updated_at": timestamp_json(t.updated_at.as_ref()),
    })
}

pub fn card_json(c: &PaymentMethod) -> Value {
    json!({
        "id": c.id,
        "brand": c.brand,
        "last4": c.last4,
        "fingerprint": c.fingerprint,
        "validated": c.validated,
    })
}

pub fn wallet_json(w: &Wallet) -> Value {
    let trial = w.trial.as_ref().map_or(Value::Null, |t| {
        json!({
            "state": enum_json(t.state, TrialState::as_str_name),
            "credit": t.credit,
            "started_at": timestamp_json(t.started_at.as_ref()),
            "ended_at": timestamp_json(t.ended_at.as_ref()),
        })
    });
    json!({
        "user_id": w.user_id,
        "balance": w.balance,
        "currency": w.currency,
        "trial": trial,
        "validated_payment_methods": w.validated_payment_methods.iter().map(card_json).collect::<Vec<_>>(),
    })
}

pub fn event_json(e: &pb::StripeEvent) -> Value {
    json!({
        "id": e.id,
        "type": e.r#type,
        "state": e.state,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "received_at": timestamp_json(e.received_at.as_ref()),
        "transaction_id": e.transaction_id,
    })
}

pub fn ledger_json(report: &pb::CheckLedgerResponse) -> Value {
    let mismatches: Vec<Value> = report
        .mismatches
        .iter()
        .map(|m| json!({"user_id": m.user_id, "balance": m.balance, "ledger_sum": m.ledger_sum}))
        .collect();
    json!({"wallets_checked": report.wallets_checked, "mismatches": mismatches})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_reads_back_with_proto_names_and_rfc3339_times() {
        let t = Transaction {
            id: "t1".into(),
            status: TransactionStatus::RequiresAction as i32,
            kind: 99,
            amount: 2_500,
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5_000_000,
            }),
            ..Transaction::default()
        };
        let value = transaction_json(&t);
        assert_eq!(value["status"], "TRANSACTION_STATUS_REQUIRES_ACTION");
        assert_eq!(value["kind"], 99, "an unknown value stays a number");
        assert_eq!(value["amount"], 2_500);
        assert_eq!(value["created_at"], "2023-11-14T22:13:20.005Z");
        assert_eq!(value["updated_at"], Value::Null);
    }
}
