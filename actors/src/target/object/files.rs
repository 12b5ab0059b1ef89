//! [`ObjectFiles`]: a repository's objects named relative to its prefix, as [`Files`] (a
//! HEAD for the size, then an [`ObjectReader`] per file), with the keys and URLs of names
//! and deletion.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ese::io::{FileRef, Files};
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

    fn shown(&self, name: &Path) -> PathBuf {
        PathBuf::from(self.url_of(name))
    }

    fn stored_len(&self, name: &Path) -> Result<u64> {
        self.head(name)
    }
}
