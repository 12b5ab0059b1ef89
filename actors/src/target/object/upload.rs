//! Writing one set to an object store: [`ObjectSet`] (the [`SetStore`]) and
//! [`ObjectUpload`] (one file). A file smaller than a part is one PUT when it finishes; a
//! larger one a multipart upload whose parts all have the part size but the last, with up
//! to `parts_in_flight` of them uploading while the next fills, so memory stays within
//! parts in flight times part size. Nothing is staged on local disk.
//!
//! Visibility: the manifest is a single PUT after every file completed, so a set is
//! complete exactly when its manifest exists. A failed or dropped upload is aborted (its
//! parts freed) where the process lives to do it; [`SetStore::discard`] deletes what the set
//! wrote, manifest first. A killed process leaves an orphan without a manifest, which no
//! reader takes for a set and which `prune` removes after its grace period; the parts of a
//! multipart upload it never completed are freed by the bucket's lifecycle rule for
//! incomplete uploads (object_store has no call to list them).

use std::collections::VecDeque;
use std::path::Path;

use bytes::Bytes;
use ese::backup::set::{Content, SetFile, SetStore, Stored};
use ese::io::{FileRef, Files};
use ese::{Error, Result};
use futures::TryStreamExt;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use super::bridge::count;
use super::error::store_error;
use super::files::ObjectFiles;

/// The set `name` of an object-store repository, being written.
#[derive(Debug)]
pub(crate) struct ObjectSet {
    /// The repository's objects.
    files: ObjectFiles,
    name: String,
    /// Names (relative to the repository) this store wrote, the manifest last.
    written: Vec<String>,
    manifest_written: bool,
}

impl ObjectSet {
    pub(crate) fn new(files: ObjectFiles, name: &str) -> ObjectSet {
        ObjectSet {
            files,
            name: name.to_string(),
            written: Vec::new(),
            manifest_written: false,
        }
    }

    fn inside(&self, name: &Path) -> String {
        format!("{}/{}", self.name, name.to_string_lossy())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.files.delete_key(self.files.key(Path::new(name)))
    }
}

impl Files for ObjectSet {
    fn open_read(&self, name: &Path) -> Result<FileRef> {
        self.files.open_read(Path::new(&self.inside(name)))
    }
    fn shown(&self, name: &Path) -> std::path::PathBuf {
        self.files.shown(Path::new(&self.inside(name)))
    }
}

impl SetStore for ObjectSet {
    fn location(&self) -> String {
        self.files.url_of(Path::new(&self.name))
    }

    fn name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    /// One LIST: the set's prefix must hold nothing. It is also the first request, so wrong
    /// credentials, an unknown bucket or a dead endpoint refuse the backup before it
    /// begins.
    fn check_new(&self) -> Result<()> {
        let store = self.files.store.clone();
        let prefix = self.files.key(Path::new(&self.name));
        count(&self.files.bridge.counts.lists);
        let first = self.files.bridge.wait(async move {
            let mut list = store.list(Some(&prefix));
            list.try_next().await
        })?;
        match first {
            Ok(None) => Ok(()),
            Ok(Some(o)) => Err(Error::BackupDirectoryNotEmpty.with_detail(format!(
                "backup target {} already holds {}",
                self.location(),
                o.location
            ))),
            Err(e) => Err(store_error(e, "listing", &self.location())),
        }
    }

    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }

    fn create(&mut self, name: &Path) -> Result<Box<dyn SetFile>> {
        let inside = self.inside(name);
        self.written.push(inside.clone());
        Ok(Box::new(ObjectUpload::new(
            self.files.clone(),
            Path::new(&inside),
        )))
    }

    fn stored_len_in(&self, set: Option<&str>, name: &Path) -> Result<u64> {
        let set = set.unwrap_or(&self.name);
        self.files
            .stored_len(Path::new(&format!("{set}/{}", name.to_string_lossy())))
    }

    /// Nothing to do: an object is durable once its PUT or completion returned.
    fn seal(&mut self) -> Result<()> {
        Ok(())
    }

    fn publish(&mut self, manifest: &[u8]) -> Result<()> {
        let name = self.inside(Path::new(ese::backup::set::MANIFEST));
        let (store, key) = (self.files.store.clone(), self.files.key(Path::new(&name)));
        let body = PutPayload::from(Bytes::copy_from_slice(manifest));
        count(&self.files.bridge.counts.puts);
        self.manifest_written = true;
        self.files
            .bridge
            .wait(async move { store.put(&key, body).await })?
            .map_err(|e| {
                store_error(
                    e,
                    "writing the manifest",
                    &self.files.url_of(Path::new(&name)),
                )
            })?;
        Ok(())
    }

    fn discard(&mut self) {
        if self.manifest_written {
            let m = self.inside(Path::new(ese::backup::set::MANIFEST));
            if let Err(e) = self.delete(&m) {
                tracing::warn!(set = %self.location(), error = %e, "partial backup set: manifest not removed");
            }
        }
        for name in std::mem::take(&mut self.written).iter().rev() {
            if let Err(e) = self.delete(name) {
                // The store is failing (the likely reason the backup failed): each further
                // delete would spend its whole retry budget. What is left is an orphan
                // without a manifest, which prune removes.
                tracing::warn!(object = %name, error = %e, "partial backup set left as an orphan for prune");
                break;
            }
        }
    }
}

/// One file of a set being uploaded.
pub(crate) struct ObjectUpload {
    files: ObjectFiles,
    name: String,
    key: object_store::path::Path,
    /// The part being filled.
    part: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
    /// Parts sent.
    parts: usize,
    stored: u64,
    done: bool,
}

