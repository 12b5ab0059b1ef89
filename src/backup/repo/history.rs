//! A made-up repository history for the catalog's and prune's tests: sets with the kinds,
//! parents and references a real engine gives them.

use super::catalog::{self, Listed, SetState};
use crate::backup::set::{BackupKind, BackupManifest, ManifestLog, Stored};

/// A made-up history: sets with the kinds, parents and references a real engine gives.
pub(super) struct History {
    /// The repository's sets, oldest first.
    pub(super) sets: Vec<Listed>,
    /// The id of the last full or incremental (what the headers record).
    pub(super) last: Option<String>,
    /// The number of the next set; set `n` began at `n` seconds.
    pub(super) next: u64,
}

impl History {
    pub(super) fn new() -> History {
        History {
            sets: Vec::new(),
            last: None,
            next: 0,
        }
    }

    /// A history of one set per kind number ([`kind`]), none referencing another's logs;
    /// every one of them a set the engine would make.
    pub(super) fn of(kinds: &[u8]) -> History {
        let mut h = History::new();
        for &k in kinds {
            assert!(h.add(kind(k), false), "kind {k} refused");
        }
        h
    }

    /// Adds a set of `kind` (referencing a log of its chain's newest set if `reference`), or
    /// nothing for an incremental or differential the engine refuses: none recorded to
    /// continue, or its parent's chain not in the repository.
    pub(super) fn add(&mut self, kind: BackupKind, reference: bool) -> bool {
        if kind.incremental() {
            let Some(last) = &self.last else {
                return false;
            };
            if catalog::continued_chain(&self.sets, last, &signature(), "repo").is_err() {
                return false;
            }
        }
        self.next += 1;
        let n = self.next;
        let name = format!("{n:05}");
        let parent_id = kind.incremental().then(|| self.last.clone()).flatten();
        let mut logs = vec![log(n, None)];
        if reference {
            // A log the newest set of the same chain holds (a sibling differential, say,
            // which is not in this set's own chain), referenced by name.
            if let Some(holder) = parent_id.as_ref().and_then(|p| self.newest_of_chain(p)) {
                logs.push(log(n + 1000, Some(holder)));
            }
        }
        let m = BackupManifest {
            format: 2,
            name: Some(name.clone()),
            kind,
            id: format!("id{n}"),
            parent_id,
            instance: "i".into(),
            base_name: "edb".into(),
            page_size: 8192,
            log_signature: signature(),
            gen_low: 1,
            gen_high: 1,
            mark: n,
            mark_time_ms: n * 1000,
            databases: Vec::new(),
            logs,
            digest: None,
        };
        if matches!(kind, BackupKind::Full | BackupKind::Incremental) {
            self.last = Some(m.id.clone());
        }
        self.sets.push(Listed {
            name,
            state: SetState::Complete(Box::new(m)),
            modified_ms: None,
        });
        true
    }

    /// The newest set whose chain starts where the chain of the set `id` starts.
    pub(super) fn newest_of_chain(&self, id: &str) -> Option<String> {
        let root = |name: &str| {
            catalog::chain_of(&self.sets, name)
                .ok()
                .and_then(|c| c.first().map(|s| s.name.clone()))
        };
        let parent = self
            .sets
            .iter()
            .find(|s| s.manifest().is_some_and(|m| m.id == id))?;
        let want = root(&parent.name)?;
        catalog::newest_first(&self.sets)
            .into_iter()
            .find(|s| root(&s.name).as_deref() == Some(want.as_str()))
            .map(|s| s.name.clone())
    }
}

/// The log stream of every set of a history.
pub(super) fn signature() -> String {
    "00".repeat(16)
}

fn log(gen: u64, set: Option<String>) -> ManifestLog {
    ManifestLog {
        gen: gen as u32,
        file: format!("logs/edb{gen:08X}.log").into(),
        size: 1,
        crc32c: "00000000".into(),
        stored: set.map(|set| Stored {
            size: 1,
            set: Some(set),
            ..Stored::default()
        }),
    }
}

/// A kind drawn from a byte, with incrementals twice as likely as the others.
pub(super) fn kind(k: u8) -> BackupKind {
    match k % 6 {
        0 | 1 => BackupKind::Incremental,
        2 => BackupKind::Differential,
        3 => BackupKind::Copy,
        _ => BackupKind::Full,
    }
}
