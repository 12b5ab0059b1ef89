//! The table of figures: for each one its key, its label and name, its unit, what it is
//! compared with, how the ratio is formed and its target. The run ([`crate::run`]) fills in
//! the numbers, one [`Row`] per figure, in the order of [`TABLE`]; `ese bench` prints the rows
//! without the peers' figures, the compare bench prints all of them as one table.

use serde::{Deserialize, Serialize};

/// Which way a target goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmp {
    /// The value must be at least the bound.
    AtLeast,
    /// The value must be at most the bound.
    AtMost,
}

/// A target for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Direction.
    pub cmp: Cmp,
    /// Bound.
    pub bound: f64,
}

impl Target {
    /// `value >= bound`.
    pub const fn at_least(bound: f64) -> Target {
        Target {
            cmp: Cmp::AtLeast,
            bound,
        }
    }
    /// `value <= bound`.
    pub const fn at_most(bound: f64) -> Target {
        Target {
            cmp: Cmp::AtMost,
            bound,
        }
    }
    /// Whether `value` meets the target.
    pub fn met(&self, value: f64) -> bool {
        match self.cmp {
            Cmp::AtLeast => value >= self.bound,
            Cmp::AtMost => value <= self.bound,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.cmp {
            Cmp::AtLeast => ">=",
            Cmp::AtMost => "<=",
        };
        write!(f, "{op} {}", fmt_num(self.bound))
    }
}

/// Formats a number with about three significant digits.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// How a figure's ratio is formed from its two values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ratio {
    /// No ratio: the target, if any, applies to our value.
    None,
    /// Ours / the baseline.
    OursOverBaseline,
    /// The baseline / ours (a rate compared as a cost).
    BaselineOverOurs,
    /// Measured by the run itself, as said here.
    Measured(&'static str),
}

/// One figure of the table.
#[derive(Debug)]
pub struct Spec {
    /// Stable identifier, e.g. `backup.vs_raw_read`.
    pub key: &'static str,
    /// Short label, as the issue and the README number the figures: `1a`, `3`, `8b`.
    pub label: &'static str,
    /// Name; each `{}` is filled by the run (sizes, counts).
    pub name: &'static str,
    /// Unit of our value and of the baseline.
    pub unit: &'static str,
    /// What ours is compared with ("" for none).
    pub baseline: &'static str,
    /// How the ratio is formed.
    pub ratio: Ratio,
    /// The target: on the ratio where there is one, else on our value.
    pub target: Option<Target>,
    /// Whether the baseline is a peer engine (SQLite, redb): only the compare run has it.
    pub peer: bool,
}

impl Spec {
    /// Whether the target applies to the ratio (else to our value).
    pub fn on_ratio(&self) -> bool {
        self.ratio != Ratio::None
    }

