//! What of an answer two instances given the same calls must agree on: everything but
//! what is random or timed (signatures, clocks, counters), which is left out.

use bytes::Bytes;
use ese_actors::{
    BackupFile, BackupId, BackupInfo, CoreStats, DatabaseInfo, DbId, InstanceInfo, LogInfo,
    ScanSlice, SessionKey, TableId,
};
use std::path::PathBuf;

/// The comparable part of an answer.
pub trait Shape {
    fn shape(&self) -> String;
}

/// `ok <shape>` or `err <code> <name>`.
pub fn outcome<R: Shape>(r: &ese_actors::Result<R>) -> String {
    match r {
        Ok(v) => format!("ok {}", v.shape()),
        Err(e) => format!("err {} {}", e.code(), e.name()),
    }
}

/// Types whose `Debug` is the same on both instances.
macro_rules! shape_by_debug {
    ($($t:ty),* $(,)?) => {
        $( impl Shape for $t { fn shape(&self) -> String { format!("{self:?}") } } )*
    };
}

shape_by_debug!(
    (),
    DbId,
    TableId,
    SessionKey,
    BackupId,
    (BackupFile, u64),
    Vec<PathBuf>,
    LogInfo,
    ScanSlice,
    Option<Bytes>,
);

/// A chunk of a streamed file carries signatures and times: its length is what must agree.
impl Shape for Bytes {
    fn shape(&self) -> String {
        format!("{} bytes", self.len())
    }
}

impl Shape for BackupInfo {
    fn shape(&self) -> String {
        format!("gens {}..={}", self.gen_low, self.gen_high)
    }
}

impl Shape for DatabaseInfo {
    fn shape(&self) -> String {
        let b = |i: &Option<BackupInfo>| i.as_ref().map(Shape::shape);
        format!(
            "clean {} full {:?} incr {:?} copy {:?} diff {:?}",
            self.clean_shutdown,
            b(&self.last_full),
            b(&self.last_incremental),
            b(&self.last_copy),
            b(&self.last_differential)
        )
    }
}

impl Shape for InstanceInfo {
    fn shape(&self) -> String {
        format!(
            "{} page {} gen {} dbs {:?}",
            self.base_name, self.page_size, self.current_gen, self.databases
        )
    }
}

impl Shape for CoreStats {
    fn shape(&self) -> String {
        "stats".to_string()
    }
}
