//! [`BackupTarget`]: a repository named by a URL. `s3://bucket/prefix` is an S3 (or
//! S3-compatible) bucket configured from the standard AWS environment; `file:///path` or a
//! plain path is a folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ese::backup::repo::{DirRepo, Repository};
use ese::io::StorageRef;
use ese::{Error, Result};
use object_store::ObjectStore;

use super::object::bridge::RequestCounts;
use super::object::{ObjectOptions, ObjectRepo, Requests};

/// Where backup sets are kept. Its [`Display`](std::fmt::Display) and
/// [`BackupTarget::location`] never show credentials.
///
/// ```
/// use ese_actors::BackupTarget;
/// let t = BackupTarget::parse("/var/backups/ese").unwrap();
/// assert_eq!(t.location(), "/var/backups/ese");
/// let (repo, set) = BackupTarget::parse_set("s3://bucket/ese/20261202T071500.000Z-full-1a2b").unwrap();
/// assert_eq!(repo.location(), "s3://bucket/ese");
/// assert_eq!(set, "20261202T071500.000Z-full-1a2b");
/// ```
#[derive(Clone)]
pub struct BackupTarget {
    place: Place,
    options: ObjectOptions,
    /// Every request of every repository opened from this target (and its clones).
    counts: Arc<RequestCounts>,
}

#[derive(Clone)]
enum Place {
    Dir {
        storage: StorageRef,
        path: PathBuf,
    },
    S3 {
        bucket: String,
        prefix: String,
    },
    Store {
        store: Arc<dyn ObjectStore>,
        prefix: String,
        url: String,
    },
}

impl std::fmt::Debug for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupTarget")
            .field("location", &self.location())
            .finish()
    }
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}

