//! The client side: [`RemoteBackup`] pulls a backup from a server running this crate's
//! router and writes it as a standard backup set (the format of `Instance::backup_to_dir`),
//! so `verify_backup_set`, `restore_backup_chain` and `ese verify`/`ese restore` take it
//! unchanged. One job per file: [`api`](self) (the typed calls and the server's JSON errors),
//! `receiver` (the thread that receives the files' bodies and writes them), `resume` (a file
//! download that resumes with `Range`), `set` (the set on blocking threads), `heartbeat` (the
//! lease), `progress` and `error`.

mod api;
mod error;
mod heartbeat;
mod progress;
mod receiver;
mod resume;
mod set;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ese_actors::ese::backup::repo::Repository;
use ese_actors::ese::backup::set::{BackupKind, SetFacts, SetStore, SetWriter};
use ese_actors::ese::internals::db::Signature;
use ese_actors::{BackupInfo, BackupManifest, BackupPhase, BackupTarget, Error, Pacer};
use tokio::sync::watch;

pub use error::RemoteError;
pub use progress::RemoteProgress;

use api::{Api, Begun, FileView};
use heartbeat::Heartbeat;
use progress::{RunTracker, Tracker};
use receiver::Receiver;
use resume::Session;
use set::PartialSet;

use crate::auth::Scope;
use crate::state::Kind;

/// How long an idle connection stays in the client's pool: well under the server's default
/// header deadline of 30 s, which starts when the server sent a response, maybe a while
/// before the client, busy with its disk, read its end.
const POOL_IDLE: Duration = Duration::from_secs(10);

/// The most idle time a paced run is credited for: a tenth of a second, as a local run's
/// slice, so a pause (a resume, a file's end) never buys a burst the rate would not allow.
const PACE_BURST: Duration = Duration::from_millis(100);

/// How a [`RemoteBackup`] connects and what it writes.
#[derive(Clone)]
pub struct RemoteOptions {
    /// `Full` or `Incremental` (the router's kinds; `Copy` and `Differential` are refused).
    pub kind: BackupKind,
    /// The bearer token sent with every request.
    pub token: Option<String>,
    /// An extra CA certificate (PEM) to trust, for a server with a self-signed certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// zstd level for every file of the set, like a local backup's `compress`.
    pub compress: Option<i32>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long a read may wait for the next bytes before the connection counts as cut.
    pub read_timeout: Duration,
    /// The longest wait between two resume attempts.
    pub max_backoff: Duration,
    /// How long the run may go without progress (bytes received or written, a file done,
    /// a phase reached) and still renew the backup's lease; past it the client stops
    /// renewing, so a run stuck in a write that never returns loses the lease as a dead
    /// client does, and the server's logs are freed.
    pub max_stall: Duration,
    /// At most this many bytes per second are received (`None`: as fast as the network and
    /// the set go), like a local backup's `BackupOptions::max_rate` and pg_basebackup's
    /// `--max-rate`. The client reads the answer no faster, so once the socket buffers are
    /// full TCP holds the server back too: its engine reads, and the CPU they take from the
    /// writers, slow to the rate. The whole transfer takes at least its bytes divided by
    /// this. Zero is refused.
    pub max_rate: Option<u64>,
}

impl std::fmt::Debug for RemoteOptions {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("kind", &self.kind)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("compress", &self.compress)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_backoff", &self.max_backoff)
            .field("max_stall", &self.max_stall)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            kind: BackupKind::Full,
            token: None,
            ca_pem: None,
            compress: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(2),
            max_stall: Duration::from_secs(600),
            max_rate: None,
        }
    }
}

impl RemoteOptions {
    /// The same options for a backup of `kind`.
    pub fn kind(mut self, kind: BackupKind) -> RemoteOptions {
        self.kind = kind;
        self
    }

    /// The same options with a bearer token.
    pub fn token(mut self, token: impl Into<String>) -> RemoteOptions {
        self.token = Some(token.into());
        self
    }

    /// The same options trusting one more CA certificate (PEM).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> RemoteOptions {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The same options with another [`RemoteOptions::max_stall`].
    pub fn max_stall(mut self, d: Duration) -> RemoteOptions {
        self.max_stall = d;
        self
    }

    /// The same options compressing the set at zstd `level`.
    pub fn compress(mut self, level: i32) -> RemoteOptions {
        self.compress = Some(level);
        self
    }

