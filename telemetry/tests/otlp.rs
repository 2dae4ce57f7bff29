//! Spans reach an OTLP receiver: a real OTLP/gRPC collector endpoint in the test.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use payments_telemetry::{OtelConfig, build, extract_parent};
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_with_their_attributes_and_remote_parent_reach_the_otlp_receiver() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let config = OtelConfig {
        endpoint: Some(format!("http://{addr}")),
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

    let requests = receiver.0.lock().expect("lock").clone();
    let spans: Vec<_> = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let webhook = spans
        .iter()
        .find(|s| s.name == "webhook")
        .expect("the webhook span was exported");
    assert_eq!(
        hex(&webhook.trace_id),
        trace_id,
        "the W3C parent's trace id is kept"
    );
    let attr = |key: &str| {
        webhook
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{v:?}"))
    };
    assert!(attr("stripe_event_id").is_some_and(|v| v.contains("evt_123")));
    let child = spans
        .iter()
        .find(|s| s.name == "db.transaction")
        .expect("child span exported");
    assert_eq!(child.parent_span_id, webhook.span_id);
    server.abort();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