impl BackupTarget {
    /// Parses `s3://bucket[/prefix]`, `file:///path` or a plain path. An `s3://` target
    /// takes its endpoint, credentials and region from the environment when it is opened:
    /// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP` (for an `http://` endpoint), and the rest object_store reads.
    ///
    /// # Errors
    ///
    /// `InvalidParameter` (-1003) for an empty location, an `s3://` URL without a bucket,
    /// or another scheme.
    pub fn parse(s: &str) -> Result<BackupTarget> {
        let place = if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::InvalidParameter.with_detail(format!(
                    "{s}: an s3:// target needs a bucket (s3://BUCKET/PREFIX)"
                )));
            }
            Place::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            }
        } else if let Some(path) = s.strip_prefix("file://") {
            Place::Dir {
                storage: ese::io::os(),
                path: PathBuf::from(path),
            }
        } else if s.contains("://") {
            return Err(Error::InvalidParameter.with_detail(format!(
                "{}: unsupported scheme; a backup target is s3://BUCKET/PREFIX, file:///PATH or a path",
                s.split("://").next().unwrap_or_default()
            )));
        } else if s.is_empty() {
            return Err(Error::InvalidParameter.with_detail("an empty backup target"));
        } else {
            Place::Dir {
                storage: ese::io::os(),
                path: PathBuf::from(s),
            }
        };
        Ok(BackupTarget {
            place,
            options: ObjectOptions::default(),
            counts: Arc::default(),
        })
    }

    /// Parses the location of one set, `TARGET/SET`: the repository and the set's name.
    ///
    /// # Errors
    ///
    /// [`BackupTarget::parse`]'s, and `InvalidParameter` for a location without a set
    /// name.
    pub fn parse_set(s: &str) -> Result<(BackupTarget, String)> {
        // A folder named with `.` components (`.` inside the set, `SET/.`) is that folder.
        let folder;
        let s = match s.contains("://") {
            false if s.trim_end_matches('/').rsplit('/').next() == Some(".") => {
                let p: PathBuf = Path::new(s).components().collect();
                let p = match p.file_name() {
                    Some(_) => p,
                    None => std::path::absolute(&p)
                        .map_err(|e| Error::InvalidPath.with_detail(format!("{s}: {e}")))?,
                };
                folder = p.to_string_lossy().into_owned();
                folder.as_str()
            }
            _ => s,
        };
        let trimmed = s.trim_end_matches('/');
        if !trimmed.contains("://") && !trimmed.contains('/') && !trimmed.is_empty() {
            // A set folder named relative to the current one.
            return Ok((BackupTarget::parse(".")?, trimmed.to_string()));
        }
        let (repo, set) = trimmed.rsplit_once('/').ok_or_else(|| {
            Error::InvalidParameter.with_detail(format!("{s}: name a set (TARGET/SET)"))
        })?;
        if set.is_empty() || repo.is_empty() || repo.ends_with(':') || repo == "s3:/" {
            return Err(
                Error::InvalidParameter.with_detail(format!("{s}: name a set (TARGET/SET)"))
            );
        }
        Ok((BackupTarget::parse(repo)?, set.to_string()))
    }

    /// A folder through a given storage (the fault-injecting one in tests).
    pub fn dir_on(storage: StorageRef, path: impl Into<PathBuf>) -> BackupTarget {
        BackupTarget {
            place: Place::Dir {
                storage,
                path: path.into(),
            },
            options: ObjectOptions::default(),
            counts: Arc::default(),
        }
    }

    /// A prefix of a store the host built itself, shown as `url` (which must hold no
    /// credentials).
    pub fn object_store(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> BackupTarget {
        BackupTarget {
            place: Place::Store {
                store,
                prefix: prefix.trim_matches('/').to_string(),
                url: url.to_string(),
            },
            options: ObjectOptions::default(),
            counts: Arc::default(),
        }
    }

    /// The same target with other upload and read settings (object stores only).
    pub fn with_options(mut self, options: ObjectOptions) -> BackupTarget {
        self.options = options;
        self
    }

    /// The requests sent to the object store so far through this target and its clones,
    /// by kind (all zero for a folder).
    pub fn requests(&self) -> Requests {
        self.counts.snapshot()
    }

    /// The upload and read settings.
    pub fn options(&self) -> &ObjectOptions {
        &self.options
    }

    /// The folder, for a folder target.
    pub fn dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Dir { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The target as a person reads it: a path, or a URL without credentials.
    pub fn location(&self) -> String {
        match &self.place {
            Place::Dir { path, .. } => path.display().to_string(),
            Place::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Place::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Place::Store { url, .. } => url.clone(),
        }
    }

    /// The repository; an object store's requests run on the runtime this is called on.
    ///
    /// # Errors
    ///
    /// `InvalidParameter` (-1003) for options [`ObjectOptions::check`] refuses, outside a
    /// runtime for an object store, or for an S3 configuration object_store refuses (the
    /// message names the setting, never a secret).
    pub fn open(&self) -> Result<Arc<dyn Repository>> {
        Ok(match &self.place {
            Place::Dir { storage, path } => Arc::new(DirRepo::new(storage.clone(), path)),
            Place::S3 { bucket, prefix } => {
                let store = self.s3(bucket)?;
                let (url, counts) = (self.location(), self.counts.clone());
                Arc::new(ObjectRepo::counted(
                    store,
                    prefix,
                    &url,
                    self.options,
                    counts,
                )?)
            }
            Place::Store { store, prefix, url } => {
                let (store, counts) = (store.clone(), self.counts.clone());
                Arc::new(ObjectRepo::counted(
                    store,
                    prefix,
                    url,
                    self.options,
                    counts,
                )?)
            }
        })
    }

    fn s3(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let retry = object_store::RetryConfig {
            max_retries: self.options.max_retries,
            retry_timeout: self.options.retry_timeout,
            ..Default::default()
        };
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .build()
            .map_err(|e| {
                Error::InvalidParameter.with_detail(format!(
                    "s3://{bucket}: the S3 settings from the environment are refused: {e}"
                ))
            })?;
        Ok(Arc::new(store))
    }
}
