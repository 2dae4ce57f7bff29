use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

use super::StoreError;
use crate::{
    Currency, Money, Target, Transaction, TransactionId, TransactionKind, TransactionStatus, UserId,
};

const COLUMNS: &str = "id, user_id, kind, status, amount, currency, amount_refunded, failure_code, \
    failure_message, payment_method_id, coupon_code, card_fingerprint, trial_credit, flagged, \
    stripe_payment_intent_id, stripe_invoice_id, stripe_charge_id, client_secret, idempotency_key, \
    request_fingerprint, version, created_at, updated_at";

pub(crate) fn from_row(row: &PgRow) -> Result<Transaction, StoreError> {
    let currency: Currency = row.try_get("currency")?;
    let money = |minor: i64| {
        Money::new(minor, currency).map_err(|e| StoreError::Corrupt(format!("transactions: {e}")))
    };
    Ok(Transaction {
        id: TransactionId::from(row.try_get::<Uuid, _>("id")?),
        user_id: row.try_get("user_id")?,
        kind: row.try_get("kind")?,
        status: row.try_get("status")?,
        amount: money(row.try_get("amount")?)?,
        amount_refunded: row.try_get("amount_refunded")?,
        failure_code: row.try_get("failure_code")?,
        failure_message: row.try_get("failure_message")?,
        payment_method_id: row.try_get("payment_method_id")?,
        coupon_code: row.try_get("coupon_code")?,
        card_fingerprint: row.try_get("card_fingerprint")?,
        trial_credit: row
            .try_get::<Option<i64>, _>("trial_credit")?
            .map(money)
            .transpose()?,
        flagged: row.try_get("flagged")?,
        stripe_payment_intent_id: row.try_get("stripe_payment_intent_id")?,
        stripe_invoice_id: row.try_get("stripe_invoice_id")?,
        stripe_charge_id: row.try_get("stripe_charge_id")?,
        client_secret: row.try_get("client_secret")?,
        idempotency_key: row.try_get("idempotency_key")?,
        request_fingerprint: row.try_get("request_fingerprint")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A transaction about to be created, before Stripe is called.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub user_id: UserId,
    pub kind: TransactionKind,
    pub amount: Money,
    pub payment_method_id: Option<String>,
    pub coupon_code: Option<String>,
    pub card_fingerprint: Option<String>,
    /// In `amount`'s currency.
    pub trial_credit: Option<Money>,
    pub idempotency_key: String,
    /// What the request was, so a reused key with other parameters is caught.
    pub request_fingerprint: String,
}

#[derive(Debug)]
pub enum Inserted {
    New(Transaction),
    /// The user already used this idempotency key; the stored transaction comes back.
    Existing(Transaction),
}

/// Inserts in CREATED, or returns the transaction already stored under the user's
/// idempotency key. The unique constraint decides, so concurrent retries agree.
pub async fn insert_transaction(
    conn: &mut PgConnection,
    new: &NewTransaction,
) -> Result<Inserted, StoreError> {
    let sql = format!(
        "INSERT INTO transactions (id, user_id, kind, status, amount, currency, payment_method_id, \
         coupon_code, card_fingerprint, trial_credit, idempotency_key, request_fingerprint) \
         VALUES ($1, $2, $3, 'created', $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING {COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(TransactionId::new().as_uuid())
        .bind(&new.user_id)
        .bind(new.kind)
        .bind(new.amount.minor())
        .bind(new.amount.currency())
        .bind(&new.payment_method_id)
        .bind(&new.coupon_code)
        .bind(&new.card_fingerprint)
        .bind(new.trial_credit.map(|credit| credit.minor()))
        .bind(&new.idempotency_key)
        .bind(&new.request_fingerprint)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row {
        return Ok(Inserted::New(from_row(&row)?));
    }
    let sql =
        format!("SELECT {COLUMNS} FROM transactions WHERE user_id = $1 AND idempotency_key = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&new.user_id)
        .bind(&new.idempotency_key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Inserted::Existing(from_row(&row)?))
}

pub async fn get_transaction(
    conn: &mut PgConnection,
    id: TransactionId,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM transactions WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Locks the row for the rest of the database transaction: every writer of a
/// transaction's state takes this lock first, so transitions are serialized.
pub async fn lock_transaction(
    conn: &mut PgConnection,
    id: TransactionId,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM transactions WHERE id = $1 FOR UPDATE");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Finds and locks the transaction an event is about: by our id in the metadata,
/// else by the PaymentIntent, Invoice or Charge id recorded on it.
pub async fn lock_by_target(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<Option<Transaction>, StoreError> {
    if let Some(id) = target.transaction_id
        && let Some(tx) = lock_transaction(conn, id).await?
    {
        return Ok(Some(tx));
    }
    for (column, value) in [
        ("stripe_payment_intent_id", &target.payment_intent),
        ("stripe_invoice_id", &target.invoice),
        ("stripe_charge_id", &target.charge),
    ] {
        let Some(value) = value else { continue };
        let sql = format!("SELECT {COLUMNS} FROM transactions WHERE {column} = $1 FOR UPDATE");
        if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(&mut *conn)
            .await?
        {
            return Ok(Some(from_row(&row)?));
        }
    }
    Ok(None)
}

/// Reads many transactions in one query (the watchers' safety re-read).
pub async fn get_transactions(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Transaction>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM transactions WHERE id = ANY($1)");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Keyset position for newest-first listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

pub async fn list_transactions(
    conn: &mut PgConnection,
    user: &UserId,
    limit: i64,
    after: Option<ListCursor>,
) -> Result<Vec<Transaction>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions WHERE user_id = $1 \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(after.map(|c| c.created_at))
        .bind(after.map(|c| c.id))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

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

/// Writes the change and its `transaction_transitions` row in one statement and
/// returns the updated row (the trigger has bumped its version and rung the doorbell).
/// `from` is the row the caller locked.
pub async fn change_status(
    conn: &mut PgConnection,
    from: &Transaction,
    change: &StatusChange<'_>,
) -> Result<Transaction, StoreError> {
    let (failure_code, failure_message) = change.failure.unzip();
    let sql = format!(
        "WITH updated AS ( \
           UPDATE transactions SET status = $2, amount_refunded = $3, \
             failure_code = CASE WHEN $2 = 'failed' THEN $4 WHEN $2 = 'succeeded' THEN NULL ELSE failure_code END, \
             failure_message = CASE WHEN $2 = 'failed' THEN $5 WHEN $2 = 'succeeded' THEN NULL ELSE failure_message END, \
             stripe_charge_id = COALESCE(stripe_charge_id, $6) \
           WHERE id = $1 RETURNING {COLUMNS} \
         ), audit AS ( \
           INSERT INTO transaction_transitions \
             (transaction_id, from_status, to_status, version, cause, stripe_event_id) \
           SELECT id, $7, status, version, $8, $9 FROM updated \
         ) SELECT {COLUMNS} FROM updated"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(from.id.as_uuid())
        .bind(change.to)
        .bind(change.amount_refunded)
        .bind(failure_code)
        .bind(failure_message)
        .bind(change.charge)
        .bind(from.status)
        .bind(change.cause)
        .bind(change.stripe_event_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("transaction {} vanished", from.id)))?;
    from_row(&row)
}

/// [`TransactionStatus::UNSETTLED`] as the queries (and the `transactions_unsettled`
/// index) write it.
pub fn unsettled_predicate() -> String {
    format!(
        "status IN ({})",
        crate::text::sql_list(TransactionStatus::UNSETTLED)
    )
}

/// [`TransactionStatus::UNSUCCESSFUL`] as the queries (and the
/// `transactions_coupon_once` index, negated) write it.
pub fn unsuccessful_predicate() -> String {
    format!(
        "status IN ({})",
        crate::text::sql_list(TransactionStatus::UNSUCCESSFUL)
    )
}

/// A position in the sweep over unsettled transactions, oldest change first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCursor {
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of unsettled transactions untouched since `older_than`, after `after`:
/// candidates for reconciliation. Keyset paging, so transactions that stay unsettled
/// for good (an abandoned 3DS) cannot starve the ones behind them.
pub async fn unsettled_page(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
    after: Option<SweepCursor>,
    limit: i64,
) -> Result<Vec<SweepCursor>, StoreError> {
    let sql = format!(
        "SELECT updated_at, id FROM transactions WHERE {} AND updated_at < $1 \
           AND ($2::timestamptz IS NULL OR (updated_at, id) > ($2, $3)) \
         ORDER BY updated_at, id LIMIT $4",
        unsettled_predicate()
    );
    let rows: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(older_than)
        .bind(after.map(|c| c.updated_at))
        .bind(after.map(|c| c.id))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(updated_at, id)| SweepCursor { updated_at, id })
        .collect())
}

/// Locks the transaction for reconciliation if it is still unsettled and no other
/// instance holds it; None otherwise (skip it).
pub async fn claim_unsettled(
    conn: &mut PgConnection,
    id: TransactionId,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions WHERE id = $1 AND {} FOR UPDATE SKIP LOCKED",
        unsettled_predicate()
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

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

/// The transaction the user created under this idempotency key, if any.
pub async fn find_by_idempotency_key(
    conn: &mut PgConnection,
    user: &UserId,
    key: &str,
) -> Result<Option<Transaction>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM transactions WHERE user_id = $1 AND idempotency_key = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// How many of the user's transactions under keys starting with `prefix` failed or
/// were canceled: the attempt number of the next derived key.
pub async fn failed_attempts(
    conn: &mut PgConnection,
    user: &UserId,
    prefix: &str,
) -> Result<i64, StoreError> {
    let sql = format!(
        "SELECT count(*) FROM transactions WHERE user_id = $1 \
         AND starts_with(idempotency_key, $2) AND {}",
        unsuccessful_predicate()
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(prefix)
        .fetch_one(&mut *conn)
        .await?)
}

/// The succeeded card validation that proved this card, newest first.
pub async fn validating_transaction(
    conn: &mut PgConnection,
    user: &UserId,
    payment_method: &str,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions WHERE user_id = $1 AND payment_method_id = $2 \
         AND kind = 'card_validation' AND status = 'succeeded' ORDER BY updated_at DESC, id DESC LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(payment_method)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Whether the user already redeemed this code (case-insensitively) in a transaction
/// that did not fail: a pre-check before calling Stripe; the `transactions_coupon_once`
/// index still decides races.
pub async fn coupon_redeemed(
    conn: &mut PgConnection,
    user: &UserId,
    code: &str,
) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT 1 FROM transactions WHERE user_id = $1 AND kind = 'coupon' \
         AND lower(coupon_code) = lower($2) AND NOT {}",
        unsuccessful_predicate()
    );
    let found: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}
