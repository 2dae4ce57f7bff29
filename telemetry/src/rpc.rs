//! [`RpcLayer`]: what a gRPC server records about every call it answers, in one tower
//! layer (innermost, below grpc-web, so grpc-web calls are seen as the gRPC calls
//! they carry):
//!
//! - a span named as OpenTelemetry's RPC conventions name it,
//!   `payments.v1.PaymentsService/CreatePayment`, with `rpc.system = "grpc"`,
//!   `rpc.service`, `rpc.method` and, when the call ends, `rpc.grpc.status_code`;
//!   server-side failures (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
//!   UNAVAILABLE, DATA_LOSS) also mark the span's status as an error. The caller's
//!   W3C trace context (`traceparent`, `tracestate`) is its parent;
//! - [`RpcMetrics`]: the call counted by code and timed.
//!
//! A call ends with its status: in the response headers (a trailers-only answer, as
//! every error is), else in the trailers after the last message; a client that goes
//! away first ends it as CANCELLED. A streaming call's span and latency therefore
//! cover the whole stream.
//!
//! Paths that are not `/package.Service/Method`, and calls answered UNIMPLEMENTED
//! (unknown services and methods), are labelled `unknown`, so no caller can grow the
//! metrics' label sets.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{Instrument as _, instrument::Instrumented};

use crate::metrics::{RpcLabels, RpcMetrics};

const UNKNOWN: &str = "unknown";

/// Records each call's span and metrics; see the module documentation.
#[derive(Debug, Clone)]
pub struct RpcLayer {
    metrics: RpcMetrics,
}

impl RpcLayer {
    pub fn new(metrics: RpcMetrics) -> RpcLayer {
        RpcLayer { metrics }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, B, ResBody> Service<Request<B>> for RpcService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<RpcBody<ResBody>>;
    type Error = S::Error;
    type Future = RpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = Call::start(&request, self.metrics.clone());
        let future = {
            let _entered = call.span.enter();
            self.inner.call(request)
        };
        RpcFuture {
            inner: future.instrument(call.span.clone()),
            call: Some(call),
        }
    }
}

/// One call in flight: ends exactly once, with its status or as CANCELLED if dropped.
struct Call {
    service: String,
    method: String,
    span: tracing::Span,
    started: Instant,
    metrics: RpcMetrics,
    ended: bool,
}

impl Call {
    fn start<B>(request: &Request<B>, metrics: RpcMetrics) -> Call {
        let (service, method) =
            service_and_method(request.uri().path()).unwrap_or((UNKNOWN, UNKNOWN));
        let span = tracing::info_span!(
            "rpc",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        crate::extract_parent(&span, request.headers());
        Call {
            service: service.to_owned(),
            method: method.to_owned(),
            span,
            started: Instant::now(),
            metrics,
            ended: false,
        }
    }

    fn end(&mut self, code: i32) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.span.record("rpc.grpc.status_code", code);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        let (service, method) = match code {
            UNIMPLEMENTED => (UNKNOWN.to_owned(), UNKNOWN.to_owned()),
            _ => (
                std::mem::take(&mut self.service),
                std::mem::take(&mut self.method),
            ),
        };
        let labels = RpcLabels {
            service,
            method,
            code: code_name(code),
        };
        self.metrics.observe(&labels, self.elapsed());
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the call if `headers` carry its status.
    fn end_if_status_in(&mut self, headers: &HeaderMap) {
        if let Some(code) = grpc_status(headers) {
            self.end(code);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.end(CANCELLED);
    }
}

pin_project! {
    pub struct RpcFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        call: Option<Call>,
    }
}

impl<F, ResBody, E> Future for RpcFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<Response<RpcBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(call) = call.as_mut() {
                    call.end_if_status_in(response.headers());
                }
                Ok(response.map(|inner| RpcBody { inner, call }))
            }
            Err(e) => {
                if let Some(call) = call.as_mut() {
                    call.end(UNKNOWN_CODE);
                }
                Err(e)
            }
        })
    }
}

pin_project! {
    /// The response body, watched for the trailers that carry the call's status.
    pub struct RpcBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for RpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(call) = this.call.as_mut() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        call.end_if_status_in(trailers);
                    }
                }
                // A body that fails or ends without a status: the client sees an error.
                Some(Err(_)) | None => call.end(UNKNOWN_CODE),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `("payments.v1.PaymentsService", "CreatePayment")` from
/// `/payments.v1.PaymentsService/CreatePayment`; None for any other shape.
fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let name = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || extra.contains(&b))
    };
    (name(service, b".") && name(method, b"")).then_some((service, method))
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

const CANCELLED: i32 = 1;
const UNKNOWN_CODE: i32 = 2;
const UNIMPLEMENTED: i32 = 12;

/// The canonical name of a gRPC status code.
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The codes OpenTelemetry's gRPC conventions count as a server span's error.
fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_package_service_method_paths_name_a_call() {
        assert_eq!(
            service_and_method("/payments.v1.PaymentsService/CreatePayment"),
            Some(("payments.v1.PaymentsService", "CreatePayment"))
        );
        assert_eq!(
            service_and_method("/grpc.health.v1.Health/Check"),
            Some(("grpc.health.v1.Health", "Check"))
        );
        for path in [
            "/", "/x", "/a/b/c", "//m", "/s/", "/s/m.x", "/s p/m", "/s/m%20",
        ] {
            assert_eq!(service_and_method(path), None, "{path}");
        }
    }

    #[test]
    fn code_names_are_the_canonical_ones() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(3), "INVALID_ARGUMENT");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(17), "UNKNOWN");
        assert_eq!(code_name(-1), "UNKNOWN");
    }
}
