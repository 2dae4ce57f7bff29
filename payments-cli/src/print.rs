//! How transactions, wallets and cards are shown on a terminal.

use payments_proto::payments::v1::{PaymentMethod, Transaction, TransactionStatus, Wallet};

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
    payments_proto::payments::v1::TransactionKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("TRANSACTION_KIND_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

pub fn wallet(w: &Wallet) -> String {
    let trial = w.trial.as_ref().map_or(String::new(), |t| {
        let state = payments_proto::payments::v1::TrialState::try_from(t.state)
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