    /// The same options receiving at most `bytes_per_second` ([`RemoteOptions::max_rate`]).
    pub fn max_rate(mut self, bytes_per_second: u64) -> RemoteOptions {
        self.max_rate = Some(bytes_per_second);
        self
    }
}

/// What a finished remote backup wrote.
#[derive(Debug, Clone)]
pub struct RemoteOutcome {
    /// The set's manifest, as published.
    pub manifest: BackupManifest,
    /// Where the set is, as a person reads it.
    pub location: String,
    /// The server's id of the backup.
    pub backup_id: String,
    /// The final progress figures (resumes, bytes received).
    pub progress: RemoteProgress,
}

/// A backup of one instance served by this crate's router, pulled over HTTP(S) into a backup
/// set.
///
/// The sequence is a local backup-set run's: begin; for a full, each database image; seal the
/// logs and pull each one; the set's facts (`GET .../record`); the set's files made durable
/// and its manifest published; only then truncation and the normal end. A failure before
/// truncation ends the backup as aborted (`DELETE`, best effort) and removes the partial
/// set; one after it keeps the complete set, which then holds logs the source no longer has
/// ([`RemoteError::Kept`]). Dropping the future removes the set unless truncation was done,
/// and asks the server to abort (the client's next run waits for that abort before it
/// begins). A download cut mid-file resumes from the bytes received
/// (`Range: bytes=N-`) while the lease allows; every file is checked against the server's
/// CRC-32C.
///
/// ```no_run
/// use ese_actors::{BackupKind, BackupTarget};
/// use ese_http::client::{RemoteBackup, RemoteOptions};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let options = RemoteOptions::default()
///     .kind(BackupKind::Full)
///     .token(std::fs::read_to_string("/etc/ese/token")?.trim());
/// let backup = RemoteBackup::new("https://db1:8443/v1/instances/main", options)?;
/// let mut progress = backup.subscribe();
/// tokio::spawn(async move {
///     while progress.changed().await.is_ok() {
///         let p = *progress.borrow();
///         eprintln!("{:?}: {} of {} bytes", p.phase, p.bytes_done, p.bytes_total);
///     }
/// });
/// let done = backup.run(&BackupTarget::parse("/var/backups/ese")?).await?;
/// println!("set {} ({} resumes)", done.location, done.progress.resumes);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RemoteBackup {
    api: Api,
    options: RemoteOptions,
    tracker: Tracker,
    /// `http://` to a host that is not this machine.
    plain_beyond_loopback: bool,
    /// The abort a dropped run left running: the next run waits for it, or its begin would
    /// race it and meet the dropped run's backup (-505).
    dropped_abort: PendingAbort,
}

/// The task a dropped run's [`AbortOnDrop`] spawned, shared with the client.
type PendingAbort = Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>;

