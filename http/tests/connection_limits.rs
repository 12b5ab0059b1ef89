//! The server's connection limits (`ConnLimits`): a connection that sends no request, or sits
//! idle after one, is closed at the header deadline; at the cap on connections a new client
//! waits in the backlog until one ends, then is served.

mod at_cap;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use ese_http::{serve_until_with_limits, ConnLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A plain-HTTP server answering `GET /` with "ok" under `limits`; answers its address.
async fn server(limits: ConnLimits) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(serve_until_with_limits(
        tcp,
        app,
        None,
        limits,
        std::future::pending(),
    ));
    addr
}

/// A header deadline short enough to wait for in a test.
const QUICK: ConnLimits = ConnLimits {
    max_connections: 8,
    header_timeout: Duration::from_millis(300),
};

/// Reads until the server closes the connection (or resets it); answers what came and how
/// long after `since` the close came. Panics if it stays open for 10 s. `since` is taken
/// before connecting: the server's deadline cannot start earlier, however late this task
/// runs after the connect.
async fn until_closed(s: &mut TcpStream, since: Instant) -> (Vec<u8>, Duration) {
    let t = since;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the server kept the connection open");
        match read {
            Ok(0) | Err(_) => return (got, t.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_deadline() {
    let addr = server(QUICK).await;
    let since = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (_, took) = until_closed(&mut s, since).await;
    assert!(took >= Duration::from_millis(250), "closed early: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_idle_after_its_request_is_closed_at_the_header_deadline() {
    let addr = server(QUICK).await;
    let since = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = until_closed(&mut s, since).await;
    // Kept open after the answer until the deadline, not closed with it.
    assert!(took >= Duration::from_millis(250), "closed early: {took:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_new_client_waits_until_a_connection_ends() {
    let addr = server(ConnLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(600),
    })
    .await;
    let url = format!("http://{addr}/");
    let get_ok =
        |url: String| async move { reqwest::get(url).await.unwrap().text().await.unwrap() };
    assert_eq!(get_ok(url.clone()).await, "ok");
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let waiting = tokio::spawn(get_ok(url));
    // One connection ends: one slot, enough.
    at_cap::waits_then_is_served(waiting, || drop(held.pop()), "2 connections").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_out_of_range_are_clamped_not_a_panic() {
    for limits in [
        ConnLimits {
            max_connections: usize::MAX,
            header_timeout: Duration::MAX,
        },
        ConnLimits {
            max_connections: 0,
            header_timeout: Duration::from_secs(30),
        },
    ] {
        let addr = server(limits).await;
        let got = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(got.text().await.unwrap(), "ok", "{limits:?}");
    }
}
