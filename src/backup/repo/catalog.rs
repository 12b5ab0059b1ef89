//! What a repository holds: its complete sets (a valid manifest), its orphans (no manifest:
//! a backup that failed or was killed) and its damaged sets (a manifest that does not check
//! out), and the chains the complete sets form. Readers use only complete sets.

use std::collections::BTreeMap;

use super::name::name_time_ms;
use super::set::RepoSet;
use super::Repository;
use crate::backup::set::BackupManifest;
use crate::restore::StopAt;
use crate::{Error, Result};

/// One name found in a repository.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The set's name.
    pub name: String,
    /// What was found under it.
    pub state: SetState,
    /// When its newest file was written (ms since the epoch): filled for orphans by
    /// [`list_dated`], which prune judges them by; `None` otherwise, or when the store
    /// cannot say.
    pub modified_ms: Option<u64>,
}

/// What a name in a repository holds.
#[derive(Clone, Debug)]
pub enum SetState {
    /// A set with a valid manifest.
    Complete(Box<BackupManifest>),
    /// No manifest: never visible as a set, removed by prune after its grace period.
    Orphan,
    /// A manifest that cannot be used, with the reason; prune leaves it for a person.
    Damaged(Error),
}

impl Listed {
    /// The manifest of a complete set.
    pub fn manifest(&self) -> Option<&BackupManifest> {
        match &self.state {
            SetState::Complete(m) => Some(m),
            _ => None,
        }
    }
}

/// Every name in `repo` with what it holds, in name order (which is time order for names
/// the engine made). Reads one manifest per set, several at once.
///
/// # Errors
///
/// The store's errors listing the repository or reading a manifest (wrong credentials,
/// unknown bucket, endpoint down, a timeout), each naming the store. A manifest that could
/// not be read is not taken for a damaged one: a set read as missing or damaged because the
/// store failed once would let prune remove the chains it anchors and `latest` pick an
/// older chain.
pub fn list(repo: &dyn Repository) -> Result<Vec<Listed>> {
    let names = repo.set_names()?;
    let read = read_manifests(repo, &names)?;
    let mut out = Vec::with_capacity(names.len());
    for (name, read) in names.into_iter().zip(read) {
        let state = match read {
            Ok(m) => SetState::Complete(Box::new(m)),
            Err(e) => match e.clone().plain() {
                Error::FileNotFound => SetState::Orphan,
                // What the manifest's own checks answer: it was read, and it is bad.
                Error::InvalidBackup | Error::InvalidPath => SetState::Damaged(e),
                _ => return Err(e),
            },
        };
        out.push(Listed {
            name,
            state,
            modified_ms: None,
        });
    }
    Ok(out)
}

/// [`list`], with each orphan's [`Listed::modified_ms`] asked of the store (one more
/// listing per orphan). An orphan still being written, or whose killed writer's last upload
/// is still landing, shows a recent time: prune leaves it within its grace period, and an
/// operator can tell it from one long dead.
///
/// # Errors
///
/// [`list`]'s, and the store's errors listing an orphan's files.
pub fn list_dated(repo: &dyn Repository) -> Result<Vec<Listed>> {
    let mut sets = list(repo)?;
    for s in sets
        .iter_mut()
        .filter(|s| matches!(s.state, SetState::Orphan))
    {
        s.modified_ms = repo.modified_ms(&s.name)?;
    }
    Ok(sets)
}

/// Manifests read at once: on an object store each read is a request or two of fixed
/// latency, so a repository of many sets is listed in a fraction of the serial time.
const READERS: usize = 8;

