//! Push mode: the server runs the whole backup sequence itself into a backup target
//! (`Instance::start_backup_to`, a new set inside the target as `ese backup` makes), and the
//! client only watches and may cancel. Its resources share the pull backups' paths; a push's
//! id is `push-N`, so the two never collide.
//!
//! ```text
//! POST   /v1/instances/{name}/backups  {"kind", "target"}   start           (push)
//! GET    /v1/instances/{name}/backups/push-N                progress/outcome (read)
//! DELETE /v1/instances/{name}/backups/push-N                cancel          (push)
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ese_actors::{BackupHandle, BackupKind, BackupManifest, BackupProgress, BackupTarget};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::errors::ApiError;
use crate::state::{lock, Kind, Shared};

/// The prefix of a push's id in its path.
pub(crate) const ID_PREFIX: &str = "push-";

/// How many finished pushes per instance keep answering their outcome.
const KEPT: usize = 32;

/// How a push ended.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The set is complete: its name and its manifest's id.
    Done {
        set: String,
        manifest_id: String,
    },
    Failed(ApiError),
}

/// One push: what its status shows, and its handle while it runs.
pub(crate) struct Push {
    pub kind: Kind,
    pub target: String,
    progress: watch::Receiver<BackupProgress>,
    /// Taken by the waiter once the run is over: a cancel then has nothing left to do.
    handle: Mutex<Option<BackupHandle>>,
    outcome: watch::Sender<Option<Outcome>>,
}

/// The pushes the router started.
#[derive(Default)]
pub(crate) struct Pushes {
    next: AtomicU64,
    map: Mutex<HashMap<(String, u64), Arc<Push>>>,
}

impl Pushes {
    fn insert(&self, name: &str, push: Arc<Push>) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut map = lock(&self.map);
        let mut over: Vec<u64> = map
            .iter()
            .filter(|((i, _), p)| i == name && p.outcome.borrow().is_some())
            .map(|((_, n), _)| *n)
            .collect();
        over.sort_unstable();
        for n in &over[..over.len().saturating_sub(KEPT)] {
            map.remove(&(name.to_string(), *n));
        }
        map.insert((name.to_string(), n), push);
        n
    }

    /// The push `id` (`push-N`) of instance `name`.
    pub fn get(&self, name: &str, id: &str) -> Result<Arc<Push>, ApiError> {
        let n = id
            .strip_prefix(ID_PREFIX)
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        n.and_then(|n| lock(&self.map).get(&(name.to_string(), n)).cloned())
            .ok_or_else(|| {
                ApiError::new(
                    ese_actors::Error::NoBackup,
                    StatusCode::NOT_FOUND,
                    "no push with this id was started here",
                )
            })
    }
}

/// Starts a push of `kind` into `target` (already checked against the allowed places).
pub(crate) async fn start(s: &Arc<Shared>, name: &str, kind: Kind, target: &str) -> Response {
    match begin(s, name, kind, target).await {
        Ok(n) => created(name, n, kind, target),
        Err(e) => e.into_response(),
    }
}

async fn begin(s: &Arc<Shared>, name: &str, kind: Kind, url: &str) -> Result<u64, ApiError> {
    let inst = s.instance(name)?;
    let target = BackupTarget::parse(url)?;
    let kind_of_set = match kind {
        Kind::Full => BackupKind::Full,
        Kind::Incremental => BackupKind::Incremental,
    };
    let handle = inst
        .start_backup_to(&target, kind_of_set, s.cfg.push_options.clone())
        .await?;
    let (outcome, _) = watch::channel(None);
    let push = Arc::new(Push {
        kind,
        target: target.location(),
        progress: handle.subscribe(),
        handle: Mutex::new(Some(handle)),
        outcome,
    });
    let n = s.pushes.insert(name, push.clone());
    tokio::spawn(wait_for(push));
    Ok(n)
}

fn created(name: &str, n: u64, kind: Kind, target: &str) -> Response {
    let id = format!("{ID_PREFIX}{n}");
    let location = format!("/v1/instances/{name}/backups/{id}");
    let body = json!({ "id": id, "instance": name, "kind": kind, "target": target });
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// Waits for the run to be over, then records its outcome.
async fn wait_for(push: Arc<Push>) {
    let mut rx = push.progress.clone();
    // `changed` fails once the run is gone; its last phase is then final.
    while !rx.borrow_and_update().phase.is_finished() && rx.changed().await.is_ok() {}
    let handle = lock(&push.handle).take();
    let outcome = match handle {
        Some(h) => outcome_of(h.wait().await),
        None => Outcome::Failed(ApiError::engine(ese_actors::Error::InternalError)),
    };
    push.outcome.send_replace(Some(outcome));
}

fn outcome_of(res: ese_actors::Result<BackupManifest>) -> Outcome {
    match res {
        Ok(m) => Outcome::Done {
            set: m.name.clone().unwrap_or_default(),
            manifest_id: m.id,
        },
        Err(e) => Outcome::Failed(ApiError::engine(e)),
    }
}

impl Push {
    /// The status body: progress while it runs, the outcome once over.
    pub fn view(&self, id: &str) -> Value {
        let p = *self.progress.borrow();
        let outcome = match &*self.outcome.borrow() {
            None => Value::Null,
            Some(Outcome::Done { set, manifest_id }) => {
                json!({ "set": set, "manifest_id": manifest_id })
            }
            Some(Outcome::Failed(e)) => json!({ "error": e.body() }),
        };
        json!({
            "id": id,
            "mode": "push",
            "kind": self.kind,
            "target": self.target,
            "phase": format!("{:?}", p.phase).to_lowercase(),
            "files_done": p.files_done,
            "files_total": p.files_total,
            "bytes_done": p.bytes_done,
            "bytes_total": p.bytes_total,
            "total_known": p.total_known,
            "outcome": outcome,
        })
    }

    /// Cancels the run ([`BackupHandle::cancel`]) and waits until it is over (a cancelled
    /// run's partial set is then removed): whether the cancel came in time, and the status.
    pub async fn cancel(&self, id: &str) -> Value {
        let in_time = lock(&self.handle).as_ref().is_some_and(|h| h.cancel());
        let mut rx = self.outcome.subscribe();
        // The waiter task always records an outcome; it lives as long as the runtime.
        let _ = rx.wait_for(Option::is_some).await;
        let mut body = self.view(id);
        body["cancelled"] = json!(in_time);
        body
    }
}
