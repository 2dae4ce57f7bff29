//! [`Endpoint`]: where payments-api listens and how to reach it (plain HTTP/2, or TLS
//! verified against a CA file or the public roots), turned into a tonic `Channel`.

use std::{path::Path, time::Duration};

use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::Error;

/// payments-api's address, its TLS trust and timeouts.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: String,
    ca_pem: Option<Vec<u8>>,
    tls_domain: Option<String>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
    keep_alive: Option<Duration>,
}

impl Endpoint {
    /// `http://host:port`, or `https://host:port` for TLS (verified against the
    /// public roots unless a CA is given).
    pub fn new(url: impl Into<String>) -> Endpoint {
        Endpoint {
            url: url.into(),
            ca_pem: None,
            tls_domain: None,
            connect_timeout: Duration::from_secs(5),
            timeout: None,
            keep_alive: Some(Duration::from_secs(30)),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Trusts the CA certificate(s) in this PEM file (a private CA) for `https://`.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<Endpoint, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|source| Error::CaFile {
            path: path.display().to_string(),
            source,
        })?;
        Ok(self.ca_pem(pem))
    }

    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Endpoint {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The name the server's certificate must carry, when it is not the URL's host.
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Endpoint {
        self.tls_domain = Some(domain.into());
        self
    }

    /// How long establishing a connection may take (5 s unless set).
    pub fn connect_timeout(mut self, timeout: Duration) -> Endpoint {
        self.connect_timeout = timeout;
        self
    }

    /// A deadline for each unary call (none unless set). A watch is not cut by it.
    pub fn timeout(mut self, timeout: Duration) -> Endpoint {
        self.timeout = Some(timeout);
        self
    }

    /// HTTP/2 pings while calls are open, so a watch over a connection that silently
    /// died ends (and reconnects) instead of waiting forever; 30 s unless set.
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Endpoint {
        self.keep_alive = interval;
        self
    }

    pub(crate) fn unary_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn tonic(&self) -> Result<tonic::transport::Endpoint, Error> {
        let invalid = |source| Error::Endpoint {
            url: self.url.clone(),
            source,
        };
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.url.clone())
            .map_err(invalid)?
            .connect_timeout(self.connect_timeout);
        if let Some(interval) = self.keep_alive {
            endpoint = endpoint
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(Duration::from_secs(10));
        }
        if self.url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_pem {
                Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                None => tls.with_webpki_roots(),
            };
            if let Some(domain) = &self.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(invalid)?;
        }
        Ok(endpoint)
    }

    /// Connects now, so a wrong address fails here rather than at the first call.
    pub(crate) async fn connect(&self) -> Result<Channel, Error> {
        self.tonic()?
            .connect()
            .await
            .map_err(|source| Error::Connect {
                url: self.url.clone(),
                source,
            })
    }

    /// Connects at the first call (and again whenever the connection is lost).
    pub(crate) fn connect_lazy(&self) -> Result<Channel, Error> {
        Ok(self.tonic()?.connect_lazy())
    }
}