/// The manifest of each set of `names`, in their order, read by up to [`READERS`] threads
/// (`InternalError` if one of them panicked).
fn read_manifests(repo: &dyn Repository, names: &[String]) -> Result<Vec<Result<BackupManifest>>> {
    let read = |name: &String| RepoSet::open(repo, name).and_then(|s| s.manifest().cloned());
    let threads = READERS.min(names.len());
    if threads <= 1 {
        return Ok(names.iter().map(read).collect());
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut found: Vec<(usize, Result<BackupManifest>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(name) = names.get(i) else {
                            return mine;
                        };
                        mine.push((i, read(name)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                // A reader that panicked gave nothing: the count below tells.
                w.join().unwrap_or_default()
            })
            .collect()
    });
    if found.len() != names.len() {
        return Err(Error::InternalError.with_detail("a manifest reader panicked"));
    }
    found.sort_by_key(|(i, _)| *i);
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

/// The chain that restores the set `name`: its full (or copy) set first, then each
/// incremental or differential up to it, found through the parents the manifests name.
///
/// # Errors
///
/// `InvalidParameter` (-1003) if no set is named `name`; `FileNotFound` (-1811) if it has
/// no manifest (an orphan); its manifest's error if that is damaged; `MissingFullBackup`
/// (-560) if a parent is not among the complete sets.
pub fn chain_of<'a>(sets: &'a [Listed], name: &str) -> Result<Vec<&'a Listed>> {
    let at = match sets.iter().find(|s| s.name == name) {
        Some(s) if s.manifest().is_some() => s,
        // The reason it cannot be used is the answer: its manifest's own error.
        Some(Listed {
            state: SetState::Damaged(e),
            ..
        }) => return Err(e.clone()),
        Some(_) => {
            return Err(Error::FileNotFound.with_detail(format!(
                "{name}: no manifest: the set is incomplete (its backup did not finish)"
            )))
        }
        None => {
            return Err(Error::InvalidParameter.with_detail(format!("no backup set named {name}")))
        }
    };
    let (mut chain, broken) = walk(sets, at);
    if let Some(e) = broken {
        return Err(e);
    }
    chain.reverse();
    Ok(chain)
}

/// What the complete set `name` still has of its chain, newest first: itself and the sets
/// it continues, as far as each parent is a complete set of `sets` (its whole chain when
/// nothing is missing). Empty if `name` is not a complete set.
pub fn links_of<'a>(sets: &'a [Listed], name: &str) -> Vec<&'a Listed> {
    sets.iter()
        .find(|s| s.name == name && s.manifest().is_some())
        .map_or_else(Vec::new, |s| walk(sets, s).0)
}

/// `start` and the sets it continues, newest first, up the parents its manifests name; with
/// the error that ended the walk before a full or copy set, if one did.
fn walk<'a>(sets: &'a [Listed], start: &'a Listed) -> (Vec<&'a Listed>, Option<Error>) {
    let mut at = start;
    let mut chain = vec![at];
    // Each step goes to an older set, so the walk ends; the bound guards a hostile cycle.
    while let Some(m) = at.manifest().filter(|m| m.kind.incremental()) {
        if chain.len() > sets.len() {
            let e = Error::InvalidBackupSequence
                .with_detail(format!("the parents of {} form a cycle", start.name));
            return (chain, Some(e));
        }
        match parent(sets, m) {
            Some(p) => at = p,
            None => {
                let e = Error::MissingFullBackup.with_detail(format!(
                    "{}: its parent backup {} is not a complete set of this repository",
                    at.name,
                    m.parent_id.as_deref().unwrap_or("(none recorded)")
                ));
                return (chain, Some(e));
            }
        }
        chain.push(at);
    }
    (chain, None)
}

/// The complete set an incremental or differential continues.
fn parent<'a>(sets: &'a [Listed], m: &BackupManifest) -> Option<&'a Listed> {
    find(sets, m.parent_id.as_deref()?, &m.log_signature)
}

/// The complete set whose manifest id is `id`, of the log stream `log_signature`.
fn find<'a>(sets: &'a [Listed], id: &str, log_signature: &str) -> Option<&'a Listed> {
    sets.iter().find(|s| {
        s.manifest()
            .is_some_and(|p| p.id == id && p.log_signature == log_signature)
    })
}

/// The chain a new incremental or differential of `repository` continues: the complete set
/// whose id is `parent_id` (the last full or incremental the source's headers record), of
/// the log stream `log_signature` (hex), with its whole chain, oldest first. A backup that
/// continues anything else is refused before anything is written: it would truncate the
/// source's logs into a set no chain restores.
///
/// # Errors
///
/// `MissingFullBackup` (-560), naming the parent and `repository`, if no such set is there
/// or its own chain is broken.
pub fn continued_chain<'a>(
    sets: &'a [Listed],
    parent_id: &str,
    log_signature: &str,
    repository: &str,
) -> Result<Vec<&'a Listed>> {
    let Some(parent) = find(sets, parent_id, log_signature) else {
        return Err(Error::MissingFullBackup.with_detail(format!(
            "{repository} holds no complete set {parent_id} (the last full or incremental \
             backup, which this one would continue): take a full backup into it first"
        )));
    };
    chain_of(sets, &parent.name).map_err(|e| {
        Error::MissingFullBackup.with_detail(format!(
            "{repository}: the chain of {} ({parent_id}, which this backup would continue) \
             cannot be restored ({}): take a full backup into it first",
            parent.name,
            e.detail_or_message()
        ))
    })
}

