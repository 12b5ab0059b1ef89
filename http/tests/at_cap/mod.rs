//! The check both listener caps share (connections, TLS handshakes): a client that arrives
//! while the cap is held waits, and is served once a slot frees.

use std::time::Duration;

use tokio::task::JoinHandle;

/// How long a waiting client must stay unanswered to count as waiting.
const HELD: Duration = Duration::from_millis(700);

/// Asserts that `waiting` (a request that answers "ok") is not answered while the cap is
/// held, then that it is answered once `free` lets a slot go. `what` names the cap in
/// failures.
pub async fn waits_then_is_served(waiting: JoinHandle<String>, free: impl FnOnce(), what: &str) {
    tokio::time::sleep(HELD).await;
    assert!(!waiting.is_finished(), "served beyond the cap on {what}");
    free();
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap_or_else(|_| panic!("not served once a slot of {what} freed"))
        .unwrap();
    assert_eq!(answer, "ok");
}
