//! The Stripe customer of a user.

use payments_stripe::idempotent;
use stripe::StripeRequest;
use stripe_core::customer::CreateCustomer;

use super::{Stripe, StripeFailure};

impl Stripe {
    /// Creates the Stripe customer of a user. The idempotency key is derived from the
    /// user, so two first calls racing past each other still make one customer.
    pub async fn create_customer(&self, user_id: &str) -> Result<String, StripeFailure> {
        let metadata: std::collections::HashMap<String, String> =
            [("user_id".to_owned(), user_id.to_owned())].into();
        let request = CreateCustomer::new()
            .metadata(metadata)
            .customize()
            .request_strategy(idempotent(&format!("customer-{user_id}"))?);
        let customer = self.client.send("create_customer", request).await?;
        Ok(customer.id.to_string())
    }
}
