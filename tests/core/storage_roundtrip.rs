//! Put/get/delete/scan through the storage core, across clean and dirty restarts, checked
//! against a model.

use crate::support;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use ese::io::os;
use ese::{Commit, Core, Direction, Error, InstanceParams};
use rand::{Rng, SeedableRng};
use support::core::*;

#[test]
fn round_trip_across_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let params = small_params(dir.path());
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    core.begin_transaction(s).unwrap();
    for i in 0..500u32 {
        core.put(s, tbl, format!("key{i:04}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    core.delete(s, tbl, b"key0007").unwrap();
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    assert_eq!(core.delete(s, tbl, b"nope").unwrap_err().code(), -1601);
    core.term_clean().unwrap();

    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(
        core.get(s, tbl, b"key0042").unwrap(),
        Some(42u32.to_le_bytes().to_vec())
    );
    assert_eq!(core.get(s, tbl, b"key0007").unwrap(), None);
    let lo = b"key0100".to_vec();
    let hi = b"key0110".to_vec();
    let rows = core
        .scan(
            s,
            tbl,
            Bound::Included(&lo),
            Bound::Excluded(&hi),
            Direction::Forward,
        )
        .unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0].0, b"key0100");
    // A table that does not exist is refused when its handle is asked for.
    assert_eq!(
        core.open_table(tbl.db(), "missing").unwrap_err().code(),
        -1305
    );
    assert!(matches!(
        core.create_table(tbl.db(), "t"),
        Err(Error::TableDuplicate)
    ));
    assert!(matches!(
        core.put(s, tbl, &[1u8; 1025], b"v"),
        Err(Error::KeyTooBig)
    ));
    verify_all_pages(&mut core, tbl.db());
    core.term_clean().unwrap();
}

#[test]
fn large_values_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let params = small_params(dir.path()).log_file_size(1 << 20);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    let big: Vec<u8> = (0..(1 << 20) + 17).map(|i| (i % 251) as u8).collect();
    let t = core.put(s, tbl, b"big", &big).unwrap().unwrap();
    core.wait(t).unwrap();
    core.term_dirty();
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(core.get(s, tbl, b"big").unwrap(), Some(big));
    core.term_clean().unwrap();
}

#[test]
fn random_operations_match_a_model_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let params = small_params(dir.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let (mut core, mut tbl) = open_db(&storage, &params);
    let mut s = core.begin_session().unwrap();
    for op in 0..10_000u32 {
        if op % 50 == 0 {
            core.begin_transaction(s).unwrap();
        }
        let key = format!("k{:04}", rng.gen_range(0..2000)).into_bytes();
        if rng.gen_bool(0.3) && model.contains_key(&key) {
            core.delete(s, tbl, &key).unwrap();
            model.remove(&key);
        } else {
            let len = if rng.gen_bool(0.01) {
                rng.gen_range(3000..20000)
            } else {
                rng.gen_range(1..100)
            };
            let v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            core.put(s, tbl, &key, &v).unwrap();
            model.insert(key, v);
        }
        if op % 50 == 49 {
            let t = core.commit(s, Commit::Durable).unwrap();
            core.wait(t).unwrap();
        }
        if op % 2500 == 2499 {
            // Alternate clean and dirty restarts.
            if (op / 2500) % 2 == 0 {
                core.term_clean().unwrap();
            } else {
                core.term_dirty();
            }
            (core, tbl) = open_db(&storage, &params);
            s = core.begin_session().unwrap();
            let all = core
                .scan(
                    s,
                    tbl,
                    Bound::Unbounded,
                    Bound::Unbounded,
                    Direction::Forward,
                )
                .unwrap();
            assert_eq!(
                all,
                model.clone().into_iter().collect::<Vec<_>>(),
                "after restart at op {op}"
            );
        }
    }
    verify_all_pages(&mut core, tbl.db());
    core.term_clean().unwrap();
}

#[test]
fn isolation_and_write_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let (mut core, tbl) = open_db(&storage, &small_params(dir.path()));
    let a = core.begin_session().unwrap();
    let b = core.begin_session().unwrap();
    core.begin_transaction(a).unwrap();
    core.begin_transaction(b).unwrap();
    core.put(a, tbl, b"k", b"from a").unwrap();
    assert_eq!(
        core.get(b, tbl, b"k").unwrap(),
        None,
        "uncommitted writes are invisible"
    );
    core.put(b, tbl, b"k", b"from b").unwrap();
    core.put(b, tbl, b"other", b"b").unwrap();
    core.commit(a, Commit::Lazy).unwrap();
    let err = core.commit(b, Commit::Durable).unwrap_err();
    assert_eq!(err.code(), -1102);
    assert_eq!(core.get(b, tbl, b"k").unwrap(), Some(b"from a".to_vec()));
    assert_eq!(
        core.get(b, tbl, b"other").unwrap(),
        None,
        "nothing of the loser applied"
    );
    core.begin_transaction(b).unwrap();
    core.put(b, tbl, b"k", b"again").unwrap();
    core.rollback(b).unwrap();
    assert_eq!(core.get(b, tbl, b"k").unwrap(), Some(b"from a".to_vec()));
    assert_eq!(core.rollback(b).unwrap_err().code(), -1054);
    core.term_clean().unwrap();
}