    /// A row of this figure with our value `ours`; `args` fill the name's `{}` in turn.
    pub fn row(&'static self, args: &[&dyn std::fmt::Display], ours: f64) -> Row {
        let mut name = String::new();
        let mut args = args.iter();
        for (i, part) in self.name.split("{}").enumerate() {
            if i > 0 {
                if let Some(a) = args.next() {
                    name.push_str(&a.to_string());
                }
            }
            name.push_str(part);
        }
        let mut r = Row {
            key: self.key,
            label: self.label,
            figure: format!("{:<2} {name}", self.label),
            ours,
            ours_unit: self.unit,
            peer_name: "",
            peer: None,
            peer_unit: "",
            ratio: None,
            target: self.target,
            target_on: if self.on_ratio() { "ratio" } else { "ours" },
            pass: None,
            detail: String::new(),
            spec: self,
        };
        r.judge();
        r
    }
}

/// Backup stream against a raw read of the same file.
pub static BACKUP_VS_RAW: Spec = Spec {
    key: "backup.vs_raw_read",
    label: "1a",
    name: "full backup (actor, verified, 1 MiB chunks) vs raw read, {} MiB db",
    unit: "MiB/s",
    baseline: "std::fs 1 MiB reads, warm",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(0.9)),
    peer: false,
};
/// Backup stream against SQLite's online backup of the same rows.
pub static BACKUP_VS_SQLITE: Spec = Spec {
    key: "backup.vs_sqlite",
    label: "1b",
    name: "full backup vs SQLite online backup, {} MiB db",
    unit: "MiB/s",
    baseline: "rusqlite Backup -> :memory:",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(1.0)),
    peer: true,
};
/// Resident memory growth while a backup streams.
pub static MEMORY_BACKUP: Spec = Spec {
    key: "memory.backup_rss_growth",
    label: "8a",
    name: "RSS growth streaming a {} MiB db backup{}",
    unit: "MiB",
    baseline: "",
    ratio: Ratio::None,
    target: Some(Target::at_most(64.0)),
    peer: false,
};
/// One durable session against redb.
pub static COMMIT_1_VS_REDB: Spec = Spec {
    key: "commit.durable_1_vs_redb",
    label: "2a",
    name: "durable commits, 1 session, 16 B key + 100 B value",
    unit: "commits/s",
    baseline: "redb Durability::Immediate",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(1.0)),
    peer: true,
};
/// One durable session against SQLite.
pub static COMMIT_1_VS_SQLITE: Spec = Spec {
    key: "commit.durable_1_vs_sqlite",
    label: "2b",
    name: "durable commits, 1 session, 16 B key + 100 B value",
    unit: "commits/s",
    baseline: "SQLite WAL synchronous=FULL",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(1.0)),
    peer: true,
};
/// One durable session against the raw baseline: the same log bytes per commit, appended
/// and fdatasync'd with no engine around them.
pub static COMMIT_1_VS_RAW: Spec = Spec {
    key: "commit.durable_1_vs_raw",
    label: "2c",
    name: "durable commits, 1 session, vs raw append + fdatasync of the same {} B per commit",
    unit: "commits/s",
    baseline: "std::fs write_at + sync_data",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(0.9)),
    peer: false,
};
/// Lazy commits of 64 sessions against redb's `Durability::None`: the CPU path per commit.
pub static LAZY_64_VS_REDB: Spec = Spec {
    key: "commit.lazy_64_vs_redb",
    label: "2d",
    name: "lazy commits (no fsync wait), 64 sessions on one instance",
    unit: "commits/s",
    baseline: "redb Durability::None, 1 writer",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(1.0)),
    peer: true,
};
/// Group commit: 64 sessions against one.
pub static GROUP_COMMIT: Spec = Spec {
    key: "commit.group_64_vs_1",
    label: "3",
    name: "group commit: 64 sessions vs 1 session (ours)",
    unit: "commits/s",
    baseline: "ours, 1 session",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(20.0)),
    peer: false,
};
/// Log fsyncs per commit with 64 sessions.
pub static FSYNCS_PER_COMMIT: Spec = Spec {
    key: "commit.fsyncs_per_commit_64",
    label: "3f",
    name: "fsyncs per commit, 64 sessions",
    unit: "fsync/commit",
    baseline: "",
    ratio: Ratio::None,
    target: None,
    peer: false,
};
/// 64 concurrent committers against redb's 64 threads.
pub static COMMIT_64_VS_REDB: Spec = Spec {
    key: "commit.concurrent_64_vs_redb",
    label: "3r",
    name: "64 concurrent committers vs redb (64 threads)",
    unit: "commits/s",
    baseline: "redb, 64 threads",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: true,
};
/// 64 concurrent committers against SQLite's 64 connections.
pub static COMMIT_64_VS_SQLITE: Spec = Spec {
    key: "commit.concurrent_64_vs_sqlite",
    label: "3s",
    name: "64 concurrent committers vs SQLite (64 threads)",
    unit: "commits/s",
    baseline: "SQLite, 64 connections",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: true,
};
/// p99 commit latency with a backup streaming against without.
pub static P99_UNDER_BACKUP: Spec = Spec {
    key: "commit.p99_under_backup",
    label: "4",
    name: "p99 durable commit latency, {} writers, with full backup streaming",
    unit: "ms",
    baseline: "without backup",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_most(1.25)),
    peer: false,
};
/// The actor's round trip against a bare echo task, one client.
pub static GET_VS_ECHO_1: Spec = get_vs_echo(
    "actor.get_cost_vs_echo_1",
    "Session::get of a cached key, 1 client(s): cost / echo cost",
);
/// The actor's round trip against a bare echo task, 16 clients.
pub static GET_VS_ECHO_16: Spec = get_vs_echo(
    "actor.get_cost_vs_echo_16",
    "Session::get of a cached key, 16 client(s): cost / echo cost",
);
const fn get_vs_echo(key: &'static str, name: &'static str) -> Spec {
    Spec {
        key,
        label: "6",
        name,
        unit: "round trips/s",
        baseline: "tokio mpsc+oneshot echo",
        ratio: Ratio::BaselineOverOurs,
        target: Some(Target::at_most(2.0)),
        peer: false,
    }
}
/// Restore replay against the workload that wrote the log.
pub static RESTORE_REPLAY: Spec = Spec {
    key: "restore.replay_vs_workload",
    label: "5",
    name: "restore replay vs the lazy-commit workload that wrote the log ({} txns)",
    unit: "log MiB/s",
    baseline: "workload",
    ratio: Ratio::Measured("workload seconds / replay seconds"),
    target: Some(Target::at_least(3.0)),
    peer: false,
};
/// `stop_service` under load against a chunk read.
pub static STOP_LATENCY: Spec = Spec {
    key: "stop.latency_vs_chunk",
    label: "7",
    name: "stop_service answered + all 64 clients have -1329 (1 reader + 63 committers)",
    unit: "ms",
    baseline: "median chunk read",
    ratio: Ratio::Measured(
        "median over the runs of max(answer, last client's error) / median chunk read",
    ),
    target: Some(Target::at_most(2.0)),
    peer: false,
};
/// Resident memory per idle instance.
pub static IDLE_INSTANCE: Spec = Spec {
    key: "memory.idle_instance",
    label: "8b",
    name: "RSS per idle initialised instance ({} instances)",
    unit: "KiB",
    baseline: "",
    ratio: Ratio::None,
    target: Some(Target::at_most(256.0)),
    peer: false,
};
/// One `WriteBatch` against the same rows put one call at a time in a transaction.
pub static BATCH_VS_PUTS: Spec = Spec {
    key: "write.batch_vs_puts",
    label: "9",
    name: "durable write of 1,000 rows (16 B key + 100 B value): 1 WriteBatch vs 1,000 tx.put",
    unit: "rows/s",
    baseline: "1,000 tx.put + commit, 1 transaction",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(1.0)),
    peer: false,
};
/// Memory held while `Instance::stream` reads a table far larger than the cache: the peak
/// growth of the bytes live on the heap (resident memory where the binary does not count).
pub static MEMORY_STREAM: Spec = Spec {
    key: "memory.stream_growth",
    label: "10",
    name: "{} growth streaming a {} MiB table ({} rows of 64 KiB) with Instance::stream{}",
    unit: "MiB",
    baseline: "",
    ratio: Ratio::None,
    target: Some(Target::at_most(4.0)),
    peer: false,
};

