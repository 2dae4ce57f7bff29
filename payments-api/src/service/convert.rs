//! Domain values to wire messages.

use chrono::{DateTime, Utc};
use payments_core::{
    Transaction, TransactionKind, TransactionStatus,
    store::{PaymentMethodRow, TrialState, Wallet},
};
use payments_proto::payments::v1 as pb;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // Always below 2e9, so it fits.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn kind(kind: TransactionKind) -> pb::TransactionKind {
    match kind {
        TransactionKind::Payment => pb::TransactionKind::Payment,
        TransactionKind::Coupon => pb::TransactionKind::Coupon,
        TransactionKind::CardValidation => pb::TransactionKind::CardValidation,
    }
}

pub fn status(status: TransactionStatus) -> pb::TransactionStatus {
    match status {
        TransactionStatus::Created => pb::TransactionStatus::Created,
        TransactionStatus::Pending => pb::TransactionStatus::Pending,
        TransactionStatus::RequiresAction => pb::TransactionStatus::RequiresAction,
        TransactionStatus::Succeeded => pb::TransactionStatus::Succeeded,
        TransactionStatus::Failed => pb::TransactionStatus::Failed,
        TransactionStatus::Canceled => pb::TransactionStatus::Canceled,
        TransactionStatus::Refunded => pb::TransactionStatus::Refunded,
    }
}

/// The wire status back to the domain; `None` for UNSPECIFIED or an unknown number.
pub fn status_from_wire(value: i32) -> Option<TransactionStatus> {
    Some(match pb::TransactionStatus::try_from(value).ok()? {
        pb::TransactionStatus::Unspecified => return None,
        pb::TransactionStatus::Created => TransactionStatus::Created,
        pb::TransactionStatus::Pending => TransactionStatus::Pending,
        pb::TransactionStatus::RequiresAction => TransactionStatus::RequiresAction,
        pb::TransactionStatus::Succeeded => TransactionStatus::Succeeded,
        pb::TransactionStatus::Failed => TransactionStatus::Failed,
        pb::TransactionStatus::Canceled => TransactionStatus::Canceled,
        pb::TransactionStatus::Refunded => TransactionStatus::Refunded,
    })
}

pub fn transaction(tx: &Transaction) -> pb::Transaction {
    pb::Transaction {
        id: tx.id.to_string(),
        user_id: tx.user_id.to_string(),
        kind: kind(tx.kind) as i32,
        status: status(tx.status) as i32,
        amount: tx.amount.minor(),
        currency: tx.currency().to_string(),
        amount_refunded: tx.amount_refunded,
        failure_code: tx.failure_code.clone().unwrap_or_default(),
        failure_message: tx.failure_message.clone().unwrap_or_default(),
        stripe_payment_intent_id: tx.stripe_payment_intent_id.clone().unwrap_or_default(),
        stripe_invoice_id: tx.stripe_invoice_id.clone().unwrap_or_default(),
        version: tx.version,
        created_at: Some(timestamp(tx.created_at)),
        updated_at: Some(timestamp(tx.updated_at)),
    }
}

/// The client secret, only while the customer must act on it.
pub fn client_secret(tx: &Transaction) -> String {
    tx.client_secret_if_action_required()
        .unwrap_or_default()
        .to_owned()
}

pub fn payment_method(row: &PaymentMethodRow) -> pb::PaymentMethod {
    pb::PaymentMethod {
        id: row.id.clone(),
        brand: row.brand.clone(),
        last4: row.last4.clone(),
        fingerprint: row.fingerprint.clone(),
        validated: row.validated(),
    }
}

pub fn wallet(wallet: &Wallet, methods: &[PaymentMethodRow]) -> pb::Wallet {
    let state = match wallet.trial_state {
        TrialState::None => pb::TrialState::None,
        TrialState::Active => pb::TrialState::Active,
        TrialState::Ended => pb::TrialState::Ended,
    };
    pb::Wallet {
        user_id: wallet.user_id.to_string(),
        balance: wallet.balance,
        currency: wallet.currency.to_string(),
        trial: Some(pb::Trial {
            state: state as i32,
            credit: wallet.trial_credit,
            started_at: wallet.trial_started_at.map(timestamp),
            ended_at: wallet.trial_ended_at.map(timestamp),
        }),
        validated_payment_methods: methods
            .iter()
            .filter(|m| m.validated())
            .map(payment_method)
            .collect(),
    }
}