impl RemoteBackup {
    /// A client of the instance at `url` (`http(s)://HOST:PORT/v1/instances/NAME`). Sends
    /// nothing yet.
    ///
    /// # Errors
    ///
    /// `RemoteError::Local(InvalidParameter)` for a URL that is not http(s) or whose path does
    /// not end in `/v1/instances/NAME` (a prefix before it is a host's mount point), a kind the
    /// router does not serve, a CA certificate that is not PEM, or a `max_rate` of 0.
    pub fn new(url: &str, options: RemoteOptions) -> Result<RemoteBackup, RemoteError> {
        let bad = |m: String| RemoteError::Local(Error::InvalidParameter.with_detail(m));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("{url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!(
                "{url}: the server's URL is http:// or https://"
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() || !names_instance(&parsed) {
            return Err(bad(format!(
                "{url}: give the instance's URL, http(s)://HOST:PORT/v1/instances/NAME"
            )));
        }
        wire_kind(options.kind)?;
        if options.max_rate == Some(0) {
            return Err(bad("max_rate is 0: give at least 1 byte per second".into()));
        }
        let http = http_client(&options)?;
        let base = url.trim_end_matches('/').to_string();
        let plain_beyond_loopback = parsed.scheme() == "http" && !is_loopback(&parsed);
        Ok(RemoteBackup {
            plain_beyond_loopback,
            api: Api::new(http, base, options.token.clone()),
            options,
            tracker: Tracker::new(),
            dropped_abort: PendingAbort::default(),
        })
    }

    /// Whether the run would send its bearer token unencrypted to another machine: a token
    /// is set, the URL is `http://` and its host is not a loopback address (`127.0.0.0/8`,
    /// `::1`, `localhost`). Anyone on the path could read the token and use its scopes. The
    /// client does not refuse (a trusted network or a tunnel may be the operator's choice);
    /// `ese backup --url` warns.
    ///
    /// ```
    /// use ese_http::client::{RemoteBackup, RemoteOptions};
    ///
    /// let mut o = RemoteOptions::default();
    /// o.token = Some("s3cret".into());
    /// let far = RemoteBackup::new("http://10.0.0.7:8080/v1/instances/a", o.clone()).unwrap();
    /// assert!(far.token_in_clear());
    /// let near = RemoteBackup::new("http://127.0.0.1:8080/v1/instances/a", o.clone()).unwrap();
    /// assert!(!near.token_in_clear());
    /// let tls = RemoteBackup::new("https://10.0.0.7:8443/v1/instances/a", o).unwrap();
    /// assert!(!tls.token_in_clear());
    /// ```
    pub fn token_in_clear(&self) -> bool {
        self.options.token.is_some() && self.plain_beyond_loopback
    }

    /// The progress of the run, on a channel that holds the latest figures.
    pub fn subscribe(&self) -> watch::Receiver<RemoteProgress> {
        self.tracker.subscribe()
    }

    /// Runs the backup into a new set of `target` (a folder, `file://` or `s3://`), named for
    /// its time and kind like a local backup's.
    ///
    /// # Errors
    ///
    /// [`RemoteError`]: the server's ESE errors with their codes (e.g. `BackupInProgress`
    /// -505, `BackupAbortByServer` -801 after a `stop_backup`, `ClientRequestToStopJetService`
    /// -1329, `NoBackup` -520 once the lease expired, `AccessDenied` -1907 for a bad token,
    /// `PermissionDenied` -1809 for a token without the scopes to finish, before any transfer),
    /// transport failures that outlast the resume budget (half the lease) or cut a download
    /// at the same byte resume after resume, damaged transfers,
    /// and local errors writing the set (`DiskFull` -1808, `DiskIO` -1022). An incremental
    /// whose parent (named by the server's record) is not a complete set of `target` with a
    /// complete chain fails with `MissingFullBackup` (-560) before its set is published: the
    /// server's backup is aborted, nothing is truncated, the partial set is removed.
    pub async fn run(&self, target: &BackupTarget) -> Result<RemoteOutcome, RemoteError> {
        wire_kind(self.options.kind)?;
        let (store, repo) = set::new_store(target, self.options.kind).await?;
        self.run_into(store, Some(repo)).await
    }

    /// Runs the backup into `store` (which must be able to take a new set). The store is a
    /// set of its own, in no repository: an incremental's parent is not looked for.
    ///
    /// # Errors
    ///
    /// As [`RemoteBackup::run`].
    pub async fn run_in(&self, store: Box<dyn SetStore>) -> Result<RemoteOutcome, RemoteError> {
        self.run_into(store, None).await
    }

    /// Waits for the abort a dropped run asked for (its `DELETE`, which a task of its own
    /// sends) to be answered: a host that cancels a run and then exits calls this, or the
    /// server keeps that backup until its lease runs out and refuses the next begin
    /// (`BackupInProgress` -505). Its requests have the client's timeouts, so this wait ends;
    /// without a dropped run it returns at once. The next run waits for it too.
    pub async fn settle(&self) {
        let dropped = self.dropped_abort.lock().ok().and_then(|mut s| s.take());
        if let Some(task) = dropped {
            let _ = task.await;
        }
    }

    /// Runs the backup into `store`, a new set of `repo` if given.
    async fn run_into(
        &self,
        store: Box<dyn SetStore>,
        repo: Option<Arc<dyn Repository>>,
    ) -> Result<RemoteOutcome, RemoteError> {
        let kind = wire_kind(self.options.kind)?;
        self.settle().await;
        let figures = self.tracker.restart();
        let mut set = PartialSet::new(store, self.options.compress).await?;
        let begun = match self.api.begin(kind).await {
            Ok(b) => b,
            Err(e) => {
                self.tracker.phase(BackupPhase::Failed);
                return Err(e);
            }
        };
        let mut abort = AbortOnDrop {
            api: self.api.clone(),
            id: Some(begun.id.clone()),
            on_drop: self.dropped_abort.clone(),
        };
        let refused = match can_finish(&begun) {
            Ok(()) => self.check_begun_parent(&begun, repo.clone()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = refused {
            abort.now().await;
            self.tracker.phase(BackupPhase::Failed);
            return Err(e);
        }
        let mut lease = Some(Heartbeat::start(
            self.api.clone(),
            begun.id.clone(),
            begun.lease_ttl,
            self.subscribe(),
            self.options.max_stall,
        ));
        let written = match self.receiver(&begun, figures) {
            Ok(receiver) => self.write_set(&receiver, &begun, &mut set, repo).await,
            Err(e) => Err(e),
        };
        let result = match written {
            Ok(manifest) => {
                self.finish(&begun.id, &mut set, &mut abort, &mut lease, manifest)
                    .await
            }
            Err(e) => {
                // An abort the server does not get must not leave the lease renewed.
                drop(lease.take());
                abort.now().await;
                set.remove().await;
                Err(e)
            }
        };
        drop(lease);
        self.tracker.phase(match result {
            Ok(_) => BackupPhase::Done,
            Err(_) => BackupPhase::Failed,
        });
        result.map(|manifest| RemoteOutcome {
            manifest,
            location: set.location().to_string(),
            backup_id: begun.id.clone(),
            progress: self.tracker.get(),
        })
    }

    /// The run's receiving thread, with a client of its own, counting into `figures`.
    fn receiver(&self, begun: &Begun, figures: RunTracker) -> Result<Receiver, RemoteError> {
        Receiver::start(Session {
            api: self.api.with_http(http_client(&self.options)?),
            id: begun.id.clone(),
            lease_ttl: begun.lease_ttl,
            max_backoff: self.options.max_backoff,
            last_contact: Instant::now(),
            tracker: figures,
            pacer: self.options.max_rate.map(|r| Pacer::new(r, PACE_BURST)),
        })
    }

    /// Refuses, before a byte is transferred, an incremental whose parent (as the begin names
    /// it) has no complete chain in `repo`. A server that names no parent at its begin has
    /// the set checked at `/record`, after the transfer.
    async fn check_begun_parent(
        &self,
        begun: &Begun,
        repo: Option<Arc<dyn Repository>>,
    ) -> Result<(), RemoteError> {
        if !self.options.kind.incremental() {
            return Ok(());
        }
        let (Some(repo), Some(parent), Some(signature)) =
            (repo, &begun.parent_id, &begun.log_signature)
        else {
            return Ok(());
        };
        Ok(set::check_parent(repo, parent.clone(), signature.clone()).await?)
    }

    /// Everything up to a published manifest; nothing is truncated yet. An incremental into
    /// `repo` is published only if its parent is there.
    async fn write_set(
        &self,
        receiver: &Receiver,
        begun: &Begun,
        set: &mut PartialSet,
        repo: Option<Arc<dyn Repository>>,
    ) -> Result<BackupManifest, RemoteError> {
        let id = begun.id.as_str();
        set.prepare().await?;
        if !self.options.kind.incremental() {
            self.tracker.phase(BackupPhase::Databases);
            let dbs = self.api.databases(id).await?;
            self.tracker.update(|p| p.files_total += dbs.len());
            for db in dbs {
                let source = db.source_path.clone().ok_or_else(|| {
                    RemoteError::protocol(None, format!("database {} has no source_path", db.name))
                })?;
                set.step(move |w| w.start_database(source.as_ref())).await?;
                self.copy(receiver, set, &db).await?;
            }
        }
        let logs = self.api.seal_logs(id).await?;
        check_logs(&logs)?;
        self.tracker.phase(BackupPhase::Logs);
        self.tracker.update(|p| p.files_total += logs.files.len());
        for (gen, f) in (logs.gen_low..).zip(&logs.files) {
            let name = f.name.clone();
            set.step(move |w| w.start_log(gen, name.as_ref())).await?;
            self.copy(receiver, set, f).await?;
        }
        self.tracker.phase(BackupPhase::Publishing);
        set.step(SetWriter::seal).await?;
        let rec = self.api.record(id).await?;
        let log_signature = Signature::from_hex(&rec.log_signature).ok_or_else(|| {
            RemoteError::protocol(
                None,
                format!("a malformed log signature {:?}", rec.log_signature),
            )
        })?;
        if self.options.kind.incremental() && rec.parent_id.is_none() {
            return Err(RemoteError::protocol(
                None,
                "the server names no parent for this incremental (`parent_id` in its record): \
                 the set would not link into its chain",
            ));
        }
        let parent_id = rec.parent_id.filter(|_| self.options.kind.incremental());
        let checked_at_begin = begun.parent_id.is_some() && begun.log_signature.is_some();
        if checked_at_begin
            && (parent_id != begun.parent_id
                || begun.log_signature.as_deref() != Some(rec.log_signature.as_str()))
        {
            return Err(RemoteError::protocol(
                None,
                format!(
                    "the record names the parent {parent_id:?}, the begin named {:?}",
                    begun.parent_id
                ),
            ));
        }
        // A server that named no parent at the begin is checked here, still before anything
        // is truncated.
        if let (false, Some(repo), Some(parent)) = (checked_at_begin, repo, parent_id.clone()) {
            set::check_parent(repo, parent, log_signature.to_hex()).await?;
        }
        let facts = SetFacts {
            kind: self.options.kind,
            parent_id,
            instance: rec.instance,
            base_name: rec.base_name,
            page_size: rec.page_size,
            log_signature,
            gen_low: logs.gen_low,
            gen_high: logs.gen_high,
            record: BackupInfo {
                mark: rec.record.mark,
                time_ms: rec.record.time_ms,
                gen_low: rec.record.gen_low,
                gen_high: rec.record.gen_high,
                stream: rec.record.stream,
            },
        };
        Ok(set.step(move |w| w.publish(facts)).await?)
    }

    /// One file: downloaded into the set's file started by the caller, then made durable.
    async fn copy(
        &self,
        receiver: &Receiver,
        set: &PartialSet,
        f: &FileView,
    ) -> Result<(), RemoteError> {
        receiver.download(set, f).await?;
        set.step(SetWriter::finish_file).await?;
        self.tracker.update(|p| p.files_done += 1);
        Ok(())
    }

    /// Truncation and the normal end, once the set is complete.
    async fn finish(
        &self,
        id: &str,
        set: &mut PartialSet,
        abort: &mut AbortOnDrop,
        lease: &mut Option<Heartbeat>,
        manifest: BackupManifest,
    ) -> Result<BackupManifest, RemoteError> {
        self.tracker.phase(BackupPhase::Finishing);
        // The point of no return: once the truncation is asked for, logs may be gone whatever
        // happens to this future, so a drop from here on keeps the set.
        set.keep();
        if let Err(e) = self.api.truncate(id).await {
            if nothing_truncated(&e) {
                // As for any abort: one the server does not get must not leave the lease
                // renewed.
                drop(lease.take());
                abort.now().await;
                set.remove().await;
                return Err(e);
            }
            // Some logs may be gone and live only in this set: record it and keep it.
            abort.disarm();
            if let Err(end) = self.api.end(id).await {
                tracing::warn!(error = %end, "backup set kept, but not recorded in the headers");
            }
            return Err(self.kept(e, set));
        }
        abort.disarm();
        match self.api.end(id).await {
            Ok(()) => Ok(manifest),
            Err(e) => Err(self.kept(e, set)),
        }
    }

    fn kept(&self, e: RemoteError, set: &PartialSet) -> RemoteError {
        RemoteError::Kept {
            error: Box::new(e),
            location: set.location().to_string(),
        }
    }
}

/// An HTTP client with `options`' timeouts and trust. The run's calls and its receiving
/// thread each have one: a client's connections belong to the runtime they were made on.
fn http_client(options: &RemoteOptions) -> Result<reqwest::Client, RemoteError> {
    let bad = |m: String| RemoteError::Local(Error::InvalidParameter.with_detail(m));
    // Idle connections go before the server's header deadline (`ConnLimits`, 30 s) would
    // close them, so a request never races the server's close of the connection it took.
    let mut b = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .pool_idle_timeout(POOL_IDLE);
    if let Some(pem) = &options.ca_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| bad(format!("the CA certificate is not usable PEM: {e}")))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| {
        bad(format!(
            "cannot set up the HTTP client: {}",
            error::chain(&e)
        ))
    })
}

/// Refuses, before a byte is transferred, a backup the client's token could not finish: a
/// pull truncates the logs its set made redundant and ends the backup, which need the
/// scopes `truncate` and `end`. Without this the refusal came after the whole transfer.
fn can_finish(begun: &Begun) -> Result<(), RemoteError> {
    let Some(granted) = &begun.scopes else {
        return Ok(());
    };
    let missing: Vec<&str> = [Scope::Truncate, Scope::End]
        .into_iter()
        .map(Scope::name)
        .filter(|s| !granted.iter().any(|g| g == s))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(RemoteError::Local(Error::PermissionDenied.with_detail(
        format!(
            "the token lacks the scope {} that a backup needs to truncate its logs and end; \
         nothing was transferred",
            missing.join(" and ")
        ),
    )))
}

/// Whether the URL's host is this machine: `localhost` or a loopback address.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return true;
    };
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The router's name of a kind; the kinds without truncation are not served.
fn wire_kind(kind: BackupKind) -> Result<Kind, RemoteError> {
    match kind {
        BackupKind::Full => Ok(Kind::Full),
        BackupKind::Incremental => Ok(Kind::Incremental),
        other => Err(RemoteError::Local(Error::InvalidParameter.with_detail(
            format!("a remote backup is full or incremental; {other:?} is not served over HTTP"),
        ))),
    }
}

