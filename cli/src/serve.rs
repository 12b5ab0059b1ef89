//! `ese serve`: an instance as a service. Its directory is opened (soft recovery, its
//! databases attached) and the backup router of `ese-http` serves it, with the instance's
//! status at `GET /v1/instances/NAME`, until SIGINT or SIGTERM; then the instance terms with
//! `STOP_BACKUP` (a remote backup still running ends as aborted by the server, event 226) and
//! the process exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ese_actors::ese::BackupPace;
use ese_actors::{Engine, Error, Term};
use ese_http::{ApiError, Builder, Tokens};

use crate::open::{open_instance, Files};
use crate::{Failure, Out};

/// How long the service keeps answering TermInProgress after the term: a client whose download
/// the term cut retries within it and learns why, instead of meeting a closed port.
const LINGER: Duration = Duration::from_secs(1);
/// How long requests still in flight may take once the instance is gone.
const DRAIN: Duration = Duration::from_secs(5);

/// What `ese serve` was asked to do.
#[derive(Debug)]
pub struct Serve {
    pub instance_dir: PathBuf,
    pub name: Option<String>,
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub dbs: Vec<PathBuf>,
    pub base: String,
    pub create: bool,
    pub writers: usize,
    pub lease_secs: u64,
    /// How backups share the machine with the service's durable commits.
    pub pace: BackupPace,
}

/// The size of the router's engine reads.
const CHUNK_BYTES: usize = 1 << 20;

/// The router's rule for a lease against a backup pace ([`ese_http::check_lease`]), checked
/// before the instance opens so that the refusal names the flags.
fn check_pace(pace: BackupPace, lease_secs: u64) -> Result<(), Failure> {
    let ttl = Duration::from_secs(lease_secs);
    ese_http::check_lease(pace, CHUNK_BYTES, ttl).map_err(|hold| {
        let floor_mib = match pace {
            BackupPace::YieldToCommits {
                floor_bytes_per_sec,
                ..
            } => floor_bytes_per_sec >> 20,
            BackupPace::Full => 0,
        };
        Failure::Usage(format!(
            "--backup-floor-mib {floor_mib} is too low for --lease-secs {lease_secs}: a held \
             1 MiB read may wait {:.2} s without renewing the lease; raise the floor or the \
             lease (floor in MiB/s times lease in seconds at least {})",
            hold.as_secs_f64(),
            ese_http::HOLDS_PER_LEASE
        ))
    })
}

/// Runs the service until a signal, then terms the instance.
pub async fn run(a: Serve, out: Out) -> Result<(), Failure> {
    check_pace(a.pace, a.lease_secs)?;
    let name = instance_name(&a)?;
    // Without them the service could not stop cleanly: refuse before opening anything.
    let mut signals = Signals::install()?;
    let tokens = a.token_file.as_deref().map(load_tokens).transpose()?;
    if tokens.is_none() && !a.listen.ip().is_loopback() {
        return Err(Failure::Other(format!(
            "refusing to serve backups on {} without --token-file: anyone who can reach it \
             could read the databases",
            a.listen
        )));
    }
    if tokens.is_some() && a.tls.is_none() && !a.listen.ip().is_loopback() {
        eprintln!(
            "ese: warning: serving on {} over plain HTTP: clients' tokens travel unencrypted; \
             give --tls-cert and --tls-key",
            a.listen
        );
    }
    let tls = match &a.tls {
        Some((cert, key)) => {
            Some(ese_http::tls::load_config(cert, key).map_err(|e| Failure::Other(e.to_string()))?)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| Failure::Other(format!("cannot listen on {}: {e}", a.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Other(e.to_string()))?;
    let engine = Engine::new();
    let create = a.create.then(|| a.instance_dir.join(format!("{name}.edb")));
    let files = Files {
        dir: &a.instance_dir,
        dbs: a.dbs.clone(),
        base: &a.base,
        create,
    };
    let (inst, dbs) = open_instance(&engine, &name, files, a.pace, out).await?;
    let mut builder = Builder::new()
        .instance(name.clone(), inst.clone())
        .chunk_bytes(CHUNK_BYTES)
        .lease_ttl(Duration::from_secs(a.lease_secs.max(1)));
    if let Some(t) = tokens {
        builder = builder.tokens(t);
    }
    let server = match builder.build(addr) {
        Ok(s) => s,
        Err(e) => {
            let _ = inst.term(Term::empty()).await;
            return Err(Failure::Other(e.to_string()));
        }
    };
    let writers = match (a.writers, dbs.first()) {
        (0, _) | (_, None) => None,
        (n, Some(&db)) => {
            let orders = inst.ensure_table(db, "orders").await?;
            Some(crate::demo::start_writers(&inst, orders, n))
        }
    };
    let closing = Arc::new(AtomicBool::new(false));
    let router = server.router().layer(middleware::from_fn_with_state(
        closing.clone(),
        refuse_when_closing,
    ));
    let scheme = if tls.is_some() { "https" } else { "http" };
    announce(
        out,
        &format!("{scheme}://{addr}/v1/instances/{name}"),
        &name,
    );
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(ese_http::serve_until(listener, router, tls, async {
        let _ = stopped.await;
    }));
    let why = tokio::select! {
        s = signals.next() => s,
        r = http_ended(&http) => r,
    };
    tracing::info!(reason = %why, "stopping the service");
    closing.store(true, Ordering::SeqCst);
    let shutdown = async {
        let acked = match writers {
            Some(w) => {
                let n = w.commits.load(Ordering::Relaxed);
                w.stop().await.map(|()| n)
            }
            None => Ok(0),
        };
        let termed = inst.term(Term::STOP_BACKUP).await;
        tokio::time::sleep(LINGER).await;
        let _ = stop_http.send(());
        let _ = tokio::time::timeout(DRAIN, http).await;
        (termed, acked)
    };
    // A second signal is an operator who will not wait for the clean term (it flushes every
    // dirty page): the process ends at once, as a crash would, and the next start recovers
    // every durable commit from the log.
    let (termed, acked) = tokio::select! {
        r = shutdown => r,
        again = signals.next() => {
            eprintln!(
                "ese: {again} during the clean stop: exiting now without it; the next start \
                 recovers the instance from its log"
            );
            std::process::exit(if again == "SIGINT" { 130 } else { 143 });
        }
    };
    termed?;
    let acked = acked?;
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "stopped": why, "commits": acked })
        );
    } else {
        println!(
            "stopped ({why}): the instance terminated cleanly; {acked} writer commits acknowledged"
        );
    }
    Ok(())
}

