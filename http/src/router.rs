//! The resources of the backup sequence and the engine message each one sends.
//!
//! ```text
//! GET    /v1/instances/{name}                              instance status  (read)
//! POST   /v1/instances/{name}/backups                      begin            (read)
//!        ... with a "target": a push (`push.rs`)                                (push)
//! GET    /v1/instances/{name}/backups/{id}                 status           (read)
//! GET    /v1/instances/{name}/backups/{id}/databases       attach info      (read)
//! POST   /v1/instances/{name}/backups/{id}/logs            seal: log info   (read)
//! GET    /v1/instances/{name}/backups/{id}/files/{file}    a file's bytes   (read)
//! GET    /v1/instances/{name}/backups/{id}/record          set facts        (read)
//! GET    /v1/instances/{name}/backups/{id}/truncation      truncate info    (truncate)
//! POST   /v1/instances/{name}/backups/{id}/truncation      truncate logs    (truncate)
//! POST   /v1/instances/{name}/backups/{id}/end             end              (end)
//! DELETE /v1/instances/{name}/backups/{id}                 abort            (end)
//! ```

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use ese_actors::ese::internals::db::Signature;
use ese_actors::messages::{
    AbortBackupIf, BeginBackupWithId, EndBackupIf, GetBackupRecord, TruncateLogIf,
};
use ese_actors::{BackupBegin, BackupEnd, Error, Instance};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Scope;
use crate::errors::ApiError;
use crate::files::{FileKind, FileTable};
use crate::lease::Lease;
use crate::push;
use crate::state::{Kind, Remote, Seq, Shared};

type Shared_ = State<Arc<Shared>>;
type Answer = Result<Response, ApiError>;

/// The router over the shared state.
pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    let b = "/v1/instances/{name}/backups/{id}";
    Router::new()
        .route("/v1/instances/{name}", get(crate::status::instance_status))
        .route("/v1/instances/{name}/backups", post(begin))
        .route(b, get(status).delete(abort))
        .route(&format!("{b}/databases"), get(databases))
        .route(&format!("{b}/logs"), post(seal_logs))
        .route(&format!("{b}/files/{{file}}"), get(crate::stream::get_file))
        .route(&format!("{b}/record"), get(record))
        .route(
            &format!("{b}/truncation"),
            get(truncate_info).post(truncate),
        )
        .route(&format!("{b}/end"), post(end))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .with_state(shared)
}

/// Runs a request's work in a task of its own. A client that goes away drops the request's
/// future; what the engine answered by then (an opened file, an ended backup) must still be
/// recorded, so the work is never cut in the middle.
pub(crate) async fn detached<F>(work: F) -> Answer
where
    F: std::future::Future<Output = Answer> + Send + 'static,
{
    tokio::spawn(work)
        .await
        .unwrap_or_else(|_| Err(ApiError::engine(Error::InternalError)))
}

/// The handlers of one backup's resources: each decodes its path (a malformed one is 400) and
/// runs its `_work` detached.
macro_rules! detached_handlers {
    ($($name:ident => $work:ident;)*) => {$(
        async fn $name(s: Shared_, p: PathOr<(String, String)>, h: HeaderMap) -> Answer {
            detached($work(s, path(p)?, h)).await
        }
    )*};
}

detached_handlers! {
    databases => databases_work;
    seal_logs => seal_logs_work;
    truncate_info => truncate_info_work;
    truncate => truncate_work;
}

async fn begin(s: Shared_, p: PathOr<String>, h: HeaderMap, b: Body) -> Answer {
    s.authenticate(&h)?;
    let b = body(b, &h).await?;
    detached(begin_work(s, path(p)?, h, b)).await
}

async fn end(s: Shared_, p: PathOr<(String, String)>, h: HeaderMap, b: Body) -> Answer {
    s.authenticate(&h)?;
    let b = body(b, &h).await?;
    detached(end_work(s, path(p)?, h, b)).await
}

async fn record(s: Shared_, p: PathOr<(String, String)>, h: HeaderMap) -> Answer {
    detached(record_work(s, path(p)?, h)).await
}

