//! An HTTP key-value service embedding one `ese` instance: the shape a host takes on the
//! host API. No session pool (each request uses `Instance::get`, `write` or `transaction`),
//! no `path.exists()` (`open_database` with `create`), no long error match (`status`).
//!
//! Routes:
//! - `PUT /kv/{key}` (body: the value), `GET /kv/{key}`, `DELETE /kv/{key}`;
//! - `POST /incr/{key}`: a read-modify-write transaction, retried on a write conflict;
//! - `GET /scan?prefix=P&after=K&limit=N&reverse=true`: rows as JSON lines, streamed from the
//!   engine one slice at a time;
//! - `POST /backup?max_rate=BYTES_PER_S`: starts a full online backup into the backup
//!   folder; `GET /backup`: its progress.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ese_actors::{
    BackupHandle, BackupKind, BackupOptions, Commit, Engine, Error, Instance, InstanceParams,
    KeyRange, OpenOptions, TableId, WriteBatch,
};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The service's state: the instance, its one table, where backups go.
#[derive(Clone)]
pub struct Service {
    inst: Instance,
    table: TableId,
    backups: PathBuf,
    backup: Arc<Mutex<Option<RunningBackup>>>,
}

/// The backup the service started last: its folder, its handle while it runs, how it ended.
struct RunningBackup {
    dir: PathBuf,
    handle: Option<BackupHandle>,
    ended: Option<serde_json::Value>,
}

impl Service {
    /// Opens (or creates) the instance in `dir`: soft recovery, then the database and table.
    pub async fn open(engine: &Engine, dir: &Path) -> ese_actors::Result<Service> {
        let inst = engine
            .create_instance("kv", InstanceParams::new(dir.join("instance")))
            .await?;
        inst.init().await?;
        let path = dir.join("instance/kv.edb");
        let db = inst
            .open_database(path, OpenOptions { create: true })
            .await?;
        let table = inst.ensure_table(db, "kv").await?;
        Ok(Service {
            inst,
            table,
            backups: dir.join("backups"),
            backup: Arc::default(),
        })
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/kv/{key}", put(put_row).get(get_row).delete(delete_row))
            .route("/incr/{key}", post(incr))
            .route("/scan", get(scan))
            .route("/backup", post(start_backup).get(backup_status))
            .with_state(self.clone())
    }

    /// Stops a running backup (its partial set is removed), then terms the instance cleanly:
    /// everything is flushed and the next start needs no recovery.
    pub async fn shutdown(&self) -> ese_actors::Result<()> {
        self.inst.shutdown().await
    }
}

/// An engine error as an HTTP answer: its status from the error's kind, its ESE name and
/// number in the body.
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match () {
            _ if e == Error::RecordNotFound => StatusCode::NOT_FOUND,
            _ if e == Error::WriteConflict || e == Error::BackupInProgress => StatusCode::CONFLICT,
            _ if e.is_caller_fault() => StatusCode::BAD_REQUEST,
            _ if e.is_retryable() || e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = serde_json::json!({ "error": format!("{e:?}"), "code": e.code(), "message": e.to_string() });
        (status, Json(body)).into_response()
    }
}

type Answer<T> = Result<T, ApiError>;

