//! Transaction semantics through the core, call by call (behaviour.md §4): nesting, commit and
//! rollback without a transaction, several writes of one key in one transaction, write
//! conflicts, isolation, key and value limits, and a random model of transactions checked
//! across crashes.

use crate::support;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use ese::{Commit, Core, Direction, Error, InstanceParams, SessionId, TableId};
use support::core::*;

fn setup() -> (ese::io::FaultStorage, ese::io::StorageRef, Core, TableId) {
    let (fs, storage) = fault_fs();
    let params = small_params(Path::new("/i"));
    let (core, tbl) = open_db(&storage, &params);
    (fs, storage, core, tbl)
}

fn all(core: &mut Core, s: SessionId, tbl: TableId) -> Vec<(Vec<u8>, Vec<u8>)> {
    core.scan(
        s,
        tbl,
        Bound::Unbounded,
        Bound::Unbounded,
        Direction::Forward,
    )
    .unwrap()
}

fn code<T: std::fmt::Debug>(r: ese::Result<T>) -> i32 {
    r.expect_err("expected an error").code()
}

#[test]
fn nesting_and_missing_transactions_have_eses_codes() {
    let (_fs, _st, mut core, _tbl) = setup();
    let s = core.begin_session().unwrap();
    assert_eq!(code(core.commit(s, Commit::Durable)), -1054);
    assert_eq!(code(core.rollback(s)), -1054);
    core.begin_transaction(s).unwrap();
    assert_eq!(code(core.begin_transaction(s)), -1103);
    // The open transaction is not disturbed.
    assert!(core.in_transaction(s));
    core.rollback(s).unwrap();
    assert_eq!(code(core.rollback(s)), -1054);
}

#[test]
fn several_writes_of_one_key_in_one_transaction_end_as_the_last() {
    let (fs, storage, mut core, tbl) = setup();
    let s = core.begin_session().unwrap();
    let t = core.put(s, tbl, b"old", b"1").unwrap().unwrap();
    core.wait(t).unwrap();

    core.begin_transaction(s).unwrap();
    // A new key put then deleted: nothing of it remains, and the commit still succeeds.
    core.put(s, tbl, b"new", b"x").unwrap();
    core.delete(s, tbl, b"new").unwrap();
    assert_eq!(code(core.delete(s, tbl, b"new")), -1601);
    // An existing key deleted then put again.
    core.delete(s, tbl, b"old").unwrap();
    assert_eq!(core.get(s, tbl, b"old").unwrap(), None);
    core.put(s, tbl, b"old", b"2").unwrap();
    core.put(s, tbl, b"other", b"3").unwrap();
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    let want = vec![
        (b"old".to_vec(), b"2".to_vec()),
        (b"other".to_vec(), b"3".to_vec()),
    ];
    assert_eq!(all(&mut core, s, tbl), want);

    // Many writes of one key rolled back leave it as it was.
    core.begin_transaction(s).unwrap();
    for i in 0..200u32 {
        if i % 3 == 0 {
            let _ = core.delete(s, tbl, b"old");
        } else {
            core.put(s, tbl, b"old", &i.to_le_bytes()).unwrap();
        }
    }
    core.rollback(s).unwrap();
    assert_eq!(all(&mut core, s, tbl), want);

    let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &small_params(Path::new("/i")));
    let s = core.begin_session().unwrap();
    assert_eq!(all(&mut core, s, tbl), want);
}

