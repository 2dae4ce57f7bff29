//! Telemetry shared by payments-api and webhook-ingestor, in two steps: build the
//! subscriber ([`build`]), then install it ([`Telemetry::install`]).
//!
//! - Logs are structured JSON on stdout, filtered by `RUST_LOG` (default `info`). Spans
//!   are created with `#[instrument(skip_all, fields(..))]`, so bodies and secrets
//!   never reach a log or a span.
//! - OpenTelemetry export is one more layer, configured by the standard variables:
//!   it is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//!   is set (OTLP over gRPC), off otherwise or when `OTEL_SDK_DISABLED=true`;
//!   `OTEL_SERVICE_NAME` overrides the service name; the exporter reads the rest of
//!   `OTEL_EXPORTER_OTLP_*` itself.
//! - W3C trace context: [`extract_parent`] takes `traceparent`/`tracestate` from
//!   incoming headers (gRPC metadata are HTTP/2 headers) and makes it a span's parent.
//! - `testing` (feature `testing`): a real OTLP receiver and a runtime traced by a
//!   scoped subscriber, for tests that check what is exported.

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, fmt::MakeWriter, layer::SubscriberExt, registry::LookupSpan,
};

mod span_fields;
#[cfg(feature = "testing")]
pub mod testing;

/// What to export where; read from the environment by [`OtelConfig::from_env`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtelConfig {
    /// `None`: no export.
    pub endpoint: Option<String>,
    pub service_name: String,
}

impl OtelConfig {
    pub fn from_env(default_service_name: &str) -> OtelConfig {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
        OtelConfig {
            endpoint: endpoint.filter(|_| !disabled),
            service_name: var("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| default_service_name.to_owned()),
        }
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
        .map(|endpoint| provider(endpoint, &otel.service_name))
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

fn provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
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
