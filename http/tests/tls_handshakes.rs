//! The TLS listener's cap on handshakes: silent sockets fill it and a real client waits in
//! the backlog until one of them goes or its deadline passes; then it is served.

mod at_cap;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use ese_http::tls::{load_config, HandshakeLimits, TlsListener};
use tokio::net::{TcpListener, TcpStream};

/// An HTTPS server answering `GET /` with "ok", its handshakes limited; answers its URL and
/// the certificate a client must trust.
async fn https(limits: HandshakeLimits) -> (String, reqwest::Certificate) {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let config = load_config(&cert, &key).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener::with_limits(tcp, config, limits).unwrap();
    let app = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ca = reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap();
    (format!("https://{addr}/"), ca)
}

fn client(ca: reqwest::Certificate) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

/// Opens `n` connections that never speak.
async fn silent(url: &str, n: usize) -> Vec<TcpStream> {
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(TcpStream::connect(&addr).await.unwrap());
    }
    v
}

async fn get_ok(c: reqwest::Client, url: String) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_hold_the_handshake_slots_until_they_go() {
    let limits = HandshakeLimits {
        max_in_flight: 4,
        deadline: Duration::from_secs(600),
    };
    let (url, ca) = https(limits).await;
    // The cap is free: a client is served.
    assert_eq!(get_ok(client(ca.clone()), url.clone()).await, "ok");

    let held = silent(&url, 4).await;
    let waiting = tokio::spawn(get_ok(client(ca), url.clone()));
    // The silent sockets close: their handshakes fail, the slots free, the client is served.
    at_cap::waits_then_is_served(waiting, move || drop(held), "4 handshakes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_loses_its_slot_at_the_deadline() {
    let limits = HandshakeLimits {
        max_in_flight: 2,
        deadline: Duration::from_millis(400),
    };
    let (url, ca) = https(limits).await;
    let _held = silent(&url, 2).await;
    // Kept open, the silent sockets still lose their slots at the deadline.
    let answer = tokio::time::timeout(Duration::from_secs(10), get_ok(client(ca), url))
        .await
        .expect("the client was not served after the silent handshakes' deadline");
    assert_eq!(answer, "ok");
}