/// `--name`, or the directory's own name; it becomes a path segment, so it is kept plain.
fn instance_name(a: &Serve) -> Result<String, Failure> {
    let name = match &a.name {
        Some(n) => n.clone(),
        None => dir_name(&a.instance_dir)?,
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.starts_with('.') || !name.chars().all(plain) {
        return Err(Failure::Other(format!(
            "instance name {name:?}: use letters, digits, '-', '_' and '.' (not first)"
        )));
    }
    Ok(name)
}

fn dir_name(dir: &Path) -> Result<String, Failure> {
    let abs = std::path::absolute(dir).map_err(|e| Failure::Other(e.to_string()))?;
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Failure::Other(format!("{}: give --name", dir.display())))
}

fn load_tokens(path: &Path) -> Result<Tokens, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Other(format!("--token-file {}: {e}", path.display())))?;
    let tokens = Tokens::parse(&text)
        .map_err(|e| Failure::Other(format!("--token-file {}: {e}", path.display())))?;
    // Without one, every request would be refused 401: a service no backup could use.
    if tokens.is_empty() {
        return Err(Failure::Other(format!(
            "--token-file {}: the file holds no token (lines `TOKEN scope,scope`)",
            path.display()
        )));
    }
    Ok(tokens)
}

/// The first line on stdout is the URL to give `ese backup --url` (tests and scripts read it).
fn announce(out: Out, url: &str, name: &str) {
    if out.json {
        println!("{}", serde_json::json!({ "url": url, "instance": name }));
    } else {
        println!("serving {url}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// The handlers of SIGINT and SIGTERM.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Signals, Failure> {
        use tokio::signal::unix::{signal, SignalKind};
        let failed = |e: std::io::Error| {
            Failure::Other(format!(
                "cannot handle SIGINT and SIGTERM ({e}), so the service could not stop cleanly"
            ))
        };
        Ok(Signals {
            int: signal(SignalKind::interrupt()).map_err(failed)?,
            term: signal(SignalKind::terminate()).map_err(failed)?,
        })
    }

    /// The next of them, by name.
    pub async fn next(&mut self) -> String {
        tokio::select! {
            _ = self.int.recv() => "SIGINT".into(),
            _ = self.term.recv() => "SIGTERM".into(),
        }
    }
}

/// Waits for the HTTP server to end on its own (a listener failure).
async fn http_ended(http: &tokio::task::JoinHandle<std::io::Result<()>>) -> String {
    while !http.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    "the HTTP server stopped".into()
}

/// Once the service is stopping, every new request gets the contract's answer for a call
/// during term: TermInProgress (-1000), as JSON like every other error.
async fn refuse_when_closing(
    State(closing): State<Arc<AtomicBool>>,
    req: Request,
    next: Next,
) -> Response {
    if closing.load(Ordering::SeqCst) {
        return ApiError::engine(Error::TermInProgress).into_response();
    }
    next.run(req).await
}
