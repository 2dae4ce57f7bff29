//! Identifiers that cannot hold invalid values: each is built by its `parse`, also
//! when deserialized or read from a row (see [`crate::text`]).

use std::{fmt, str::FromStr};

use uuid::Uuid;

use crate::text::{serde_via_parse, stored_as_text};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("not a UUID: {0:?}")]
    NotUuid(String),
    #[error("must be 1 to 128 printable characters")]
    BadUserId,
    #[error("must start with {prefix:?} and hold only letters, digits and '_'")]
    BadStripeId { prefix: &'static str },
}

/// Our transaction id: a UUID, also written into every Stripe object's `metadata[transaction_id]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(Uuid);

serde_via_parse!(TransactionId);

impl TransactionId {
    pub fn new() -> Self {
        TransactionId(Uuid::new_v4())
    }
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s)
            .map(TransactionId)
            .map_err(|_| IdError::NotUuid(s.to_owned()))
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TransactionId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for TransactionId {
    fn from(u: Uuid) -> Self {
        TransactionId(u)
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TransactionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TransactionId::parse(s)
    }
}

/// The user id of the identity provider (the JWT `sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

serde_via_parse!(UserId);
stored_as_text!(UserId);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (1..=128).contains(&s.len()) && !s.chars().any(char::is_control) && s.trim() == s;
        if ok {
            Ok(UserId(s.to_owned()))
        } else {
            Err(IdError::BadUserId)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_stripe_id(s: &str, prefix: &'static str) -> Result<(), IdError> {
    let ok = s.len() <= 255
        && s.len() > prefix.len()
        && s.starts_with(prefix)
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError::BadStripeId { prefix })
    }
}

macro_rules! stripe_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        serde_via_parse!($name);
        stored_as_text!($name);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub fn parse(s: &str) -> Result<Self, IdError> {
                valid_stripe_id(s, $prefix).map(|()| $name(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

stripe_id!(
    /// A Stripe event id (`evt_…`).
    StripeEventId, "evt_"
);
stripe_id!(
    /// A Stripe payment method id (`pm_…`); test tokens such as `pm_card_visa` also parse.
    PaymentMethodId, "pm_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_ids_need_their_prefix_and_safe_characters() {
        assert!(StripeEventId::parse("evt_1Abc").is_ok());
        assert!(StripeEventId::parse("evt_").is_err());
        assert!(StripeEventId::parse("pi_123").is_err());
        assert!(PaymentMethodId::parse("pm_card_visa").is_ok());
        assert!(PaymentMethodId::parse("pm_1 2").is_err());
    }

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(UserId::parse("user-1").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse(" padded").is_err());
    }

    #[test]
    fn ids_deserialize_only_through_their_parse() {
        let user: Result<UserId, _> = serde_json::from_str("\" padded\"");
        assert!(user.is_err());
        let user: Result<UserId, _> = serde_json::from_str("\"user-1\"");
        assert_eq!(user.ok(), UserId::parse("user-1").ok());
        let event: Result<StripeEventId, _> = serde_json::from_str("\"pi_123\"");
        assert!(event.is_err());
        let pm: Result<PaymentMethodId, _> = serde_json::from_str("\"pm_card_visa\"");
        assert!(pm.is_ok());
        let id = TransactionId::new();
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TransactionId>(&json).ok(), Some(id));
        assert!(serde_json::from_str::<TransactionId>("\"not-a-uuid\"").is_err());
    }

    #[test]
    fn transaction_ids_are_uuids() {
        assert!(TransactionId::parse("not-a-uuid").is_err());
        let id = TransactionId::new();
        assert_eq!(TransactionId::parse(&id.to_string()), Ok(id));
    }
}
