//! ESE option bits ("grbits") for the backup and termination calls.
//!
//! Values are ESE's (`jethdr.w`). Build values from raw numbers with `from_bits_retain`,
//! which keeps bits the type does not name: ESE rejects unknown bits at run time with
//! `InvalidGrbit` or `InvalidParameter`, and a caller porting ESE code must get that error
//! rather than have the bits silently dropped.

use bitflags::bitflags;

bitflags! {
    /// Options of `begin_external_backup` (JetBeginExternalBackupInstance).
    ///
    /// The empty set is a full backup. Only `INCREMENTAL` is accepted by the engine;
    /// `ATOMIC`, `SNAPSHOT` and unknown bits exist so that they can be passed and refused
    /// with `InvalidGrbit`, as ESE does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct BackupBegin: u32 {
        /// `JET_bitBackupIncremental` (0x1): back up only the logs written since the last
        /// full or incremental backup.
        const INCREMENTAL = 0x1;
        /// `JET_bitBackupAtomic` (0x4): an obsolete ESE option; refused with `InvalidGrbit`.
        const ATOMIC = 0x4;
        /// `JET_bitBackupSnapshot` (0x10): ESE's OS-snapshot backup; refused with
        /// `InvalidGrbit`, as this engine has only streaming backup.
        const SNAPSHOT = 0x10;
    }
}

bitflags! {
    /// Options of `end_external_backup` (JetEndExternalBackupInstance2).
    ///
    /// Exactly one of `NORMAL` and `ABORT` must be given, else `InvalidParameter`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct BackupEnd: u32 {
        /// `JET_bitBackupEndNormal` (0x1): the client completed the backup sequence; on
        /// success the database headers record the backup.
        const NORMAL = 0x1;
        /// `JET_bitBackupEndAbort` (0x2): the client abandons the backup; nothing is
        /// recorded in the database headers.
        const ABORT = 0x2;
        /// `JET_bitBackupTruncateDone` (0x100): the client has truncated the logs itself, so
        /// the backup counts as truncating (full or incremental rather than copy or
        /// differential) even without a `truncate_log` call.
        const TRUNCATE_DONE = 0x100;
    }
}

bitflags! {
    /// Options of `term` (JetTerm2).
    ///
    /// The empty set behaves as `COMPLETE`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Term: u32 {
        /// `JET_bitTermComplete` (0x1): a clean shutdown; fails with `BackupInProgress`
        /// while a backup runs.
        const COMPLETE = 0x1;
        /// `JET_bitTermAbrupt` (0x2): shut down even with a backup running, which is ended as
        /// aborted by the server.
        const ABRUPT = 0x2;
        /// `JET_bitTermStopBackup` (0x4): end a running backup as aborted by the server,
        /// then shut down.
        const STOP_BACKUP = 0x4;
        /// `JET_bitTermDirty` (0x8): shut down without flushing or marking the databases
        /// clean, as a crash would; the next init must recover.
        const DIRTY = 0x8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_eses() {
        assert_eq!(BackupBegin::INCREMENTAL.bits(), 0x1);
        assert_eq!(BackupBegin::ATOMIC.bits(), 0x4);
        assert_eq!(BackupBegin::SNAPSHOT.bits(), 0x10);
        assert_eq!(BackupEnd::NORMAL.bits(), 0x1);
        assert_eq!(BackupEnd::ABORT.bits(), 0x2);
        assert_eq!(BackupEnd::TRUNCATE_DONE.bits(), 0x100);
        assert_eq!(Term::COMPLETE.bits(), 0x1);
        assert_eq!(Term::ABRUPT.bits(), 0x2);
        assert_eq!(Term::STOP_BACKUP.bits(), 0x4);
        assert_eq!(Term::DIRTY.bits(), 0x8);
    }

    #[test]
    fn default_is_empty() {
        assert!(BackupBegin::default().is_empty());
        assert!(BackupEnd::default().is_empty());
        assert!(Term::default().is_empty());
    }

    #[test]
    fn unknown_bits_are_kept() {
        let b = BackupBegin::from_bits_retain(0x80);
        assert_eq!(b.bits(), 0x80);
        assert!(!b.is_empty());
        assert!(BackupBegin::from_bits(0x80).is_none());
        let b = BackupBegin::INCREMENTAL | BackupBegin::from_bits_retain(0x80);
        assert_eq!(b.bits(), 0x81);
        assert!(b.contains(BackupBegin::INCREMENTAL));

        assert_eq!(BackupEnd::from_bits_retain(0x80 | 0x1).bits(), 0x81);
        assert_eq!(Term::from_bits_retain(0x80).bits(), 0x80);
    }
}
