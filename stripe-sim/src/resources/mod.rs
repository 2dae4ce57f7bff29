//! Stripe's objects and the synchronous operations on them. Each function takes `&mut Store`
//! (the caller holds the lock), validates like Stripe, mutates, emits events, and returns the
//! object's JSON or an [`ApiError`](crate::error::ApiError).
//!
//! - [`customers`], [`payment_methods`] (with the test tokens' behaviour in [`cards`]).
//! - [`payment_intents`], [`confirmation`] (what the card decides),
//!   [`payment_intent_lifecycle`] (capture, cancel), [`charges`], [`refunds`].
//! - [`disputes`] and [`dispute_lifecycle`].
//! - [`coupons`] (and promotion codes), [`invoice_items`] (and discounts), [`invoices`],
//!   [`invoice_lifecycle`] (finalize, pay, void), [`invoice_payments`].
//! - [`events`]: the event log and `GET /v1/events`; [`search`]: the search query language.

pub mod cards;
pub mod charges;
pub mod confirmation;
pub mod coupons;
pub mod customers;
pub mod dispute_lifecycle;
pub mod disputes;
pub mod events;
pub mod invoice_items;
pub mod invoice_lifecycle;
pub mod invoice_payments;
pub mod invoices;
pub mod payment_intent_lifecycle;
pub mod payment_intents;
pub mod payment_methods;
pub mod refunds;
pub mod search;