#[test]
fn the_later_committer_of_a_key_gets_write_conflict_and_nothing_of_it_is_applied() {
    let (_fs, _st, mut core, tbl) = setup();
    let a = core.begin_session().unwrap();
    let b = core.begin_session().unwrap();
    core.begin_transaction(a).unwrap();
    core.begin_transaction(b).unwrap();
    core.put(a, tbl, b"k", b"a").unwrap();
    core.put(a, tbl, b"ja", b"a").unwrap();
    core.put(b, tbl, b"k", b"b").unwrap();
    // Isolation: neither sees the other's write.
    assert_eq!(core.get(b, tbl, b"ja").unwrap(), None);
    assert_eq!(core.get(a, tbl, b"k").unwrap().as_deref(), Some(&b"a"[..]));
    let t = core.commit(b, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    assert_eq!(code(core.commit(a, Commit::Durable)), -1102);
    let c = core.begin_session().unwrap();
    assert_eq!(all(&mut core, c, tbl), vec![(b"k".to_vec(), b"b".to_vec())]);
    // The session can go on.
    core.begin_transaction(a).unwrap();
    core.put(a, tbl, b"k", b"a2").unwrap();
    let t = core.commit(a, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    assert_eq!(core.get(c, tbl, b"k").unwrap().as_deref(), Some(&b"a2"[..]));
}

#[test]
fn a_delete_committed_by_another_session_conflicts_too() {
    let (_fs, _st, mut core, tbl) = setup();
    let a = core.begin_session().unwrap();
    let b = core.begin_session().unwrap();
    let t = core.put(b, tbl, b"k", b"0").unwrap().unwrap();
    core.wait(t).unwrap();
    core.begin_transaction(a).unwrap();
    core.put(a, tbl, b"k", b"a").unwrap();
    // Outside a transaction: its own commit.
    let t = core.delete(b, tbl, b"k").unwrap().unwrap();
    core.wait(t).unwrap();
    assert_eq!(code(core.commit(a, Commit::Durable)), -1102);
    assert_eq!(core.get(b, tbl, b"k").unwrap(), None);
}

#[test]
fn a_write_batch_committed_meanwhile_conflicts() {
    let (_fs, _st, mut core, tbl) = setup();
    let a = core.begin_session().unwrap();
    core.begin_transaction(a).unwrap();
    core.put(a, tbl, b"k", b"a").unwrap();
    let t = core
        .write_batch(
            vec![(tbl, b"k".to_vec(), Some(b"w".to_vec()))],
            Commit::Durable,
        )
        .unwrap();
    core.wait(t).unwrap();
    assert_eq!(code(core.commit(a, Commit::Durable)), -1102);
}

#[test]
fn key_and_value_limits() {
    let (_fs, _st, mut core, tbl) = setup();
    let s = core.begin_session().unwrap();
    let big_key = vec![7u8; 1024];
    let t = core.put(s, tbl, &big_key, &[1; 5000]).unwrap().unwrap();
    core.wait(t).unwrap();
    assert_eq!(core.get(s, tbl, &big_key).unwrap(), Some(vec![1; 5000]));
    assert_eq!(code(core.put(s, tbl, &[7u8; 1025], b"x")), -408);
    assert_eq!(code(core.get(s, tbl, &[7u8; 1025])), -408);
    assert_eq!(code(core.delete(s, tbl, &[7u8; 1025])), -408);
    // Value checked before the key.
    let too_big = vec![0u8; (64 << 20) + 1];
    assert_eq!(code(core.put(s, tbl, &[7u8; 1025], &too_big)), -1026);
    // So in a batch, and a refused batch changes nothing.
    let batch = vec![
        (tbl, b"first".to_vec(), Some(b"1".to_vec())),
        (tbl, vec![7u8; 1025], Some(too_big.clone())),
    ];
    assert_eq!(code(core.write_batch(batch, Commit::Durable)), -1026);
    let batch = vec![(tbl, vec![7u8; 1025], Some(b"x".to_vec()))];
    assert_eq!(code(core.write_batch(batch, Commit::Durable)), -408);
    let batch = vec![(tbl, vec![7u8; 1025], None)];
    assert_eq!(code(core.write_batch(batch, Commit::Durable)), -408);
    assert_eq!(core.get(s, tbl, b"first").unwrap(), None);
    // Empty key and value.
    let t = core.put(s, tbl, b"", b"").unwrap().unwrap();
    core.wait(t).unwrap();
    assert_eq!(core.get(s, tbl, b"").unwrap(), Some(vec![]));
    // Many maximal keys: splits of interior nodes full of 1 KiB separators.
    core.begin_transaction(s).unwrap();
    for i in 0..300u32 {
        let mut k = vec![b'x'; 1024];
        k[..4].copy_from_slice(&i.to_be_bytes());
        core.put(s, tbl, &k, &i.to_le_bytes()).unwrap();
    }
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    let rows = all(&mut core, s, tbl);
    assert_eq!(rows.len(), 302);
    assert_eq!(rows[0], (vec![], vec![]));
    verify_all_pages(&mut core, tbl.db());
}

/// One step of the random model.
#[derive(Clone, Debug)]
enum Step {
    Put(u16, usize),
    Delete(u16),
    Commit(bool),
    Rollback,
    Flush,
    Crash,
}

mod model {
    use super::*;
    use proptest::prelude::*;

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            20 => (0u16..300, prop_oneof![4 => 0usize..300, 1 => 900usize..3000, 1 => 5000usize..20000])
                .prop_map(|(k, n)| Step::Put(k, n)),
            8 => (0u16..300).prop_map(Step::Delete),
            3 => any::<bool>().prop_map(Step::Commit),
            1 => Just(Step::Rollback),
            1 => Just(Step::Flush),
            1 => Just(Step::Crash),
        ]
    }

    fn k(i: u16) -> Vec<u8> {
        // Keys that are prefixes of each other.
        let mut k = format!("{i}").into_bytes();
        if i.is_multiple_of(7) {
            k.push(0);
        }
        k
    }

    fn v(i: u16, n: usize, salt: u32) -> Vec<u8> {
        (0..n).map(|j| (j as u32 ^ salt ^ i as u32) as u8).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Transactions of random puts and deletes (values inline and in overflow pages),
        /// committed durably or lazily or rolled back, flushes and crashes: the table always
        /// equals the model of what was committed, and after a crash at least every
        /// acknowledged durable commit (and at most every commit) is there, whole.
        #[test]
        fn transactions_match_a_model_across_crashes(steps in prop::collection::vec(step(), 1..120)) {
            let (fs, storage) = fault_fs();
            let params = small_params(Path::new("/i"));
            let (mut core, mut tbl) = open_db(&storage, &params);
            let mut s = core.begin_session().unwrap();
            let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut durable = committed.clone();
            // Commits since the last durable point: after a crash the state is one of these
            // prefixes.
            let mut lazy: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = Vec::new();
            let mut pending: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
            let mut open = false;
            for (n, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Put(i, len) => {
                        if !open { core.begin_transaction(s).unwrap(); open = true; }
                        let val = v(i, len, n as u32);
                        core.put(s, tbl, &k(i), &val).unwrap();
                        pending.insert(k(i), Some(val));
                    }
                    Step::Delete(i) => {
                        if !open { core.begin_transaction(s).unwrap(); open = true; }
                        let sees = match pending.get(&k(i)) {
                            Some(p) => p.is_some(),
                            None => committed.contains_key(&k(i)),
                        };
                        match core.delete(s, tbl, &k(i)) {
                            Ok(_) => { prop_assert!(sees); pending.insert(k(i), None); }
                            Err(Error::RecordNotFound) => prop_assert!(!sees),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    Step::Commit(is_durable) if open => {
                        let how = if is_durable { Commit::Durable } else { Commit::Lazy };
                        let t = core.commit(s, how).unwrap();
                        open = false;
                        for (key, op) in std::mem::take(&mut pending) {
                            match op {
                                Some(val) => { committed.insert(key, val); }
                                None => { committed.remove(&key); }
                            }
                        }
                        if is_durable {
                            core.wait(t).unwrap();
                            durable = committed.clone();
                            lazy.clear();
                        } else {
                            lazy.push(committed.clone());
                        }
                    }
                    Step::Commit(_) => {}
                    Step::Rollback => {
                        if open { core.rollback(s).unwrap(); open = false; pending.clear(); }
                    }
                    Step::Flush => {
                        core.flush_all().unwrap();
                        durable = committed.clone();
                        lazy.clear();
                    }
                    Step::Crash => {
                        // The power fails first: lazy commits the writer had not synced are
                        // lost (as many as the interleaving leaves unsynced).
                        fs.crash();
                        core.term_dirty();
                        fs.restart();
                        (core, tbl) = open_db(&storage, &params);
                        s = core.begin_session().unwrap();
                        open = false;
                        pending.clear();
                        let got: BTreeMap<_, _> = all(&mut core, s, tbl).into_iter().collect();
                        let ok = got == durable || lazy.contains(&got);
                        prop_assert!(ok, "after a crash: {} rows, durable {}, lazy states {:?}",
                            got.len(), durable.len(), lazy.iter().map(|m| m.len()).collect::<Vec<_>>());
                        verify_all_pages(&mut core, tbl.db());
                        committed = got;
                        durable = committed.clone();
                        lazy.clear();
                    }
                }
                if !open {
                    let got: BTreeMap<_, _> = all(&mut core, s, tbl).into_iter().collect();
                    prop_assert_eq!(got.len(), committed.len());
                    prop_assert!(got == committed, "table differs from the model");
                }
            }
        }
    }
}

#[test]
fn scans_with_empty_or_inverted_bounds_are_empty_in_both_directions() {
    let (_fs, _st, mut core, tbl) = setup();
    let s = core.begin_session().unwrap();
    core.begin_transaction(s).unwrap();
    for k in [&b""[..], b"a", b"a\0", b"aa", b"b"] {
        core.put(s, tbl, k, b"c").unwrap();
    }
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    core.begin_transaction(s).unwrap();
    core.put(s, tbl, b"ab", b"own").unwrap();
    core.delete(s, tbl, b"a\0").unwrap();
    use Bound::*;
    type Case<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>, usize);
    let cases: Vec<Case> = vec![
        (Included(b"b"), Included(b"a"), 0),
        (Excluded(b"a"), Excluded(b"a"), 0),
        (Included(b"a"), Excluded(b"a"), 0),
        (Excluded(b""), Excluded(b""), 0),
        (Included(b""), Included(b""), 1),
        (Excluded(b""), Unbounded, 4),
        (Unbounded, Excluded(b"aa"), 2),
        (Included(b"a"), Included(b"ab"), 3),
    ];
    for (lo, hi, n) in cases {
        let f = core.scan(s, tbl, lo, hi, Direction::Forward).unwrap();
        let r = core.scan(s, tbl, lo, hi, Direction::Reverse).unwrap();
        assert_eq!(f.len(), n, "{lo:?}..{hi:?}: {f:?}");
        assert_eq!(r.into_iter().rev().collect::<Vec<_>>(), f, "{lo:?}..{hi:?}");
    }
}

