//! End-to-end tests: a fresh database, stripe-sim, the webhook-ingestor and
//! payments-api all run in-process on port 0; the tests speak gRPC (and grpc-web)
//! to payments-api exactly as a client would. See `helpers` for [`helpers::TestApp`].

mod admin;
mod auth;
mod binding;
mod coupons;
mod faults;
mod grpc_web;
mod helpers;
mod least_privilege;
mod limits;
mod oidc;
mod payment_methods;
mod payments;
mod reflection;
mod refunds_and_disputes;
mod resilience;
mod telemetry;
mod validation;
