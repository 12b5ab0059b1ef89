//! The resources of the backup sequence as typed calls, and every answer that is not what
//! the protocol promises as a [`RemoteError`]: an ESE error body becomes `RemoteError::Ese`
//! with its code, anything malformed `RemoteError::Protocol`, never a panic.

use std::time::Duration;

use ese_actors::Error;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::error::RemoteError;
use crate::state::Kind;

/// At most this much of an answer is read as JSON: the sequence's answers are small, and a
/// server (or something posing as one) must not make the client hold an unbounded body.
const MAX_JSON: usize = 4 << 20;

/// One backup's view of the server: the instance URL and the credentials.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    /// `.../v1/instances/NAME`, no trailing slash.
    base: String,
    token: Option<String>,
}

/// The answer to a begin.
#[derive(Debug)]
pub(crate) struct Begun {
    pub id: String,
    pub lease_ttl: Duration,
    /// The scopes the client's token grants, where the server says (older servers do not).
    pub scopes: Option<Vec<String>>,
    /// The instance's log stream (hex), where the server says.
    pub log_signature: Option<String>,
    /// The set an incremental continues, where the server says.
    pub parent_id: Option<String>,
}

#[derive(Deserialize)]
struct BeginAnswer {
    id: String,
    lease_ttl_ms: u64,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    log_signature: Option<String>,
    #[serde(default)]
    parent_id: Option<String>,
}

/// A file of the backup as the server lists it.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct FileView {
    pub index: usize,
    pub name: String,
    #[serde(default)]
    pub source_path: Option<String>,
    #[serde(default)]
    pub crc32c: Option<String>,
}

#[derive(Deserialize)]
struct FileList {
    files: Vec<FileView>,
}

/// The sealed log range.
#[derive(Debug, Deserialize)]
pub(crate) struct Logs {
    pub gen_low: u32,
    pub gen_high: u32,
    pub files: Vec<FileView>,
}

/// The facts of the set (`GET .../record`).
#[derive(Debug, Deserialize)]
pub(crate) struct Record {
    pub instance: String,
    pub base_name: String,
    pub page_size: u32,
    pub log_signature: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    pub record: RecordInfo,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RecordInfo {
    pub mark: u64,
    pub time_ms: u64,
    pub gen_low: u32,
    pub gen_high: u32,
    #[serde(default)]
    pub stream: Option<u32>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    name: String,
    code: i32,
    message: String,
}

impl Api {
    pub fn new(http: reqwest::Client, base: String, token: Option<String>) -> Api {
        Api { http, base, token }
    }

    /// The same view through another client.
    pub fn with_http(&self, http: reqwest::Client) -> Api {
        Api {
            http,
            base: self.base.clone(),
            token: self.token.clone(),
        }
    }

