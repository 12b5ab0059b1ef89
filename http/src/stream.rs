//! `GET .../files/{file}`: a file's bytes, chunk by chunk from the engine's `read_file`.
//!
//! The first GET of a file opens it; reaching its end closes it. A `Range: bytes=N-` request
//! resumes: bytes the server read already come from the file's window (`files.rs`), the rest
//! from the engine. A newer GET of a file takes it over: an older response still streaming it
//! stops when it next needs the engine (window bytes it had queued still go). The body is
//! chunked and ends with two trailers (sent to clients that ask with `TE: trailers`):
//! `x-ese-crc32c`, the CRC-32C of this response's bytes, and, once the file is complete,
//! `x-ese-file-crc32c`, the CRC-32C of the whole file as streamed.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use ese_actors::Error;
use http_body::Frame;
use http_body_util::StreamBody;

use crate::auth::Scope;
use crate::errors::ApiError;
use crate::state::{Remote, Seq, Shared};

/// The trailer with the CRC-32C (Castagnoli) of the bytes of one response, 8 hex digits.
pub const CRC_TRAILER: &str = "x-ese-crc32c";
/// The trailer with the CRC-32C of the whole file, once it was read to its end.
pub const FILE_CRC_TRAILER: &str = "x-ese-file-crc32c";
/// The header with the file's streamed size in bytes.
pub const SIZE_HEADER: &str = "x-ese-file-size";

/// The least a file's first engine read asks for: the engine refuses a first read of a
/// database image shorter than three pages, and 32 KiB is the largest page size.
pub(crate) const FIRST_READ: usize = 3 * (32 << 10);

fn bad_range(msg: impl Into<String>) -> ApiError {
    ApiError::new(
        Error::InvalidParameter,
        StatusCode::RANGE_NOT_SATISFIABLE,
        msg,
    )
}

/// The start of a `Range: bytes=N-` header; other forms are refused (416).
fn range_start(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let n = v
        .to_str()
        .ok()
        .and_then(|s| s.strip_prefix("bytes="))
        .and_then(|s| s.strip_suffix('-'))
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad_range("only a Range of the form bytes=N- is served"))?;
    Ok(Some(n))
}

/// Opens the file on its first GET (and lets the windows of finished files go).
async fn open_if_needed(r: &Remote, seq: &mut Seq, idx: usize) -> Result<(), ApiError> {
    let Some(f) = seq.files.get(idx) else {
        return Err(ApiError::engine(Error::InternalError));
    };
    if let Some(e) = &f.failed {
        return Err(ApiError::engine(e.clone()));
    }
    if f.handle.is_some() || f.complete || f.size.is_some() {
        return Ok(());
    }
    let (handle, size) = r.inst.open_file(&f.path).await?;
    if let Some(f) = seq.files.get_mut(idx) {
        f.handle = Some(handle);
        f.size = Some(size);
    }
    seq.files.release_others(idx);
    Ok(())
}

/// The handler.
pub(crate) async fn get_file(
    s: State<Arc<Shared>>,
    p: crate::router::PathOr<(String, String, String)>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    crate::router::detached(get_file_work(s, crate::router::path(p)?, h)).await
}

