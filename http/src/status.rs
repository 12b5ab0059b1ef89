//! `GET /v1/instances/{name}`: a small status of a served instance, for operators and health
//! checks: whether it answers, its databases, its log generation and commit counters, and the
//! backups clients began here that have not ended.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::Scope;
use crate::errors::ApiError;
use crate::router::{path, PathOr};
use crate::state::{lock, Shared};

/// The handler (scope `read`): 200 with the status, or the engine's error for an instance that
/// is stopping or gone (e.g. -1329 after `stop_service`, 503).
pub(crate) async fn instance_status(
    State(s): State<Arc<Shared>>,
    p: PathOr<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = path(p)?.0;
    s.authorize(&headers, Scope::Read)?;
    let inst = s.instance(&name)?;
    let me = inst.instance_info().await?;
    let stats = inst.stats().await?;
    let remote: Vec<String> = lock(&s.backups)
        .iter()
        .filter(|((n, _), r)| *n == name && lock(&r.gone).is_none())
        .map(|((_, id), _)| id.to_string())
        .collect();
    Ok(Json(json!({
        "instance": name,
        "state": "running",
        "base_name": me.base_name,
        "page_size": me.page_size,
        "log_generation": me.current_gen,
        "databases": me.databases,
        "commits": stats.commits,
        "log_fsyncs": stats.log_fsyncs,
        "backup_bytes_streamed": stats.backup_bytes_streamed,
        "remote_backups": remote,
    }))
    .into_response())
}
