//! Building the router for a host's instances, and serving it on a listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use ese_actors::ese::BackupPace;
use ese_actors::Instance;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::accept::{serve_limited, ConnLimits};
use crate::allow::Place;
use crate::auth::Tokens;
use crate::state::{Config, Shared};

/// Why a router cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Without a token file, the backup API would be open to anyone who can reach it: only a
    /// loopback address is allowed then.
    NoTokensOffLoopback(SocketAddr),
    /// A chunk size of zero or not a multiple of 32 KiB (the largest page size).
    BadChunk(usize),
    /// Two instances under one name.
    DuplicateName(String),
    /// A push target prefix that is not an absolute path, `file:///path` or `s3://bucket/...`
    /// free of `.`, `..` and encoded characters: the prefix and why.
    BadPushTarget(String, String),
    /// The lease does not outlast [`HOLDS_PER_LEASE`] of the longest waits the instance's
    /// backup pace may hold a read of one chunk (see [`check_lease`]): the instance's name,
    /// that wait and the lease.
    LeaseTooShort(String, Duration, Duration),
}

/// How many of the longest held reads a lease must outlast.
pub const HOLDS_PER_LEASE: u32 = 10;

/// Checks a lease against a backup pace. A read the pace holds (beside busy durable commits,
/// `ese::BackupPace::YieldToCommits`) waits up to its length at the pace's floor, and
/// nothing renews the lease meanwhile: only the chunk it sends does. A read is
/// `chunk_bytes` long, a file's first at least 96 KiB (a database image's header pages). A
/// lease shorter than
/// [`HOLDS_PER_LEASE`] such waits could run out under a client that is reading, so it is
/// refused: `Err` with the longest wait.
///
/// ```
/// use std::time::Duration;
/// use ese_actors::ese::BackupPace;
///
/// let slow = BackupPace::YieldToCommits { p99_percent: 110, floor_bytes_per_sec: 1 << 20 };
/// // A 1 MiB chunk may wait a second at 1 MiB/s: a 5 s lease is too short, 60 s is not.
/// assert_eq!(ese_http::check_lease(slow, 1 << 20, Duration::from_secs(5)), Err(Duration::from_secs(1)));
/// assert!(ese_http::check_lease(slow, 1 << 20, Duration::from_secs(60)).is_ok());
/// assert!(ese_http::check_lease(BackupPace::Full, 1 << 20, Duration::from_millis(1)).is_ok());
/// // A file's first read is at least 96 KiB, whatever the chunk: a second at 96 KiB/s.
/// let slower = BackupPace::YieldToCommits { p99_percent: 110, floor_bytes_per_sec: 96 << 10 };
/// assert_eq!(ese_http::check_lease(slower, 32 << 10, Duration::from_secs(5)), Err(Duration::from_secs(1)));
/// ```
pub fn check_lease(pace: BackupPace, chunk_bytes: usize, ttl: Duration) -> Result<(), Duration> {
    let BackupPace::YieldToCommits {
        floor_bytes_per_sec,
        ..
    } = pace
    else {
        return Ok(());
    };
    let longest = chunk_bytes.max(crate::stream::FIRST_READ);
    let hold = Duration::from_secs_f64(longest as f64 / floor_bytes_per_sec.max(1) as f64);
    if hold.saturating_mul(HOLDS_PER_LEASE) > ttl {
        return Err(hold);
    }
    Ok(())
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::NoTokensOffLoopback(a) => {
                write!(f, "refusing to serve backups on {a} without a token file")
            }
            BuildError::BadChunk(n) => write!(f, "chunk size {n} is not a multiple of 32 KiB"),
            BuildError::DuplicateName(n) => write!(f, "instance name {n:?} given twice"),
            BuildError::BadPushTarget(t, why) => write!(f, "push target {t:?}: {why}"),
            BuildError::LeaseTooShort(name, hold, ttl) => write!(
                f,
                "instance {name:?}: a lease of {ttl:?} does not outlast {HOLDS_PER_LEASE} backup \
                 reads held {hold:?} each at its backup pace's floor (nothing renews a lease \
                 while a read is held): raise the floor or the lease"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds the backup router for one or more named instances.
#[derive(Debug, Default)]
pub struct Builder {
    instances: Vec<(String, Instance)>,
    tokens: Option<Tokens>,
    cfg: Config,
    push_targets: Vec<String>,
}

impl Builder {
    /// A builder with the default lease (60 s), chunk (1 MiB) and window (16 MiB).
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Serves `inst` under `/v1/instances/{name}`.
    pub fn instance(mut self, name: impl Into<String>, inst: Instance) -> Builder {
        self.instances.push((name.into(), inst));
        self
    }

    /// The tokens requests must carry (see [`Tokens::parse`] for the file format).
    pub fn tokens(mut self, tokens: Tokens) -> Builder {
        self.tokens = Some(tokens);
        self
    }

    /// How long a backup lives without a request.
    pub fn lease_ttl(mut self, ttl: Duration) -> Builder {
        self.cfg.lease_ttl = ttl;
        self
    }

    /// The size of each engine read (a multiple of 32 KiB; 1 MiB by default). A file's first
    /// read asks for at least 96 KiB: the engine wants a database image's first read to cover
    /// its header pages, three pages of up to 32 KiB.
    pub fn chunk_bytes(mut self, n: usize) -> Builder {
        self.cfg.chunk_bytes = n;
        self
    }

    /// How many of a file's most recent bytes the server keeps for `Range` resumption.
    pub fn window_bytes(mut self, n: u64) -> Builder {
        self.cfg.window_bytes = n;
        self
    }

    /// Turns push mode on: clients with the `push` scope may have the server write a backup
    /// set into a target under one of these prefixes (absolute paths, `file:///path` or
    /// `s3://bucket/prefix`, compared component by component). Without any, push mode is off.
    pub fn push_targets<I, S>(mut self, prefixes: I) -> Builder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.push_targets
            .extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// How pushes stream: a rate limit keeps a push from taking the server's disks.
    pub fn push_options(mut self, options: ese_actors::BackupOptions) -> Builder {
        self.cfg.push_options = options;
        self
    }

    /// The router, for a server that will listen on `listen`.
    ///
    /// # Errors
    ///
    /// [`BuildError`]: no tokens on a non-loopback address, a bad chunk size, a name twice, a
    /// malformed push target, a lease too short for an instance's backup pace.
    pub fn build(mut self, listen: SocketAddr) -> Result<BackupServer, BuildError> {
        if self.tokens.is_none() && !listen.ip().is_loopback() {
            return Err(BuildError::NoTokensOffLoopback(listen));
        }
        let chunk = self.cfg.chunk_bytes;
        if chunk == 0 || !chunk.is_multiple_of(32 << 10) {
            return Err(BuildError::BadChunk(chunk));
        }
        let mut instances = HashMap::new();
        for (name, inst) in self.instances {
            if let Err(hold) = check_lease(inst.backup_pace(), chunk, self.cfg.lease_ttl) {
                return Err(BuildError::LeaseTooShort(name, hold, self.cfg.lease_ttl));
            }
            if instances.insert(name.clone(), inst).is_some() {
                return Err(BuildError::DuplicateName(name));
            }
        }
        for t in &self.push_targets {
            let place = Place::parse(t).map_err(|why| BuildError::BadPushTarget(t.clone(), why))?;
            self.cfg.push_targets.push(place);
        }
        let (expirations, expired) = watch::channel(0);
        let shared = Arc::new(Shared {
            instances,
            tokens: self.tokens,
            cfg: self.cfg,
            backups: Mutex::new(HashMap::new()),
            expirations,
            pushes: Default::default(),
        });
        Ok(BackupServer {
            router: crate::router::routes(shared),
            expired,
        })
    }
}

/// A built router and what it lets a host watch.
#[derive(Debug, Clone)]
pub struct BackupServer {
    router: Router,
    expired: watch::Receiver<u64>,
}

impl BackupServer {
    /// The router, to serve or to nest in a host's own.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// How many leases expired so far (each ended its backup, or tried to).
    pub fn expirations(&self) -> watch::Receiver<u64> {
        self.expired.clone()
    }
}

/// Serves `router` on `listener` over plain HTTP, with the default [`ConnLimits`], for as
/// long as the task runs.
///
/// # Errors
///
/// None so far: a failed accept is retried (axum's listener waits a second first).
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    serve_limited(
        listener,
        router,
        ConnLimits::default(),
        std::future::pending(),
    )
    .await;
    Ok(())
}

/// Serves `router` on `listener`, over TLS when `tls` is given ([`crate::tls::load_config`]),
/// with the default [`ConnLimits`], until `shutdown` completes; then stops accepting and waits
/// for the requests in flight.
///
/// # Errors
///
/// The listener's I/O error (setting up TLS).
///
/// # Example
///
/// ```no_run
/// # async fn run(inst: ese_actors::Instance) -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8417").await?;
/// let server = ese_http::Builder::new()
///     .instance("main", inst)
///     .build(listener.local_addr()?)?;
/// let stop = async { let _ = tokio::signal::ctrl_c().await; };
/// ese_http::serve_until(listener, server.router(), None, stop).await?;
/// # Ok(()) }
/// ```
pub async fn serve_until<F>(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    serve_until_with_limits(listener, router, tls, ConnLimits::default(), shutdown).await
}

/// [`serve_until`] with other [`ConnLimits`].
///
/// # Errors
///
/// As [`serve_until`].
pub async fn serve_until_with_limits<F>(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tls {
        None => serve_limited(listener, router, limits, shutdown).await,
        Some(config) => {
            let listener = crate::tls::TlsListener::new(listener, config)?;
            serve_limited(listener, router, limits, shutdown).await
        }
    }
    Ok(())
}
