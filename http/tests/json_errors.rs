//! Requests axum itself refuses (a body over its limit, a method a resource does not take) and
//! bodies that are not JSON answer as every other error: JSON with the ESE error.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_the_handler_are_json_with_an_ese_code() {
    let h = host(Opts::default()).await;
    let backups = format!("{}/backups", h.url);
    // Four times the router's limit of 64 KiB: the server reads up to the limit, answers 413
    // and closes the connection; the request says so itself, so the client's pool does not
    // hand the dying connection to the next request (which then failed now and then with
    // IncompleteMessage).
    let huge = vec![b' '; 256 << 10];
    let over = h
        .http
        .post(&backups)
        .header("connection", "close")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ese_error(over).await,
        (413, -1003, "JET_errInvalidParameter".into())
    );
    let text = h
        .http
        .post(&backups)
        .header("content-type", "text/plain")
        .body(r#"{"kind": "full"}"#)
        .send()
        .await
        .unwrap();
    let (status, code, _) = ese_error(text).await;
    assert_eq!((status, code), (415, -1003));
    let put = h.http.put(&backups).send().await.unwrap();
    let (status, code, _) = ese_error(put).await;
    assert_eq!((status, code), (405, -1003));
    // None of them began a backup.
    let id = h.begin("full").await;
    let abort = h.end(&id, serde_json::json!({"mode": "abort"})).await;
    assert_eq!(abort.status(), 204);
}
