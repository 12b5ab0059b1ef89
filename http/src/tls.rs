//! TLS for the backup router, with rustls: a certificate chain and its private key from PEM
//! files, and a listener that hands axum only connections whose handshake finished.
//!
//! Handshakes run on tasks of their own, each with a deadline, so a client that opens a socket
//! and never speaks holds no one else up during its handshake (the accept loop never waits on
//! one). Their number is capped: at the cap the loop stops accepting until one ends, so a
//! flood of silent sockets waits in the kernel's backlog instead of holding a task and a
//! descriptor each. After the handshake, [`crate::ConnLimits`] bounds the connection.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Finished handshakes waiting for axum to take them.
const READY_QUEUE: usize = 64;

/// How many handshakes may run at once, and for how long each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Handshakes in flight (including finished ones not yet taken by axum); at the cap no
    /// connection is accepted until one ends. At least 1.
    pub max_in_flight: usize,
    /// How long a client may take to finish its handshake before its socket is closed.
    pub deadline: Duration,
}

impl Default for HandshakeLimits {
    /// 256 at once, 10 s each: a backup service has a handful of clients, and a silent
    /// socket costs a slot for at most the deadline.
    fn default() -> HandshakeLimits {
        HandshakeLimits {
            max_in_flight: 256,
            deadline: Duration::from_secs(10),
        }
    }
}

/// Why the certificate or key could not be used.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read or held no PEM item of the kind wanted.
    Pem { path: PathBuf, what: String },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    Config(String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Pem { path, what } => write!(f, "{}: {what}", path.display()),
            TlsError::Config(m) => write!(f, "the TLS certificate and key do not fit: {m}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1), offering HTTP/1.1 only (the router's protocol).
///
/// # Errors
///
/// [`TlsError::Pem`] for an unreadable file or one without a certificate or key;
/// [`TlsError::Config`] when rustls refuses the pair.
pub fn load_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |path: &Path, what: String| TlsError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(cert, "no CERTIFICATE in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that accepts TCP connections, runs their TLS handshakes and gives axum the
/// finished ones. Dropping it stops accepting.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Wraps a bound listener, with the default [`HandshakeLimits`].
    ///
    /// # Errors
    ///
    /// The listener's own error for its local address.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        TlsListener::with_limits(listener, config, HandshakeLimits::default())
    }

    /// Wraps a bound listener, with handshakes limited as given.
    ///
    /// # Errors
    ///
    /// The listener's own error for its local address.
    pub fn with_limits(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        limits: HandshakeLimits,
    ) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx, limits));
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    limits: HandshakeLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    loop {
        // The semaphore is never closed, so this only waits.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (tls, ready) = (tls.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(limits.deadline, tls.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
            drop(slot);
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped: never while axum
            // still asks, so there is nothing to hand out ever again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