/// Bulk load against redb.
pub static BULK_VS_REDB: Spec = Spec {
    key: "bulk.vs_redb",
    label: "11",
    name: "bulk load: {} random 16 B keys, 200 B values, 100 puts per lazy transaction",
    unit: "puts/s",
    baseline: "redb Durability::None, same transactions",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(1.0)),
    peer: true,
};
/// Bulk load against SQLite.
pub static BULK_VS_SQLITE: Spec = Spec {
    key: "bulk.vs_sqlite",
    label: "11",
    name: "bulk load: {} random 16 B keys, 200 B values, 100 puts per lazy transaction",
    unit: "puts/s",
    baseline: "SQLite WAL synchronous=NORMAL, same transactions",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(1.0)),
    peer: true,
};
/// The end of our bulk load against its start: does the rate hold as the tree outgrows the
/// cache?
pub static BULK_TAIL: Spec = Spec {
    key: "bulk.last_vs_first_tenth",
    label: "12",
    name: "bulk load of {} keys: the last tenth's rate vs the first tenth's (ours)",
    unit: "puts/s",
    baseline: "ours, first tenth",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(0.8)),
    peer: false,
};

/// Every figure, in the order the run measures and prints them.
pub static TABLE: [&Spec; 22] = [
    &BACKUP_VS_RAW,
    &BACKUP_VS_SQLITE,
    &MEMORY_BACKUP,
    &COMMIT_1_VS_REDB,
    &COMMIT_1_VS_SQLITE,
    &COMMIT_1_VS_RAW,
    &LAZY_64_VS_REDB,
    &GROUP_COMMIT,
    &FSYNCS_PER_COMMIT,
    &COMMIT_64_VS_REDB,
    &COMMIT_64_VS_SQLITE,
    &P99_UNDER_BACKUP,
    &GET_VS_ECHO_1,
    &GET_VS_ECHO_16,
    &RESTORE_REPLAY,
    &STOP_LATENCY,
    &IDLE_INSTANCE,
    &BATCH_VS_PUTS,
    &MEMORY_STREAM,
    &BULK_VS_REDB,
    &BULK_VS_SQLITE,
    &BULK_TAIL,
];

