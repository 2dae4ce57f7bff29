use payments_core::CardDetails;
use stripe::StripeRequest;
use stripe_payment::payment_method::{AttachPaymentMethod, DetachPaymentMethod};

use super::{Observed, Stripe, StripeFailure};

impl Stripe {
    /// Attaches a payment method (or a test token, which Stripe turns into a new
    /// `pm_…`) to the customer and returns the card as Stripe describes it.
    pub async fn attach_payment_method(
        &self,
        payment_method: &str,
        customer: &str,
    ) -> Result<CardDetails, StripeFailure> {
        let pm = AttachPaymentMethod::new(payment_method)
            .customer(customer)
            .customize()
            .send(&self.client)
            .observed(&self.metrics, "attach_payment_method")
            .await?;
        let card = pm.card.as_ref();
        Ok(CardDetails {
            payment_method_id: pm.id.to_string(),
            customer: Some(customer.to_owned()),
            brand: card.map(|c| c.brand.clone()).unwrap_or_default(),
            last4: card.map(|c| c.last4.clone()).unwrap_or_default(),
            fingerprint: card.and_then(|c| c.fingerprint.clone()).unwrap_or_default(),
        })
    }

    /// Detaches a payment method. One Stripe no longer knows, or that is no longer
    /// attached, counts as detached.
    pub async fn detach_payment_method(&self, payment_method: &str) -> Result<(), StripeFailure> {
        let sent = DetachPaymentMethod::new(payment_method)
            .customize()
            .send(&self.client)
            .observed(&self.metrics, "detach_payment_method")
            .await;
        match sent.map_err(StripeFailure::from) {
            Ok(_) => Ok(()),
            Err(e) if e.is_missing() => Ok(()),
            Err(StripeFailure::Rejected { code, .. })
                if code == "payment_method_unexpected_state" =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