async fn status(s: Shared_, p: PathOr<(String, String)>, h: HeaderMap) -> Answer {
    let Path((name, id)) = path(p)?;
    if id.starts_with(push::ID_PREFIX) {
        s.authorize(&h, Scope::Read)?;
        return Ok(Json(s.pushes.get(&name, &id)?.view(&id)).into_response());
    }
    detached(status_work(s, Path((name, id)), h)).await
}

async fn abort(s: Shared_, p: PathOr<(String, String)>, h: HeaderMap) -> Answer {
    let Path((name, id)) = path(p)?;
    if id.starts_with(push::ID_PREFIX) {
        s.authorize(&h, Scope::Push)?;
        let push = s.pushes.get(&name, &id)?;
        return detached(async move { Ok(Json(push.cancel(&id).await).into_response()) }).await;
    }
    detached(abort_work(s, Path((name, id)), h)).await
}

/// The most a request body may hold: the requests are a few fields of JSON.
const BODY_LIMIT: usize = 64 << 10;

/// The body as JSON's bytes, read only once the request is known to carry a valid token (the
/// caller checks): a body declared as anything but JSON is 415, one over [`BODY_LIMIT`] 413
/// once that much was read (a server that answers before the client has sent its body, and
/// closes, makes most clients report a broken pipe instead of the answer), both
/// `InvalidParameter`.
async fn body(b: Body, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let declared = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    if declared.is_some_and(|t| !t.starts_with(b"application/json")) {
        return Err(ApiError::new(
            Error::InvalidParameter,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body is JSON (Content-Type: application/json)",
        ));
    }
    let too_large = || {
        ApiError::new(
            Error::InvalidParameter,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a request body is at most {BODY_LIMIT} bytes"),
        )
    };
    axum::body::to_bytes(b, BODY_LIMIT).await.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|c| c.is::<http_body_util::LengthLimitError>());
        match over {
            true => too_large(),
            false => ApiError::new(
                Error::InvalidParameter,
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            ),
        }
    })
}

/// A path parameter, or why axum could not decode it (e.g. `%FF`, not UTF-8).
pub(crate) type PathOr<T> = Result<Path<T>, PathRejection>;

/// A path the router could not decode is InvalidParameter (400) like any malformed request.
pub(crate) fn path<T>(p: PathOr<T>) -> Result<Path<T>, ApiError> {
    p.map_err(|e| {
        ApiError::new(
            Error::InvalidParameter,
            StatusCode::BAD_REQUEST,
            format!("malformed path: {e}"),
        )
    })
}

async fn not_found() -> ApiError {
    ApiError::new(
        Error::InvalidParameter,
        StatusCode::NOT_FOUND,
        "no such resource",
    )
}

async fn not_allowed() -> ApiError {
    ApiError::new(
        Error::InvalidParameter,
        StatusCode::METHOD_NOT_ALLOWED,
        "this resource does not take this method",
    )
}

/// Parses a JSON body; anything malformed is `InvalidParameter` (400).
fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            Error::InvalidParameter,
            StatusCode::BAD_REQUEST,
            format!("malformed request body: {e}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BeginRequest {
    kind: Kind,
    /// A push: where the server writes the set (else the client pulls the files).
    #[serde(default)]
    target: Option<String>,
}

