//! What the router keeps: the instances it serves, its tokens, and one [`Remote`] per backup a
//! client began, with its lease and the files of its sequence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use ese_actors::messages::{CheckBackup, ExpireBackupIf};
use ese_actors::{BackupId, Error, Instance, LogInfo};
use tokio::sync::{watch, OwnedMutexGuard};

use crate::auth::{Denied, Scope, Tokens};
use crate::errors::ApiError;
use crate::files::FileTable;
use crate::lease::{Lease, LeaseEnd, Renewal};

/// Tunables of the router.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a backup lives without a request.
    pub lease_ttl: Duration,
    /// The `max_len` of each engine read (a multiple of every page size: 1 MiB by default).
    pub chunk_bytes: usize,
    /// How many bytes of a file the server keeps for `Range` resumption.
    pub window_bytes: u64,
    /// Where clients may push backups (none: push mode is off).
    pub(crate) push_targets: Vec<crate::allow::Place>,
    /// How a push streams (its rate limit, chunk size, compression).
    pub(crate) push_options: ese_actors::BackupOptions,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            lease_ttl: Duration::from_secs(60),
            chunk_bytes: 1 << 20,
            window_bytes: 16 << 20,
            push_targets: Vec::new(),
            push_options: ese_actors::BackupOptions::default(),
        }
    }
}

/// Full or incremental, as a client asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `JetBeginExternalBackupInstance` without grbit.
    Full,
    /// `JET_bitBackupIncremental`.
    Incremental,
}

/// The sequence's own state, changed by one request at a time.
#[derive(Debug, Default)]
pub(crate) struct Seq {
    pub files: FileTable,
    pub logs: Option<LogInfo>,
}

/// One backup a client began over HTTP.
pub(crate) struct Remote {
    pub inst: Instance,
    pub id: BackupId,
    pub kind: Kind,
    pub lease: Mutex<Lease>,
    /// Held by a request while it drives the engine, so the sequence's calls never overlap.
    pub seq: Arc<tokio::sync::Mutex<Seq>>,
    /// Once the backup is over: what every later request on it gets.
    pub gone: Mutex<Option<ApiError>>,
    /// Wakes the lease's timer when the backup ends through the router, so the timer does not
    /// outlive it until a deadline that may be a day away.
    pub ended: tokio::sync::Notify,
}

/// The request's `Authorization` header value, as the token check takes it.
fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
}

/// Locks a mutex whose holder never panics while holding it; a poisoned one is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub instances: HashMap<String, Instance>,
    pub tokens: Option<Tokens>,
    pub cfg: Config,
    pub backups: Mutex<HashMap<(String, u64), Arc<Remote>>>,
    pub expirations: watch::Sender<u64>,
    pub pushes: crate::push::Pushes,
}

/// How long an expiry waits before asking again while the instance is terminating.
const EXPIRY_RETRY: Duration = Duration::from_millis(200);

/// How many ended backups per instance keep answering why they ended.
const TOMBSTONES: usize = 32;

impl Shared {
    /// Checks the request's token for `scope`; without a token file every request passes (the
    /// builder allows that on loopback only).
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<(), ApiError> {
        let Some(tokens) = &self.tokens else {
            return Ok(());
        };
        tokens
            .check(authorization(headers), scope)
            .map_err(|d| match d {
                Denied::Unauthenticated => ApiError::new(
                    Error::AccessDenied,
                    StatusCode::UNAUTHORIZED,
                    "a valid bearer token is required",
                ),
                Denied::MissingScope(s) => ApiError::new(
                    Error::PermissionDenied,
                    StatusCode::FORBIDDEN,
                    format!("the token lacks the scope {s:?}"),
                ),
            })
    }

    /// The names of the scopes the request's token grants (every scope without a token
    /// file), so that a client can tell at once whether it may finish what it begins.
    pub fn scope_names(&self, headers: &HeaderMap) -> Vec<&'static str> {
        let Some(tokens) = &self.tokens else {
            return Scope::ALL.iter().map(|s| s.name()).collect();
        };
        tokens
            .scopes(authorization(headers))
            .map(|set| set.iter().map(|s| s.name()).collect())
            .unwrap_or_default()
    }

    /// Whether the request carries a valid token, whatever its scopes (the scope a request
    /// needs may depend on its body, which is read only after this): 401 if not.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.authorize(headers, Scope::Read) {
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(e),
            _ => Ok(()),
        }
    }

    /// The instance served under `name`.
    pub fn instance(&self, name: &str) -> Result<Instance, ApiError> {
        self.instances.get(name).cloned().ok_or_else(|| {
            ApiError::new(
                Error::InvalidInstance,
                StatusCode::NOT_FOUND,
                "no instance of this name is served here",
            )
        })
    }

    /// Registers a begun backup, forgetting the oldest ended ones of the instance.
    pub fn insert(&self, name: &str, remote: Arc<Remote>) {
        let mut map = lock(&self.backups);
        let mut ended: Vec<u64> = map
            .iter()
            .filter(|((n, _), r)| n == name && lock(&r.gone).is_some())
            .map(|((_, id), _)| *id)
            .collect();
        ended.sort_unstable();
        let excess = ended.len().saturating_sub(TOMBSTONES);
        for id in &ended[..excess] {
            map.remove(&(name.to_string(), *id));
        }
        map.insert((name.to_string(), remote.id.raw()), remote);
    }

    /// The backup a request names, its lease renewed. An ended backup answers why it ended;
    /// a lease found expired here is ended now.
    pub fn touch(self: &Arc<Self>, name: &str, id: &str) -> Result<Arc<Remote>, ApiError> {
        self.instance(name)?;
        let unknown = || {
            ApiError::new(
                Error::NoBackup,
                StatusCode::NOT_FOUND,
                "no backup with this id was begun here",
            )
        };
        let id: u64 = id.parse().map_err(|_| unknown())?;
        let remote = lock(&self.backups)
            .get(&(name.to_string(), id))
            .cloned()
            .ok_or_else(unknown)?;
        remote.renew(self)?;
        Ok(remote)
    }
}