/// One transaction over two tables of two databases, cut by a crash before it is durable or
/// after: all of it or nothing.
#[test]
fn a_transaction_over_two_databases_is_all_or_nothing_across_a_crash() {
    for durable in [false, true] {
        let (fs, storage) = fault_fs();
        let params = small_params(Path::new("/i"));
        let (mut core, t1) = open_db(&storage, &params);
        let (db2, t) = core.create_database(Path::new("/i/two.edb")).unwrap();
        core.wait(t).unwrap();
        let (t2, t) = core.create_table(db2, "u").unwrap();
        core.wait(t).unwrap();
        let s = core.begin_session().unwrap();
        core.begin_transaction(s).unwrap();
        for i in 0..300u32 {
            core.put(s, t1, &i.to_be_bytes(), &[1; 300]).unwrap();
            core.put(s, t2, &i.to_be_bytes(), &[2; 300]).unwrap();
        }
        let how = if durable {
            Commit::Durable
        } else {
            Commit::Lazy
        };
        let t = core.commit(s, how).unwrap();
        if durable {
            core.wait(t).unwrap();
        }
        fs.crash();
        core.term_dirty();
        fs.restart();
        let (mut core, t1) = open_db(&storage, &params);
        let db2 = core.attach_database(Path::new("/i/two.edb")).unwrap();
        let t2 = core.open_table(db2, "u").unwrap();
        let s = core.begin_session().unwrap();
        let a = all(&mut core, s, t1).len();
        let b = all(&mut core, s, t2).len();
        assert!(
            (a, b) == (300, 300) || (!durable && (a, b) == (0, 0)),
            "durable {durable}: {a} and {b} rows"
        );
    }
}