async fn get_file_work(
    State(s): State<Arc<Shared>>,
    Path((name, id, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.authorize(&headers, Scope::Read)?;
    let r = s.touch(&name, &id)?;
    let start = range_start(&headers)?;
    let mut seq = r.seq.lock().await;
    // Also for bytes the window alone would serve: after `stop_backup` (or once another backup
    // runs) a client gets the engine's answer, not stale bytes.
    r.check().await?;
    let idx = seq.files.find(&file).ok_or_else(|| {
        ApiError::new(
            Error::FileNotFound,
            StatusCode::NOT_FOUND,
            "no file of this index or name in the backup's lists",
        )
    })?;
    open_if_needed(&r, &mut seq, idx).await?;
    let Some(f) = seq.files.get_mut(idx) else {
        return Err(ApiError::engine(Error::InternalError));
    };
    let size = f.size.unwrap_or(0);
    let from = start.unwrap_or(0);
    // A resume from exactly the end is served when every byte was read (the connection broke
    // after the last byte, before the trailers): the answer is empty, then the trailers.
    if start.is_some() && (from > size || (from == size && f.window.end() != size)) {
        return Err(bad_range(format!("the file has {size} bytes")));
    }
    let pending = f.window.from(from).ok_or_else(|| {
        bad_range(format!(
            "bytes from {from} cannot be served: the server holds [{}, {})",
            f.window.start(),
            f.window.end()
        ))
    })?;
    f.epoch += 1;
    let state = Streaming {
        shared: s.clone(),
        remote: r.clone(),
        idx,
        epoch: f.epoch,
        chunk: s.cfg.chunk_bytes,
        pending: pending.into(),
        whole: from == 0,
        crc: 0,
        done: false,
    };
    drop(seq);
    let mut res = Response::new(Body::new(StreamBody::new(futures_util::stream::unfold(
        state, next_frame,
    ))));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::TRAILER,
        HeaderValue::from_static("x-ese-crc32c, x-ese-file-crc32c"),
    );
    h.insert(SIZE_HEADER, HeaderValue::from(size));
    if start.is_some() {
        let range = format!("bytes {from}-{}/{size}", size.saturating_sub(1));
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(res)
}

/// Where one response stands.
struct Streaming {
    shared: Arc<Shared>,
    remote: Arc<Remote>,
    idx: usize,
    epoch: u64,
    chunk: usize,
    /// Bytes from the window still to send.
    pending: VecDeque<Bytes>,
    /// The response starts at the file's first byte, so its sum is the file's once complete
    /// (which the engine's chunk sums make up): the response needs no sum of its own.
    whole: bool,
    /// CRC-32C of what this response sent, where it is not `whole`.
    crc: u32,
    done: bool,
}

type Item = Result<Frame<Bytes>, std::io::Error>;

fn fail(msg: impl std::fmt::Display) -> Item {
    Err(std::io::Error::other(msg.to_string()))
}

async fn next_frame(mut st: Streaming) -> Option<(Item, Streaming)> {
    if st.done {
        return None;
    }
    let item = step(&mut st).await;
    if item.as_ref().map_or(true, |f| f.is_trailers()) {
        st.done = true;
    }
    Some((item, st))
}

/// The next frame: window bytes, then engine chunks, then the trailers.
async fn step(st: &mut Streaming) -> Item {
    if let Err(e) = st.remote.renew(&st.shared) {
        return fail(e.message);
    }
    if let Some(c) = st.pending.pop_front() {
        st.sent(&c);
        return Ok(Frame::data(c));
    }
    // A client that goes away drops this body mid-read: the engine read runs in a task of its
    // own, so the chunk it took from the engine still lands in the window for a resume.
    let (remote, idx, epoch, chunk) = (st.remote.clone(), st.idx, st.epoch, st.chunk);
    let next =
        match tokio::spawn(async move { engine_step(&remote, idx, epoch, chunk).await }).await {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
    match next {
        Next::Data(c) => {
            st.sent(&c);
            Ok(Frame::data(c))
        }
        Next::End(file_crc) => {
            let crc = if st.whole { file_crc } else { st.crc };
            Ok(Frame::trailers(trailers(crc, Some(file_crc))))
        }
        Next::Failed(msg) => fail(msg),
    }
}

impl Streaming {
    /// Sums bytes about to be sent into the response's own CRC, where it differs from the
    /// file's.
    fn sent(&mut self, c: &Bytes) {
        if !self.whole {
            self.crc = crc32c::crc32c_append(self.crc, c);
        }
    }
}

/// What the engine gave for one step.
enum Next {
    /// A chunk.
    Data(Bytes),
    /// The file is complete; its whole CRC-32C.
    End(u32),
    Failed(String),
}

/// The engine's next chunk of the file, recorded in the window (or the file's end, after
/// closing it).
async fn engine_step(r: &Remote, idx: usize, epoch: u64, chunk: usize) -> Next {
    let mut seq = r.seq.lock().await;
    let Some(f) = seq.files.get_mut(idx) else {
        return Next::Failed("the backup ended".into());
    };
    if f.epoch != epoch {
        return Next::Failed("a later request took this file over".into());
    }
    loop {
        if f.complete {
            return Next::End(f.crc);
        }
        let Some(handle) = f.handle else {
            return Next::Failed("the file is not open".into());
        };
        // A file's first read covers a database's header pages: three of the largest pages.
        let want = if f.window.end() == 0 {
            chunk.max(FIRST_READ)
        } else {
            chunk
        };
        match r.inst.read_file_chunk(handle, want).await {
            Ok(c) if c.bytes.is_empty() => {
                if let Err(e) = r.inst.close_file(handle).await {
                    return Next::Failed(e.to_string());
                }
                f.handle = None;
                f.complete = true;
            }
            Ok(c) => {
                f.took(&c);
                return Next::Data(c.bytes);
            }
            Err(e) => {
                tracing::info!(error = %e, file = %f.name, "backup file stream ended by the engine");
                if let Some(handle) = f.read_failed(&e) {
                    // Where the engine dropped the handle already this is refused (-1003);
                    // where it kept it (a refused read), an open file would hold up the
                    // sealing of the logs.
                    let _ = r.inst.close_file(handle).await;
                }
                return Next::Failed(e.to_string());
            }
        }
    }
}

fn trailers(crc: u32, file_crc: Option<u32>) -> HeaderMap {
    let mut t = HeaderMap::new();
    let hex = |v: u32| HeaderValue::from_str(&format!("{v:08x}"));
    if let Ok(v) = hex(crc) {
        t.insert(CRC_TRAILER, v);
    }
    if let Some(Ok(v)) = file_crc.map(hex) {
        t.insert(FILE_CRC_TRAILER, v);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn only_open_ended_byte_ranges_are_read() {
        assert_eq!(range_start(&HeaderMap::new()).unwrap(), None);
        assert_eq!(range_start(&with_range("bytes=42-")).unwrap(), Some(42));
        for bad in [
            "bytes=1-2",
            "bytes=-5",
            "bytes=-",
            "bytes=+1-",
            "items=1-",
            "bytes=1-,3-",
            "bytes=99999999999999999999999-",
        ] {
            let e = range_start(&with_range(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
            assert_eq!(e.error.code(), -1003);
        }
    }
}
