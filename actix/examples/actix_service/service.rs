//! The example service: an `ese` instance behind an actix `Addr` in an actix-web app.
//! Kept apart from `main.rs` so that the adapter's tests run this very code in-process.
//!
//! Routes:
//! - `PUT /kv/{key}` (body: the value): a durable write, 204;
//! - `GET /kv/{key}`: the value, or 404 with the ESE code;
//! - `POST /backup` with `{"to": TARGET, "kind": "full", "max_rate": BYTES_PER_S}`: takes an
//!   online backup into a new set of `TARGET` (a folder, `s3://bucket/prefix`, or the name
//!   of a target the service was given) while requests keep coming, and answers with the
//!   set once it is complete. `kind` (default `full`) and `max_rate` are optional.
//!
//! Each actix-web worker starts its own adapter; the instance and the backups run on the
//! service's [`InstanceRuntime`], so a worker that stops takes nothing of the instance with it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use ese_actix::{Ask, InstanceActor, InstanceRuntime};
use ese_actors::messages::{ApplyBatch, BeginSession, Get};
use ese_actors::{
    BackupKind, BackupOptions, BackupTarget, Commit, Engine, Error, Instance, InstanceParams,
    OpenOptions, SessionKey, TableId, WriteBatch,
};
use serde::Deserialize;

/// What every worker shares: the instance, where it lives, its table, the reader session,
/// and the backup targets configured by name.
#[derive(Clone, Debug)]
pub struct Service {
    inst: Instance,
    rt: InstanceRuntime,
    table: TableId,
    /// A session that never holds a transaction, so every read may share it.
    reader: SessionKey,
    targets: Arc<HashMap<String, BackupTarget>>,
}

/// One worker's view: its own adapter, and the shared service.
struct Worker {
    addr: Addr<InstanceActor>,
    service: Service,
}

impl Service {
    /// Creates the instance `kv` in `dir/instance` on `rt`, runs soft recovery, and opens (or
    /// creates) its database and table.
    pub async fn open(rt: &InstanceRuntime, engine: &Engine, dir: &Path) -> Result<Service, Error> {
        let inst = rt
            .create_instance(engine, "kv", InstanceParams::new(dir.join("instance")))
            .await?;
        inst.init().await?;
        let db = inst
            .open_database(dir.join("instance/kv.edb"), OpenOptions { create: true })
            .await?;
        let table = inst.ensure_table(db, "kv").await?;
        let reader = inst.ask(BeginSession {}).await?;
        Ok(Service {
            inst,
            rt: rt.clone(),
            table,
            reader,
            targets: Arc::default(),
        })
    }

    /// Adds a backup target that `POST /backup` may name as `name` (e.g. an object store
    /// built from configuration rather than the environment).
    pub fn with_target(mut self, name: &str, target: BackupTarget) -> Service {
        Arc::make_mut(&mut self.targets).insert(name.to_string(), target);
        self
    }

    /// The routes, for `App::configure`; call it in the app factory, once per worker: each
    /// worker gets an adapter of its own, on its own arbiter.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let addr = InstanceActor::new(self.inst.clone(), self.rt.clone()).start();
        cfg.app_data(web::Data::new(Worker {
            addr,
            service: self.clone(),
        }))
        .route("/kv/{key}", web::put().to(put_row))
        .route("/kv/{key}", web::get().to(get_row))
        .route("/backup", web::post().to(backup));
    }

    /// Stops a running backup (its partial set is removed) and terms the instance cleanly,
    /// on the instance's runtime.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let inst = self.inst.clone();
        self.rt.run(async move { inst.shutdown().await }).await
    }

    /// The backup target `to` names: a configured name, else a folder or an `s3://` URL.
    fn target(&self, to: &str) -> Result<BackupTarget, Error> {
        match self.targets.get(to) {
            Some(t) => Ok(t.clone()),
            None => BackupTarget::parse(to),
        }
    }
}

/// An engine error as an HTTP answer: a status from its kind, its ESE name and code.
#[derive(Debug)]
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let e = &self.0;
        match () {
            _ if *e == Error::RecordNotFound => StatusCode::NOT_FOUND,
            _ if *e == Error::WriteConflict || *e == Error::BackupInProgress => {
                StatusCode::CONFLICT
            }
            _ if e.is_caller_fault() => StatusCode::BAD_REQUEST,
            _ if e.is_retryable() || e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let e = &self.0;
        let body =
            serde_json::json!({ "error": e.name(), "code": e.code(), "message": e.to_string() });
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// The adapter's answer: the instance's `Result`, or `InstanceUnavailable` if this worker's
/// adapter is gone (the worker is stopping).
async fn ask<M: ese_actix::Forward>(w: &Worker, msg: M) -> Result<M::Reply, ApiError> {
    match w.addr.send(Ask(msg)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::InstanceUnavailable.into()),
    }
}

async fn put_row(
    w: web::Data<Worker>,
    key: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let mut batch = WriteBatch::new();
    batch.put(w.service.table, key.as_bytes(), &body);
    let msg = ApplyBatch {
        batch,
        durability: Commit::Durable,
    };
    ask(&w, msg).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_row(w: web::Data<Worker>, key: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let msg = Get {
        session: w.service.reader,
        table: w.service.table,
        key: key.into_inner().into_bytes(),
    };
    match ask(&w, msg).await? {
        Some(v) => Ok(HttpResponse::Ok().body(v)),
        None => Err(Error::RecordNotFound.into()),
    }
}

/// The body of `POST /backup`.
#[derive(Debug, Deserialize)]
pub struct BackupRequest {
    /// A configured target's name, a folder, or `s3://bucket/prefix`.
    pub to: String,
    /// `full` (default), `incremental`, `copy` or `differential`.
    pub kind: Option<BackupKind>,
    /// Bytes per second at most.
    pub max_rate: Option<u64>,
}

/// Takes the backup on the instance's runtime (not this worker's), so that it runs to its
/// end even if this worker stops; the request waits for it and answers with the set.
async fn backup(
    w: web::Data<Worker>,
    req: web::Json<BackupRequest>,
) -> Result<HttpResponse, ApiError> {
    let target = w.service.target(&req.to)?;
    let kind = req.kind.unwrap_or(BackupKind::Full);
    let options = BackupOptions {
        max_rate: req.max_rate,
        ..BackupOptions::default()
    };
    let (inst, t) = (w.service.inst.clone(), target.clone());
    let manifest = w
        .service
        .rt
        .run(async move { inst.backup_to(&t, kind, options).await })
        .await?;
    let body = serde_json::json!({
        "to": target.location(), "set": manifest.name, "id": manifest.id, "kind": kind,
    });
    Ok(HttpResponse::Ok().json(body))
}
