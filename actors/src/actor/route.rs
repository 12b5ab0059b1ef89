//! Where a command goes. Its kind and gate come from the `messages!` table: an immediate
//! command is served at once; any other waits, in mailbox order, while a job holds the core
//! (unless its gate already refuses it); once served, it meets its gate, then its handler.
//! `serve` is the one place where a command meets its handler.

use ese::{Error, Result};

use super::backup::ReadReply;
use super::data::Open;
use super::Actor;
use crate::gate::{self, GateState};
use crate::messages::{Command, Gate};
use crate::types::ScanCursor;

impl Actor {
    /// A command from the mailbox or the orphans' channel.
    pub(super) fn on_command(&mut self, cmd: Command) {
        // Behind a job or behind what already waits, a command that needs the core keeps
        // mailbox order; flags and term are answered now.
        if cmd.kind().needs_core() && (self.busy || !self.deferred.is_empty()) {
            self.defer(cmd);
        } else {
            self.serve(cmd);
        }
    }

    /// Queues a command until the core comes back, unless the gate refuses it already: a
    /// refusal needs no core, so it is not kept waiting.
    pub(super) fn defer(&mut self, cmd: Command) {
        match self.gate_for(&cmd) {
            Err(e) => cmd.refuse(e),
            Ok(()) => self.deferred.push_back(cmd),
        }
    }

    /// Serves what waited for the core, until a job takes it again.
    pub(super) fn run_deferred(&mut self) {
        while !self.busy && self.lifecycle != gate::Lifecycle::Terminated {
            let Some(cmd) = self.deferred.pop_front() else {
                break;
            };
            self.serve(cmd);
        }
    }

    /// Serves a command now: its gate, then its handler. A deferred command meets its gate
    /// again here, since the instance may have changed while it waited.
    fn serve(&mut self, cmd: Command) {
        debug_assert!(
            !self.busy || !cmd.kind().needs_core(),
            "a command that needs the core is served only when no job holds it"
        );
        if let Err(e) = self.gate_for(&cmd) {
            cmd.refuse(e);
            return;
        }
        match cmd {
            // lifecycle.rs
            Command::Init(_, r) => self.on_init(r),
            Command::Term(m, r) => self.on_term(m.grbit, r),
            Command::StopService(_, r) => self.on_stop_service(r),
            Command::StopBackup(_, r) => self.on_stop_backup(r),
            // data.rs
            Command::CreateDatabase(m, r) => self.on_open_database(m.path, Open::Create, r),
            Command::AttachDatabase(m, r) => self.on_open_database(m.path, Open::Attach, r),
            Command::OpenDatabase(m, r) => {
                let how = match m.create {
                    true => Open::AttachOrCreate,
                    false => Open::Attach,
                };
                self.on_open_database(m.path, how, r)
            }
            Command::DetachDatabase(m, r) => self.on_detach_database(m.path, r),
            Command::GetDatabaseInfo(m, r) => self.on_database_info(m.path, r),
            Command::BeginSession(_, r) => self.on_begin_session(r),
            Command::EndSession(m, r) => self.on_end_session(m.session, r),
            Command::CreateTable(m, r) => self.on_create_table(m, r),
            Command::OpenTable(m, r) => self.on_open_table(m, r),
            Command::EnsureTable(m, r) => self.on_ensure_table(m, r),
            Command::ApplyBatch(m, r) => self.on_apply_batch(m, r),
            Command::BeginTransaction(m, r) => self.on_begin_transaction(m.session, r),
            Command::Put(m, r) => self.on_put(m, r),
            Command::CommitTransaction(m, r) => self.on_commit(m, r),
            Command::Rollback(m, r) => self.on_rollback(m.session, r),
            Command::GetStats(_, r) => self.on_stats(r),
            Command::GetInstanceInfo(_, r) => self.on_instance_info(r),
            // reads.rs
            Command::Get(m, r) => self.on_get(m, r),
            Command::Delete(m, r) => self.on_delete(m, r),
            Command::Scan(m, r) => self.on_scan(m, r),
            Command::ScanNext(m, r) => self.on_scan_next(m.cursor, m.max_rows, r),
            Command::CloseScan(m, r) => self.on_close_scan(m.cursor, r),
            // backup.rs
            Command::BeginBackup(m, r) => self.on_begin_backup(m.grbit, r),
            Command::BeginBackupWithId(m, r) => self.on_begin_backup_with_id(m.grbit, r),
            Command::GetAttachInfo(_, r) => self.on_attach_info(r),
            Command::OpenFile(m, r) => self.on_open_file(m.path, r),
            Command::ReadFile(m, r) => self.on_read(m.file, m.max_len, ReadReply::Bytes(r)),
            Command::ReadFileChunk(m, r) => self.on_read(m.file, m.max_len, ReadReply::Chunk(r)),
            Command::CloseFile(m, r) => self.on_close_file(m.file, r),
            Command::GetLogInfo(_, r) => self.on_log_info(r),
            Command::GetTruncateLogInfo(_, r) => self.on_truncate_info(r),
            Command::TruncateLog(_, r) => self.on_truncate_log(r),
            Command::TruncateLogIf(m, r) => self.on_truncate_log_if(m.id, r),
            Command::GetBackupRecord(_, r) => self.on_backup_record(r),
            Command::EndBackup(m, r) => self.on_end_backup(m.grbit, r),
            Command::AbortBackupIf(m, r) => self.on_abort_backup_if(m.id, r),
            Command::CheckBackup(m, r) => self.on_check_backup(m.id, r),
            Command::EndBackupIf(m, r) => self.on_end_backup_if(m.id, m.grbit, r),
            Command::ExpireBackupIf(m, r) => self.on_expire_backup_if(m.id, r),
        }
    }

    /// The check a command meets first, as its table line says.
    pub(super) fn gate_for(&self, cmd: &Command) -> Result<()> {
        match cmd.gate() {
            Gate::Own => Ok(()),
            Gate::Instance => self.instance_gate(),
            Gate::Scan(cursor) => self.gate_scan(cursor),
        }
    }

    /// The instance gate of behaviour.md §1.1, on this instance's state.
    fn instance_gate(&self) -> Result<()> {
        gate::check(&self.gate_state())
    }

    fn gate_state(&self) -> GateState {
        GateState {
            lifecycle: self.lifecycle,
            stop_service: self.stop_service,
            unavailable: self.core.as_ref().and_then(|c| c.check_available().err()),
            restoring: false,
        }
    }

    /// The gate for a later slice of a scan (or closing it): the scan was being served when a
    /// `stop_service` came, so that flag does not refuse it; term and the rest still do. An
    /// unknown cursor is `InvalidTableId` once the gate passes.
    fn gate_scan(&self, c: ScanCursor) -> Result<()> {
        if !self.scans.contains_key(&c.0) {
            return self.instance_gate().and(Err(Error::InvalidTableId));
        }
        gate::check(&GateState {
            stop_service: false,
            ..self.gate_state()
        })
    }
}
