//! Layer 6: hard recovery (ESE's `JetExternalRestore2`), behaviour.md §3. Every check runs
//! before anything is written; then the backed-up logs (and any later contiguous logs in the
//! restore's log directory) are replayed into the streamed database images, which are left
//! clean, without their backup mark and trailer, attachable by any instance.

pub mod chain;
pub(crate) mod checks;

use std::path::{Component, Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::db::{DbFile, Signature, STATE_CLEAN};
use crate::io::{OpenMode, Storage};
use crate::log::reader::{self, LogFile, Tail};
use crate::log::{names, AttachEntry, Framed, LogHeader, Record};
use crate::lsn::Lsn;
use crate::recovery::{Replay, ReplayStop, ReplayTarget, Resolve};
use crate::{Error, Result};

/// Most databases one restore maps (ESE's limit).
pub const MAX_MAP: usize = 14;

/// Where replay stops (behaviour.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// Replay no commit of a later generation.
    Generation(u32),
    /// Replay no commit made after this time.
    Time(SystemTime),
    /// Replay no commit at or past this log position.
    LogPosition(Lsn),
}

/// What to restore (ESE's `JetExternalRestore2` arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSpec {
    /// Checkpoint directory of the restore (kept for ESE's shape; restore ends with clean
    /// databases and writes no checkpoint).
    pub checkpoint_dir: PathBuf,
    /// Directory searched for logs after `gen_high` (roll-forward).
    pub log_dir: PathBuf,
    /// Directory holding the backed-up logs.
    pub backup_log_dir: PathBuf,
    /// First backed-up generation (inclusive).
    pub gen_low: u32,
    /// Last backed-up generation (inclusive).
    pub gen_high: u32,
    /// Log base name (3 characters).
    pub base_name: String,
    /// Original database path -> restored file (which holds the streamed image).
    pub restore_map: Vec<(PathBuf, PathBuf)>,
    /// Point-in-time stop.
    pub stop_at: Option<StopAt>,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreReport {
    /// The restored database files.
    pub databases: Vec<PathBuf>,
    /// Generations replayed, first and last.
    pub gens: (u32, u32),
    /// Commits applied.
    pub commits: u64,
    /// Pages written.
    pub pages_written: u64,
    /// Log bytes replayed.
    pub log_bytes: u64,
    /// Seconds the replay took.
    pub seconds: f64,
    /// Log bytes replayed per second.
    pub log_bytes_per_sec: f64,
    /// Whether a stop point ended the replay early.
    pub stopped: bool,
}

/// Validates the spec (behaviour.md §3, check 1, after the mode check).
fn check_spec(spec: &RestoreSpec) -> Result<()> {
    let bad = spec.gen_low == 0
        || spec.gen_low > spec.gen_high
        || names::check_base_name(&spec.base_name).is_err()
        || spec.restore_map.is_empty()
        || spec.restore_map.len() > MAX_MAP
        || spec
            .restore_map
            .iter()
            .any(|(a, b)| a.as_os_str().is_empty() || b.as_os_str().is_empty());
    if bad {
        return Err(Error::InvalidParameter);
    }
    if spec
        .restore_map
        .iter()
        .any(|(_, to)| to.components().any(|c| matches!(c, Component::ParentDir)))
    {
        return Err(Error::InvalidPath);
    }
    Ok(())
}

struct Mapped {
    target: PathBuf,
    signature: Signature,
    last_page: u32,
}

/// Restores: checks everything, replays, leaves the mapped databases clean.
pub fn external_restore(storage: &dyn Storage, spec: &RestoreSpec) -> Result<RestoreReport> {
    tracing::info!(
        event_id = 204u32,
        gen_low = spec.gen_low,
        gen_high = spec.gen_high,
        "restore started"
    );
    let r = run(storage, spec);
    match &r {
        Ok(rep) => tracing::info!(event_id = 205u32, commits = rep.commits, "restore done"),
        Err(e) => tracing::error!(event_id = 454u32, error = %e, "restore failed"),
    }
    r
}

