//! The `transactions` table: the row as the domain reads it, and creating, reading
//! and locking transactions. The rest of its queries live by concern:
//!
//! - [`writes`]: recording Stripe's ids, a status change with its audit entry, a flag.
//! - [`sweep`]: the unsettled transactions reconciliation pages through and claims.
//! - [`lookups`]: the request path's questions (an idempotency key, failed attempts,
//!   a card's validation, a coupon already redeemed).

mod lookups;
mod sweep;
mod writes;

pub use lookups::{
    coupon_redeemed, failed_attempts, find_by_idempotency_key, has_paid_before,
    lock_live_coupon_sibling, unsuccessful_predicate, validating_transaction,
};
pub use sweep::{
    SweepCursor, back_off_reconciliation, claim_unsettled, oldest_transaction_created,
    unsettled_page, unsettled_predicate,
};
pub use writes::{
    RowAddress, StatusChange, StripeRefs, change_status, flag_transaction, set_coupon_id,
    set_stripe_refs,
};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

use super::StoreError;
use crate::{Currency, Money, Target, Transaction, TransactionId, TransactionKind, UserId};

/// Every column of the row, in [`from_row`]'s terms.
pub(super) const COLUMNS: &str = "id, user_id, kind, status, amount, currency, amount_refunded, failure_code, \
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

/// A transaction locked for an event, with its user's Stripe customer (which the
/// event's object must name, if it names one).
#[derive(Debug, Clone)]
pub struct Locked {
    pub transaction: Transaction,
    pub stripe_customer: Option<String>,
    /// Where the locked row lies, for the status change that follows the lock.
    pub address: RowAddress,
}

/// Locks the transactions of `ids` that exist, in id order, then their users' wallets
/// in user order, each transaction with its
/// user's Stripe customer and where its row lies, as [`lock_by_target`] reads them: a
/// batch of events takes its locks in one statement instead of one per event.
///
/// Every writer takes a transaction before its wallet (a single event's lock, then the
/// ledger trigger's credit), and a batch of successes written in one statement takes
/// its transactions in id order, then its wallets in user order
/// ([`write_successes`](crate::store::write_successes)): so batches locking
/// overlapping sets wait on each other, and never in a cycle. The wallets are taken as
/// the credit's update takes them (`FOR NO KEY UPDATE`), which leaves the ledger's
/// foreign-key checks from other writers free. Their sort reads every transaction
/// first, so all of those are locked before the first wallet.
pub async fn lock_many(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Locked>, StoreError> {
    // A CTE nothing reads is not run: the always-true count is what takes the wallets.
    let sql = format!(
        "WITH locked AS MATERIALIZED ({}), \
           wallets_locked AS (SELECT 1 FROM wallets w \
             WHERE w.user_id IN (SELECT user_id FROM locked) \
             ORDER BY w.user_id FOR NO KEY UPDATE) \
         SELECT * FROM locked WHERE (SELECT count(*) FROM wallets_locked) >= 0",
        locking_select("t.id = ANY($1) ORDER BY t.id")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(locked_from_row).collect()
}

/// The statement that locks the transactions matching `condition` (a WHERE clause,
/// with an ORDER BY if wanted) and reads what [`locked_from_row`] makes a [`Locked`] of.
fn locking_select(condition: &str) -> String {
    format!(
        "SELECT {COLUMNS}, (SELECT c.stripe_customer_id FROM customers c \
           WHERE c.user_id = t.user_id) AS stripe_customer, t.ctid::text AS row_address \
         FROM transactions t WHERE {condition} FOR UPDATE OF t"
    )
}

fn locked_from_row(row: &PgRow) -> Result<Locked, StoreError> {
    Ok(Locked {
        transaction: from_row(row)?,
        stripe_customer: row.try_get("stripe_customer")?,
        address: RowAddress(row.try_get("row_address")?),
    })
}

/// Finds and locks the transaction an event is about, with its user's Stripe customer
/// in the same statement: by our id in the metadata, else by the PaymentIntent, Invoice
/// or Charge id recorded on it (the charge through `transaction_charges`).
pub async fn lock_by_target(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<Option<Locked>, StoreError> {
    let id = target.transaction_id.map(|id| id.as_uuid().to_string());
    for (condition, value) in [
        ("t.id = $1::uuid", &id),
        ("t.stripe_payment_intent_id = $1", &target.payment_intent),
        ("t.stripe_invoice_id = $1", &target.invoice),
        (
            "t.id = (SELECT transaction_id FROM transaction_charges WHERE charge_id = $1)",
            &target.charge,
        ),
    ] {
        let Some(value) = value else { continue };
        if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(locking_select(condition)))
            .bind(value)
            .fetch_optional(&mut *conn)
            .await?
        {
            return locked_from_row(&row).map(Some);
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