/// The sealed range names one plain file per generation.
fn check_logs(logs: &api::Logs) -> Result<(), RemoteError> {
    let n = (u64::from(logs.gen_high) + 1).saturating_sub(u64::from(logs.gen_low));
    if logs.gen_low > logs.gen_high.saturating_add(1) || logs.files.len() as u64 != n {
        return Err(RemoteError::protocol(
            None,
            format!(
                "the log range {}..={} does not match its {} files",
                logs.gen_low,
                logs.gen_high,
                logs.files.len()
            ),
        ));
    }
    for f in &logs.files {
        let plain = !f.name.is_empty()
            && f.name != "."
            && f.name != ".."
            && !f.name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(RemoteError::protocol(
                None,
                format!("a log named {:?} is not a plain file name", f.name),
            ));
        }
    }
    Ok(())
}

/// Whether a failed truncation certainly deleted nothing: the engine's refusals come before
/// any deletion (the gate, no backup, the stop flag, out of sequence, logs not copied), and
/// the router refuses bad tokens before asking the engine.
fn nothing_truncated(e: &RemoteError) -> bool {
    matches!(
        e.code(),
        Some(-520 | -801 | -521 | -616 | -1329 | -1000 | -1115 | -1090 | -1029 | -1907 | -1809)
    ) && matches!(e, RemoteError::Ese { .. })
}