fn run(storage: &dyn Storage, spec: &RestoreSpec) -> Result<RestoreReport> {
    check_spec(spec)?;
    if spec.restore_map.iter().any(|(_, to)| storage.is_link(to)) {
        // Writing through a link would write outside the paths the spec names.
        return Err(Error::InvalidPath);
    }
    let logs = checks::log_sequence(
        storage,
        &spec.backup_log_dir,
        &spec.base_name,
        spec.gen_low,
        spec.gen_high,
        None,
    )?;
    let sig = logs
        .first()
        .map(|(_, f)| f.header.signature)
        .ok_or(Error::MissingRestoreLogFiles)?;
    let mut mapped = Vec::new();
    let mut needs_gen = 0;
    for (_, target) in &spec.restore_map {
        let img = checks::database_image(
            storage,
            target,
            Some(sig),
            Some((spec.gen_low, spec.gen_high)),
        )?;
        needs_gen = needs_gen.max(img.trailer.backup.gen_high);
        // Replay brings one file of a database up to the logs (it finds it by signature):
        // a second image of the same database would come out unreplayed.
        if mapped
            .iter()
            .any(|m: &Mapped| m.signature == img.header.db_signature || m.target == *target)
        {
            return Err(Error::InvalidParameter.with_detail(format!(
                "{}: the restore map names this database (or file) twice",
                target.display()
            )));
        }
        mapped.push(Mapped {
            target: target.clone(),
            signature: img.header.db_signature,
            last_page: img.trailer.last_page,
        });
    }
    let stop_at = spec.stop_at.map(replay_stop);
    let past_stop = |f: &LogFile| stop_at.is_some_and(|s| passes(s, f));
    // Past the stop point nothing is replayed: later logs are not needed.
    let later = match logs.iter().any(|(_, f)| past_stop(f)) {
        true => Vec::new(),
        false => later_logs(storage, spec, logs.last().map(|(_, f)| f), &past_stop)?,
    };
    let all: Vec<&LogFile> = logs.iter().map(|(_, f)| f).chain(later.iter()).collect();
    let stop = stop_point(stop_at, &all, needs_gen)?;
    let start = Instant::now();
    let page_size = mapped_page_size(storage, &mapped)?;
    // Every check passed: from here on the images are changed. The trailer goes first, so
    // replayed pages past the copy's end land on a plain file; the header keeps its backup
    // mark and dirty state until replay is done, so a failure leaves nothing attachable.
    for m in &mapped {
        let f = storage.open(&m.target, OpenMode::Existing)?;
        f.set_len((m.last_page as u64 + 2) * page_size as u64)?;
        f.sync()?;
    }
    let mut replay = Replay::new(
        MapResolver {
            storage,
            mapped: &mapped,
        },
        stop,
    );
    let mut log_bytes = 0u64;
    for f in &all {
        for r in &f.records {
            replay.apply(r, page_size, &f.header.signature)?;
        }
        log_bytes += f
            .records
            .last()
            .map_or(0, |r: &Framed| r.end.offset() as u64);
    }
    let (mut targets, stats) = replay.finish()?;
    // A mapped database the replayed logs never named still loses its trailer and mark.
    for m in &mapped {
        if !targets.iter().any(|t| t.file.path == m.target) {
            let (file, header) = DbFile::open(storage, &m.target)?;
            targets.push(ReplayTarget {
                file,
                header,
                created: false,
            });
        }
    }
    for t in targets {
        finish_database(t, stats.last_commit)?;
    }
    let databases = mapped.iter().map(|m| m.target.clone()).collect();
    let seconds = start.elapsed().as_secs_f64();
    let last_gen = all.last().map_or(spec.gen_high, |f| f.header.gen);
    Ok(RestoreReport {
        databases,
        gens: (spec.gen_low, last_gen),
        commits: stats.commits,
        pages_written: stats.pages_written,
        log_bytes,
        seconds,
        log_bytes_per_sec: log_bytes as f64 / seconds.max(1e-9),
        stopped: stats.stopped,
    })
}