/// The complete sets, newest first (by the time each backup began, then by name).
pub fn newest_first(sets: &[Listed]) -> Vec<&Listed> {
    let mut complete: Vec<&Listed> = sets.iter().filter(|s| s.manifest().is_some()).collect();
    complete.sort_by_key(|s| {
        let t = s.manifest().map_or(0, |m| m.mark_time_ms);
        std::cmp::Reverse((t, s.name.clone()))
    });
    complete
}

/// Two complete sets of one log stream whose times disagree with their places in its log:
/// the first lies later in the log (a higher mark) but began earlier. Along one stream the
/// marks grow with time, so one of the two was made under a wrong clock (one that ran ahead
/// and was set back, or ran behind), or the instance was put back to an earlier state and
/// went on. Which of them is newer, the manifests cannot tell; set names and `latest`,
/// which go by time, may be wrong about it.
pub fn misordered(sets: &[Listed]) -> Option<(&Listed, &Listed)> {
    let mut streams: BTreeMap<&str, Vec<(&Listed, &BackupManifest)>> = BTreeMap::new();
    for s in sets {
        if let Some(m) = s.manifest() {
            streams.entry(&m.log_signature).or_default().push((s, m));
        }
    }
    streams.into_values().find_map(|mut stream| {
        stream.sort_by_key(|(_, m)| (m.mark, m.mark_time_ms));
        // The set that began last among those earlier in the log.
        let mut last_begun = stream.first()?;
        for at in &stream {
            if at.1.mark_time_ms < last_begun.1.mark_time_ms {
                return Some((at.0, last_begun.0));
            }
            last_begun = at;
        }
        None
    })
}

/// A set of the stream of `newest` later in its log than it: `latest`, by time, would not
/// be the newest of its stream ([`misordered`]).
fn later_in_log<'a>(sets: &'a [Listed], newest: &BackupManifest) -> Option<&'a Listed> {
    sets.iter().find(|s| {
        s.manifest()
            .is_some_and(|m| m.log_signature == newest.log_signature && m.mark > newest.mark)
    })
}

/// The chain of the newest complete set: what `latest` restores. It never falls back to an
/// older chain: restoring older data than the repository holds, without a word, is worse
/// than a refusal.
///
/// # Errors
///
/// `MissingFullBackup` (-560) if there is no complete set; `InvalidBackupSequence` (-521)
/// if a set of the newest set's log stream lies later in that log ([`misordered`]); the
/// damaged set's error if a damaged set may be newer than the newest complete set (its
/// manifest cannot say when it was made, so `latest` would not be the latest); the newest
/// set's chain error if its
/// chain is broken (-560 for a missing parent), with a detail saying that naming a set
/// restores an older chain.
pub fn latest_chain(sets: &[Listed]) -> Result<Vec<&Listed>> {
    let Some(newest) = newest_first(sets).into_iter().next() else {
        return Err(Error::MissingFullBackup.with_detail(
            "the repository holds no complete set (a full set and its incrementals)",
        ));
    };
    let time = newest.manifest().map_or(0, |m| m.mark_time_ms);
    if let Some((s, e)) =
        damaged(sets).find(|(s, _)| name_time_ms(&s.name).is_none_or(|t| t >= time))
    {
        return Err(e.clone().with_detail(format!(
            "{}: a damaged set that may be newer than the latest complete chain, so `latest` \
             is not known ({}); name the set to restore, or remove the damaged one",
            s.name,
            e.detail_or_message()
        )));
    }
    if let Some(later) = newest.manifest().and_then(|m| later_in_log(sets, m)) {
        return Err(Error::InvalidBackupSequence.with_detail(format!(
            "{} began last, but {} lies later in the same log: one was made under a wrong \
             clock, or the instance was put back to an earlier state, so `latest` is not \
             known; name the set to restore",
            newest.name, later.name
        )));
    }
    chain_of(sets, &newest.name).map_err(|e| {
        let why = e.detail_or_message();
        e.with_detail(format!(
            "{}: the newest complete set cannot be restored ({why}), so `latest` is refused; \
             naming a set restores an older chain",
            newest.name
        ))
    })
}