/// S3's most parts in one multipart upload.
const MAX_PARTS: usize = 10_000;

impl ObjectUpload {
    fn new(files: ObjectFiles, name: &Path) -> ObjectUpload {
        ObjectUpload {
            key: files.key(name),
            name: files.url_of(name),
            files,
            part: Vec::new(),
            upload: None,
            in_flight: VecDeque::new(),
            parts: 0,
            stored: 0,
            done: false,
        }
    }

    fn part_size(&self) -> usize {
        self.files.options.part_size
    }

    fn failed(&self, e: object_store::Error, what: &str) -> Error {
        // A 404 while writing is the upload itself gone (NoSuchUpload: aborted by a lifecycle
        // rule or a clean-up job), a failure of the store, not a missing file.
        let e = match e {
            object_store::Error::NotFound { source, .. } => object_store::Error::Generic {
                store: "S3",
                source,
            },
            e => e,
        };
        store_error(e, what, &self.name)
    }

    /// Sends the part that is full (or the last one), waiting first for room if as many
    /// parts as allowed are in flight.
    fn send_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let (store, key) = (self.files.store.clone(), self.key.clone());
            count(&self.files.bridge.counts.uploads);
            let up = self
                .files
                .bridge
                .wait(async move { store.put_multipart(&key).await })?
                .map_err(|e| self.failed(e, "starting the upload of"))?;
            self.upload = Some(up);
        }
        if self.parts == MAX_PARTS {
            return Err(Error::InvalidParameter.with_detail(format!(
                "{}: more than {MAX_PARTS} parts of {} MiB, S3's limit for one object: give a \
                 larger part size",
                self.name,
                self.part_size() >> 20
            )));
        }
        self.parts += 1;
        let bytes = std::mem::take(&mut self.part);
        self.stored += bytes.len() as u64;
        let body = self.files.parts.share(bytes);
        let upload = self.upload.as_mut().ok_or(Error::InternalError)?;
        let part = upload.put_part(PutPayload::from(body));
        count(&self.files.bridge.counts.parts);
        self.in_flight.push_back(self.files.bridge.spawn(part));
        // The next part fills while these upload: at most `parts_in_flight` parts in memory.
        while self.in_flight.len() >= self.files.options.parts_in_flight.max(1) {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Whether the object holds every byte sent, which makes a completion that reported a
    /// failure a success: the key is new and this set's own, so nothing else wrote it.
    fn is_stored_whole(&self) -> bool {
        let (store, key) = (self.files.store.clone(), self.key.clone());
        count(&self.files.bridge.counts.heads);
        let head = self
            .files
            .bridge
            .wait(async move { store.head(&key).await });
        matches!(head, Ok(Ok(meta)) if meta.size == self.stored)
    }

    fn wait_one(&mut self) -> Result<()> {
        let Some(job) = self.in_flight.pop_front() else {
            return Ok(());
        };
        self.files
            .bridge
            .join(job)?
            .map_err(|e| self.failed(e, "uploading a part of"))
    }
}

impl SetFile for ObjectUpload {
    fn append(&mut self, mut chunk: &[u8]) -> Result<()> {
        let size = self.part_size();
        while !chunk.is_empty() {
            if self.part.capacity() == 0 {
                self.part = self.files.parts.take(size);
            }
            let take = (size - self.part.len()).min(chunk.len());
            self.part.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.part.len() == size {
                self.send_part()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, _: Content) -> Result<Option<Stored>> {
        if self.upload.is_none() {
            // Smaller than a part: one PUT.
            let bytes = std::mem::take(&mut self.part);
            let len = bytes.len() as u64;
            let body = self.files.parts.share(bytes);
            let (store, key) = (self.files.store.clone(), self.key.clone());
            count(&self.files.bridge.counts.puts);
            self.files
                .bridge
                .wait(async move { store.put(&key, PutPayload::from(body)).await })?
                .map_err(|e| self.failed(e, "writing"))?;
            self.stored = len;
        } else {
            if !self.part.is_empty() {
                self.send_part()?;
            }
            while !self.in_flight.is_empty() {
                self.wait_one()?;
            }
            let mut up = self.upload.take().ok_or(Error::InternalError)?;
            count(&self.files.bridge.counts.completes);
            let r = self.files.bridge.wait(async move {
                let r = up.complete().await;
                (r, up)
            })?;
            match r {
                (Ok(_), _) => {}
                // object_store sends a completion again when its answer is lost, and a store
                // that had completed the upload answers the second one 404 (NoSuchUpload).
                (Err(_), _) if self.is_stored_whole() => {}
                (Err(e), up) => {
                    self.upload = Some(up);
                    return Err(self.failed(e, "completing the upload of"));
                }
            }
        }
        self.done = true;
        // A plain object in the set's own folder: nothing for the manifest to add.
        Ok(None)
    }
}

impl Drop for ObjectUpload {
    /// An upload that did not complete is aborted, so its parts do not linger as storage
    /// nobody sees; on a runtime task, never blocking the dropping thread.
    fn drop(&mut self) {
        for job in self.in_flight.drain(..) {
            job.abort();
        }
        if let Some(mut up) = self.upload.take().filter(|_| !self.done) {
            count(&self.files.bridge.counts.deletes);
            let name = self.name.clone();
            drop(self.files.bridge.spawn(async move {
                if let Err(e) = up.abort().await {
                    tracing::warn!(object = %name, error = %e, "multipart upload not aborted");
                }
            }));
        }
    }
}