impl Shared {
    /// What every request that drives the engine for a remote backup does first: the token
    /// checked for `scope`, the backup found (its lease renewed), its sequence locked (one
    /// request at a time), and its id checked with the engine under that lock.
    pub async fn checked(
        self: &Arc<Self>,
        headers: &HeaderMap,
        scope: Scope,
        name: &str,
        id: &str,
    ) -> Result<(Arc<Remote>, OwnedMutexGuard<Seq>), ApiError> {
        self.authorize(headers, scope)?;
        let r = self.touch(name, id)?;
        let seq = r.seq.clone().lock_owned().await;
        r.check().await?;
        Ok((r, seq))
    }
}

impl Remote {
    /// Renews the lease for a request (or a chunk of a response).
    pub fn renew(self: &Arc<Self>, shared: &Arc<Shared>) -> Result<(), ApiError> {
        if let Some(e) = lock(&self.gone).clone() {
            return Err(e);
        }
        let renewal = lock(&self.lease).renew(Instant::now());
        match renewal {
            Renewal::Renewed => Ok(()),
            Renewal::ExpiredNow => {
                let err = expired_error();
                *lock(&self.gone) = Some(err.clone());
                let (s, r) = (shared.clone(), self.clone());
                tokio::spawn(async move { expire(&s, &r).await });
                Err(err)
            }
            Renewal::Over(LeaseEnd::Expired) => Err(expired_error()),
            Renewal::Over(LeaseEnd::Ended) => Err(ended_error()),
        }
    }

    /// Whether the engine still runs this backup, unstopped, before a call the engine would
    /// otherwise apply to whatever backup runs (a host may have ended this one and begun its
    /// own). `NoBackup` means it is over for good: later requests get it without asking.
    /// Its file windows (up to `window_bytes` each) are let go then too, once the request
    /// holding the sequence is done with it.
    pub async fn check(self: &Arc<Self>) -> Result<(), ApiError> {
        let res = self.inst.ask(CheckBackup { id: self.id }).await;
        if matches!(&res, Err(e) if e.code() == Error::NoBackup.code()) {
            self.mark_ended();
            let me = self.clone();
            tokio::spawn(async move { *me.seq.lock().await = Seq::default() });
        }
        Ok(res?)
    }

    /// The backup ended through the router: later requests get `NoBackup`.
    pub fn mark_ended(&self) {
        lock(&self.lease).end();
        lock(&self.gone).get_or_insert_with(ended_error);
        self.ended.notify_one();
    }
}

fn expired_error() -> ApiError {
    ApiError::new(
        Error::NoBackup,
        StatusCode::GONE,
        "the backup's lease expired: the server ended it as aborted",
    )
}

fn ended_error() -> ApiError {
    ApiError::new(Error::NoBackup, StatusCode::GONE, "the backup was ended")
}

/// Ends an expired backup as aborted by the server (event 226, as `stop_backup` then a normal
/// end): exactly this one, in one step (`ExpireBackupIf` names it by id, so a backup begun
/// later, here or by the host, is never touched, and no request of the client slips in between
/// the stop and the end). If the engine refuses (the instance is stopping), later requests get
/// the engine's error instead of `NoBackup`.
pub(crate) async fn expire(shared: &Shared, remote: &Remote) {
    lock(&remote.gone).get_or_insert_with(expired_error);
    loop {
        match remote.inst.ask(ExpireBackupIf { id: remote.id }).await {
            Ok(()) => break,
            // A term under way either ends the backup itself or fails with BackupInProgress
            // and leaves the instance running: ask again until one of the two happened, so
            // an expired lease never leaves a backup holding the logs for good.
            Err(e) if e.code() == Error::TermInProgress.code() => {
                tokio::time::sleep(EXPIRY_RETRY).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, backup = remote.id.raw(), "lease expired; the backup could not be ended");
                *lock(&remote.gone) = Some(ApiError::engine(e));
                break;
            }
        }
    }
    *remote.seq.lock().await = Seq::default();
    shared.expirations.send_modify(|n| *n += 1);
}
