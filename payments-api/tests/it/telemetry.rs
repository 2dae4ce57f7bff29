//! Each RPC is one span at a real OTLP receiver (over OTLP/HTTP here), named and
//! attributed as OpenTelemetry's RPC conventions say, in the caller's W3C trace, with
//! the call's gRPC status; and `GET /metrics` counts the calls by code and times them,
//! next to the pool and process metrics.
//!
//! The subscriber is not installed globally: it is the default on the test's own
//! runtime threads only, so the other tests in this binary are unaffected.

use payments_telemetry::{
    OtlpProtocol,
    testing::{Span, attribute, hex_id, traced},
};
use tonic::Code;

use crate::helpers::{TestApp, as_user};
use payments_proto::payments::v1 as pb;

const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
const CALLER_SPAN_ID: &str = "eee19b7ec3c1b174";

#[test]
fn each_rpc_is_one_span_named_by_its_method_in_the_callers_trace_and_is_counted() {
    let (metrics, spans) =
        traced(OtlpProtocol::HttpProtobuf, "payments-api-test", calls()).expect("traced run");
    let span = |code: &str| -> &Span {
        spans
            .iter()
            .find(|s| {
                s.name == "payments.v1.PaymentsService/CreatePayment"
                    && attribute(s, "rpc.grpc.status_code").as_deref() == Some(code)
            })
            .unwrap_or_else(|| panic!("no CreatePayment span with code {code} in {spans:#?}"))
    };
    let paid = span("0");
    assert_eq!(hex_id(&paid.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(hex_id(&paid.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(attribute(paid, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute(paid, "rpc.service").as_deref(),
        Some("payments.v1.PaymentsService")
    );
    assert_eq!(
        attribute(paid, "rpc.method").as_deref(),
        Some("CreatePayment")
    );
    // The handler's spans, down to the Stripe call, are in the same trace.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "stripe" && s.trace_id == paid.trace_id),
        "no Stripe span in the RPC's trace"
    );
    span("3");

    for line in [
        r#"payments_grpc_requests_total{service="payments.v1.PaymentsService",method="CreatePayment",code="OK"} 1"#,
        r#"payments_grpc_requests_total{service="payments.v1.PaymentsService",method="CreatePayment",code="INVALID_ARGUMENT"} 1"#,
        r#"payments_grpc_request_duration_seconds_count{service="payments.v1.PaymentsService",method="CreatePayment"} 2"#,
        "# TYPE payments_db_pool_connections gauge",
        "# TYPE payments_db_pool_max_connections gauge",
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_open_fds gauge",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

/// A payment in the caller's trace and one refused as invalid; returns `GET /metrics`.
async fn calls() -> String {
    let app = TestApp::start().await;
    let card = app.attach("tracy", "pm_card_visa").await;
    let request = |amount, key: &str| {
        let mut request = as_user(
            "tracy",
            pb::CreatePaymentRequest {
                user_id: "tracy".into(),
                payment_method_id: card.id.clone(),
                amount,
                currency: "usd".into(),
                idempotency_key: key.into(),
            },
        );
        let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
        let value = traceparent.parse().expect("metadata value");
        request.metadata_mut().insert("traceparent", value);
        request
    };
    app.client()
        .create_payment(request(1_000, "traced"))
        .await
        .expect("payment");
    let refused = app.client().create_payment(request(-5, "negative")).await;
    assert_eq!(
        refused.map_err(|s| s.code()).err(),
        Some(Code::InvalidArgument)
    );
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_addr))
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics body");
    app.stop().await;
    metrics
}
