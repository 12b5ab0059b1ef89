//! The instance-less (legacy) calls: each checks the engine's mode, then goes to the
//! implicit instance (behaviour.md §1).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ese::{BackupBegin, BackupEnd, Result};

use crate::engine::Engine;
use crate::types::{BackupFile, LogInfo};

/// The legacy calls of an engine (`JetBeginExternalBackup`, `JetStopService`, ...): in
/// `MultiInstance` mode they fail with `RunningInMultiInstanceMode`, in `Unset` mode with
/// `InvalidParameter`.
#[derive(Clone, Debug)]
pub struct Legacy {
    pub(crate) engine: Engine,
}

impl Legacy {
    /// `JetStopService`.
    pub async fn stop_service(&self) -> Result<()> {
        self.engine.implicit()?.stop_service().await
    }
    /// `JetStopBackup`.
    pub async fn stop_backup(&self) -> Result<()> {
        self.engine.implicit()?.stop_backup().await
    }
    /// `JetTerm2` of the implicit instance.
    pub async fn term(&self, grbit: ese::Term) -> Result<()> {
        self.engine.implicit()?.term(grbit).await
    }
    /// `JetBeginExternalBackup`.
    pub async fn begin_external_backup(&self, grbit: BackupBegin) -> Result<()> {
        self.engine.implicit()?.begin_external_backup(grbit).await
    }
    /// `JetGetAttachInfo`.
    pub async fn get_attach_info(&self) -> Result<Vec<PathBuf>> {
        self.engine.implicit()?.get_attach_info().await
    }
    /// `JetOpenFile`.
    pub async fn open_file(&self, path: impl AsRef<Path>) -> Result<(BackupFile, u64)> {
        self.engine.implicit()?.open_file(path).await
    }
    /// `JetReadFile`.
    pub async fn read_file(&self, file: BackupFile, max_len: usize) -> Result<Bytes> {
        self.engine.implicit()?.read_file(file, max_len).await
    }
    /// `JetCloseFile`.
    pub async fn close_file(&self, file: BackupFile) -> Result<()> {
        self.engine.implicit()?.close_file(file).await
    }
    /// `JetGetLogInfo`.
    pub async fn get_log_info(&self) -> Result<LogInfo> {
        self.engine.implicit()?.get_log_info().await
    }
    /// `JetTruncateLog`.
    pub async fn truncate_log(&self) -> Result<()> {
        self.engine.implicit()?.truncate_log().await
    }
    /// `JetEndExternalBackup` (always `NORMAL`, as ESE's legacy form).
    pub async fn end_external_backup(&self) -> Result<()> {
        self.engine
            .implicit()?
            .end_external_backup(BackupEnd::NORMAL)
            .await
    }
}
