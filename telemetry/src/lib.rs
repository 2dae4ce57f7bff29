//! Telemetry shared by payments-api and webhook-ingestor. Tracing in two steps: build
//! the subscriber ([`build`]), then install it ([`Telemetry::install`]); [`init`] does
//! both for a service's `main`.
//!
//! - Logs are structured JSON on stdout, filtered by `RUST_LOG` (default `info`). Spans
//!   are created with `#[instrument(skip_all, fields(..))]`, so bodies and secrets
//!   never reach a log or a span.
//! - OpenTelemetry export is one more layer, configured by the standard variables:
//!   it is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//!   is set, off otherwise or when `OTEL_SDK_DISABLED=true`;
//!   `OTEL_EXPORTER_OTLP_PROTOCOL` (or `…_TRACES_PROTOCOL`) picks `grpc` (the default)
//!   or `http/protobuf`; `OTEL_SERVICE_NAME` overrides the service name; the exporter
//!   reads the rest of `OTEL_EXPORTER_OTLP_*` (headers, timeout) itself.
//! - W3C trace context: [`extract_parent`] takes `traceparent`/`tracestate` from
//!   incoming headers (gRPC metadata are HTTP/2 headers) and makes it a span's parent.
//! - [`rpc`]: the tower layer that gives every gRPC call its OpenTelemetry RPC span and
//!   its metrics.
//! - `span_fields`: how a span's fields are kept for the JSON log lines, cheaply.
//! - `otlp_http`: the HTTP client of the OTLP/HTTP exporter, on the service's runtime.
//! - [`metrics`]: the Prometheus registry both services serve at `GET /metrics`, the
//!   naming convention, the process and pool metrics.
//! - `testing` (feature `testing`): real OTLP receivers (gRPC and HTTP) and a runtime
//!   traced by a scoped subscriber, for tests that check what is exported.

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, fmt::MakeWriter, layer::SubscriberExt, registry::LookupSpan,
};

pub mod metrics;
mod otlp_http;
pub mod rpc;
mod span_fields;
#[cfg(feature = "testing")]
pub mod testing;

pub use rpc::RpcLayer;

/// What to export where; read from the environment by [`OtelConfig::from_env`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtelConfig {
    /// Where spans are sent (for HTTP, the full URL, `…/v1/traces`); `None`: no export.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub service_name: String,
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf` (`http/json` is not built in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC, usually port 4317. The default here, as it was before the variable
    /// was read (the specification's default is `http/protobuf`).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, usually port 4318.
    HttpProtobuf,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<OtlpProtocol> {
        match s.trim() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            other => anyhow::bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?}: expected `grpc` or `http/protobuf`"
            ),
        }
    }
}

impl OtelConfig {
    /// Reads the `OTEL_*` variables. An HTTP endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is a base URL (`/v1/traces` is appended); `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// is used as it is, as the specification says.
    pub fn from_env(default_service_name: &str) -> anyhow::Result<OtelConfig> {
        Self::from_vars(default_service_name, |name| std::env::var(name).ok())
    }

    fn from_vars(
        default_service_name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<OtelConfig> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .map(|p| p.parse())
            .transpose()?
            .unwrap_or_default();
        let base = |url: String| match protocol {
            OtlpProtocol::Grpc => url,
            OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", url.trim_end_matches('/')),
        };
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT").map(base));
        Ok(OtelConfig {
            endpoint: endpoint.filter(|_| !disabled),
            protocol,
            service_name: var("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| default_service_name.to_owned()),
        })
    }
}

/// The built subscriber and the tracer provider to flush at exit.
pub struct Telemetry<S> {
    subscriber: S,
    provider: Option<SdkTracerProvider>,
}

/// Flushes spans still buffered when dropped or on [`Guard::shutdown`].
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

/// What a service's `main` does first: reads `OTEL_*` (the service named
/// `default_service_name` unless `OTEL_SERVICE_NAME` says otherwise), builds the
/// subscriber and installs it. Keep the guard until the end and call
/// [`Guard::shutdown`] so buffered spans are exported.
pub fn init(default_service_name: &str) -> anyhow::Result<Guard> {
    use anyhow::Context as _;
    let otel = OtelConfig::from_env(default_service_name)?;
    build(&otel)
        .context("building telemetry")?
        .install()
        .context("installing telemetry")
}

