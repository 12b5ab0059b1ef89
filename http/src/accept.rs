//! Serving connections, with limits: at most [`ConnLimits::max_connections`] at once (at the
//! cap the loop stops accepting, so further clients wait in the kernel's backlog), and a
//! deadline for each request's headers, which also bounds how long a connection may sit idle
//! between requests (hyper starts it when the connection is ready for its next request).
//!
//! `axum::serve` sets neither: a client that connects, or finishes a TLS handshake, and then
//! says nothing holds a task and a descriptor for ever, and enough of them use up the
//! process's descriptors, which the engine needs for its logs. The loop here is axum's with
//! those two limits: plain HTTP/1 (all the router speaks), every connection watched for a
//! graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

/// The longest header deadline used; a longer one is taken as this.
const LONGEST_HEADER_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How many connections a server holds, and how long a request's headers may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections served at once (TLS: after their handshake); at the cap none is accepted
    /// until one ends. Taken as at least 1 and at most tokio's semaphore maximum.
    pub max_connections: usize,
    /// From a connection's start, or the end of its last response, until the next request's
    /// headers are in; past it the connection is closed. Taken as at most a year.
    pub header_timeout: Duration,
}

impl Default for ConnLimits {
    /// 512 connections, 30 s: a backup service has a handful of clients, and between two
    /// requests of a backup the client waits at most for its own disk (it renews the lease on
    /// a connection of its own, which reqwest opens again when the server closed it).
    fn default() -> ConnLimits {
        ConnLimits {
            max_connections: 512,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on the connections `listener` accepts until `shutdown` completes; then
/// stops accepting, lets the requests in flight finish and closes every connection.
pub(crate) async fn serve_limited<L, F>(
    mut listener: L,
    router: Router,
    limits: ConnLimits,
    shutdown: F,
) where
    L: Listener,
    F: Future<Output = ()> + Send + 'static,
{
    // Out-of-range limits are clamped, not trusted: the semaphore panics above its maximum,
    // and hyper adds the deadline to the clock on every connection.
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let header_timeout = limits.header_timeout.min(LONGEST_HEADER_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let io = tokio::select! {
            biased;
            () = &mut shutdown => break,
            (io, _) = listener.accept() => io,
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let conn =
            http.serve_connection(TokioIo::new(io), TowerToHyperService::new(router.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