/// One measured figure: a row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The figure's key ([`Spec::key`]).
    pub key: &'static str,
    /// Its label ([`Spec::label`]).
    pub label: &'static str,
    /// Label and name, the name's `{}` filled.
    pub figure: String,
    /// Our value.
    pub ours: f64,
    /// Its unit.
    pub ours_unit: &'static str,
    /// What ours is compared with ("" for none).
    pub peer_name: &'static str,
    /// The baseline's value.
    pub peer: Option<f64>,
    /// Its unit ("" for none).
    pub peer_unit: &'static str,
    /// The ratio, formed as the table says.
    pub ratio: Option<f64>,
    /// The target.
    pub target: Option<Target>,
    /// `ratio` or `ours`: what the target applies to.
    pub target_on: &'static str,
    /// Whether the target is met (`None` without a target or without the value it needs).
    pub pass: Option<bool>,
    /// How it was measured (repetitions, sizes, the numbers behind a ratio).
    pub detail: String,
    #[serde(skip)]
    spec: &'static Spec,
}

impl Row {
    /// The baseline's value; forms the ratio where the table says how.
    pub fn baseline(mut self, v: f64) -> Row {
        self.peer_name = self.spec.baseline;
        self.peer = Some(v);
        self.peer_unit = self.spec.unit;
        match self.spec.ratio {
            Ratio::OursOverBaseline => self.ratio = Some(self.ours / v),
            Ratio::BaselineOverOurs => self.ratio = Some(v / self.ours),
            Ratio::None | Ratio::Measured(_) => {}
        }
        self.judge();
        self
    }

    /// The ratio of a figure whose run measures it ([`Ratio::Measured`]).
    pub fn ratio(mut self, r: f64) -> Row {
        debug_assert!(matches!(self.spec.ratio, Ratio::Measured(_)));
        self.ratio = Some(r);
        self.judge();
        self
    }

    /// How it was measured.
    pub fn detail(mut self, d: impl Into<String>) -> Row {
        self.detail = d.into();
        self
    }

    /// The figure this row measures.
    pub fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// The cells of the table's columns: figure, ours, peer or baseline, ratio, target,
    /// pass/fail (`-` where there is nothing).
    pub fn cells(&self) -> [String; 6] {
        [
            self.figure.clone(),
            format!("{} {}", fmt_num(self.ours), self.ours_unit),
            match self.peer {
                Some(p) => format!("{}: {} {}", self.peer_name, fmt_num(p), self.peer_unit),
                None => "-".into(),
            },
            self.ratio
                .map_or("-".into(), |x| format!("{}x", fmt_num(x))),
            self.target_text(),
            self.verdict().into(),
        ]
    }

