//! Stripe's test payment method tokens and how each card behaves when charged.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What happens when a card is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Succeeds,
    /// A 3D Secure 2 challenge must be completed (`requires_action`).
    RequiresAuthentication,
    /// Declined with this `decline_code`.
    Declines(Decline),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    Generic,
    InsufficientFunds,
}

impl Decline {
    pub fn decline_code(self) -> &'static str {
        match self {
            Decline::Generic => "generic_decline",
            Decline::InsufficientFunds => "insufficient_funds",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Decline::Generic => "Your card was declined.",
            Decline::InsufficientFunds => "Your card has insufficient funds.",
        }
    }
}

/// What happens after a successful charge, some moments later on Stripe (here, right after
/// the charge's own events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aftermath {
    Nothing,
    /// Once captured, the charge is disputed: a chargeback with funds withdrawn, or an inquiry.
    Disputed {
        inquiry: bool,
        reason: &'static str,
    },
    /// Once captured, the charge is disputed twice (two chargebacks of its full amount).
    DisputedTwice,
    /// Refunds start `succeeded`, then fail (`expired_or_canceled_card`).
    RefundsFail,
}

/// One of the test cards behind the `pm_card_*` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    pub token: &'static str,
    pub brand: &'static str,
    pub last4: &'static str,
    pub behaviour: Behaviour,
    pub aftermath: Aftermath,
}

/// A card that charges without trouble, with `aftermath` to follow.
const fn succeeding(token: &'static str, last4: &'static str, aftermath: Aftermath) -> TestCard {
    TestCard {
        token,
        brand: "visa",
        last4,
        behaviour: Behaviour::Succeeds,
        aftermath,
    }
}

const CARDS: &[TestCard] = &[
    TestCard {
        token: "pm_card_visa",
        brand: "visa",
        last4: "4242",
        behaviour: Behaviour::Succeeds,
        aftermath: Aftermath::Nothing,
    },
    TestCard {
        token: "pm_card_mastercard",
        brand: "mastercard",
        last4: "4444",
        behaviour: Behaviour::Succeeds,
        aftermath: Aftermath::Nothing,
    },
    TestCard {
        token: "pm_card_amex",
        brand: "amex",
        last4: "8431",
        behaviour: Behaviour::Succeeds,
        aftermath: Aftermath::Nothing,
    },
    TestCard {
        token: "pm_card_threeDSecure2Required",
        brand: "visa",
        last4: "3220",
        behaviour: Behaviour::RequiresAuthentication,
        aftermath: Aftermath::Nothing,
    },
    TestCard {
        token: "pm_card_authenticationRequired",
        brand: "visa",
        last4: "3184",
        behaviour: Behaviour::RequiresAuthentication,
        aftermath: Aftermath::Nothing,
    },
    TestCard {
        token: "pm_card_chargeDeclined",
        brand: "visa",
        last4: "0002",
        behaviour: Behaviour::Declines(Decline::Generic),
        aftermath: Aftermath::Nothing,
    },
    TestCard {
        token: "pm_card_visa_chargeDeclined",
        brand: "visa",
        last4: "0002",
        behaviour: Behaviour::Declines(Decline::Generic),
        aftermath: Aftermath::Nothing,
    },
    TestCard {
        token: "pm_card_chargeDeclinedInsufficientFunds",
        brand: "visa",
        last4: "9995",
        behaviour: Behaviour::Declines(Decline::InsufficientFunds),
        aftermath: Aftermath::Nothing,
    },
    succeeding(
        "pm_card_createDispute",
        "0259",
        Aftermath::Disputed {
            inquiry: false,
            reason: "fraudulent",
        },
    ),
    succeeding(
        "pm_card_createDisputeProductNotReceived",
        "2685",
        Aftermath::Disputed {
            inquiry: false,
            reason: "product_not_received",
        },
    ),
    succeeding(
        "pm_card_createDisputeInquiry",
        "1976",
        Aftermath::Disputed {
            inquiry: true,
            reason: "fraudulent",
        },
    ),
    succeeding(
        "pm_card_createMultipleDisputes",
        "0079",
        Aftermath::DisputedTwice,
    ),
    succeeding("pm_card_refundFail", "5126", Aftermath::RefundsFail),
];

impl TestCard {
    /// The card behind a `pm_card_*` token, if it is one.
    pub fn from_token(token: &str) -> Option<TestCard> {
        CARDS.iter().copied().find(|card| card.token == token)
    }

    pub fn is_token(id: &str) -> bool {
        id.starts_with("pm_card_")
    }

    /// Stable per underlying card number, as Stripe's fingerprints are.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(format!("{}:{}", self.brand, self.last4).as_bytes());
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        digest
            .iter()
            .take(16)
            .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
            .collect()
    }

    /// The `card` hash of a PaymentMethod.
    pub fn payment_method_card(&self, exp_year: i64) -> Value {
        json!({
            "brand": self.brand,
            "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
            "country": "US",
            "display_brand": self.brand,
            "exp_month": 12,
            "exp_year": exp_year,
            "fingerprint": self.fingerprint(),
            "funding": "credit",
            "generated_from": null,
            "last4": self.last4,
            "networks": {"available": [self.brand], "preferred": null},
            "three_d_secure_usage": {"supported": true},
            "wallet": null,
        })
    }

    /// The `payment_method_details` hash of a Charge.
    pub fn charge_details(&self, exp_year: i64) -> Value {
        json!({
            "type": "card",
            "card": {
                "brand": self.brand,
                "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
                "country": "US",
                "exp_month": 12,
                "exp_year": exp_year,
                "fingerprint": self.fingerprint(),
                "funding": "credit",
                "last4": self.last4,
                "network": self.brand,
                "three_d_secure": null,
                "wallet": null,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_card_number_has_the_same_fingerprint() {
        let a = TestCard::from_token("pm_card_chargeDeclined").expect("known");
        let b = TestCard::from_token("pm_card_visa_chargeDeclined").expect("known");
        let visa = TestCard::from_token("pm_card_visa").expect("known");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), visa.fingerprint());
        assert_eq!(visa.fingerprint().len(), 16);
    }

    #[test]
    fn unknown_tokens_are_not_cards() {
        assert!(TestCard::from_token("pm_card_nonsense").is_none());
    }
}