#[test]
fn concurrent_durable_committers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, storage) = fault_fs();
    let params = small_params(dir.path()).log_file_size(4 << 20);
    let (core, tbl) = open_db(&storage, &params);
    let before = fs.stats().syncs_by_path_contains("edb.log");
    let core = Arc::new(Mutex::new(core));
    const THREADS: usize = 64;
    const PER: usize = 20;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let core = core.clone();
            std::thread::spawn(move || {
                let s = core.lock().unwrap().begin_session().unwrap();
                for i in 0..PER {
                    let ticket = {
                        let mut c = core.lock().unwrap();
                        c.begin_transaction(s).unwrap();
                        c.put(s, tbl, format!("t{t}-{i}").as_bytes(), b"v").unwrap();
                        c.commit(s, Commit::Durable).unwrap()
                    };
                    // Wait outside the lock, as the actor does: others commit meanwhile.
                    let shared = core.lock().unwrap().log().shared().clone();
                    shared.wait_durable(ticket.lsn).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let commits = (THREADS * PER) as u64;
    let fsyncs = fs.stats().syncs_by_path_contains("edb.log") - before;
    assert!(fsyncs < commits, "{fsyncs} fsyncs for {commits} commits");
    let core = Arc::try_unwrap(core).unwrap().into_inner().unwrap();
    let mut core: Core = core;
    let s = core.begin_session().unwrap();
    let n = core
        .scan(
            s,
            tbl,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
        )
        .unwrap()
        .len();
    assert_eq!(n as u64, commits);
    core.term_clean().unwrap();
}

/// Rows at and around every size threshold of the tree (the largest inline entry, one
/// overflow page's body and a multiple of it, the longest key with short values, the empty
/// key), for every page size: committed, read back after a crash (soft recovery) and after a
/// clean term, forward and backward; then every row deleted and the rows put back.
#[test]
fn rows_at_size_thresholds_survive_crash_and_reopen_at_every_page_size() {
    for ps in [4096u32, 8192, 16384, 32768] {
        let (fs, storage) = fault_fs();
        let params = InstanceParams::new("/i")
            .log_file_size(1 << 20)
            .page_size(ps)
            .cache_pages(64);
        let (mut core, tbl) = open_db(&storage, &params);
        let cap = ps as usize - 32;
        let chunk = cap - 8;
        let mut model = BTreeMap::new();
        let mut n = 0u32;
        for kl in [0usize, 1, 8, 9, 1000, 1023, 1024] {
            let inl = (cap / 4).saturating_sub(2 + kl + 5);
            let mut lens = vec![0, 1];
            for t in [inl, chunk, 2 * chunk] {
                lens.extend([t.saturating_sub(1), t, t + 1]);
            }
            for vl in lens {
                let mut k = vec![b'k'; kl];
                if kl >= 4 {
                    k[kl - 4..].copy_from_slice(&n.to_be_bytes());
                }
                let v = vec![(n % 251) as u8; vl];
                n += 1;
                model.insert(k, v);
            }
        }
        let s = core.begin_session().unwrap();
        core.begin_transaction(s).unwrap();
        for (k, v) in &model {
            core.put(s, tbl, k, v).unwrap();
        }
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
        let check = |core: &mut Core, tbl, model: &BTreeMap<Vec<u8>, Vec<u8>>, what: &str| {
            let s = core.begin_session().unwrap();
            for (k, v) in model {
                let got = core.get(s, tbl, k).unwrap();
                assert!(
                    got.as_ref() == Some(v),
                    "ps {ps} {what}: key of {}",
                    k.len()
                );
            }
            let want: Vec<_> = model.clone().into_iter().collect();
            let all = (Bound::Unbounded, Bound::Unbounded);
            let fwd = core.scan(s, tbl, all.0, all.1, Direction::Forward).unwrap();
            assert!(fwd == want, "ps {ps} {what}: forward scan");
            let back = core.scan(s, tbl, all.0, all.1, Direction::Reverse).unwrap();
            assert!(
                back.iter().eq(want.iter().rev()),
                "ps {ps} {what}: backward"
            );
            // Bounds equal to keys, both kinds, both directions.
            let keys: Vec<&Vec<u8>> = model.keys().collect();
            for (i, lo) in keys.iter().enumerate().step_by(5) {
                for hi in keys.iter().skip(i).step_by(7) {
                    let (lo, hi) = (lo.as_slice(), hi.as_slice());
                    for (l, h) in [
                        (Bound::Included(lo), Bound::Excluded(hi)),
                        (Bound::Excluded(lo), Bound::Included(hi)),
                    ] {
                        let w: Vec<_> = model
                            .range::<[u8], _>((l, h))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        let f = core.scan(s, tbl, l, h, Direction::Forward).unwrap();
                        assert!(f == w, "ps {ps} {what}: range forward");
                        let r = core.scan(s, tbl, l, h, Direction::Reverse).unwrap();
                        assert!(r.iter().eq(w.iter().rev()), "ps {ps} {what}: range reverse");
                    }
                }
            }
        };
        let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
        check(&mut core, tbl, &model, "after a crash");
        core.term_clean().unwrap();
        let (mut core, tbl) = open_db(&storage, &params);
        check(&mut core, tbl, &model, "after a clean term");
        let s = core.begin_session().unwrap();
        core.begin_transaction(s).unwrap();
        for k in model.keys() {
            core.delete(s, tbl, k).unwrap();
        }
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
        check(&mut core, tbl, &BTreeMap::new(), "emptied");
        // Emptied leaves and interior nodes were freed: recovery redoes that too.
        let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
        check(&mut core, tbl, &BTreeMap::new(), "emptied, after a crash");
        verify_all_pages(&mut core, tbl.db());
        let s = core.begin_session().unwrap();
        core.begin_transaction(s).unwrap();
        for (k, v) in &model {
            core.put(s, tbl, k, v).unwrap();
        }
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
        let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
        check(&mut core, tbl, &model, "put back, after a crash");
        verify_all_pages(&mut core, tbl.db());
        core.term_clean().unwrap();
    }
}

/// A queue: rows put at one end and deleted at the other, 500 live at any time. The leaves
/// its deletes empty are reused, so the file stops growing.
#[test]
fn a_queue_of_rows_keeps_the_files_size() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let (mut core, tbl) = open_db(&storage, &small_params(dir.path()));
    let s = core.begin_session().unwrap();
    let key = |i: u32| format!("q{i:08}").into_bytes();
    let v = [5u8; 200];
    let mut sizes = Vec::new();
    for round in 0..8u32 {
        core.begin_transaction(s).unwrap();
        for i in 0..500u32 {
            let n = round * 500 + i;
            core.put(s, tbl, &key(n), &v).unwrap();
            if n >= 500 {
                core.delete(s, tbl, &key(n - 500)).unwrap();
            }
        }
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
        sizes.push(core.last_page(tbl.db()).unwrap());
    }
    assert!(sizes[7] <= sizes[2] + 4, "pages by round {sizes:?}");
    let rows = core
        .scan(
            s,
            tbl,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
        )
        .unwrap();
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[0].0, key(3500));
    core.term_clean().unwrap();
}

