//! A TCP proxy on loopback between a client process and a server process, for the tests that
//! need a download to be slow enough to act on while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy that passes at most `bytes_per_tick` bytes from the server every 10 ms.
pub struct SlowProxy {
    pub addr: SocketAddr,
    /// Bytes passed from the server to clients so far.
    pub carried: Arc<AtomicU64>,
    /// Whether it still holds to its rate.
    throttled: Arc<AtomicBool>,
}

impl SlowProxy {
    /// Starts the proxy on the current runtime.
    pub async fn start(upstream: SocketAddr, bytes_per_tick: usize) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let carried = Arc::new(AtomicU64::new(0));
        let throttled = Arc::new(AtomicBool::new(true));
        let (c, t) = (carried.clone(), throttled.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (c, t) = (c.clone(), t.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        pipe(client, server, c, t, bytes_per_tick).await;
                    }
                });
            }
        });
        SlowProxy {
            addr,
            carried,
            throttled,
        }
    }

    /// The same URL through the proxy.
    pub fn url(&self, direct: &str) -> String {
        let rest = direct
            .split_once("://")
            .and_then(|(_, r)| r.split_once('/'))
            .map(|(_, path)| path)
            .unwrap_or_default();
        format!("http://{}/{rest}", self.addr)
    }

    /// Bytes carried so far.
    pub fn carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }

    /// Carries everything at full speed from now on: what the buffers hold reaches the
    /// client at once, however slowly a loaded machine runs the proxy's timer.
    pub fn unthrottle(&self) {
        self.throttled.store(false, Ordering::Relaxed);
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    carried: Arc<AtomicU64>,
    throttled: Arc<AtomicBool>,
    per_tick: usize,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
    let mut buf = vec![0u8; per_tick];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carried.fetch_add(n as u64, Ordering::Relaxed);
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if throttled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    up.abort();
}
