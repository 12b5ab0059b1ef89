//! An `ObjectStore` over another one whose requests can be failed, held at a [`Latch`], or
//! carried out with their answer lost, chosen by kind of request and key: the faults a
//! network and a store inflict mid-upload, on demand, in front of the real cluster.
//!
//! ```ignore
//! let faulty = FaultyStore::new(store(c, 1, &b, Retries::Fast));
//! faulty.add(Req::Complete, "databases/", Fault::AnswerLostRetried, 1);
//! let target = BackupTarget::object_store(faulty.store(), "p", "s3://b/p");
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use parking_lot::Mutex;

use super::Latch;

/// A kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Req {
    /// A single PUT (a small file, a manifest).
    Put,
    /// Starting a multipart upload.
    Upload,
    /// One part of a multipart upload.
    Part,
    /// Completing a multipart upload.
    Complete,
    /// A GET, whole or ranged (HEADs included: object_store sends them as GETs with options).
    Get,
    /// A LIST, with or without a delimiter.
    List,
    /// A DELETE.
    Delete,
}

/// What happens to a matching request.
#[derive(Clone)]
pub enum Fault {
    /// It fails before anything is sent, as a refused connection does.
    Fail,
    /// It is carried out, and its answer is lost: the caller gets a dropped connection.
    AnswerLost,
    /// It is carried out, its answer is lost, and the client sends it again, as object_store
    /// does for a request it counts as idempotent (a completion): the caller gets the
    /// store's answer to the second one.
    AnswerLostRetried,
    /// It waits at the latch, then goes through.
    Hold(Latch),
    /// For a completion through [`FaultyStore::with_requests`]: the upload is aborted behind
    /// the client's back first (a bucket's lifecycle rule for incomplete uploads, a clean-up
    /// job), then the completion is sent.
    UploadGone,
}

struct Rule {
    req: Req,
    key_contains: String,
    fault: Fault,
    /// Matching requests this rule still acts on.
    left: usize,
}

/// See the module documentation.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// The same store's multipart requests one by one, when given: uploads then go
    /// through it, so that a completion can be sent again exactly as it was.
    requests: Option<Arc<dyn MultipartStore>>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

