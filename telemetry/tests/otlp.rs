//! Spans reach an OTLP receiver: a real OTLP collector endpoint in the test, over gRPC
//! and over HTTP with protobuf bodies (`OTEL_EXPORTER_OTLP_PROTOCOL`).

use payments_telemetry::{
    OtelConfig, OtlpProtocol, extract_parent,
    testing::{OtlpReceiver, attribute, build, hex_id},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_with_their_attributes_and_remote_parent_reach_the_otlp_grpc_receiver() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    spans_reach(receiver, OtlpProtocol::Grpc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_with_their_attributes_and_remote_parent_reach_the_otlp_http_receiver() {
    let receiver = OtlpReceiver::start_http().await.expect("receiver");
    assert!(receiver.endpoint().ends_with("/v1/traces"));
    spans_reach(receiver, OtlpProtocol::HttpProtobuf);
}

fn spans_reach(receiver: OtlpReceiver, protocol: OtlpProtocol) {
    let config = OtelConfig {
        endpoint: Some(receiver.endpoint()),
        protocol,
        service_name: "telemetry-test".into(),
    };
    let (subscriber, guard) = build(&config).expect("build").into_parts();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "webhook",
            stripe_event_id = "evt_123",
            transaction_id = "tx-1"
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            format!("00-{trace_id}-00f067aa0ba902b7-01")
                .parse()
                .expect("header"),
        );
        extract_parent(&span, &headers);
        span.in_scope(|| tracing::info_span!("db.transaction").in_scope(|| {}));
    });
    guard.shutdown();

    let spans = receiver.spans();
    let webhook = spans
        .iter()
        .find(|s| s.name == "webhook")
        .expect("the webhook span was exported");
    assert_eq!(
        hex_id(&webhook.trace_id),
        trace_id,
        "the W3C parent's trace id is kept"
    );
    assert_eq!(
        attribute(webhook, "stripe_event_id").as_deref(),
        Some("evt_123")
    );
    let child = spans
        .iter()
        .find(|s| s.name == "db.transaction")
        .expect("child span exported");
    assert_eq!(child.parent_span_id, webhook.span_id);
}
