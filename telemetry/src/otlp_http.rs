//! The HTTP client of the OTLP/HTTP exporter. The SDK's batch processor exports from
//! a thread of its own, outside any tokio runtime, and hyper's client needs one: each
//! request is run on the runtime the exporter was built on.

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError, hyper::HyperClient};

/// Sends through hyper's client, on the tokio runtime it was made on.
#[derive(Debug)]
pub struct OnRuntime {
    client: HyperClient,
    runtime: tokio::runtime::Handle,
}

/// Per request, as the exporter's own default (`OTEL_EXPORTER_OTLP_TIMEOUT` aside).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl OnRuntime {
    /// On the current runtime; an error outside one.
    pub fn current() -> anyhow::Result<OnRuntime> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| anyhow::anyhow!("OTLP/HTTP export needs a tokio runtime: {e}"))?;
        Ok(OnRuntime {
            client: HyperClient::with_default_connector(TIMEOUT, None),
            runtime,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}
