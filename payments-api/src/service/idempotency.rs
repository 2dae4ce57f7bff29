//! Idempotency keys: the same key and the same request give back the same
//! transaction; the same key for another request is refused, naming the difference.

use payments_core::{
    Transaction, UserId,
    store::{self, Inserted, NewTransaction},
};
use sqlx::PgConnection;

use super::input::DERIVED_KEY_PREFIX;
use crate::error::{ApiResult, Reason, Refusal};

/// A canonical `name=value;…` string of what a request asks for, stored as the
/// transaction's `request_fingerprint`.
pub fn fingerprint(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// What identifies a request under its idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user_id: &'a UserId,
    pub idempotency_key: &'a str,
    /// [`fingerprint`] of what it asks for.
    pub fingerprint: &'a str,
}

impl<'a> From<&'a NewTransaction> for Request<'a> {
    fn from(new: &'a NewTransaction) -> Self {
        Request {
            user_id: &new.user_id,
            idempotency_key: &new.idempotency_key,
            fingerprint: &new.request_fingerprint,
        }
    }
}

/// Refuses a stored transaction whose request differs from this one.
pub fn check_same_request<'a>(
    existing: &Transaction,
    request: impl Into<Request<'a>>,
) -> ApiResult<()> {
    let request = request.into();
    if existing.request_fingerprint == request.fingerprint {
        return Ok(());
    }
    let before = pairs(&existing.request_fingerprint);
    let now = pairs(request.fingerprint);
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in before.iter().chain(&now) {
        if !names.contains(name) {
            names.push(name);
        }
    }
    let differences: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let was = lookup(&before, name);
            let is = lookup(&now, name);
            (was != is).then(|| format!("{name} was {was:?}, now {is:?}"))
        })
        .collect();
    let changed: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| lookup(&before, name) != lookup(&now, name))
        .collect();
    Err(Refusal::new(
        Reason::IdempotencyKeyReused,
        format!(
            "idempotency key {:?} was already used for a different request ({})",
            request.idempotency_key,
            differences.join(", ")
        ),
    )
    .with("idempotency_key", request.idempotency_key.to_owned())
    .with("changed", changed.join(","))
    .into())
}

fn pairs(fingerprint: &str) -> Vec<(&str, &str)> {
    fingerprint
        .split(';')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

fn lookup<'a>(pairs: &[(&str, &'a str)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, v)| v)
}

/// Inserts the transaction, or returns the one already stored under its key if it
/// was for the same request. Concurrent identical calls all get the one row.
pub async fn claim(conn: &mut PgConnection, new: &NewTransaction) -> ApiResult<Transaction> {
    match store::insert_transaction(conn, new).await? {
        Inserted::New(tx) => Ok(tx),
        Inserted::Existing(tx) => {
            check_same_request(&tx, new)?;
            Ok(tx)
        }
    }
}

/// The stored transaction for this key if there is one (checked to be for the
/// same request).
pub async fn replay<'a>(
    conn: &mut PgConnection,
    request: impl Into<Request<'a>>,
) -> ApiResult<Option<Transaction>> {
    let request = request.into();
    let found =
        store::find_by_idempotency_key(conn, request.user_id, request.idempotency_key).await?;
    let Some(tx) = found else {
        return Ok(None);
    };
    check_same_request(&tx, request)?;
    Ok(Some(tx))
}

/// A key for RPCs whose requests carry none: the same while the previous attempt
/// for (user, purpose, card) has not failed, so a double click does not charge
/// twice, and a new one after a failure, so the user can try again.
pub async fn derived_key(
    conn: &mut PgConnection,
    user: &UserId,
    purpose: &str,
    payment_method: &str,
) -> ApiResult<String> {
    let prefix = format!("{DERIVED_KEY_PREFIX}{purpose}:{payment_method}:");
    let attempt = store::failed_attempts(conn, user, &prefix).await?;
    Ok(format!("{prefix}{attempt}"))
}

#[cfg(test)]
mod tests {
    use payments_core::{Currency, Money, TransactionKind};

    use super::*;

    fn new(fingerprint: &str) -> NewTransaction {
        NewTransaction {
            user_id: UserId::parse("alice").expect("id"),
            kind: TransactionKind::Payment,
            amount: Money::new(1000, Currency::USD).expect("positive"),
            payment_method_id: None,
            coupon_code: None,
            card_fingerprint: None,
            trial_credit: None,
            idempotency_key: "k1".into(),
            request_fingerprint: fingerprint.into(),
        }
    }

    fn stored(fingerprint: &str) -> Transaction {
        let user = UserId::parse("alice").expect("id");
        let amount = Money::new(1000, Currency::USD).expect("positive");
        Transaction {
            idempotency_key: "k1".into(),
            request_fingerprint: fingerprint.into(),
            ..Transaction::created(
                payments_core::TransactionId::new(),
                user,
                TransactionKind::Payment,
                amount,
            )
        }
    }

    #[test]
    fn a_reused_key_names_what_changed() {
        let first = fingerprint(&[("kind", "payment"), ("amount", "1000"), ("currency", "usd")]);
        let second = fingerprint(&[("kind", "payment"), ("amount", "2000"), ("currency", "usd")]);
        let existing = stored(&first);
        assert!(check_same_request(&existing, &new(&first)).is_ok());
        let Err(crate::error::ApiError::Refused(refusal)) =
            check_same_request(&existing, &new(&second))
        else {
            panic!("a different request was accepted");
        };
        let why = &refusal.message;
        assert_eq!(refusal.reason, Reason::IdempotencyKeyReused);
        assert!(why.contains("amount was \"1000\", now \"2000\""), "{why}");
        assert!(!why.contains("currency"), "{why}");
        assert!(refusal.metadata.contains(&("changed", "amount".to_owned())));
    }
}
