//! Retention: which sets of a repository may go. A set goes only if no kept chain needs
//! it: kept are the newest complete set (what `latest` restores, whatever the retention
//! says, so a prune never leaves a repository without it) and the newest full or incremental
//! (what the next incremental continues) with every set that starts from the same full (whose
//! logs that incremental may reference), the newest `keep_full` full sets
//! with every set that continues them, and every set begun within `keep_within`; needed are
//! the kept sets, every set of their chains, and every set whose objects a needed set
//! references (a log stored once and referenced by later sets), with that set's chain in
//! turn. Orphans (names without a manifest) go once older than the grace period, unless a
//! needed set references their objects; damaged sets are never removed automatically.

use std::collections::BTreeSet;

use super::catalog::{self, Listed, SetState};
use super::name::name_time_ms;
use super::Repository;
use crate::backup::set::BackupKind;
use crate::{Error, Result};

/// How long an orphan is left alone by default: a backup still running has no manifest
/// yet, and a day is longer than any backup.
pub const ORPHAN_GRACE_MS: u64 = 24 * 3600 * 1000;

/// What to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest N full sets and everything that continues them.
    pub keep_full: Option<usize>,
    /// Keep every set begun within this many ms of now.
    pub keep_within_ms: Option<u64>,
    /// Remove orphans older than this.
    pub orphan_grace_ms: u64,
}

/// What [`plan`] decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Complete sets that stay.
    pub keep: Vec<String>,
    /// Complete sets to remove.
    pub remove: Vec<String>,
    /// Orphans to remove (older than the grace period).
    pub orphans: Vec<String>,
    /// Names left alone: damaged sets, orphans still within their grace period, and orphans
    /// whose objects a needed set references.
    pub left: Vec<String>,
    /// Why no complete set is removed, when none is: a damaged set, or sets whose times
    /// disagree with their places in the log ([`catalog::misordered`]).
    pub held_back: Option<String>,
}

