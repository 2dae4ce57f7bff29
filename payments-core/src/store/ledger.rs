//! The append-only `ledger_entries` and the check that every wallet's balance is the
//! sum of its ledger. A movement happens at most once per (transaction, kind, key),
//! decided by the unique key; a trigger moves the balance in the same statement.

use sqlx::PgConnection;

use super::{StoreError, TrialState};
use crate::{Currency, Money, Moved, Step, TransactionId, UserId, text::text_enum};

text_enum!(
    /// The kinds of wallet movement; each happens at most once per (transaction, key).
    MovementKind as "movement kind" {
        PaymentCredit = "payment_credit",
        CouponCredit = "coupon_credit",
        TrialGrant = "trial_grant",
        RefundDebit = "refund_debit",
        RefundReversal = "refund_reversal",
        DisputeDebit = "dispute_debit",
        DisputeReversal = "dispute_reversal",
    }
);

impl MovementKind {
    /// Whether the movement takes money out of the wallet: its ledger amount is
    /// negative.
    pub fn is_debit(self) -> bool {
        matches!(self, MovementKind::RefundDebit | MovementKind::DisputeDebit)
    }
}

#[derive(Debug, Clone)]
pub struct Movement<'a> {
    pub user_id: &'a UserId,
    pub transaction_id: TransactionId,
    pub kind: MovementKind,
    /// Distinguishes several movements of one kind on one transaction ("" if only one).
    pub key: &'a str,
    /// How much moves; the kind says which way.
    pub money: Money,
    pub stripe_event_id: Option<&'a str>,
}

impl Movement<'_> {
    /// The ledger's signed minor units: credits positive, debits negative.
    pub fn signed_minor(&self) -> i64 {
        match self.kind.is_debit() {
            true => -self.money.minor(),
            false => self.money.minor(),
        }
    }
}

/// Appends a movement unless it already happened. The unique key on
/// (transaction, kind, key) is what makes a credit happen once, whatever the
/// application does; a trigger moves the wallet balance in the same statement.
pub async fn record_movement(
    conn: &mut PgConnection,
    m: &Movement<'_>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency, stripe_event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (transaction_id, kind, movement_key) DO NOTHING",
    )
    .bind(m.user_id.as_str())
    .bind(m.transaction_id.as_uuid())
    .bind(m.kind)
    .bind(m.key)
    .bind(m.signed_minor())
    .bind(m.money.currency())
    .bind(m.stripe_event_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Appends a movement if the user's wallet is in its currency, in one statement: the
/// wallet is read and the entry inserted only on a match (the ledger trigger then moves
/// that wallet). Returns the wallet's currency and trial state as read, or None if the
/// user has no wallet yet; nothing is recorded unless the currency is the movement's.
///
/// For a movement the state machine makes once by construction (a transaction's credit,
/// on its one move to SUCCEEDED, under its lock): a repeat is not skipped but refused by
/// the unique key, as an error ([`StoreError::Conflict`]), since it would mean a broken
/// rule. That also spares the speculative insertion (and its WAL record) that
/// `ON CONFLICT` costs on every insert.
pub async fn record_movement_in_wallet(
    conn: &mut PgConnection,
    m: &Movement<'_>,
) -> Result<Option<(Currency, TrialState)>, StoreError> {
    Ok(sqlx::query_as(
        "WITH wallet AS (SELECT currency, trial_state FROM wallets WHERE user_id = $1), \
         moved AS ( \
           INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency, stripe_event_id) \
           SELECT $1, $2, $3, $4, $5, $6, $7 FROM wallet WHERE wallet.currency = $6 \
         ) SELECT currency, trial_state FROM wallet",
    )
    .bind(m.user_id.as_str())
    .bind(m.transaction_id.as_uuid())
    .bind(m.kind)
    .bind(m.key)
    .bind(m.signed_minor())
    .bind(m.money.currency())
    .bind(m.stripe_event_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The transaction's refund and dispute movements, by key, for the state machine.
pub async fn moved(conn: &mut PgConnection, id: TransactionId) -> Result<Moved, StoreError> {
    let rows: Vec<(MovementKind, String, i64)> = sqlx::query_as(
        "SELECT kind, movement_key, amount FROM ledger_entries WHERE transaction_id = $1 \
         AND kind IN ('refund_debit', 'refund_reversal', 'dispute_debit', 'dispute_reversal')",
    )
    .bind(id.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    let mut moved = Moved::default();
    for (kind, key, amount) in rows {
        let steps = match kind {
            MovementKind::RefundDebit | MovementKind::RefundReversal => &mut moved.refunds,
            _ => &mut moved.disputes,
        };
        let step: &mut Step = steps.entry(key).or_default();
        match kind.is_debit() {
            true => step.debited = -amount,
            false => step.reversed = true,
        }
    }
    Ok(moved)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerMismatch {
    pub user_id: String,
    pub balance: i64,
    pub ledger_sum: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReport {
    pub wallets_checked: i64,
    pub mismatches: Vec<LedgerMismatch>,
}

/// Every wallet whose balance differs from the sum of its ledger.
pub async fn check_ledger(conn: &mut PgConnection) -> Result<LedgerReport, StoreError> {
    let wallets_checked: i64 = sqlx::query_scalar("SELECT count(*) FROM wallets")
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT w.user_id, w.balance, COALESCE(l.total, 0)::bigint FROM wallets w \
         LEFT JOIN (SELECT user_id, sum(amount) AS total FROM ledger_entries GROUP BY user_id) l \
           ON l.user_id = w.user_id \
         WHERE w.balance <> COALESCE(l.total, 0) ORDER BY w.user_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mismatches = rows
        .into_iter()
        .map(|(user_id, balance, ledger_sum)| LedgerMismatch {
            user_id,
            balance,
            ledger_sum,
        })
        .collect();
    Ok(LedgerReport {
        wallets_checked,
        mismatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movement_is_signed_by_its_kind() {
        let user = UserId::parse("u").expect("user");
        let money = Money::new(250, Currency::USD).expect("positive");
        let signed = |kind| {
            Movement {
                user_id: &user,
                transaction_id: TransactionId::new(),
                kind,
                key: "",
                money,
                stripe_event_id: None,
            }
            .signed_minor()
        };
        for kind in MovementKind::ALL {
            let expected = match kind {
                MovementKind::RefundDebit | MovementKind::DisputeDebit => -250,
                MovementKind::RefundReversal
                | MovementKind::PaymentCredit
                | MovementKind::CouponCredit
                | MovementKind::TrialGrant
                | MovementKind::DisputeReversal => 250,
            };
            assert_eq!(signed(*kind), expected, "{kind}");
        }
    }
}
