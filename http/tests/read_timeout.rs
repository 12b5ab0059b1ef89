//! What `RemoteOptions::max_rate` relies on in reqwest: its read timeout counts only while a
//! read of the body waits, not the time a client spends between reads. A paced pull pauses
//! after every frame for as long as its rate says; reqwest 0.13 resets the timer after a
//! frame instead of dropping it, so a pause longer than the timeout would fail the next read
//! there. An upgrade that brings that in fails here first.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_between_reads_longer_than_the_read_timeout_is_not_a_timeout() {
    let frames = || {
        let chunk = Bytes::from(vec![7u8; 64 << 10]);
        let items = [chunk.clone(), chunk].map(Ok::<_, std::io::Error>);
        Body::from_stream(futures_util::stream::iter(items))
    };
    let app = Router::new().route("/body", get(move || async move { frames() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let timeout = Duration::from_millis(200);
    let client = reqwest::Client::builder()
        .read_timeout(timeout)
        .build()
        .unwrap();
    let mut res = client
        .get(format!("http://{addr}/body"))
        .send()
        .await
        .unwrap();
    let mut got = res.chunk().await.unwrap().unwrap().len();
    tokio::time::sleep(3 * timeout).await;
    while let Some(c) = res.chunk().await.unwrap() {
        got += c.len();
    }
    assert_eq!(got, 128 << 10);
}
