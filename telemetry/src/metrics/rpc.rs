//! Per-RPC counts by gRPC code, and latency histograms, recorded by
//! [`RpcLayer`](crate::rpc::RpcLayer).

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// One RPC's labels: `service="payments.v1.PaymentsService"`, `method="CreatePayment"`,
/// `code="INVALID_ARGUMENT"`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub service: String,
    pub method: String,
    pub code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

type Histograms = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// `payments_grpc_requests_total{service,method,code}` and
/// `payments_grpc_request_duration_seconds{service,method}`. A streaming call is
/// counted and timed when it ends.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    requests: Family<RpcLabels, Counter>,
    duration: Histograms,
}

impl RpcMetrics {
    pub fn register(registry: &mut Registry) -> RpcMetrics {
        let metrics = RpcMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(super::latency_histogram),
        };
        registry.register(
            "grpc_requests",
            "gRPC calls answered, by service, method and status code",
            metrics.requests.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC call latency, from the request to the last message and status",
            metrics.duration.clone(),
        );
        metrics
    }

    pub fn observe(&self, labels: &RpcLabels, elapsed: Duration) {
        self.requests.get_or_create(labels).inc();
        let method = MethodLabels {
            service: labels.service.clone(),
            method: labels.method.clone(),
        };
        self.duration
            .get_or_create(&method)
            .observe(elapsed.as_secs_f64());
    }

    /// How many calls ended with these labels (for tests and checks).
    pub fn requests(&self, labels: &RpcLabels) -> u64 {
        self.requests.get(labels).map_or(0, |c| c.get())
    }
}
