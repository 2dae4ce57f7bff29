//! Writing a locked transaction: the Stripe ids it is tied to, a status change with
//! its audit-trail entry (in one statement), and a flag for an operator. Only
//! `settle` and reconciliation's adoption call these, inside the caller's database
//! transaction.

use sqlx::PgConnection;

use super::{COLUMNS, from_row};
use crate::{Transaction, TransactionId, TransactionStatus, store::StoreError};

/// The Stripe object a transaction is now tied to, recorded as soon as Stripe answers.
#[derive(Debug, Clone, Default)]
pub struct StripeRefs<'a> {
    pub payment_intent_id: Option<&'a str>,
    pub invoice_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
}

pub async fn set_stripe_refs(
    conn: &mut PgConnection,
    id: TransactionId,
    refs: &StripeRefs<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE transactions SET \
         stripe_payment_intent_id = COALESCE(stripe_payment_intent_id, $2), \
         stripe_invoice_id = COALESCE(stripe_invoice_id, $3), \
         client_secret = COALESCE($4, client_secret) WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(refs.payment_intent_id)
    .bind(refs.invoice_id)
    .bind(refs.client_secret)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A status change to write, with its audit-trail entry.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub to: TransactionStatus,
    pub amount_refunded: i64,
    /// Kept when the change is to FAILED; cleared by SUCCEEDED.
    pub failure: Option<(&'a str, &'a str)>,
    /// The charge behind a success, recorded once.
    pub charge: Option<&'a str>,
    /// Why (`stripe_event`, `request`, `reconciliation`), and the event if one.
    pub cause: &'a str,
    pub stripe_event_id: Option<&'a str>,
}

/// Where a locked row version lies in its table (its `ctid`), read with the lock so
/// that the update after it goes straight to the row instead of searching the primary
/// key a second time. It means something only inside the database transaction that
/// locked the row, and only until the row is next updated; [`change_status`] checks the
/// id too and falls back to it when the row has moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowAddress(pub(super) String);

/// Writes the change and its `transaction_transitions` row in one statement and
/// returns the updated row (the trigger has bumped its version and rung the doorbell).
/// `from` is the row the caller locked, `at` where it lay when locked, if known.
pub async fn change_status(
    conn: &mut PgConnection,
    from: &Transaction,
    at: Option<&RowAddress>,
    change: &StatusChange<'_>,
) -> Result<Transaction, StoreError> {
    if let Some(at) = at
        && let Some(updated) = update_status(conn, from, Some(at), change).await?
    {
        return Ok(updated);
    }
    update_status(conn, from, None, change)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("transaction {} vanished", from.id)))
}

/// The status change of the row at `at` (when it still holds the transaction, as a
/// visible version), else of the row found by id.
async fn update_status(
    conn: &mut PgConnection,
    from: &Transaction,
    at: Option<&RowAddress>,
    change: &StatusChange<'_>,
) -> Result<Option<Transaction>, StoreError> {
    let (failure_code, failure_message) = change.failure.unzip();
    let row = match at {
        Some(_) => "ctid = $10::tid AND id = $1",
        None => "id = $1",
    };
    let sql = format!(
        "WITH updated AS ( \
           UPDATE transactions SET status = $2, amount_refunded = $3, \
             failure_code = CASE WHEN $2 = 'failed' THEN $4 WHEN $2 = 'succeeded' THEN NULL ELSE failure_code END, \
             failure_message = CASE WHEN $2 = 'failed' THEN $5 WHEN $2 = 'succeeded' THEN NULL ELSE failure_message END, \
             stripe_charge_id = COALESCE(stripe_charge_id, $6) \
           WHERE {row} RETURNING {COLUMNS} \
         ), audit AS ( \
           INSERT INTO transaction_transitions \
             (transaction_id, from_status, to_status, version, cause, stripe_event_id) \
           SELECT id, $7, status, version, $8, $9 FROM updated \
         ) SELECT {COLUMNS} FROM updated"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(from.id.as_uuid())
        .bind(change.to)
        .bind(change.amount_refunded)
        .bind(failure_code)
        .bind(failure_message)
        .bind(change.charge)
        .bind(from.status)
        .bind(change.cause)
        .bind(change.stripe_event_id);
    if let Some(at) = at {
        query = query.bind(at.0.as_str());
    }
    let row = query.fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// Records why the transaction needs an operator; a later flag replaces the reason.
pub async fn flag_transaction(
    conn: &mut PgConnection,
    id: TransactionId,
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE transactions SET flagged = $2 WHERE id = $1 AND flagged IS DISTINCT FROM $2",
    )
    .bind(id.as_uuid())
    .bind(why)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the Stripe coupon a coupon transaction redeems, once; the
/// `transactions_coupon_once_per_coupon` index refuses a second live redemption of it.
pub async fn set_coupon_id(
    conn: &mut PgConnection,
    id: TransactionId,
    coupon_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE transactions SET stripe_coupon_id = $2 \
         WHERE id = $1 AND kind = 'coupon' AND stripe_coupon_id IS NULL",
    )
    .bind(id.as_uuid())
    .bind(coupon_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