/// The chain `latest` restores when replay stops at `stop`: the newest complete set whose
/// chain can stop there. Replay cannot take back what an image holds, so the chain's first
/// set (the full or copy whose images the restore starts from) must hold nothing past the
/// stop point: it began at or before a stop time, or its logs end at or before a stop
/// generation, or before a stop position's generation, of the newest set's log stream. Any
/// chain that can stop there restores the same state; the newest one reaches furthest.
/// Before it chooses, it refuses what [`latest_chain`] refuses, and a broken chain newer
/// than the one chosen refuses too: an older chain is never taken in its place unsaid.
///
/// # Errors
///
/// [`latest_chain`]'s; a newer set's chain error; `EndingRestoreLogTooLow` (-553) if no
/// complete set's chain starts early enough.
pub fn latest_chain_for(sets: &[Listed], stop: StopAt) -> Result<Vec<&Listed>> {
    let newest = latest_chain(sets)?;
    let stream = newest
        .last()
        .and_then(|s| s.manifest())
        .map(|m| m.log_signature.clone())
        .unwrap_or_default();
    let fits = |chain: &[&Listed]| {
        chain
            .first()
            .and_then(|s| s.manifest())
            .is_some_and(|root| starts_before(root, stop, &stream))
    };
    if fits(&newest) {
        return Ok(newest);
    }
    for s in newest_first(sets).into_iter().skip(1) {
        let chain = chain_of(sets, &s.name).map_err(|e| {
            let why = e.detail_or_message();
            e.with_detail(format!(
                "{}: a set newer than the chain the stop point needs cannot be restored \
                 ({why}); name the set to restore",
                s.name
            ))
        })?;
        if fits(&chain) {
            return Ok(chain);
        }
    }
    Err(Error::EndingRestoreLogTooLow.with_detail(
        "every chain of the repository starts after the stop point: its full backup's \
         images hold commits made after it",
    ))
}

/// Whether the images of `root`, a chain's first set, hold nothing past `stop`, of the log
/// stream `stream` (hex) for a generation or a position.
fn starts_before(root: &BackupManifest, stop: StopAt, stream: &str) -> bool {
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    match stop {
        StopAt::Time(t) => root.mark_time_ms <= ms(t),
        StopAt::Generation(g) => root.log_signature == stream && root.gen_high <= g,
        StopAt::LogPosition(p) => root.log_signature == stream && root.gen_high < p.gen(),
    }
}

/// The damaged sets with their errors.
pub fn damaged(sets: &[Listed]) -> impl Iterator<Item = (&Listed, &Error)> {
    sets.iter().filter_map(|s| match &s.state {
        SetState::Damaged(e) => Some((s, e)),
        _ => None,
    })
}

