//! The transaction record: its kind, its status and the row both services read.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Currency, Money, TransactionId, UserId, text::text_enum};

text_enum!(
    /// What a transaction does to the wallet.
    TransactionKind as "transaction kind" {
        Payment = "payment",
        Coupon = "coupon",
        CardValidation = "card_validation",
    }
);

text_enum!(
    /// Where a transaction is in its life.
    TransactionStatus as "transaction status" {
        Created = "created",
        Pending = "pending",
        RequiresAction = "requires_action",
        Succeeded = "succeeded",
        Failed = "failed",
        Canceled = "canceled",
        Refunded = "refunded",
    }
);

impl TransactionStatus {
    /// Waiting on Stripe or the customer: what reconciliation sweeps, and the only
    /// statuses a failure or a success may still leave behind. The sweep's queries and
    /// the `transactions_unsettled` index are written from this list (a test compares
    /// the index with it).
    pub const UNSETTLED: &'static [TransactionStatus] = &[
        TransactionStatus::Created,
        TransactionStatus::Pending,
        TransactionStatus::RequiresAction,
    ];

    /// Ended without moving money: a new attempt may follow (the next derived key, a
    /// coupon redeemed again). The `transactions_coupon_once` index leaves these out.
    pub const UNSUCCESSFUL: &'static [TransactionStatus] =
        &[TransactionStatus::Failed, TransactionStatus::Canceled];

    /// Settled: a watcher has its answer. FAILED may still become SUCCEEDED if the
    /// customer retries the same PaymentIntent, and SUCCEEDED may become REFUNDED, but
    /// neither is waiting on anything.
    pub fn is_settled(self) -> bool {
        !Self::UNSETTLED.contains(&self)
    }
}

/// A transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    pub id: TransactionId,
    pub user_id: UserId,
    pub kind: TransactionKind,
    pub status: TransactionStatus,
    /// What the transaction moves (a coupon: the credit it grants).
    pub amount: Money,
    /// How much of `amount` has been refunded, in its currency.
    pub amount_refunded: i64,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub payment_method_id: Option<String>,
    pub coupon_code: Option<String>,
    pub card_fingerprint: Option<String>,
    /// Set on a card validation started by StartTrial: the credit its success grants.
    pub trial_credit: Option<Money>,
    pub flagged: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub stripe_invoice_id: Option<String>,
    pub stripe_charge_id: Option<String>,
    #[serde(skip)]
    pub client_secret: Option<String>,
    pub idempotency_key: String,
    pub request_fingerprint: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Transaction {
    /// A transaction of `kind` moving `amount`, as it stands once created: CREATED at
    /// version 1, nothing refunded, recorded or flagged, no idempotency key. For a row
    /// assumed rather than read (the rules' questions, tests); the store reads its own.
    pub fn created(
        id: TransactionId,
        user_id: UserId,
        kind: TransactionKind,
        amount: Money,
    ) -> Transaction {
        let now = Utc::now();
        Transaction {
            id,
            user_id,
            kind,
            status: TransactionStatus::Created,
            amount,
            amount_refunded: 0,
            failure_code: None,
            failure_message: None,
            payment_method_id: None,
            coupon_code: None,
            card_fingerprint: None,
            trial_credit: None,
            flagged: None,
            stripe_payment_intent_id: None,
            stripe_invoice_id: None,
            stripe_charge_id: None,
            client_secret: None,
            idempotency_key: String::new(),
            request_fingerprint: String::new(),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// The currency of everything the transaction moves.
    pub fn currency(&self) -> Currency {
        self.amount.currency()
    }

    /// The client secret is only worth handing out while the customer must act.
    pub fn client_secret_if_action_required(&self) -> Option<&str> {
        match self.status {
            TransactionStatus::RequiresAction => self.client_secret.as_deref(),
            _ => None,
        }
    }
}
