//! Attaching a card to the user's customer and detaching it.

use payments_core::{CardDetails, StripeObject};
use stripe::StripeRequest;
use stripe_payment::payment_method::{AttachPaymentMethod, DetachPaymentMethod};

use super::{Stripe, StripeFailure};

impl Stripe {
    /// Attaches a payment method (or a test token, which Stripe turns into a new
    /// `pm_…`) to the customer and returns the card as Stripe describes it, read as
    /// a `payment_method.attached` event's object is.
    pub async fn attach_payment_method(
        &self,
        payment_method: &str,
        customer: &str,
    ) -> Result<CardDetails, StripeFailure> {
        let request = AttachPaymentMethod::new(payment_method)
            .customer(customer)
            .build()
            .customize();
        let attached = self
            .client
            .send_json("attach_payment_method", request)
            .await?;
        let card = StripeObject::new(&attached)
            .card()
            .ok_or_else(|| StripeFailure::Unexpected("a payment method without an id".into()))?;
        Ok(CardDetails {
            customer: Some(customer.to_owned()),
            ..card
        })
    }

    /// Detaches a payment method. One Stripe no longer knows, or that is no longer
    /// attached, counts as detached.
    pub async fn detach_payment_method(&self, payment_method: &str) -> Result<(), StripeFailure> {
        let request = DetachPaymentMethod::new(payment_method).customize();
        match self.client.send("detach_payment_method", request).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_missing() => Ok(()),
            Err(e) if e.is_rejected_with("payment_method_unexpected_state") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
