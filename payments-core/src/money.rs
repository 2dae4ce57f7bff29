//! Money as integer minor units with a currency. There are no floats anywhere.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::text::{serde_via_parse, stored_as_text};

/// The largest amount Stripe charges, in minor units (`$999,999.99`); amounts we
/// accept stay at or below it, so no wallet balance can overflow.
pub const STRIPE_MAX_AMOUNT: i64 = 99_999_999;

/// A lower-case ISO 4217 code as Stripe writes it (`usd`, `eur`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

serde_via_parse!(Currency);
stored_as_text!(Currency);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be three lower-case letters (ISO 4217, e.g. \"usd\"), got {0:?}")]
    BadCurrency(String),
    #[error("amount must be positive, got {0}")]
    NotPositive(i64),
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflows")]
    Overflow,
}

impl Currency {
    pub const USD: Currency = Currency(*b"usd");

    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let bytes = s.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_lowercase) => Ok(Currency([*a, *b, *c])),
            _ => Err(MoneyError::BadCurrency(s.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from three ASCII lower-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

/// A strictly positive amount in minor units of a currency. Deserialized through
/// [`Money::new`], so a document cannot hold a zero or negative amount either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "UncheckedMoney")]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive(minor));
        }
        Ok(Money { minor, currency })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

/// Money's fields as a document holds them, before [`Money::new`] checks them.
#[derive(Deserialize)]
struct UncheckedMoney {
    minor: i64,
    currency: Currency,
}

impl TryFrom<UncheckedMoney> for Money {
    type Error = MoneyError;
    fn try_from(m: UncheckedMoney) -> Result<Self, Self::Error> {
        Money::new(m.minor, m.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.minor, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_accepts_only_three_lower_case_letters() {
        assert_eq!(
            Currency::parse("usd").map(|c| c.to_string()),
            Ok("usd".into())
        );
        for bad in ["USD", "us", "usdd", "", "u1d", "é"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn money_deserializes_only_through_its_checks() {
        let money: Result<Money, _> = serde_json::from_str(r#"{"minor": 500, "currency": "usd"}"#);
        assert_eq!(money.ok(), Money::new(500, Currency::USD).ok());
        for bad in [
            r#"{"minor": 0, "currency": "usd"}"#,
            r#"{"minor": -5, "currency": "usd"}"#,
            r#"{"minor": 5, "currency": "USD"}"#,
        ] {
            assert!(serde_json::from_str::<Money>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_must_be_positive() {
        assert!(Money::new(0, Currency::USD).is_err());
        assert!(Money::new(-1, Currency::USD).is_err());
        assert_eq!(Money::new(500, Currency::USD).map(|m| m.minor()), Ok(500));
    }
}
