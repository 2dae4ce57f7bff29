//! AttachPaymentMethod, ListPaymentMethods, DetachPaymentMethod.

use payments_proto::payments::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, as_user, assert_refused};

async fn list(app: &TestApp, user: &str) -> Vec<pb::PaymentMethod> {
    let req = pb::ListPaymentMethodsRequest {
        user_id: user.into(),
    };
    app.client()
        .list_payment_methods(as_user(user, req))
        .await
        .expect("list")
        .into_inner()
        .payment_methods
}

#[tokio::test]
async fn a_card_is_attached_listed_and_detached() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    assert!(
        card.id.starts_with("pm_") && card.id != "pm_card_visa",
        "{card:?}"
    );
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));
    assert!(!card.fingerprint.is_empty());
    assert!(!card.validated);
    assert_eq!(list(&app, "alice").await, vec![card.clone()]);
    assert!(list(&app, "bob").await.is_empty());

    let detach = |user: &str| pb::DetachPaymentMethodRequest {
        user_id: user.into(),
        payment_method_id: card.id.clone(),
    };
    assert_refused(
        app.client()
            .detach_payment_method(as_user("bob", detach("bob")))
            .await,
        Code::NotFound,
        "PAYMENT_METHOD_NOT_FOUND",
    );
    let detached = app
        .client()
        .detach_payment_method(as_user("alice", detach("alice")))
        .await
        .expect("detach")
        .into_inner();
    assert_eq!(detached.id, card.id);
    assert!(list(&app, "alice").await.is_empty());
    assert_refused(
        app.client()
            .detach_payment_method(as_user("alice", detach("alice")))
            .await,
        Code::NotFound,
        "PAYMENT_METHOD_NOT_FOUND",
    );
    let stripe_pm = app.sim_get(&format!("payment_methods/{}", card.id)).await;
    assert!(
        stripe_pm["customer"].is_null(),
        "detached in Stripe too: {stripe_pm}"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_first_attaches_make_one_customer() {
    let app = TestApp::start().await;
    let (a, b, c) = tokio::join!(
        app.try_attach("alice", "pm_card_visa"),
        app.try_attach("alice", "pm_card_mastercard"),
        app.try_attach("alice", "pm_card_visa"),
    );
    for attached in [a, b, c] {
        attached.expect("attach");
    }
    assert_eq!(list(&app, "alice").await.len(), 3);
    assert_eq!(app.sim_list("customers").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_payment_method_names_the_field() {
    let app = TestApp::start().await;
    let status = assert_refused(
        app.try_attach("alice", "pm_does_not_exist").await,
        Code::InvalidArgument,
        "PAYMENT_METHOD_UNKNOWN",
    );
    assert!(status.message().contains("payment_method_id"), "{status:?}");
    app.stop().await;
}