/// Decides what a prune removes from `sets` at `now_ms`. The newest complete set and
/// everything it needs always stay, and so does the newest full or incremental with its
/// chain (what the next incremental continues): a `keep_within` window that every set has
/// aged out of (backups paused, the pruning host's clock ahead) would otherwise remove them
/// all. An
/// orphan a needed set references is left, whatever its age: its objects are that set's
/// logs. While a damaged set is there, or sets whose times disagree with their places in
/// the log, it removes orphans only ([`PrunePlan::held_back`] says why).
///
/// # Errors
///
/// `InvalidParameter` (-1003) when neither `keep_full` nor `keep_within_ms` is given, or
/// `keep_full` is 0: a prune must say what to keep.
pub fn plan(sets: &[Listed], r: &Retention, now_ms: u64) -> Result<PrunePlan> {
    if r.keep_full.is_none() && r.keep_within_ms.is_none() || r.keep_full == Some(0) {
        return Err(Error::InvalidParameter.with_detail(
            "prune needs --keep-full N (N >= 1) or --keep-within DURATION: it never removes every set",
        ));
    }
    let held_back = held_back(sets);
    let newest = catalog::newest_first(sets);
    let roots: BTreeSet<&str> = newest
        .iter()
        .filter(|s| s.manifest().is_some_and(|m| m.kind == BackupKind::Full))
        .take(r.keep_full.unwrap_or(0))
        .map(|s| s.name.as_str())
        .collect();
    let mut needed: BTreeSet<String> = BTreeSet::new();
    // Whatever the window: the newest set (what `latest` restores); the newest full or
    // incremental (what the next incremental continues, when the newest set is a copy or a
    // differential, which no incremental continues); and the newest set whose whole chain
    // is here (what a restore by name still reaches when the newest sets lost a parent).
    let continued = newest.iter().find(|s| {
        s.manifest()
            .is_some_and(|m| matches!(m.kind, BackupKind::Full | BackupKind::Incremental))
    });
    let restorable = newest
        .iter()
        .find(|s| catalog::chain_of(sets, &s.name).is_ok());
    let mut todo: Vec<String> = newest
        .first()
        .into_iter()
        .chain(continued)
        .chain(restorable)
        .map(|s| s.name.clone())
        .collect();
    // An incremental running while this prune does continues `continued`, and may reference
    // the logs of any set that starts from the same full (`reusable_logs` of the backup
    // run). It can publish, unseen by this plan, before the removals, and truncate the
    // source's copies of those logs: every set of that group stays.
    let root_of = |name: &str| {
        catalog::chain_of(sets, name)
            .ok()
            .and_then(|c| c.first().map(|s| s.name.clone()))
    };
    if let Some(root) = continued.and_then(|c| root_of(&c.name)) {
        todo.extend(
            newest
                .iter()
                .filter(|s| root_of(&s.name).as_deref() == Some(root.as_str()))
                .map(|s| s.name.clone()),
        );
    }
    for s in &newest {
        let m = s.manifest().ok_or(Error::InternalError)?;
        let recent = r
            .keep_within_ms
            .is_some_and(|w| m.mark_time_ms.saturating_add(w) >= now_ms);
        let continues_root = catalog::chain_of(sets, &s.name)
            .is_ok_and(|c| c.iter().any(|x| roots.contains(x.name.as_str())));
        if recent || continues_root {
            todo.push(s.name.clone());
        }
    }
    while let Some(name) = todo.pop() {
        if !needed.insert(name.clone()) {
            continue;
        }
        // A kept set whose chain is broken still keeps what it has of it.
        for link in catalog::links_of(sets, &name) {
            todo.push(link.name.clone());
            if let Some(m) = link.manifest() {
                todo.extend(catalog::references(m).map(str::to_string));
            }
        }
        if let Some(m) = sets
            .iter()
            .find(|s| s.name == name)
            .and_then(Listed::manifest)
        {
            todo.extend(catalog::references(m).map(str::to_string));
        }
    }
    let mut out = PrunePlan::default();
    for s in sets {
        match &s.state {
            SetState::Complete(_) if needed.contains(&s.name) || held_back.is_some() => {
                out.keep.push(s.name.clone())
            }
            SetState::Complete(_) => out.remove.push(s.name.clone()),
            // A needed set references its objects: they are that set's logs, manifest or not.
            SetState::Orphan if needed.contains(&s.name) => out.left.push(s.name.clone()),
            SetState::Orphan if orphan_expired(s, r.orphan_grace_ms, now_ms) => {
                out.orphans.push(s.name.clone())
            }
            SetState::Orphan | SetState::Damaged(_) => out.left.push(s.name.clone()),
        }
    }
    out.held_back = held_back;
    Ok(out)
}

/// Why a prune removes no complete set (orphans still go), if it must not:
/// - a damaged set's chain and references cannot be read, and it may depend on any older set;
/// - sets whose times disagree with their places in the log leave "newest" unknown, and
///   with it which fulls and which window to keep.
fn held_back(sets: &[Listed]) -> Option<String> {
    if let Some((s, e)) = catalog::damaged(sets).next() {
        return Some(format!(
            "{} is damaged ({}): no complete set is removed while it is there",
            s.name,
            e.detail_or_message()
        ));
    }
    catalog::misordered(sets).map(|(later, began_after)| {
        format!(
            "{} lies later in the log than {} but began earlier (a wrong clock, or an instance \
             put back to an earlier state): no complete set is removed until one of them is",
            later.name, began_after.name
        )
    })
}

/// An orphan whose name carries no time is never old enough: it may not be ours. Its age
/// is from its newest file, when the store says (a backup still uploading keeps writing),
/// else from its name (when its backup began).
fn orphan_expired(s: &Listed, grace_ms: u64, now_ms: u64) -> bool {
    let Some(began) = name_time_ms(&s.name) else {
        return false;
    };
    let last = s.modified_ms.map_or(began, |m| m.max(began));
    last.saturating_add(grace_ms) <= now_ms
}