/// The largest value allowed, in a transaction whose page records span many log files,
/// replaced, read back after a crash, and deleted.
#[test]
fn the_largest_value_survives_a_crash_and_its_pages_are_reused() {
    let (fs, storage) = fault_fs();
    let params = InstanceParams::new("/i")
        .log_file_size(4 << 20)
        .page_size(32768)
        .cache_pages(64);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    let max: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    core.begin_transaction(s).unwrap();
    core.put(s, tbl, b"big", &max).unwrap();
    core.put(s, tbl, b"small", b"1").unwrap();
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    let gen = core.log().gen();
    assert!(gen > 10, "the commit spans log files ({gen})");
    let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
    let s = core.begin_session().unwrap();
    assert!(core.get(s, tbl, b"big").unwrap() == Some(max.clone()));
    assert_eq!(core.get(s, tbl, b"small").unwrap(), Some(b"1".to_vec()));
    // Replaced by a value as large (its chain is written before the old one is freed), then
    // another value: the freed chain's pages are reused.
    let t = core.put(s, tbl, b"big", &max[1..]).unwrap().unwrap();
    core.wait(t).unwrap();
    let last = core.last_page(tbl.db()).unwrap();
    let t = core
        .put(s, tbl, b"other", &max[..32 << 20])
        .unwrap()
        .unwrap();
    core.wait(t).unwrap();
    assert!(core.last_page(tbl.db()).unwrap() <= last + 8);
    assert!(core.get(s, tbl, b"big").unwrap().as_deref() == Some(&max[1..]));
    let t = core.delete(s, tbl, b"other").unwrap().unwrap();
    core.wait(t).unwrap();
    let t = core.delete(s, tbl, b"big").unwrap().unwrap();
    core.wait(t).unwrap();
    let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(core.get(s, tbl, b"big").unwrap(), None);
    assert_eq!(all(&mut core, s, tbl).len(), 1);
    verify_all_pages(&mut core, tbl.db());
}
