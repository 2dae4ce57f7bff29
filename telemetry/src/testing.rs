//! Test support (feature `testing`): a real OTLP trace receiver on a loopback port,
//! over gRPC or HTTP (protobuf), and a tokio runtime whose threads all use one
//! subscriber, so a server under test is traced without installing anything globally
//! (other tests in the same binary keep their own subscriber, or none).

use std::{
    cell::RefCell,
    sync::{Arc, Mutex},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use tokio::{net::TcpListener, runtime::Runtime, task::JoinHandle};
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

use tracing::{Dispatch, Subscriber, dispatcher::DefaultGuard};
use tracing_subscriber::{fmt::TestWriter, registry::LookupSpan};

use crate::{OtelConfig, Telemetry};

/// A span as the receiver got it.
pub use opentelemetry_proto::tonic::trace::v1::Span;

/// [`build`](crate::build) for tests: the log lines go through the test harness,
/// which shows them only for a failing test.
pub fn build(
    otel: &OtelConfig,
) -> anyhow::Result<Telemetry<impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>>> {
    crate::build_with_writer(otel, TestWriter::new)
}

/// An OTLP collector endpoint that keeps every span it is sent.
pub struct OtlpReceiver {
    endpoint: String,
    received: Received,
    server: JoinHandle<()>,
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Span>>>);

impl Received {
    fn keep(&self, request: ExportTraceServiceRequest) -> Result<(), Status> {
        let spans = request
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .extend(spans);
        Ok(())
    }

    /// An OTLP/HTTP export: a protobuf `ExportTraceServiceRequest`, answered with an
    /// `ExportTraceServiceResponse`.
    fn export_http(
        &self,
        body: &[u8],
    ) -> (
        http::StatusCode,
        [(http::HeaderName, &'static str); 1],
        Vec<u8>,
    ) {
        use prost::Message as _;
        let header = [(http::header::CONTENT_TYPE, "application/x-protobuf")];
        let kept = ExportTraceServiceRequest::decode(body)
            .map_err(|e| Status::invalid_argument(e.to_string()))
            .and_then(|request| self.keep(request));
        match kept {
            Ok(()) => {
                let response = ExportTraceServiceResponse {
                    partial_success: None,
                };
                (http::StatusCode::OK, header, response.encode_to_vec())
            }
            Err(_) => (http::StatusCode::BAD_REQUEST, header, Vec::new()),
        }
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.keep(request.into_inner())?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl OtlpReceiver {
    /// OTLP/gRPC on a loopback port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<OtlpReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let received = Received::default();
        let serve = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .serve_with_incoming(TcpIncoming::from(listener));
        let server = tokio::spawn(async move {
            let _ = serve.await;
        });
        Ok(OtlpReceiver {
            endpoint,
            received,
            server,
        })
    }

    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`) on a loopback port, on the
    /// current tokio runtime.
    pub async fn start_http() -> std::io::Result<OtlpReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}/v1/traces", listener.local_addr()?);
        let received = Received::default();
        let store = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let store = store.clone();
                async move { store.export_http(&body) }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(OtlpReceiver {
            endpoint,
            received,
            server,
        })
    }

    /// The exporter's endpoint: for gRPC, what `OTEL_EXPORTER_OTLP_ENDPOINT` would be;
    /// for HTTP, what `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` would be.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Every span received so far, in the order they arrived.
    pub fn spans(&self) -> Vec<Span> {
        self.received
            .0
            .lock()
            .map(|spans| spans.clone())
            .unwrap_or_default()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A span's attribute as text (numbers and booleans written out), if it has it.
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// A trace or span id as the lower-case hex a `traceparent` header carries.
pub fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

thread_local! {
    static SCOPED: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// A multi-thread runtime on whose worker and blocking threads `dispatch` is the
/// default subscriber, so the tasks a server spawns are traced too. `block_on` runs
/// its future on the calling thread: call it inside
/// `tracing::dispatcher::with_default(&dispatch, ..)`.
pub fn traced_runtime(dispatch: &Dispatch, worker_threads: usize) -> std::io::Result<Runtime> {
    let dispatch = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .on_thread_start(move || {
            let guard = tracing::dispatcher::set_default(&dispatch);
            SCOPED.with(|scoped| *scoped.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| {
            let guard = SCOPED.with(|scoped| scoped.borrow_mut().take());
            drop(guard);
        })
        .build()
}

/// Runs `work` on a runtime traced by a subscriber that exports over `protocol` to a
/// real OTLP receiver, then flushes; returns what `work` returned and every span the
/// receiver got. The receiver and the exporter's connection live on a runtime of their
/// own, which outlives the traced one, so the final flush can still send.
pub fn traced<T>(
    protocol: crate::OtlpProtocol,
    service_name: &str,
    work: impl Future<Output = T>,
) -> anyhow::Result<(T, Vec<Span>)> {
    let otlp = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let receiver = otlp.block_on(async {
        match protocol {
            crate::OtlpProtocol::Grpc => OtlpReceiver::start().await,
            crate::OtlpProtocol::HttpProtobuf => OtlpReceiver::start_http().await,
        }
    })?;
    let config = OtelConfig {
        endpoint: Some(receiver.endpoint()),
        protocol,
        service_name: service_name.to_owned(),
    };
    let (subscriber, telemetry) = {
        let _in_runtime = otlp.enter();
        build(&config)?.into_parts()
    };
    let dispatch = Dispatch::new(subscriber);
    let runtime = traced_runtime(&dispatch, 2)?;
    // tracing caches, per callsite, whether any subscriber wants it. While only one
    // subscriber exists it asks just the current thread's, so a callsite first hit by
    // a test beside this one (with no subscriber) would be cached as unwanted. A
    // second, idle subscriber makes it ask every one.
    let _second = Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();
    let output = tracing::dispatcher::with_default(&dispatch, || runtime.block_on(work));
    drop(runtime);
    telemetry.shutdown();
    Ok((output, receiver.spans()))
}