/// Logs after the backup's last one, in the restore's log directory: archived generations,
/// then `<base>.log`, while each continues the previous one. A log of another stream, or one
/// that does not link to the previous file, ends the search (ESE's warnings +558, +559). A
/// damaged one, or an archived one with no end record (a roll always writes one; only
/// `<base>.log` may end open), is `LogCorruptDuringHardRestore` (-573). A generation missing
/// while a later one of the same stream is there is `MissingCurrentLogFiles` (-565), as ESE
/// answers: replaying up to the gap would drop commits that are on disk, with only a warning.
/// The search also ends after a log `past_stop` says holds a commit past the stop point:
/// replay reads nothing after that commit, so a gap or damage further on costs nothing.
fn later_logs(
    storage: &dyn Storage,
    spec: &RestoreSpec,
    last: Option<&LogFile>,
    past_stop: &dyn Fn(&LogFile) -> bool,
) -> Result<Vec<LogFile>> {
    let mut out: Vec<LogFile> = Vec::new();
    let Some(mut prev) = last.map(|f| f.header.clone()) else {
        return Ok(out);
    };
    loop {
        // No generation follows the last one there is.
        let Some(gen) = prev.gen.checked_add(1) else {
            return Ok(out);
        };
        let archived = names::archived(&spec.log_dir, &spec.base_name, gen);
        let current = names::current(&spec.log_dir, &spec.base_name);
        let (path, is_current) = if storage.exists(&archived) {
            (archived, false)
        } else if storage.exists(&current) {
            (current, true)
        } else {
            refuse_gap(storage, spec, &prev, None)?;
            return Ok(out);
        };
        let f = match reader::read_file(storage, &path) {
            Ok(f) => f,
            Err(Error::LogFileCorrupt) => return Err(Error::LogCorruptDuringHardRestore),
            Err(e) => return Err(e),
        };
        if is_current && f.header.signature == prev.signature && f.header.gen > gen {
            refuse_gap(storage, spec, &prev, Some(f.header.gen))?;
        }
        if f.header.signature != prev.signature
            || f.header.gen != gen
            || f.header.prev_created_ms != prev.created_ms
        {
            if is_current {
                // `<base>.log` stands where the next generation is missing: archived logs of
                // the stream past the gap must not be dropped because it does not continue.
                refuse_gap(storage, spec, &prev, None)?;
            }
            tracing::warn!(path = %path.display(), "later log does not continue the backup's logs; replay ends before it");
            return Ok(out);
        }
        let open = f.tail != Tail::Complete;
        if open && !is_current {
            return Err(Error::LogCorruptDuringHardRestore.with_detail(format!(
                "{}: an archived log with no end record",
                path.display()
            )));
        }
        prev = f.header.clone();
        let done = open || past_stop(&f);
        out.push(f);
        if done {
            return Ok(out);
        }
    }
}

/// `MissingCurrentLogFiles` (-565) if the log after `prev` is missing while a later log of its
/// stream is in the restore's log directory: `<base>.log` of generation `current_gen`, or an
/// archived one. Logs of other streams left there do not count.
fn refuse_gap(
    storage: &dyn Storage,
    spec: &RestoreSpec,
    prev: &LogHeader,
    current_gen: Option<u32>,
) -> Result<()> {
    let missing = prev.gen.saturating_add(1);
    let later = match current_gen {
        Some(g) => Some(g),
        None => archived_or_none(storage, spec)?
            .into_iter()
            .filter(|(g, _)| *g > missing)
            .find(|(_, p)| {
                reader::read_file(storage, p).is_ok_and(|f| f.header.signature == prev.signature)
            })
            .map(|(g, _)| g),
    };
    match later {
        Some(g) => Err(Error::MissingCurrentLogFiles.with_detail(format!(
            "generation {missing} is missing from {} while generation {g} of the same log \
             stream is there: restoring would drop the commits in the logs after the gap \
             (restore without the later logs, by moving them aside, to accept that)",
            spec.log_dir.display()
        ))),
        None => Ok(()),
    }
}

/// The archived logs in the restore's log directory; none if the directory does not exist
/// (yet): it holds no later logs.
fn archived_or_none(storage: &dyn Storage, spec: &RestoreSpec) -> Result<Vec<(u32, PathBuf)>> {
    match names::list_archived(storage, &spec.log_dir, &spec.base_name) {
        Err(e) if e.clone().plain() == Error::FileNotFound => Ok(Vec::new()),
        r => r,
    }
}

