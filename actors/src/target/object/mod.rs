//! A backup repository on any [`ObjectStore`] (S3 and its kin through object_store's `aws`
//! feature): the sets of [`ese::backup::repo`] as objects under a prefix,
//! `<prefix>/<set>/manifest.json`, `<prefix>/<set>/databases/…`, `<prefix>/<set>/logs/…`.
//! One job per file: [`bridge`] (sync set code to async requests), [`files`] (the
//! repository's objects by name), [`read`] (ranged GETs with read-ahead), [`upload`]
//! (multipart PUTs, the set store; part buffers reused through
//! [`ese::io::BufferPool`]), [`error`].

pub(crate) mod bridge;
mod error;
mod files;
mod read;
mod upload;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ese::backup::repo::Repository;
use ese::backup::set::{SetStore, MANIFEST};
use ese::io::Files;
use ese::{Error, Result};
use futures::TryStreamExt;
use object_store::ObjectStore;

pub use bridge::Requests;
use bridge::{count, Bridge, RequestCounts};
use error::store_error;
use files::ObjectFiles;
use upload::ObjectSet;

/// The least part size: AWS S3 refuses smaller parts (all but the last), even where a
/// server such as Garage accepts them, so the engine never sends one.
pub const MIN_PART: usize = 5 << 20;

/// The largest part S3 takes.
pub const MAX_PART: usize = 5 << 30;

/// How a repository on an object store uploads and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectOptions {
    /// Bytes per multipart part (all parts but the last); at least [`MIN_PART`]. Default
    /// 16 MiB.
    pub part_size: usize,
    /// Parts uploading at once per file; memory is at most this times `part_size`.
    /// Default 8.
    pub parts_in_flight: usize,
    /// Bytes per ranged GET when reading back. Default 8 MiB.
    pub read_block: usize,
    /// GETs in flight ahead of a reader. Default 8.
    pub read_ahead: usize,
    /// Retries of a failed request (object_store's retry with backoff). Default 3.
    pub max_retries: usize,
    /// How long one request may keep retrying. Default 30 s, so a store that is down
    /// fails a backup in bounded time.
    pub retry_timeout: Duration,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions {
            part_size: 16 << 20,
            parts_in_flight: 8,
            read_block: 8 << 20,
            read_ahead: 8,
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        }
    }
}

impl ObjectOptions {
    /// Refuses options no store should be given.
    ///
    /// # Errors
    ///
    /// `InvalidParameter` (-1003) for a part under [`MIN_PART`] or over [`MAX_PART`], or
    /// zero parts in flight, read block or read-ahead.
    pub fn check(&self) -> Result<()> {
        if self.part_size > MAX_PART {
            return Err(Error::InvalidParameter.with_detail(format!(
                "part size {} bytes: S3 takes at most {MAX_PART} (5 GiB)",
                self.part_size
            )));
        }
        if self.part_size < MIN_PART {
            return Err(Error::InvalidParameter.with_detail(format!(
                "part size {} bytes: S3 needs at least {MIN_PART} (5 MiB)",
                self.part_size
            )));
        }
        if self.parts_in_flight == 0 || self.read_block == 0 || self.read_ahead == 0 {
            return Err(Error::InvalidParameter
                .with_detail("parts in flight, read block and read-ahead must be at least 1"));
        }
        Ok(())
    }
}

/// A repository of backup sets under a prefix of an object store.
#[derive(Debug)]
pub struct ObjectRepo {
    files: ObjectFiles,
}

impl ObjectRepo {
    /// The repository at `prefix` of `store`, shown as `url` (which must hold no
    /// credentials). Call it on a tokio runtime: its requests run there.
    ///
    /// # Errors
    ///
    /// `InvalidParameter` (-1003) outside a runtime or for options [`ObjectOptions::check`]
    /// refuses.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: &str,
        options: ObjectOptions,
    ) -> Result<ObjectRepo> {
        Self::counted(store, prefix, url, options, Arc::default())
    }

    /// [`ObjectRepo::new`], counting its requests into `counts`.
    pub(crate) fn counted(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: &str,
        options: ObjectOptions,
        counts: Arc<RequestCounts>,
    ) -> Result<ObjectRepo> {
        options.check()?;
        Ok(ObjectRepo {
            files: ObjectFiles {
                store,
                prefix: prefix.trim_matches('/').to_string(),
                url: url.trim_end_matches('/').to_string(),
                bridge: Bridge::here(counts)?,
                // One upload at a time has at most parts in flight buffers out.
                parts: ese::io::BufferPool::new(options.parts_in_flight),
                options,
            },
        })
    }

    /// The requests sent so far, by kind.
    pub fn requests(&self) -> Requests {
        self.files.bridge.counts.snapshot()
    }

    /// Every object under `dir` (relative to the repository), by name relative to it.
    fn list_under(&self, dir: &str) -> Result<Vec<object_store::path::Path>> {
        let store = self.files.store.clone();
        let prefix = self.files.key(Path::new(dir));
        count(&self.files.bridge.counts.lists);
        self.files
            .bridge
            .wait(async move {
                store
                    .list(Some(&prefix))
                    .map_ok(|o| o.location)
                    .try_collect::<Vec<_>>()
                    .await
            })?
            .map_err(|e| store_error(e, "listing", &self.files.url_of(Path::new(dir))))
    }
}

impl Repository for ObjectRepo {
    fn location(&self) -> String {
        self.files.url.clone()
    }

    fn files(&self) -> &dyn Files {
        &self.files
    }

    fn set_names(&self) -> Result<Vec<String>> {
        let store = self.files.store.clone();
        let prefix = (!self.files.prefix.is_empty())
            .then(|| object_store::path::Path::from(self.files.prefix.as_str()));
        count(&self.files.bridge.counts.lists);
        let listed = self
            .files
            .bridge
            .wait(async move { store.list_with_delimiter(prefix.as_ref()).await })?
            .map_err(|e| store_error(e, "listing", &self.files.url))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    fn new_set(&self, name: &str) -> Result<Box<dyn SetStore>> {
        check_name(name)?;
        Ok(Box::new(ObjectSet::new(self.files.clone(), name)))
    }

    fn modified_ms(&self, name: &str) -> Result<Option<u64>> {
        check_name(name)?;
        let store = self.files.store.clone();
        let prefix = self.files.key(Path::new(name));
        count(&self.files.bridge.counts.lists);
        let newest = self
            .files
            .bridge
            .wait(async move {
                store
                    .list(Some(&prefix))
                    .try_fold(None, |n: Option<i64>, o| async move {
                        Ok(n.max(Some(o.last_modified.timestamp_millis())))
                    })
                    .await
            })?
            .map_err(|e| store_error(e, "listing", &self.files.url_of(Path::new(name))))?;
        Ok(newest.and_then(|t| u64::try_from(t).ok()))
    }

    fn remove_set(&self, name: &str) -> Result<u64> {
        check_name(name)?;
        let manifest = self.files.key(&Path::new(name).join(MANIFEST));
        let keys = self.list_under(name)?;
        let mut removed = 0;
        // The manifest first: a prune cut short leaves an orphan, never a set with holes.
        if keys.contains(&manifest) {
            self.files.delete_key(manifest.clone())?;
            removed += 1;
        }
        for key in keys.into_iter().filter(|k| *k != manifest) {
            self.files.delete_key(key)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Set names are one plain segment (the core's rule, checked again at this boundary).
fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
    match plain {
        true => Ok(()),
        false => Err(Error::InvalidPath.with_detail(format!("{name:?} is not a backup set name"))),
    }
}
