//! [`Forward`]: how the adapter hands each typed message to the instance, so that its answer
//! is the one the `Instance` method of the same name gives.
//!
//! Most methods are exactly `Instance::ask` of their message. Three do a little more around
//! it, and the adapter calls those methods so that a host gets the same answer either way:
//! `term` and `begin_external_backup` first wait for the cleanup of a dropped backup-set run,
//! and `stop_backup` also wakes a backup-set run that is pacing itself.

use std::future::Future;

use ese_actors::messages::*;
use ese_actors::{Instance, Message, Result};

/// A typed message of the instance mailbox that the adapter forwards: every public message
/// of [`ese_actors::messages`].
pub trait Forward: Message {
    /// Sends the message to `inst` as the `Instance` method of the same name does, and
    /// awaits the answer.
    fn forward(self, inst: Instance) -> impl Future<Output = Result<Self::Reply>> + Send + 'static;
}

/// `Forward` by `Instance::ask` for the messages whose method is just that, and a list of
/// every forwarded message for the test that no message of the mailbox is missing.
macro_rules! forwarded {
    (by_ask: [$($m:ident),* $(,)?], by_method: [$($own:ident),* $(,)?] $(,)?) => {
        $(
            impl Forward for $m {
                async fn forward(self, inst: Instance) -> Result<Self::Reply> {
                    inst.ask(self).await
                }
            }
        )*

        /// Names every command of the mailbox, so that a message added to `ese-actors`
        /// without a line here fails to compile this crate's tests (the match is then not
        /// exhaustive). `Command` is hidden from the docs but public.
        #[cfg(test)]
        fn every_command_is_forwarded(c: Command) {
            fn forwarded<M: Forward>(_: M) {}
            match c {
                $( Command::$m(m, _) => forwarded(m), )*
                $( Command::$own(m, _) => forwarded(m), )*
            }
        }
    };
}

forwarded! {
    by_ask: [
        Init, StopService, CreateDatabase, AttachDatabase, DetachDatabase, GetDatabaseInfo,
        BeginSession, EndSession, CreateTable, OpenTable, EnsureTable, OpenDatabase,
        BeginTransaction, Put, Get, Delete, ApplyBatch, Scan, ScanNext, CloseScan,
        CommitTransaction, Rollback, GetStats, GetInstanceInfo, GetAttachInfo, OpenFile,
        ReadFile, ReadFileChunk, CloseFile, GetLogInfo, GetTruncateLogInfo, TruncateLog, EndBackup,
        BeginBackupWithId, AbortBackupIf, GetBackupRecord, CheckBackup, EndBackupIf,
        ExpireBackupIf, TruncateLogIf,
    ],
    by_method: [Term, StopBackup, BeginBackup],
}

impl Forward for Term {
    async fn forward(self, inst: Instance) -> Result<()> {
        inst.term(self.grbit).await
    }
}

impl Forward for StopBackup {
    async fn forward(self, inst: Instance) -> Result<()> {
        inst.stop_backup().await
    }
}

impl Forward for BeginBackup {
    async fn forward(self, inst: Instance) -> Result<()> {
        inst.begin_external_backup(self.grbit).await
    }
}

#[cfg(test)]
mod tests {
    /// The check is the match in `every_command_is_forwarded` compiling.
    #[test]
    fn every_message_of_the_mailbox_is_forwarded() {
        let _: fn(super::Command) = super::every_command_is_forwarded;
    }
}
