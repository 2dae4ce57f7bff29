//! The RPC layer in front of a real tonic server (the standard health service), traced
//! to a real OTLP receiver: each call is one span named and attributed as
//! OpenTelemetry's RPC conventions say, in the caller's trace, ending with the call's
//! status (a stream the client drops ends CANCELLED); and each call is counted by code
//! and timed in the shared registry, next to the process metrics.

use std::sync::Arc;

use payments_telemetry::{
    OtlpProtocol, RpcLayer,
    metrics::{MetricsRegistry, RpcMetrics},
    testing::{Span, attribute, hex_id, traced},
};
use tonic::transport::{Channel, Server, server::TcpIncoming};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN_ID: &str = "b7ad6b7169203331";

#[test]
fn each_call_is_one_rpc_span_in_the_callers_trace_and_is_counted_by_code() -> anyhow::Result<()> {
    let mut registry = MetricsRegistry::default();
    let metrics = RpcMetrics::register(registry.registry());
    let registry = Arc::new(registry);
    let (called, spans) = traced(OtlpProtocol::Grpc, "rpc-test", calls(metrics))?;
    called?;

    let span = |method: &str, code: &str| -> anyhow::Result<&Span> {
        spans
            .iter()
            .find(|s| {
                s.name == format!("grpc.health.v1.Health/{method}")
                    && attribute(s, "rpc.grpc.status_code").as_deref() == Some(code)
            })
            .ok_or_else(|| anyhow::anyhow!("no {method} span with code {code} in {spans:#?}"))
    };
    let check = span("Check", "0")?;
    assert_eq!(hex_id(&check.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(hex_id(&check.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(attribute(check, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute(check, "rpc.service").as_deref(),
        Some("grpc.health.v1.Health")
    );
    assert_eq!(attribute(check, "rpc.method").as_deref(), Some("Check"));
    // SPAN_KIND_SERVER
    assert_eq!(check.kind, 2);
    // NOT_FOUND is the caller's problem: the span's status stays unset.
    let not_found = span("Check", "5")?;
    assert_eq!(not_found.status.as_ref().map_or(0, |s| s.code), 0);
    span("Watch", "1")?;

    let text = registry.render();
    for line in [
        r#"payments_grpc_requests_total{service="grpc.health.v1.Health",method="Check",code="OK"} 1"#,
        r#"payments_grpc_requests_total{service="grpc.health.v1.Health",method="Check",code="NOT_FOUND"} 1"#,
        r#"payments_grpc_requests_total{service="grpc.health.v1.Health",method="Watch",code="CANCELLED"} 1"#,
        r#"payments_grpc_request_duration_seconds_count{service="grpc.health.v1.Health",method="Check"} 2"#,
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_start_time_seconds gauge",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    Ok(())
}

/// Serves health behind the layer; calls Check (serving), Check for an unknown service
/// (NOT_FOUND) and Watch, whose stream it drops after the first answer.
async fn calls(metrics: RpcMetrics) -> anyhow::Result<()> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(
        Server::builder()
            .layer(RpcLayer::new(metrics))
            .add_service(health)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01").parse()?,
    );
    client.check(request).await?;
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await;
    assert_eq!(
        unknown.map_err(|s| s.code()).err(),
        Some(tonic::Code::NotFound)
    );
    let mut watch = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    watch.message().await?;
    drop(watch);
    drop(client);
    let _ = stop.send(());
    server.await??;
    Ok(())
}
