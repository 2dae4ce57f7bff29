//! [`TlsFront`]: TLS in front of a plain server, the way an ingress terminates it,
//! with a CA and a `localhost` certificate made for the test. Clients reach payments-api
//! at `https://localhost:PORT` trusting only [`TlsFront::ca_pem`].

use std::{net::SocketAddr, sync::Arc};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
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
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("server parameters")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server TLS configuration");
    config.alpn_protocols = vec![b"h2".to_vec()];
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
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
