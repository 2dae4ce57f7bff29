//! Integration tests: async-stripe (and raw HTTP where async-stripe has no call) against a
//! simulator started in-process on port 0. One test binary keeps link time down.

mod customers_and_payment_methods;
mod disputes;
mod events;
mod invoices_and_discounts;
mod modes;
mod payment_intents;
mod promotion_codes;
mod protocol;
mod refunds_and_disputes;
mod support;
mod three_d_secure;
mod webhooks;
mod wire_shapes;