async fn begin_work(
    State(s): Shared_,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let req: BeginRequest = parse(&body)?;
    if let Some(target) = &req.target {
        s.authorize(&headers, Scope::Push)?;
        s.instance(&name)?;
        let place = crate::allow::check(target, &s.cfg.push_targets)?;
        return Ok(push::start(&s, &name, req.kind, &place.url()).await);
    }
    s.authorize(&headers, Scope::Read)?;
    let inst = s.instance(&name)?;
    let grbit = match req.kind {
        Kind::Full => BackupBegin::empty(),
        Kind::Incremental => BackupBegin::INCREMENTAL,
    };
    let id = inst.ask(BeginBackupWithId { grbit }).await?;
    let facts = match begin_facts(&inst, req.kind).await {
        Ok(f) => f,
        Err(e) => {
            let _ = inst.ask(AbortBackupIf { id }).await;
            return Err(e.into());
        }
    };
    let remote = Arc::new(Remote {
        inst,
        id,
        kind: req.kind,
        lease: Mutex::new(Lease::new(Instant::now(), s.cfg.lease_ttl)),
        seq: Arc::new(tokio::sync::Mutex::new(Seq::default())),
        gone: Mutex::new(None),
        ended: tokio::sync::Notify::new(),
    });
    s.insert(&name, remote.clone());
    crate::timer::spawn(s.clone(), remote);
    let ttl = s.cfg.lease_ttl;
    let body = json!({
        "id": id.raw().to_string(),
        "instance": name,
        "kind": req.kind,
        "lease_ttl_secs": ttl.as_secs_f64(),
        "lease_ttl_ms": ttl.as_millis() as u64,
        "scopes": s.scope_names(&headers),
        "log_signature": facts.log_signature.to_hex(),
        "parent_id": facts.parent_id,
    });
    let location = format!("/v1/instances/{name}/backups/{}", id.raw());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// What a begin answers beside the id, so that a client can refuse before the transfer a
/// set its target could not chain: the log stream and, for an incremental, the parent.
struct BeginFacts {
    log_signature: Signature,
    parent_id: Option<String>,
}

/// The begun backup's [`BeginFacts`]; the headers change only at a normal end, so the parent
/// named now is the one `/record` names later.
async fn begin_facts(inst: &Instance, kind: Kind) -> ese_actors::Result<BeginFacts> {
    let log_signature = inst.instance_info().await?.log_signature;
    let parent_id = match kind {
        Kind::Incremental => inst.incremental_parent().await?,
        Kind::Full => None,
    };
    Ok(BeginFacts {
        log_signature,
        parent_id,
    })
}

/// One file as a client sees it.
#[derive(Serialize)]
struct FileView {
    index: usize,
    name: String,
    kind: FileKind,
    /// The database's path on the server: the key of a restore map.
    #[serde(skip_serializing_if = "Option::is_none")]
    source_path: Option<String>,
    size: Option<u64>,
    complete: bool,
    /// CRC-32C of the whole file as streamed, once complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    crc32c: Option<String>,
}

fn view(files: &FileTable, only: Option<&[usize]>) -> Vec<FileView> {
    files
        .iter()
        .filter(|(i, _)| only.is_none_or(|o| o.contains(i)))
        .map(|(index, f)| FileView {
            index,
            name: f.name.clone(),
            kind: f.kind,
            source_path: (f.kind == FileKind::Database)
                .then(|| f.path.to_string_lossy().into_owned()),
            size: f.size,
            complete: f.complete,
            crc32c: f.complete.then(|| format!("{:08x}", f.crc)),
        })
        .collect()
}

async fn status_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    s.authorize(&headers, Scope::Read)?;
    let r = s.touch(&name, &id)?;
    let seq = r.seq.lock().await;
    let logs = seq
        .logs
        .as_ref()
        .map(|l| json!({"gen_low": l.gen_low, "gen_high": l.gen_high, "base_name": l.base_name}));
    Ok(Json(json!({
        "id": r.id.raw().to_string(),
        "kind": r.kind,
        "files": view(&seq.files, None),
        "logs": logs,
    }))
    .into_response())
}

async fn databases_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let (r, mut seq) = s.checked(&headers, Scope::Read, &name, &id).await?;
    let paths = r.inst.get_attach_info().await?;
    let idx = seq
        .files
        .add(&paths, FileKind::Database, s.cfg.window_bytes);
    Ok(Json(json!({ "files": view(&seq.files, Some(&idx)) })).into_response())
}

async fn seal_logs_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let (r, mut seq) = s.checked(&headers, Scope::Read, &name, &id).await?;
    let info = r.inst.get_log_info().await?;
    let idx = seq
        .files
        .add(&info.files, FileKind::Log, s.cfg.window_bytes);
    let body = json!({
        "gen_low": info.gen_low,
        "gen_high": info.gen_high,
        "base_name": info.base_name,
        "files": view(&seq.files, Some(&idx)),
    });
    seq.logs = Some(info);
    Ok(Json(body).into_response())
}

