//! payments-client against the real system: a fresh database, stripe-sim, the
//! webhook-ingestor and payments-api in-process on port 0 (`payments_testkit::System`),
//! reached over real HTTP/2, sometimes through a [`proxy::Proxy`] that loses or refuses
//! calls, or a TLS front.

mod awaiting;
mod errors;
mod helpers;
mod proxy;
mod retries;
mod tls_and_tokens;