async fn put_row(
    State(s): State<Service>,
    UrlPath(key): UrlPath<String>,
    body: Bytes,
) -> Answer<StatusCode> {
    let mut b = WriteBatch::new();
    b.put(s.table, key.as_bytes(), &body);
    s.inst.write(b, Commit::Durable).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_row(State(s): State<Service>, UrlPath(key): UrlPath<String>) -> Answer<Response> {
    match s.inst.get(s.table, key.as_bytes()).await? {
        Some(v) => Ok(v.into_response()),
        None => Err(Error::RecordNotFound.into()),
    }
}

async fn delete_row(State(s): State<Service>, UrlPath(key): UrlPath<String>) -> Answer<StatusCode> {
    let mut tx = s.inst.transaction().await?;
    tx.delete(s.table, key.as_bytes()).await?;
    tx.commit(Commit::Durable).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds one to a decimal counter. Concurrent increments of one key conflict; the loser
/// retries with a fresh transaction. A cancelled request drops its transaction, which rolls
/// it back.
async fn incr(State(s): State<Service>, UrlPath(key): UrlPath<String>) -> Answer<String> {
    loop {
        let mut tx = s.inst.transaction().await?;
        let now = match tx.get(s.table, key.as_bytes()).await? {
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|v| v.parse::<u64>().ok()),
            None => Some(0),
        };
        let Some(now) = now else {
            return Err(Error::InvalidParameter.into());
        };
        let next = (now + 1).to_string();
        tx.put(s.table, key.as_bytes(), next.as_bytes()).await?;
        match tx.commit(Commit::Durable).await {
            Ok(()) => return Ok(next),
            Err(e) if e.is_retryable() => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Deserialize)]
struct ScanQuery {
    prefix: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    reverse: bool,
}

/// JSON lines `{"key": .., "value": ..}`, streamed: the service holds one slice of rows at a
/// time, whatever the size of the range.
async fn scan(State(s): State<Service>, Query(q): Query<ScanQuery>) -> Answer<Response> {
    let prefix = q.prefix.unwrap_or_default();
    let mut range = KeyRange::prefix(prefix.as_bytes()).limit(q.limit.unwrap_or(1000));
    if q.reverse {
        range = range.reverse();
    }
    if let Some(after) = &q.after {
        range = range.resume_after(after.as_bytes());
    }
    let stream = s.inst.stream(s.table, range).await?;
    // The stream borrows nothing from the request: its lifetime ends with the body.
    let stream: ese_actors::RowStream<'static> = stream;
    let lines = stream.map(|row| {
        row.map(|(k, v)| {
            let line = serde_json::json!({
                "key": String::from_utf8_lossy(&k),
                "value": String::from_utf8_lossy(&v),
            });
            Bytes::from(format!("{line}\n"))
        })
    });
    Ok(Body::from_stream(lines).into_response())
}

#[derive(Deserialize)]
struct BackupQuery {
    max_rate: Option<u64>,
}

async fn start_backup(State(s): State<Service>, Query(q): Query<BackupQuery>) -> Answer<Response> {
    let mut last = s.backup.lock().await;
    if last
        .as_ref()
        .is_some_and(|b| b.handle.as_ref().is_some_and(|h| !h.is_finished()))
    {
        return Err(Error::BackupInProgress.into());
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dir = s.backups.join(format!("full-{stamp}"));
    let opts = BackupOptions {
        max_rate: q.max_rate,
        ..BackupOptions::default()
    };
    let handle = s.inst.start_backup(&dir, BackupKind::Full, opts).await?;
    *last = Some(RunningBackup {
        dir: dir.clone(),
        handle: Some(handle),
        ended: None,
    });
    let body = serde_json::json!({ "dir": dir });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The last backup: its phase and bytes while it runs, its set's id (or its error) once over.
async fn backup_status(State(s): State<Service>) -> Answer<Response> {
    let mut last = s.backup.lock().await;
    let Some(b) = last.as_mut() else {
        return Err(Error::NoBackup.into());
    };
    if let Some(h) = b.handle.as_ref().filter(|h| !h.is_finished()) {
        let p = h.progress();
        let body = serde_json::json!({
            "dir": b.dir, "state": "running", "phase": format!("{:?}", p.phase),
            "bytes_done": p.bytes_done, "bytes_total": p.bytes_total,
        });
        return Ok(Json(body).into_response());
    }
    if let Some(h) = b.handle.take() {
        b.ended = Some(match h.wait().await {
            Ok(m) => serde_json::json!({ "dir": b.dir, "state": "done", "id": m.id }),
            Err(e) => serde_json::json!({ "dir": b.dir, "state": "failed", "code": e.code() }),
        });
    }
    Ok(Json(b.ended.clone().unwrap_or_default()).into_response())
}