    /// The target as the table prints it: `ratio >= 0.900`, `<= 64.00 MiB`, `-`.
    pub fn target_text(&self) -> String {
        match self.target {
            None => "-".into(),
            Some(t) if self.spec.on_ratio() => format!("ratio {t}"),
            Some(t) => format!("{t} {}", self.ours_unit),
        }
    }

    /// `PASS`, `FAIL` or `info`.
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "info",
        }
    }

    fn judge(&mut self) {
        let value = if self.spec.on_ratio() {
            self.ratio
        } else {
            Some(self.ours)
        };
        self.pass = self.target.zip(value).map(|(t, v)| t.met(v));
    }
}

/// One line: `figure: ours unit; baseline: value unit; ratio (target ...: PASS) [detail]`.
impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [figure, ours, peer, ratio, target, verdict] = self.cells();
        write!(f, "{figure}: {ours}")?;
        if self.peer.is_some() {
            write!(f, "; {peer}")?;
        }
        if self.ratio.is_some() {
            write!(f, "; {ratio}")?;
        }
        if self.pass.is_some() {
            write!(f, " (target {target}: {verdict})")?;
        }
        if !self.detail.is_empty() {
            write!(f, " [{}]", self.detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_labels_short() {
        for (i, a) in TABLE.iter().enumerate() {
            assert!(a.label.len() <= 2, "{}", a.key);
            for b in &TABLE[i + 1..] {
                assert_ne!(a.key, b.key);
            }
        }
    }

    #[test]
    fn only_figures_with_a_baseline_have_a_ratio() {
        for s in TABLE {
            assert_eq!(s.baseline.is_empty(), s.ratio == Ratio::None, "{}", s.key);
        }
    }

    #[test]
    fn rows_form_the_ratio_and_judge_the_target() {
        let r = BACKUP_VS_RAW.row(&[&64], 450.0).baseline(1000.0);
        assert_eq!(
            r.figure,
            "1a full backup (actor, verified, 1 MiB chunks) vs raw read, 64 MiB db"
        );
        assert_eq!(r.ratio, Some(0.45));
        assert_eq!(r.pass, Some(false));
        assert_eq!(r.target_text(), "ratio >= 0.900");
        let r = GET_VS_ECHO_16.row(&[], 1e6).baseline(2e6);
        assert_eq!((r.ratio, r.pass), (Some(2.0), Some(true)));
        assert_eq!(
            r.figure,
            "6  Session::get of a cached key, 16 client(s): cost / echo cost"
        );
        let r = IDLE_INSTANCE.row(&[&100], 300.0);
        assert_eq!(
            (r.pass, r.target_text().as_str()),
            (Some(false), "<= 256.0 KiB")
        );
        let r = MEMORY_BACKUP.row(&[&64, &" (quick)"], 1.0);
        assert_eq!(
            r.figure,
            "8a RSS growth streaming a 64 MiB db backup (quick)"
        );
        let r = RESTORE_REPLAY.row(&[&20000], 700.0).baseline(35.0);
        assert_eq!((r.ratio, r.pass), (None, None));
        assert_eq!(r.ratio(4.0).pass, Some(true));
        assert_eq!(FSYNCS_PER_COMMIT.row(&[], 0.25).verdict(), "info");
        let r = BATCH_VS_PUTS.row(&[], 300_000.0).baseline(100_000.0);
        assert_eq!((r.ratio, r.pass), (Some(3.0), Some(true)));
        let r = MEMORY_STREAM.row(&[&"live heap", &128, &2048, &" (quick: not 1 GiB)"], 1.5);
        assert_eq!(
            r.figure,
            "10 live heap growth streaming a 128 MiB table (2048 rows of 64 KiB) with \
             Instance::stream (quick: not 1 GiB)"
        );
        assert_eq!(
            (r.pass, r.target_text().as_str()),
            (Some(true), "<= 4.00 MiB")
        );
        assert_eq!(
            GROUP_COMMIT.row(&[], 20000.0).baseline(5000.0).to_string(),
            "3  group commit: 64 sessions vs 1 session (ours): 20000 commits/s; \
             ours, 1 session: 5000 commits/s; 4.00x (target ratio >= 20.00: FAIL)"
        );
    }
}