/// Builds the subscriber: JSON logs, plus the OpenTelemetry layer when configured.
/// Must run inside a tokio runtime when export is on (the batch exporter spawns on it).
pub fn build(
    otel: &OtelConfig,
) -> anyhow::Result<Telemetry<impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>>> {
    build_with_writer(otel, std::io::stdout)
}

/// [`build`], with the log lines written to `writer` (tests give the test harness's).
fn build_with_writer<W>(
    otel: &OtelConfig,
    writer: W,
) -> anyhow::Result<Telemetry<impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = json_logs(writer);
    let provider = otel
        .endpoint
        .as_deref()
        .map(|endpoint| provider(endpoint, otel.protocol, &otel.service_name))
        .transpose()?;
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("payments"))
            .boxed()
    });
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(otel_layer);
    Ok(Telemetry {
        subscriber,
        provider,
    })
}

/// One JSON object per line: the event's fields, its target, the current span's fields
/// and the list of spans entered (a nested span's line keeps its parents' fields).
fn json_logs<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_target(true)
        .fmt_fields(span_fields::AppendJsonFields::default())
        .with_writer(writer)
}

fn provider(
    endpoint: &str,
    protocol: OtlpProtocol,
    service_name: &str,
) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol {
        OtlpProtocol::Grpc => builder.with_tonic().with_endpoint(endpoint).build()?,
        OtlpProtocol::HttpProtobuf => builder
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_http_client(otlp_http::OnRuntime::current()?)
            .build()?,
    };
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}

impl<S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>> Telemetry<S> {
    /// Installs the subscriber globally and the W3C propagator.
    pub fn install(self) -> anyhow::Result<Guard> {
        global::set_text_map_propagator(TraceContextPropagator::new());
        if let Some(p) = &self.provider {
            global::set_tracer_provider(p.clone());
        }
        tracing::subscriber::set_global_default(self.subscriber)?;
        Ok(Guard {
            provider: self.provider,
        })
    }

    /// For tests: use the subscriber in a scope instead of globally.
    pub fn into_parts(self) -> (S, Guard) {
        global::set_text_map_propagator(TraceContextPropagator::new());
        (
            self.subscriber,
            Guard {
                provider: self.provider,
            },
        )
    }
}

impl Guard {
    /// Exports what is buffered. The SDK's flush blocks, and times out inside a
    /// current-thread runtime, so it runs on a plain thread.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(provider) = self.provider.take() {
            let done = std::thread::spawn(move || provider.shutdown()).join();
            if let Ok(Err(e)) = done {
                eprintln!("telemetry shutdown: {e}");
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.flush();
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes the W3C trace context in `headers` (if any) the parent of `span`.
pub fn extract_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    // Without a valid remote context this changes nothing.
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<OtelConfig> {
        OtelConfig::from_vars("svc", |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_protocol_and_endpoint_are_read_as_the_specification_says() -> anyhow::Result<()> {
        assert_eq!(config(&[])?.endpoint, None);
        let grpc = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")])?;
        assert_eq!(grpc.protocol, OtlpProtocol::Grpc);
        assert_eq!(grpc.endpoint.as_deref(), Some("http://collector:4317"));
        let http = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ])?;
        assert_eq!(http.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(
            http.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        // The signal's own variables win, and its endpoint is taken as it is.
        let traces = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "payments-api-eu"),
        ])?;
        assert_eq!(traces.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(
            traces.endpoint.as_deref(),
            Some("http://traces:4318/custom")
        );
        assert_eq!(traces.service_name, "payments-api-eu");
        let off = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])?;
        assert_eq!(off.endpoint, None);
        Ok(())
    }

    #[test]
    fn an_unsupported_protocol_is_a_start_up_error() {
        let error = config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).expect_err("refused");
        assert!(error.to_string().contains("http/json"), "{error}");
    }
}