fn lost(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: format!("connection reset by peer ({what}: injected)").into(),
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> FaultyStore {
        FaultyStore {
            inner,
            rules: Arc::default(),
            requests: None,
        }
    }

    /// Uploads through `requests` (the same store as `inner`): [`Fault::AnswerLostRetried`]
    /// on a completion then sends the very same request a second time.
    pub fn with_requests(mut self, requests: Arc<dyn MultipartStore>) -> FaultyStore {
        self.requests = Some(requests);
        self
    }

    /// This store as a target takes it.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(self.clone())
    }

    /// The next `times` requests of kind `req` whose key contains `key_contains` meet `fault`.
    pub fn add(&self, req: Req, key_contains: &str, fault: Fault, times: usize) {
        self.rules.lock().push(Rule {
            req,
            key_contains: key_contains.to_string(),
            fault,
            left: times,
        });
    }

    /// Drops every rule.
    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    /// The fault for this request, if a rule has one left.
    fn fault(&self, req: Req, key: &str) -> Option<Fault> {
        let mut rules = self.rules.lock();
        let rule = rules
            .iter_mut()
            .find(|r| r.req == req && r.left > 0 && key.contains(&r.key_contains))?;
        rule.left -= 1;
        Some(rule.fault.clone())
    }

    /// Runs `op` under the fault for (`req`, `key`), if any.
    async fn apply<T, F, Fut>(&self, req: Req, key: &str, op: F) -> object_store::Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        Self::run(self.fault(req, key), key, op).await
    }

    /// Runs `op` under `fault`.
    async fn run<T, F, Fut>(fault: Option<Fault>, key: &str, op: F) -> object_store::Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        match fault {
            None | Some(Fault::UploadGone) => op().await,
            Some(Fault::Fail) => Err(lost(key)),
            Some(Fault::AnswerLost) => {
                let _ = op().await;
                Err(lost(key))
            }
            Some(Fault::AnswerLostRetried) => {
                let _ = op().await;
                op().await
            }
            Some(Fault::Hold(latch)) => {
                tokio::task::spawn_blocking(move || latch.pass())
                    .await
                    .expect("latch");
                op().await
            }
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.apply(Req::Put, location.as_ref(), || {
            self.inner.put_opts(location, payload.clone(), opts.clone())
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if let Some(Fault::Fail) = self.fault(Req::Upload, location.as_ref()) {
            return Err(lost(location.as_ref()));
        }
        if let Some(requests) = &self.requests {
            let id = requests.create_multipart(location).await?;
            return Ok(Box::new(RequestUpload {
                store: self.clone(),
                requests: requests.clone(),
                path: location.clone(),
                id,
                parts: Arc::default(),
                next: 0,
            }));
        }
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            store: self.clone(),
            key: location.to_string(),
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.apply(Req::Get, location.as_ref(), || {
            self.inner.get_opts(location, options.clone())
        })
        .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.apply(Req::Get, location.as_ref(), || {
            self.inner.get_ranges(location, ranges)
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let me = self.clone();
        let held = locations
            .then(move |p| {
                let me = me.clone();
                async move {
                    let p = p?;
                    me.apply(Req::Delete, p.as_ref(), || async { Ok(()) })
                        .await?;
                    Ok(p)
                }
            })
            .boxed();
        self.inner.delete_stream(held)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        match self.fault(Req::List, &key) {
            Some(Fault::Fail) => futures::stream::once(async move { Err(lost(&key)) }).boxed(),
            _ => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.apply(Req::List, &key, || self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A multipart upload of a [`FaultyStore`].
#[derive(Debug)]
struct FaultyUpload {
    store: FaultyStore,
    key: String,
    inner: Arc<tokio::sync::Mutex<Box<dyn MultipartUpload>>>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let fault = self.store.fault(Req::Part, &self.key);
        let key = self.key.clone();
        // The part is sent (its future made) now, in order, as the inner upload numbers it.
        let part = match self.inner.try_lock() {
            Ok(mut up) => up.put_part(data),
            Err(_) => return Box::pin(async move { Err(lost("upload busy")) }),
        };
        Box::pin(async move {
            match fault {
                Some(Fault::Fail) => Err(lost(&key)),
                Some(Fault::AnswerLost) => {
                    let _ = part.await;
                    Err(lost(&key))
                }
                _ => part.await,
            }
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let inner = self.inner.clone();
        let key = self.key.clone();
        self.store
            .apply(Req::Complete, &key, || {
                let inner = inner.clone();
                async move { inner.lock().await.complete().await }
            })
            .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.lock().await.abort().await
    }
}

/// A multipart upload of a [`FaultyStore`] sent request by request
/// ([`FaultyStore::with_requests`]).
struct RequestUpload {
    store: FaultyStore,
    requests: Arc<dyn MultipartStore>,
    path: Path,
    id: String,
    parts: Arc<Mutex<Vec<Option<PartId>>>>,
    next: usize,
}

impl fmt::Debug for RequestUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestUpload({})", self.path)
    }
}

#[async_trait]
impl MultipartUpload for RequestUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let idx = self.next;
        self.next += 1;
        self.parts.lock().push(None);
        let (requests, path, id, parts) = (
            self.requests.clone(),
            self.path.clone(),
            self.id.clone(),
            self.parts.clone(),
        );
        let fault = self.store.fault(Req::Part, path.as_ref());
        Box::pin(async move {
            if let Some(Fault::Fail) = fault {
                return Err(lost(path.as_ref()));
            }
            let part = requests.put_part(&path, &id, idx, data).await?;
            parts.lock()[idx] = Some(part);
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let parts: Vec<PartId> = self.parts.lock().iter().flatten().cloned().collect();
        let (requests, path, id) = (self.requests.clone(), self.path.clone(), self.id.clone());
        let fault = self.store.fault(Req::Complete, path.as_ref());
        if let Some(Fault::UploadGone) = fault {
            requests.abort_multipart(&path, &id).await?;
        }
        FaultyStore::run(fault, path.as_ref(), || {
            requests.complete_multipart(&path, &id, parts.clone())
        })
        .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.requests.abort_multipart(&self.path, &self.id).await
    }
}
