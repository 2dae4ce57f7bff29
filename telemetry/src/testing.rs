//! Test support (feature `testing`): a real OTLP/gRPC trace receiver on a loopback
//! port, and a tokio runtime whose threads all use one subscriber, so a server under
//! test is traced without installing anything globally (other tests in the same
//! binary keep their own subscriber, or none).

use std::{
    cell::RefCell,
    net::SocketAddr,
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

/// An OTLP/gRPC collector endpoint that keeps every span it is sent.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Received,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .extend(spans);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl OtlpReceiver {
    /// Serves on a loopback port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<OtlpReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Received::default();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(received.clone()))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        Ok(OtlpReceiver {
            addr,
            received,
            server,
        })
    }

    /// The value `OTEL_EXPORTER_OTLP_ENDPOINT` would have.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
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