    fn url(&self, id: &str, tail: &str) -> String {
        format!("{}/backups/{id}{tail}", self.base)
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request; a transport failure names the URL, a non-success status becomes the
    /// server's error.
    async fn send(&self, req: RequestBuilder, url: &str) -> Result<Response, RemoteError> {
        let res = req
            .send()
            .await
            .map_err(|e| RemoteError::transport(url, &e))?;
        if res.status().is_success() {
            Ok(res)
        } else {
            Err(failure(res).await)
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        id: &str,
        tail: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, RemoteError> {
        let url = self.url(id, tail);
        let mut req = self.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = self.send(req, &url).await?;
        json_of(res).await
    }

    /// `POST .../backups`: begins a backup of `kind`.
    pub async fn begin(&self, kind: Kind) -> Result<Begun, RemoteError> {
        let url = format!("{}/backups", self.base);
        let req = self
            .request(Method::POST, &url)
            .json(&json!({ "kind": kind }));
        let res = self.send(req, &url).await?;
        if res.status() != StatusCode::CREATED {
            return Err(RemoteError::protocol(
                Some(res.status().as_u16()),
                "a begin must answer 201 Created",
            ));
        }
        let a: BeginAnswer = json_of(res).await?;
        if a.id.is_empty() || !a.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RemoteError::protocol(
                None,
                format!("the backup id {:?} is not a decimal number", a.id),
            ));
        }
        Ok(Begun {
            id: a.id,
            lease_ttl: Duration::from_millis(a.lease_ttl_ms),
            scopes: a.scopes,
            log_signature: a.log_signature,
            parent_id: a.parent_id,
        })
    }

    /// `GET .../databases`.
    pub async fn databases(&self, id: &str) -> Result<Vec<FileView>, RemoteError> {
        let l: FileList = self.call(Method::GET, id, "/databases", None).await?;
        Ok(l.files)
    }

    /// `POST .../logs`: seals the log range.
    pub async fn seal_logs(&self, id: &str) -> Result<Logs, RemoteError> {
        self.call(Method::POST, id, "/logs", None).await
    }

    /// `GET .../{id}`: the status, with each complete file's CRC-32C.
    pub async fn files(&self, id: &str) -> Result<Vec<FileView>, RemoteError> {
        let l: FileList = self.call(Method::GET, id, "", None).await?;
        Ok(l.files)
    }

    /// `GET .../record`.
    pub async fn record(&self, id: &str) -> Result<Record, RemoteError> {
        self.call(Method::GET, id, "/record", None).await
    }

    /// `POST .../truncation`.
    pub async fn truncate(&self, id: &str) -> Result<(), RemoteError> {
        let url = self.url(id, "/truncation");
        self.send(self.request(Method::POST, &url), &url).await?;
        Ok(())
    }

    /// `POST .../end` with `mode: normal`.
    pub async fn end(&self, id: &str) -> Result<(), RemoteError> {
        let _: serde_json::Value = self
            .call(Method::POST, id, "/end", Some(json!({"mode": "normal"})))
            .await?;
        Ok(())
    }

    /// `DELETE .../{id}`: ends the backup as aborted by the caller.
    pub async fn abort(&self, id: &str) -> Result<(), RemoteError> {
        let url = self.url(id, "");
        self.send(self.request(Method::DELETE, &url), &url).await?;
        Ok(())
    }

    /// `GET .../files/{index}` from byte `from` (a `Range` when not 0), asking for the
    /// trailers. Answers the response once its status is a success.
    pub async fn file(&self, id: &str, index: usize, from: u64) -> Result<Response, RemoteError> {
        let url = self.url(id, &format!("/files/{index}"));
        let mut req = self
            .request(Method::GET, &url)
            .header(reqwest::header::TE, "trailers");
        if from > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        self.send(req, &url).await
    }

    /// The URL of a file, for messages.
    pub fn file_url(&self, id: &str, index: usize) -> String {
        self.url(id, &format!("/files/{index}"))
    }
}

/// Reads at most [`MAX_JSON`] bytes of a body.
async fn limited(mut res: Response) -> Result<Vec<u8>, RemoteError> {
    let status = res.status().as_u16();
    let mut out = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > MAX_JSON {
                    return Err(RemoteError::protocol(
                        Some(status),
                        format!("an answer of more than {MAX_JSON} bytes"),
                    ));
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                let url = res.url().to_string();
                return Err(RemoteError::transport(&url, &e));
            }
        }
    }
}

/// A success's JSON body as `T`.
async fn json_of<T: DeserializeOwned>(res: Response) -> Result<T, RemoteError> {
    let status = res.status().as_u16();
    let body = limited(res).await?;
    serde_json::from_slice(&body)
        .map_err(|e| RemoteError::protocol(Some(status), format!("malformed JSON answer: {e}")))
}

/// The ESE error a server's answer names. Its message usually begins with the error's own
/// name and number (the server's display of it), which the error displays again: left out.
fn server_error(d: ErrorDetail, status: u16) -> RemoteError {
    let named = format!("{} ({}): ", d.name, d.code);
    let text = d.message.strip_prefix(&named).unwrap_or(&d.message);
    let error = Error::from_code(d.code)
        .unwrap_or(Error::InternalError)
        .with_detail(format!("{text} (from the server)"));
    RemoteError::Ese {
        error,
        name: d.name,
        code: d.code,
        status,
    }
}

/// A failed answer: the ESE error of its body, or a protocol error if it has none.
async fn failure(res: Response) -> RemoteError {
    let status = res.status().as_u16();
    let body = match limited(res).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error: d }) => server_error(d, status),
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            RemoteError::protocol(
                Some(status),
                format!("no ESE error in the answer: {:?}", text.trim()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_names_itself_once() {
        let d = ErrorDetail {
            name: "JET_errBackupInProgress".into(),
            code: -505,
            message: "JET_errBackupInProgress (-505): a backup is already running".into(),
        };
        let e = server_error(d, 409);
        assert_eq!(
            e.to_string(),
            "the server answered JET_errBackupInProgress (-505): a backup is already running \
             (from the server) (HTTP 409)"
        );
        // A message of the router's own is kept whole.
        let d = ErrorDetail {
            name: "JET_errInvalidParameter".into(),
            code: -1003,
            message: "malformed JSON: expected value".into(),
        };
        assert!(server_error(d, 400)
            .to_string()
            .contains("(-1003): malformed JSON: expected value (from the server)"));
    }
}
