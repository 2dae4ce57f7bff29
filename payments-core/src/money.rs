//! Money as integer minor units with a currency. There are no floats anywhere.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A lower-case ISO 4217 code as Stripe writes it (`usd`, `eur`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

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

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

/// A strictly positive amount in minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    fn money_must_be_positive() {
        assert!(Money::new(0, Currency::USD).is_err());
        assert!(Money::new(-1, Currency::USD).is_err());
        assert_eq!(Money::new(500, Currency::USD).map(|m| m.minor()), Ok(500));
    }
}