/// The names of the sets whose objects the set `m` references (logs an earlier set holds).
pub fn references(m: &BackupManifest) -> impl Iterator<Item = &str> {
    m.files()
        .filter_map(|f| f.stored.and_then(|s| s.set.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::repo::history::{signature, History};

    /// F, I, F, I: sets 00001 to 00004.
    fn two_chains() -> History {
        History::of(&[4, 0, 4, 0])
    }

    fn names(chain: &[&Listed]) -> Vec<String> {
        chain.iter().map(|s| s.name.clone()).collect()
    }

    /// The newest full is gone: `latest` refuses rather than restore the older F, I.
    #[test]
    fn latest_refuses_when_the_newest_set_lost_its_parent() {
        let mut h = two_chains();
        assert_eq!(names(&latest_chain(&h.sets).unwrap()), ["00003", "00004"]);
        h.sets.retain(|s| s.name != "00003");
        let e = latest_chain(&h.sets).unwrap_err();
        assert_eq!(e.code(), -560, "{e}");
        let detail = e.detail_or_message();
        assert!(detail.starts_with("00004: "), "{detail}");
        assert!(
            detail.contains("naming a set restores an older chain"),
            "{detail}"
        );
        assert_eq!(
            names(&chain_of(&h.sets, "00002").unwrap()),
            ["00001", "00002"]
        );
    }

    /// `latest` with a stop point: the newest chain whose full holds nothing past it (F1 I1
    /// F2 I2, began at 1 to 4 s, logs 1-2, 3-4, 5-6, 7-8).
    #[test]
    fn latest_for_a_stop_point_is_the_newest_chain_that_starts_before_it() {
        use crate::lsn::Lsn;
        use std::time::{Duration, UNIX_EPOCH};
        let mut h = two_chains();
        for (i, s) in h.sets.iter_mut().enumerate() {
            if let SetState::Complete(m) = &mut s.state {
                (m.gen_low, m.gen_high) = (2 * i as u32 + 1, 2 * i as u32 + 2);
            }
        }
        let at = |ms| StopAt::Time(UNIX_EPOCH + Duration::from_millis(ms));
        let chain = |stop| names(&latest_chain_for(&h.sets, stop).unwrap());
        let (second, first) = (["00003", "00004"], ["00001", "00002"]);
        assert_eq!(chain(at(3500)), second);
        assert_eq!(chain(at(3000)), second);
        assert_eq!(chain(at(2999)), first);
        assert_eq!(chain(at(1000)), first);
        assert_eq!(chain(StopAt::Generation(6)), second);
        assert_eq!(chain(StopAt::Generation(5)), first);
        assert_eq!(chain(StopAt::LogPosition(Lsn::new(7, 0))), second);
        assert_eq!(chain(StopAt::LogPosition(Lsn::new(6, 9))), first);
        for stop in [
            at(999),
            StopAt::Generation(1),
            StopAt::LogPosition(Lsn::new(2, 0)),
        ] {
            let e = latest_chain_for(&h.sets, stop).unwrap_err();
            assert_eq!(e.code(), -553, "{stop:?}: {e}");
        }
        // A chain that may hold the stop point lost its full: refused, not the chain
        // before it, which may end before the stop point; a newer chain that fits is used.
        let mut three = History::of(&[4, 0, 4, 0, 4, 0]);
        three.sets.retain(|s| s.name != "00003");
        for t in [4500, 2500] {
            let e = latest_chain_for(&three.sets, at(t)).unwrap_err();
            assert_eq!(e.code(), -560, "{e}");
            let detail = e.detail_or_message();
            assert!(detail.starts_with("00004: "), "{detail}");
            assert!(detail.contains("name the set to restore"), "{detail}");
        }
        assert_eq!(
            names(&latest_chain_for(&three.sets, at(5000)).unwrap()),
            ["00005", "00006"]
        );
    }

    /// Moves set `i` of `h` to began at `t_ms` (its place in the log stays).
    fn began_at(h: &mut History, i: usize, t_ms: u64) {
        if let SetState::Complete(m) = &mut h.sets[i].state {
            m.mark_time_ms = t_ms;
        }
    }

    /// F, I, F, I with the first two made while the clock ran a day ahead: by time they are
    /// the newest, by the log the oldest. `latest` refuses instead of restoring them.
    #[test]
    fn latest_refuses_when_times_disagree_with_the_log() {
        let mut h = two_chains();
        assert!(misordered(&h.sets).is_none());
        for i in [0, 1] {
            began_at(&mut h, i, 86_400_000 + i as u64);
        }
        let (later, began_after) = misordered(&h.sets).unwrap();
        assert_eq!(
            (later.name.as_str(), began_after.name.as_str()),
            ("00003", "00002")
        );
        let e = latest_chain(&h.sets).unwrap_err();
        assert_eq!(e.code(), -521, "{e}");
        let detail = e.detail_or_message();
        assert!(detail.starts_with("00002 began last, but 0000"), "{detail}");
        assert!(detail.contains("name the set to restore"), "{detail}");
    }

    /// Times out of order among old sets only: the newest set began last and lies last in
    /// the log, so `latest` is known.
    #[test]
    fn latest_is_known_when_only_older_sets_disagree() {
        let mut h = two_chains();
        began_at(&mut h, 0, 2500);
        assert!(misordered(&h.sets).is_some());
        assert_eq!(names(&latest_chain(&h.sets).unwrap()), ["00003", "00004"]);
    }

    /// Not there, of another log stream, or there with its own parent gone: each is
    /// refused with -560, naming the parent and the repository.
    #[test]
    fn an_incremental_whose_parent_is_not_there_is_refused() {
        let mut h = two_chains();
        let chain = continued_chain(&h.sets, "id4", &signature(), "/backups").unwrap();
        assert_eq!(names(&chain), ["00003", "00004"]);
        let other = "11".repeat(16);
        for (id, sig) in [("id9", signature()), ("id4", other)] {
            let e = continued_chain(&h.sets, id, &sig, "/backups").unwrap_err();
            assert_eq!(e.code(), -560, "{e}");
            let detail = e.detail_or_message();
            assert!(
                detail.contains(id) && detail.contains("/backups"),
                "{detail}"
            );
            assert!(detail.contains("take a full backup"), "{detail}");
        }
        h.sets.retain(|s| s.name != "00003");
        let e = continued_chain(&h.sets, "id4", &signature(), "/backups").unwrap_err();
        assert_eq!(e.code(), -560, "{e}");
        assert!(e.detail_or_message().contains("id3"), "{e}");
    }
}
