//! Certificates made for one test ([`TestCa`]), and [`TlsFront`]: TLS in front of a
//! plain server, the way an ingress terminates it, with a `localhost` certificate from
//! such a CA. Clients reach payments-api at `https://localhost:PORT` trusting only
//! [`TlsFront::ca_pem`].

use std::{net::SocketAddr, sync::Arc};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub struct TlsFront {
    pub addr: SocketAddr,
    /// The CA that signed the front's certificate, in PEM: the CA file clients trust.
    pub ca_pem: String,
    stop: CancellationToken,
}

impl TlsFront {
    /// Listens on a loopback port and forwards each TLS connection's bytes to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TlsFront {
        let (ca_pem, acceptor) = certificates();
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the TLS front");
        let addr = listener.local_addr().expect("local address");
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, acceptor, upstream, stop.clone()));
        TlsFront { addr, ca_pem, stop }
    }

    /// `https://localhost:PORT`, the name the certificate is for.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A fresh CA, and an acceptor serving a `localhost` certificate it signed (ALPN h2).
fn certificates() -> (String, TlsAcceptor) {
    let ca = TestCa::new("payments test CA");
    let server = ca.server_certificate(&["localhost"]);
    let cert = CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).expect("key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server TLS configuration");
    config.alpn_protocols = vec![b"h2".to_vec()];
    (ca.cert_pem, TlsAcceptor::from(Arc::new(config)))
}

/// A certificate authority made for one test.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its private key, PEM.
pub struct ServerCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert_pem = params.self_signed(&key).expect("self-signed CA").pem();
        TestCa {
            cert_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (host names or IP addresses), signed by this CA.
    pub fn server_certificate(&self, names: &[&str]) -> ServerCertificate {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "postgres");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed by the CA");
        ServerCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    stop: CancellationToken,
) {
    loop {
        let (client, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let (acceptor, stop) = (acceptor.clone(), stop.clone());
        tokio::spawn(async move {
            // A client that fails the handshake (one that does not trust the CA) is
            // simply dropped, as a real front would.
            let Ok(mut client) = acceptor.accept(client).await else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                () = stop.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            }
        });
    }
}