/// Asks the server to end the backup as aborted unless disarmed: at once on a failure, or
/// from a task of its own when the run's future is dropped.
struct AbortOnDrop {
    api: Api,
    id: Option<String>,
    /// Where the task a drop spawns is left for the client's next run.
    on_drop: PendingAbort,
}

impl AbortOnDrop {
    async fn now(&mut self) {
        if let Some(id) = self.id.take() {
            if let Err(e) = self.api.abort(&id).await {
                tracing::debug!(error = %e, "aborting the remote backup failed");
            }
        }
    }

    fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let task = rt.spawn(async move {
                let _ = api.abort(&id).await;
            });
            if let Ok(mut slot) = self.on_drop.lock() {
                *slot = Some(task);
            }
        }
    }
}

/// Whether a URL's path ends in `/v1/instances/NAME` (a host may mount the router under a
/// prefix of its own). Anything else would send every request of the sequence to the wrong
/// place, each failing with a 404 that says less than this check does.
fn names_instance(url: &reqwest::Url) -> bool {
    let path = url.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    matches!(segments.as_slice(), [.., "v1", "instances", name] if !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_an_instance() {
        let new = |u: &str| RemoteBackup::new(u, RemoteOptions::default()).map(|_| ());
        for good in [
            "http://127.0.0.1:1/v1/instances/i",
            "http://127.0.0.1:1/v1/instances/i/",
            "https://db1:8443/ops/v1/instances/main",
        ] {
            assert!(new(good).is_ok(), "{good}");
        }
        for bad in [
            "http://127.0.0.1:1/",
            "http://127.0.0.1:1/v1/instances",
            "http://127.0.0.1:1/v1/instances/",
            "http://127.0.0.1:1/v1/instances/i/backups",
            "http://127.0.0.1:1/instances/i",
            "http://127.0.0.1:1/v1/instance/i",
        ] {
            let e = new(bad).unwrap_err();
            assert_eq!(e.code(), Some(-1003), "{bad}: {e}");
        }
    }

    #[test]
    fn a_rate_of_zero_is_refused() {
        let url = "http://127.0.0.1:1/v1/instances/i";
        let e = RemoteBackup::new(url, RemoteOptions::default().max_rate(0))
            .err()
            .unwrap();
        assert_eq!(e.code(), Some(-1003), "{e}");
        assert!(RemoteBackup::new(url, RemoteOptions::default().max_rate(1)).is_ok());
    }
}