/// Plans a prune of `repo` and carries it out: complete sets first, newest first, each
/// set's manifest before its other files. Returns the plan with the objects removed.
///
/// # Errors
///
/// [`plan`]'s, and the store's errors listing or removing; a removal that fails stops the
/// prune (what was removed stays removed; what was left is still whole or an orphan).
pub fn prune(repo: &dyn Repository, r: &Retention, now_ms: u64) -> Result<(PrunePlan, u64)> {
    let sets = catalog::list_dated(repo)?;
    let p = plan(&sets, r, now_ms)?;
    // A set goes before the sets it continues or references (all older): a prune cut short
    // then leaves no complete set whose parent or logs are gone.
    let complete: Vec<&String> = catalog::newest_first(&sets)
        .into_iter()
        .map(|s| &s.name)
        .filter(|n| p.remove.contains(n))
        .collect();
    let mut removed = 0;
    for name in complete.into_iter().chain(&p.orphans) {
        removed += repo.remove_set(name)?;
        tracing::info!(repository = %repo.location(), set = %name, "backup set pruned");
    }
    Ok((p, removed))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::backup::repo::history::{kind, signature, History};

    /// What a prune step of the property test keeps: 5 and 6 the newest two and one fulls,
    /// 7 one full and a window, 8 a window alone.
    fn retention(prune_now: u8) -> Retention {
        Retention {
            keep_full: match prune_now {
                5 => Some(2),
                6 | 7 => Some(1),
                _ => None,
            },
            keep_within_ms: (prune_now >= 7).then_some(3500),
            orphan_grace_ms: ORPHAN_GRACE_MS,
        }
    }

    /// The names of the newest complete set's chain.
    fn newest_chain(sets: &[Listed]) -> Vec<String> {
        let newest = catalog::newest_first(sets);
        let Some(s) = newest.first() else {
            return Vec::new();
        };
        let chain = catalog::chain_of(sets, &s.name).unwrap_or_default();
        chain.iter().map(|x| x.name.clone()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// After every prune, every set still there restores (its whole chain is there) and
        /// everything a remaining set references is there; the newest complete set and its
        /// chain, the newest `keep_full` fulls and the sets of the window stay, and so does
        /// the set the next incremental would continue. A prune may
        /// come after a pause of up to 5 s, longer than the 3.5 s window: with a window
        /// alone, every set has then aged out of it.
        #[test]
        fn prunes_never_break_a_kept_chain(
            steps in proptest::collection::vec(
                (any::<u8>(), any::<bool>(), 0u8..9, 0u64..6), 1..60
            )
        ) {
            let mut h = History::new();
            for (k, reference, prune_now, pause) in steps {
                h.add(kind(k), reference);
                if prune_now < 5 {
                    continue;
                }
                let r = retention(prune_now);
                let now = (h.next + pause) * 1000;
                let p = plan(&h.sets, &r, now).unwrap();
                let fulls: Vec<String> = catalog::newest_first(&h.sets)
                    .iter()
                    .filter(|s| s.manifest().is_some_and(|m| m.kind == BackupKind::Full))
                    .take(r.keep_full.unwrap_or(0))
                    .map(|s| s.name.clone())
                    .collect();
                let latest = newest_chain(&h.sets);
                prop_assert!(!latest.is_empty() || h.sets.is_empty());
                let continues = |sets: &[Listed]| {
                    h.last.as_ref().is_some_and(|last| {
                        catalog::continued_chain(sets, last, &signature(), "repo").is_ok()
                    })
                };
                let could_continue = continues(&h.sets);
                // What an incremental running meanwhile references (it may publish before
                // the removals, unseen by the plan).
                let referenced = h.last.as_ref().and_then(|last| h.newest_of_chain(last));
                h.sets.retain(|s| !p.remove.contains(&s.name));
                if let Some(r) = &referenced {
                    prop_assert!(!p.remove.contains(r), "{r}, which a running incremental may reference, pruned: {:?}", p);
                }
                prop_assert_eq!(continues(&h.sets), could_continue, "the next incremental's parent went: {:?}", r);
                for f in fulls.iter().chain(&latest) {
                    prop_assert!(h.sets.iter().any(|s| &s.name == f), "{f} pruned: {r:?}");
                }
                prop_assert_eq!(newest_chain(&h.sets), latest);
                for s in &h.sets {
                    let m = s.manifest().unwrap();
                    let chain = catalog::chain_of(&h.sets, &s.name);
                    prop_assert!(chain.is_ok(), "{} lost its chain", s.name);
                    for r in catalog::references(m) {
                        prop_assert!(h.sets.iter().any(|x| x.name == r), "{} lost {r}", s.name);
                    }
                }
                if let Some(w) = r.keep_within_ms {
                    for s in &p.remove {
                        let t = s.parse::<u64>().unwrap() * 1000;
                        prop_assert!(t + w < now, "{s} was within the window");
                    }
                }
            }
        }
    }

    #[test]
    fn a_prune_must_keep_something() {
        let r = Retention {
            keep_full: None,
            keep_within_ms: None,
            orphan_grace_ms: 0,
        };
        assert_eq!(plan(&[], &r, 0).unwrap_err().code(), -1003);
    }

    #[test]
    fn orphans_go_after_their_grace_only() {
        let sets = vec![
            Listed {
                name: "20261201T000000.000Z-full-0000".into(),
                state: SetState::Orphan,
                modified_ms: None,
            },
            Listed {
                name: "not-ours".into(),
                state: SetState::Orphan,
                modified_ms: None,
            },
        ];
        let t = name_time_ms(&sets[0].name).unwrap();
        let r = Retention {
            keep_full: Some(1),
            keep_within_ms: None,
            orphan_grace_ms: 1000,
        };
        assert!(plan(&sets, &r, t + 999).unwrap().orphans.is_empty());
        let p = plan(&sets, &r, t + 1000).unwrap();
        assert_eq!(p.orphans, vec![sets[0].name.clone()]);
        assert_eq!(p.left, vec!["not-ours".to_string()]);
        // A backup still writing: its newest file is recent, whatever its name says.
        let mut running = sets.clone();
        running[0].modified_ms = Some(t + 5000);
        assert!(plan(&running, &r, t + 5999).unwrap().orphans.is_empty());
        assert_eq!(plan(&running, &r, t + 6000).unwrap().orphans.len(), 1);
    }

    #[test]
    fn a_damaged_set_stops_the_removal_of_complete_sets() {
        let mut h = History::of(&[4, 0, 4, 0]);
        let r = Retention {
            keep_full: Some(1),
            keep_within_ms: None,
            orphan_grace_ms: 0,
        };
        assert_eq!(plan(&h.sets, &r, 10_000).unwrap().remove.len(), 2);
        h.sets.push(Listed {
            name: "00009".into(),
            state: SetState::Damaged(Error::InvalidBackup),
            modified_ms: None,
        });
        let p = plan(&h.sets, &r, 10_000).unwrap();
        assert!(p.remove.is_empty(), "{p:?}");
        assert_eq!(p.left, vec!["00009".to_string()]);
        assert!(p.held_back.unwrap().starts_with("00009 is damaged"));
        // Nor is `latest` known while a damaged set may be newer.
        assert_eq!(catalog::latest_chain(&h.sets).unwrap_err().code(), -526);
    }

    /// F, I1, I2 with I1's manifest lost: `latest` is refused, and F is the newest set a
    /// restore still reaches. A window every set aged out of keeps it; F, I1, I2, I3 with F
    /// lost keeps I1, which I3 still continues.
    #[test]
    fn a_broken_newest_chain_keeps_what_still_restores_and_what_it_has() {
        let mut h = History::of(&[4, 0, 0]);
        h.sets[1].state = SetState::Orphan;
        assert_eq!(catalog::latest_chain(&h.sets).unwrap_err().code(), -560);
        let p = plan(&h.sets, &WINDOW, 100_000).unwrap();
        assert_eq!(p.keep, ["00001", "00003"], "{p:?}");

        let mut h = History::of(&[4, 0, 0, 0]);
        h.sets.remove(0);
        let p = plan(&h.sets, &WINDOW, 100_000).unwrap();
        assert_eq!(p.keep, ["00002", "00003", "00004"], "{p:?}");
    }

    /// F, I, F, I with the first full made while the clock ran a day ahead: by time it is
    /// the newest full, and `--keep-full 1` would keep it and remove the chain the instance
    /// continues. No complete set goes until the sets agree.
    #[test]
    fn sets_whose_times_disagree_with_the_log_stop_the_removal_of_complete_sets() {
        let mut h = History::of(&[4, 0, 4, 0]);
        if let SetState::Complete(m) = &mut h.sets[0].state {
            m.mark_time_ms = 86_400_000;
        }
        let r = Retention {
            keep_full: Some(1),
            keep_within_ms: None,
            orphan_grace_ms: 0,
        };
        let p = plan(&h.sets, &r, 100_000_000).unwrap();
        assert!(p.remove.is_empty(), "{p:?}");
        assert_eq!(p.keep.len(), 4, "{p:?}");
        let why = p.held_back.unwrap();
        assert!(
            why.starts_with("00002 lies later in the log than 00001"),
            "{why}"
        );
    }

    /// A 1 s window alone: run at 100 s, every set of a short history has aged out of it.
    const WINDOW: Retention = Retention {
        keep_full: None,
        keep_within_ms: Some(1000),
        orphan_grace_ms: 0,
    };

    /// F, I, C, then backups paused for longer than the window: the copy is the newest set,
    /// and its chain is itself; the next incremental continues I, whose chain (F, I) stays
    /// too.
    #[test]
    fn a_window_every_set_aged_out_of_keeps_what_the_next_incremental_continues() {
        let mut h = History::of(&[4, 0, 3]);
        let p = plan(&h.sets, &WINDOW, 100_000).unwrap();
        assert_eq!(p.keep, ["00001", "00002", "00003"], "{p:?}");
        h.sets.retain(|s| p.keep.contains(&s.name));
        assert!(h.add(kind(0), false), "the next incremental continues I");
    }

    /// F, I, I, then backups paused for longer than the window: a window alone keeps the
    /// newest set and its chain, though every set aged out of it.
    #[test]
    fn a_window_every_set_aged_out_of_keeps_the_newest_chain() {
        let h = History::of(&[4, 0, 0]);
        let p = plan(&h.sets, &WINDOW, 100_000).unwrap();
        assert_eq!(p.keep, ["00001", "00002", "00003"], "{p:?}");
        assert!(p.remove.is_empty(), "{p:?}");
    }

    /// F, I, D, I whose log is stored once in D; D's manifest is lost: D's objects are the
    /// kept incremental's log, so the orphan stays however old it is.
    #[test]
    fn an_orphan_a_kept_set_references_is_left() {
        let mut h = History::new();
        for (k, reference) in [(4, false), (0, false), (2, false), (0, true)] {
            assert!(h.add(kind(k), reference));
        }
        let refs: Vec<&str> = catalog::references(h.sets[3].manifest().unwrap()).collect();
        assert_eq!(refs, ["00003"]);
        // An orphan's age is read from a name the engine made: D gets one, long past.
        let orphan = "20200101T000000.000Z-differential-0003".to_string();
        h.sets[2] = Listed {
            name: orphan.clone(),
            state: SetState::Orphan,
            modified_ms: None,
        };
        if let SetState::Complete(m) = &mut h.sets[3].state {
            for stored in m.logs.iter_mut().filter_map(|l| l.stored.as_mut()) {
                stored.set = Some(orphan.clone());
            }
        }
        let r = Retention {
            keep_full: Some(1),
            keep_within_ms: None,
            orphan_grace_ms: 0,
        };
        let p = plan(&h.sets, &r, u64::MAX / 2).unwrap();
        assert!(p.orphans.is_empty(), "{p:?}");
        assert_eq!(p.left, [orphan]);
        assert_eq!(p.keep, ["00001", "00002", "00004"]);
    }
}