/// The stop point in replay's form.
fn replay_stop(s: StopAt) -> ReplayStop {
    match s {
        StopAt::Generation(g) => ReplayStop::AfterGeneration(g),
        StopAt::LogPosition(p) => ReplayStop::AtPosition(p),
        StopAt::Time(t) => ReplayStop::AfterTime(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        ),
    }
}

/// Whether `f` holds a commit past the stop point `stop`.
fn passes(stop: ReplayStop, f: &LogFile) -> bool {
    f.records.iter().any(|r| match r.record {
        Record::Commit { time_ms, .. } => stop.stops(r.start, time_ms),
        _ => false,
    })
}

/// Checks replay's stop point, refusing one before the end the databases need.
fn stop_point(
    stop_at: Option<ReplayStop>,
    logs: &[&LogFile],
    needs_gen: u32,
) -> Result<Option<ReplayStop>> {
    let Some(stop) = stop_at else { return Ok(None) };
    // The images hold every commit of the logs before the first one given, which replay
    // never reads: a stop point that may lie before one of them cannot be honoured. Those
    // commits were made before the first log was created, and lie in earlier generations.
    if let Some(first) = logs.first().map(|f| &f.header).filter(|h| h.gen > 1) {
        let before = match stop {
            ReplayStop::AfterGeneration(g) => g.saturating_add(1) < first.gen,
            ReplayStop::AtPosition(p) => p.gen() < first.gen,
            ReplayStop::AfterTime(t) => t < first.created_ms,
        };
        if before {
            return Err(Error::EndingRestoreLogTooLow.with_detail(format!(
                "the stop point lies before generation {}, the first log given: the backup's \
                 copies hold the commits of the logs before it",
                first.gen
            )));
        }
    }
    let first_stopped = logs
        .iter()
        .flat_map(|f| f.records.iter())
        .find(|r| match r.record {
            Record::Commit { time_ms, .. } => stop.stops(r.start, time_ms),
            _ => false,
        });
    if first_stopped.is_some_and(|r| r.start.gen() <= needs_gen) {
        // The copies hold changes up to their backup's last generation: stopping earlier
        // would leave them inconsistent.
        return Err(Error::EndingRestoreLogTooLow);
    }
    Ok(Some(stop))
}

fn mapped_page_size(storage: &dyn Storage, mapped: &[Mapped]) -> Result<u32> {
    let first = mapped.first().ok_or(Error::InvalidParameter)?;
    let (f, _) = DbFile::open(storage, &first.target)?;
    Ok(f.page_size)
}

/// Replays into the mapped images: a database named by the log is matched by its signature
/// (stronger than its path, which the host may have moved); anything else is skipped.
struct MapResolver<'a> {
    storage: &'a dyn Storage,
    mapped: &'a [Mapped],
}

impl Resolve for MapResolver<'_> {
    fn resolve(
        &mut self,
        entry: &AttachEntry,
        _created: bool,
        _page_size: u32,
        _stream: &Signature,
    ) -> Result<Option<ReplayTarget>> {
        let Some(m) = self.mapped.iter().find(|m| m.signature == entry.signature) else {
            return Ok(None);
        };
        let (file, header) = DbFile::open(self.storage, &m.target)?;
        Ok(Some(ReplayTarget {
            file,
            header,
            created: false,
        }))
    }
}

/// Writes a clean header without the backup mark, naming no log stream. The copy's pages
/// carry the source stream's positions, and the source's log may hold later records of this
/// database (the changes made after the backup); whichever instance attaches the copy, the
/// source's included, must stamp its pages with its own position first, and an attach does
/// so for a header that names another stream or none (design.md, "A database from another
/// log stream").
fn finish_database(t: ReplayTarget, last: Lsn) -> Result<()> {
    let mut h = t.header;
    h.log_signature = crate::db::Signature::NONE;
    h.state = STATE_CLEAN;
    h.backup_mark = None;
    h.gen_min_required = 0;
    h.gen_max_required = 0;
    h.consistent_lsn = last.0;
    t.file.write_header(&h)?;
    t.file.sync()
}

/// Whether `p` stays inside `root` lexically (no `..` climbing above it).
pub(crate) fn inside(root: &Path, p: &Path) -> bool {
    p.starts_with(root) && !p.components().any(|c| matches!(c, Component::ParentDir))
}
