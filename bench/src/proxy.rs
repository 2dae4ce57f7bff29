//! A TCP proxy in front of PostgreSQL that counts the statements one client process
//! sends. PostgreSQL 15 keeps no per-role statement counts without `pg_stat_statements`
//! in `shared_preload_libraries` (which needs a restart), so payments-api reaches the
//! server through this proxy and every simple `Query` ('Q') and extended-protocol
//! `Execute` ('E') message on its connections is one statement counted.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

pub struct CountingProxy {
    pub port: u16,
    statements: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl CountingProxy {
    pub async fn start(upstream: String) -> anyhow::Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the counting proxy")?;
        let port = listener.local_addr()?.port();
        let statements = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, upstream, statements.clone(), stop.clone()));
        Ok(CountingProxy {
            port,
            statements,
            stop,
        })
    }

    /// Statements sent through the proxy so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: String,
    statements: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else {
            continue;
        };
        let (upstream, statements, stop) = (upstream.clone(), statements.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::select! {
                () = stop.cancelled() => {}
                () = pump(client, server, statements) => {}
            }
        });
    }
}

async fn pump(client: TcpStream, server: TcpStream, statements: Arc<AtomicU64>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let to_server = async move {
        let mut frames = Frames::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let counted = frames.feed(&buf[..n]);
            statements.fetch_add(counted, Ordering::Relaxed);
            if server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_tx.shutdown().await;
    };
    let to_client = async move {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
    };
    tokio::join!(to_server, to_client);
}

/// Follows the frontend's message framing across reads: untyped start-up messages (and
/// SSL / GSS requests) first, then `type byte + int32 length + body`.
#[derive(Debug, Default)]
struct Frames {
    started: bool,
    /// Bytes of the current message header seen so far.
    header: Vec<u8>,
    /// Body bytes still to skip.
    skip: usize,
}

const SSL_REQUEST: u32 = 80_877_103;
const GSS_REQUEST: u32 = 80_877_104;

impl Frames {
    /// Consumes bytes; returns how many statements started in them.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut counted = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let header_len = if self.started { 5 } else { 8 };
            let need = header_len - self.header.len();
            let n = need.min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < header_len {
                break;
            }
            if self.started {
                if matches!(self.header[0], b'Q' | b'E') {
                    counted += 1;
                }
                let len = be_u32(&self.header[1..5]);
                self.skip = (len as usize).saturating_sub(4);
            } else {
                let len = be_u32(&self.header[0..4]);
                let code = be_u32(&self.header[4..8]);
                self.skip = (len as usize).saturating_sub(8);
                // After an SSL/GSS request the real start-up message follows, also untyped.
                self.started = !matches!(code, SSL_REQUEST | GSS_REQUEST);
            }
            self.header.clear();
        }
        counted
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(u32::try_from(body.len() + 4).expect("small")).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup() -> Vec<u8> {
        let body = b"\0\x03\0\0user\0postgres\0\0";
        let mut m = (u32::try_from(body.len() + 4).expect("small"))
            .to_be_bytes()
            .to_vec();
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn queries_and_executes_are_counted_however_the_bytes_are_split() {
        let mut ssl = 8u32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        let mut stream = ssl;
        stream.extend(startup());
        stream.extend(message(b'Q', b"BEGIN\0"));
        stream.extend(message(b'P', b"\0SELECT 1\0\0\0"));
        stream.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
        stream.extend(message(b'E', b"\0\0\0\0\0"));
        stream.extend(message(b'S', b""));
        stream.extend(message(b'Q', b"COMMIT\0"));
        for chunk in [1, 3, 7, stream.len()] {
            let mut frames = Frames::default();
            let counted: u64 = stream.chunks(chunk).map(|c| frames.feed(c)).sum();
            assert_eq!(counted, 3, "split in chunks of {chunk}");
        }
    }
}
