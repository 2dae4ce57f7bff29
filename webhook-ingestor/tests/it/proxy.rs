//! A TCP forwarder between the ingestor and PostgreSQL that a test can cut, to make
//! the database unreachable the way a network partition does.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::Result;

pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Proxy {
            addr: listener.local_addr()?,
            up: Arc::new(AtomicBool::new(true)),
            connections: Arc::new(Mutex::new(CancellationToken::new())),
            stop: CancellationToken::new(),
        };
        let (up, connections, stop) = (
            proxy.up.clone(),
            proxy.connections.clone(),
            proxy.stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                if !up.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let kill = connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                tokio::spawn(forward(client, upstream, kill));
            }
        });
        Ok(proxy)
    }

    /// Drops every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut token = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        token.cancel();
        *token = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stop.cancel();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, kill: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        () = kill.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}

/// `url` with its `host:port` replaced by `addr`; also returns the original address.
pub fn through(url: &str, addr: SocketAddr) -> Result<(String, SocketAddr)> {
    use std::net::ToSocketAddrs as _;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow::anyhow!("no scheme"))?;
    let (userinfo, rest) = rest.split_once('@').unwrap_or(("", rest));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let upstream = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host} does not resolve"))?;
    let at = if userinfo.is_empty() {
        String::new()
    } else {
        format!("{userinfo}@")
    };
    Ok((format!("{scheme}://{at}{addr}/{path}"), upstream))
}