/// What a client needs to write the pulled files as a backup set (the manifest's facts): the
/// record a normal end will write into the headers (`GetBackupRecord`, log phase only, else
/// InvalidBackupSequence), the instance's log signature, page size and base name, and for an
/// incremental the id of the backup it continues (`parent_id`, null for a full), so that the
/// client's set links into its chain like a local one.
async fn record_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    // The record's facts come from whatever backup runs: the id is checked first, under the
    // sequence's lock, as for every other call.
    let (r, _seq) = s.checked(&headers, Scope::Read, &name, &id).await?;
    let rec = r.inst.ask(GetBackupRecord {}).await?;
    let me = r.inst.instance_info().await?;
    let parent_id = match r.kind {
        Kind::Incremental => r.inst.incremental_parent().await?,
        Kind::Full => None,
    };
    Ok(Json(json!({
        "instance": name,
        "parent_id": parent_id,
        "base_name": me.base_name,
        "page_size": me.page_size,
        "log_signature": me.log_signature.to_hex(),
        "record": {
            "mark": rec.mark,
            "time_ms": rec.time_ms,
            "gen_low": rec.gen_low,
            "gen_high": rec.gen_high,
            "stream": rec.stream,
        },
    }))
    .into_response())
}

async fn truncate_info_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let (r, _seq) = s.checked(&headers, Scope::Truncate, &name, &id).await?;
    let paths = r.inst.get_truncate_log_info().await?;
    // Names only: the server's paths are not the client's business here.
    let names: Vec<String> = paths
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    Ok(Json(json!({ "files": names })).into_response())
}

async fn truncate_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let (r, _seq) = s.checked(&headers, Scope::Truncate, &name, &id).await?;
    // The id travels with the truncation itself: between the check above and this call the
    // host may end this backup and begin its own, whose logs this must never delete.
    r.inst.ask(TruncateLogIf { id: r.id }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum EndMode {
    Normal,
    Abort,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndRequest {
    mode: EndMode,
    #[serde(default)]
    truncate_done: bool,
}

async fn end_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    s.authorize(&headers, Scope::End)?;
    let req: EndRequest = parse(&body)?;
    if req.truncate_done {
        s.authorize(&headers, Scope::Truncate)?;
    }
    let r = s.touch(&name, &id)?;
    if req.mode == EndMode::Abort {
        return abort_remote(&r).await;
    }
    let mut seq = r.seq.lock().await;
    let mut grbit = BackupEnd::NORMAL;
    if req.truncate_done {
        grbit |= BackupEnd::TRUNCATE_DONE;
    }
    // Past the grbit check (always valid here) the engine ends this backup whatever it
    // answers, unless its gate refused the call (`stop_service`, a term under way, a failed
    // instance): then the backup still runs, and later requests must meet the same refusal
    // (or end it once a term failed), not a `NoBackup` of the router's own. `EndBackupIf`
    // never ends another backup (the host's, begun after it).
    let res = r.inst.ask(EndBackupIf { id: r.id, grbit }).await;
    if !matches!(&res, Err(e) if e.is_unavailable()) {
        r.mark_ended();
        *seq = Seq::default();
    }
    res?;
    Ok(Json(json!({ "ended": "normal" })).into_response())
}

async fn abort_work(
    State(s): Shared_,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    s.authorize(&headers, Scope::End)?;
    let r = s.touch(&name, &id)?;
    abort_remote(&r).await
}

/// Ends exactly this backup as aborted by the caller (`AbortBackupIf`: a later one is safe).
async fn abort_remote(r: &Remote) -> Answer {
    let mut seq = r.seq.lock().await;
    r.inst.ask(AbortBackupIf { id: r.id }).await?;
    r.mark_ended();
    *seq = Seq::default();
    Ok(StatusCode::NO_CONTENT.into_response())
}
