//! The `wallets` table: a user's balance (moved only by the ledger's trigger), its
//! currency, and its one trial; and `trial_grants`, one trial per card fingerprint.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Row, postgres::PgRow};

use super::StoreError;
use crate::{Currency, UserId, text::text_enum};

text_enum!(
    /// Where a wallet's one trial is.
    TrialState as "trial state" {
        None = "none",
        Active = "active",
        Ended = "ended",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wallet {
    pub user_id: UserId,
    pub balance: i64,
    pub currency: Currency,
    pub trial_state: TrialState,
    pub trial_credit: i64,
    pub trial_started_at: Option<DateTime<Utc>>,
    pub trial_ended_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "user_id, balance, currency, trial_state, trial_credit, trial_started_at, trial_ended_at";

fn from_row(row: &PgRow) -> Result<Wallet, StoreError> {
    Ok(Wallet {
        user_id: row.try_get("user_id")?,
        balance: row.try_get("balance")?,
        currency: row.try_get("currency")?,
        trial_state: row.try_get("trial_state")?,
        trial_credit: row.try_get("trial_credit")?,
        trial_started_at: row.try_get("trial_started_at")?,
        trial_ended_at: row.try_get("trial_ended_at")?,
    })
}

/// Returns the user's wallet, creating it in `currency` if missing. Concurrent calls
/// create exactly one (the primary key decides). An existing wallet keeps its currency.
pub async fn ensure_wallet(
    conn: &mut PgConnection,
    user: &UserId,
    currency: Currency,
) -> Result<Wallet, StoreError> {
    // Usually one round trip: the inserted row, or the stored one. The SELECT arm
    // reads the statement's snapshot, so a wallet another transaction committed while
    // this INSERT waited on it is not seen: then a second statement reads it.
    let sql = format!(
        "WITH inserted AS ( \
           INSERT INTO wallets (user_id, currency) VALUES ($1, $2) \
           ON CONFLICT DO NOTHING RETURNING {COLUMNS} \
         ) SELECT {COLUMNS} FROM inserted \
         UNION ALL SELECT {COLUMNS} FROM wallets WHERE user_id = $1 LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(currency)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => from_row(&row),
        None => get_wallet(conn, user).await?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "wallet of {} neither inserted nor found",
                user.as_str()
            ))
        }),
    }
}

pub async fn get_wallet(
    conn: &mut PgConnection,
    user: &UserId,
) -> Result<Option<Wallet>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM wallets WHERE user_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Starts the trial if the wallet never had one. Returns whether it started.
pub async fn start_trial(
    conn: &mut PgConnection,
    user: &UserId,
    credit: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE wallets SET trial_state = 'active', trial_credit = $2, trial_started_at = now(), \
         updated_at = now() WHERE user_id = $1 AND trial_state = 'none'",
    )
    .bind(user)
    .bind(credit)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn end_trial(conn: &mut PgConnection, user: &UserId) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE wallets SET trial_state = 'ended', trial_ended_at = now(), updated_at = now() \
         WHERE user_id = $1 AND trial_state = 'active'",
    )
    .bind(user)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that this card fingerprint started a trial. False if it already did.
pub async fn claim_trial_for_card(
    conn: &mut PgConnection,
    fingerprint: &str,
    user: &UserId,
    transaction: crate::TransactionId,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO trial_grants (fingerprint, user_id, transaction_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(fingerprint)
    .bind(user)
    .bind(transaction.as_uuid())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a card (by fingerprint) already started a trial, for anyone.
pub async fn card_had_trial(
    conn: &mut PgConnection,
    fingerprint: &str,
) -> Result<bool, StoreError> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM trial_grants WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}