/// Rows larger than a scan slice's byte budget (about 256 KiB), between small rows: every
/// slice still makes progress, in both directions, with bounds on and between such rows.
#[test]
fn rows_larger_than_a_slice_scan_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let (mut core, tbl) = open_db(&storage, &small_params(dir.path()).log_file_size(4 << 20));
    let s = core.begin_session().unwrap();
    let mut model = BTreeMap::new();
    for i in 0..12u8 {
        let len = if i % 3 == 0 {
            (256 << 10) + i as usize
        } else {
            i as usize
        };
        model.insert(vec![b'r', i], vec![i; len]);
    }
    core.begin_transaction(s).unwrap();
    for (k, v) in &model {
        core.put(s, tbl, k, v).unwrap();
    }
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for lo in &keys {
        for hi in &keys {
            let (l, h) = (
                Bound::Included(lo.as_slice()),
                Bound::Included(hi.as_slice()),
            );
            if lo > hi {
                continue;
            }
            let w: Vec<_> = model
                .range::<[u8], _>((l, h))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let f = core.scan(s, tbl, l, h, Direction::Forward).unwrap();
            assert!(f == w, "forward {lo:?}..={hi:?}");
            let r = core.scan(s, tbl, l, h, Direction::Reverse).unwrap();
            assert!(r.iter().eq(w.iter().rev()), "reverse {lo:?}..={hi:?}");
        }
    }
    core.term_clean().unwrap();
}
