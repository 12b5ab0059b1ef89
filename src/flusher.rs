//! The background flusher: one thread per instance that waits until the log is durable past
//! the pages handed to it (the write-ahead rule), writes them, fsyncs the database files,
//! then writes the checkpoint those pages allow. The instance never waits for it;
//! completions come back on a channel the instance polls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::cache::PageKey;
use crate::db::DbFile;
use crate::io::StorageRef;
use crate::log::checkpoint::{self, Checkpoint};
use crate::log::{LogShared, Notify};
use crate::lsn::Lsn;
use crate::Result;

pub(crate) struct FlushJob {
    pub pages: Vec<(PageKey, Vec<u8>)>,
    pub files: HashMap<u32, DbFile>,
    pub checkpoint: Option<(PathBuf, Checkpoint)>,
    /// The instance's log, durable past `log_first` before any page or the checkpoint is
    /// written: the pages' last changes and the checkpoint's position.
    pub log: Arc<LogShared>,
    pub log_first: Lsn,
}

pub(crate) struct FlushDone {
    pub keys: Vec<PageKey>,
    pub result: Result<()>,
    pub checkpoint: Option<Checkpoint>,
}

pub(crate) struct Flusher {
    tx: Option<Sender<FlushJob>>,
    pub done: Receiver<FlushDone>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(storage: StorageRef, notify: Arc<Mutex<Option<Notify>>>) -> Result<Flusher> {
        let (tx, rx) = crossbeam_channel::unbounded::<FlushJob>();
        let (dtx, drx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("ese-flusher".into())
            .spawn(move || {
                for job in rx {
                    let done = run(&*storage, job);
                    if dtx.send(done).is_err() {
                        break;
                    }
                    let n = notify.lock().clone();
                    if let Some(n) = n {
                        n();
                    }
                }
            })
            .map_err(crate::Error::from_io)?;
        Ok(Flusher {
            tx: Some(tx),
            done: drx,
            thread: Some(thread),
        })
    }

    pub fn submit(&self, job: FlushJob) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    pub fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(storage: &dyn crate::io::Storage, job: FlushJob) -> FlushDone {
    let keys: Vec<PageKey> = job.pages.iter().map(|(k, _)| *k).collect();
    let result = write_all(storage, &job);
    let checkpoint = if result.is_ok() {
        job.checkpoint.map(|(_, c)| c)
    } else {
        None
    };
    FlushDone {
        keys,
        result,
        checkpoint,
    }
}

fn write_all(storage: &dyn crate::io::Storage, job: &FlushJob) -> Result<()> {
    // The instance asked the log writer for an fsync when it handed the job over; this waits
    // on another thread, never the instance's. A poisoned log fails the flush.
    job.log.wait_durable(job.log_first)?;
    let mut touched = Vec::new();
    for ((dbid, pgno), data) in &job.pages {
        let Some(f) = job.files.get(dbid) else {
            continue;
        };
        if !touched.contains(dbid) {
            // Before the first write: one past a cut would hide the loss behind a hole.
            f.check_length()?;
            touched.push(*dbid);
        }
        let mut page = data.clone();
        f.write_page(*pgno, &mut page)?;
    }
    for dbid in touched {
        job.files[&dbid].sync()?;
    }
    if let Some((path, c)) = &job.checkpoint {
        checkpoint::write(storage, path, c)?;
    }
    Ok(())
}
