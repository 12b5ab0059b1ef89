//! [`ObjectFiles`]: a repository's objects named relative to its prefix, as [`Files`] (a
//! HEAD for the size, or the size a manifest gives, then an [`ObjectReader`] per file), with the keys and URLs of names
//! and deletion.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ese::io::{BufferPool, FileRef, Files};
use ese::Result;
use object_store::{ObjectStore, ObjectStoreExt};

use super::bridge::{count, Bridge};
use super::error::store_error;
use super::read::ObjectReader;
use super::ObjectOptions;

/// A repository's objects named relative to its prefix.
#[derive(Debug, Clone)]
pub(crate) struct ObjectFiles {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The repository's prefix, without a trailing `/` (empty for a bucket's root).
    pub(crate) prefix: String,
    /// The repository's URL, for messages.
    pub(crate) url: String,
    pub(crate) bridge: Bridge,
    pub(crate) options: ObjectOptions,
    /// Part buffers of this repository's uploads.
    pub(crate) parts: Arc<BufferPool>,
}

impl ObjectFiles {
    /// The object key of `name`.
    pub(crate) fn key(&self, name: &Path) -> object_store::path::Path {
        let name = name.to_string_lossy();
        match self.prefix.is_empty() {
            true => object_store::path::Path::from(name.as_ref()),
            false => object_store::path::Path::from(format!("{}/{name}", self.prefix)),
        }
    }

    /// `name` as a URL.
    pub(crate) fn url_of(&self, name: &Path) -> String {
        format!(
            "{}/{}",
            self.url.trim_end_matches('/'),
            name.to_string_lossy()
        )
    }

    /// Deletes the object `key` (a full key); one already gone is fine.
    pub(crate) fn delete_key(&self, key: object_store::path::Path) -> Result<()> {
        let store = self.store.clone();
        let shown = format!("{}/{key}", self.url);
        count(&self.bridge.counts.deletes);
        match self.bridge.wait(async move { store.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e, "deleting", &shown)),
        }
    }

    /// The object's size (a HEAD).
    fn head(&self, name: &Path) -> Result<u64> {
        let (store, key) = (self.store.clone(), self.key(name));
        count(&self.bridge.counts.heads);
        let r = self.bridge.wait(async move { store.head(&key).await })?;
        r.map(|m| m.size)
            .map_err(|e| store_error(e, "reading the size of", &self.url_of(name)))
    }
}

impl Files for ObjectFiles {
    fn open_read(&self, name: &Path) -> Result<FileRef> {
        let len = self.head(name)?;
        Ok(Arc::new(ObjectReader::new(
            self.clone(),
            self.key(name),
            self.url_of(name),
            len,
        )))
    }

    /// No HEAD: the reader finds out on its own if the object is shorter.
    fn open_read_sized(&self, name: &Path, stored_len: u64) -> Result<FileRef> {
        Ok(Arc::new(ObjectReader::new(
            self.clone(),
            self.key(name),
            self.url_of(name),
            stored_len,
        )))
    }

    fn shown(&self, name: &Path) -> PathBuf {
        PathBuf::from(self.url_of(name))
    }

    fn stored_len(&self, name: &Path) -> Result<u64> {
        self.head(name)
    }

    /// One GET: its response's length says whether to read the body at all.
    fn read_whole(&self, name: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
        let (store, key) = (self.store.clone(), self.key(name));
        count(&self.bridge.counts.gets);
        let r = self.bridge.wait(async move {
            let got = store.get(&key).await?;
            match got.meta.size > limit {
                true => Ok(None),
                false => got.bytes().await.map(Some),
            }
        })?;
        let shown = self.url_of(name);
        match r.map_err(|e| store_error(e, "reading", &shown))? {
            Some(b) if b.len() as u64 > limit => Ok(None),
            b => Ok(b.map(|b| b.to_vec())),
        }
    }
}
