//! Transactions: a session's buffered writes, and the conflict check that makes the later of
//! two writers of one key fail with `WriteConflict`.

use std::collections::{BTreeMap, HashMap};

/// Identifies a row: database, table root page, key.
pub(crate) type RowKey = (u32, u32, Vec<u8>);

/// A buffered write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put(Vec<u8>),
    Delete,
}

/// An open transaction.
#[derive(Debug, Default)]
pub(crate) struct Txn {
    /// Commit sequence number when it began: later commits of its keys conflict.
    pub start_seq: u64,
    /// Which transaction of the instance this is (a session's transactions follow each
    /// other: a write issued in one must not land in the next). 0 for the implicit
    /// transactions of a write outside one and of a batch.
    pub id: u64,
    pub writes: BTreeMap<RowKey, Op>,
}

/// Last commit of every key written while some transaction that began earlier is open.
#[derive(Debug, Default)]
pub(crate) struct Conflicts {
    last: HashMap<RowKey, u64>,
}

impl Conflicts {
    /// Whether another transaction committed one of `txn`'s keys after it began.
    pub fn conflicts(&self, txn: &Txn) -> bool {
        txn.writes
            .keys()
            .any(|k| self.last.get(k).is_some_and(|&s| s > txn.start_seq))
    }

    /// Records `txn`'s keys as committed at `seq`, and forgets what no open transaction
    /// can conflict with any more.
    pub fn record(&mut self, txn: &Txn, seq: u64, oldest_open: Option<u64>) {
        match oldest_open {
            None => self.last.clear(),
            Some(oldest) => {
                for k in txn.writes.keys() {
                    self.last.insert(k.clone(), seq);
                }
                if self.last.len() > 4096 {
                    self.last.retain(|_, s| *s > oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_committer_of_same_key_conflicts() {
        let mut c = Conflicts::default();
        let key: RowKey = (1, 7, b"k".to_vec());
        let mut a = Txn {
            start_seq: 0,
            ..Default::default()
        };
        a.writes.insert(key.clone(), Op::Delete);
        let mut b = Txn {
            start_seq: 0,
            ..Default::default()
        };
        b.writes.insert(key, Op::Put(vec![1]));
        assert!(!c.conflicts(&a));
        c.record(&a, 1, Some(0));
        assert!(c.conflicts(&b));
        let fresh = Txn {
            start_seq: 1,
            writes: b.writes.clone(),
            ..Default::default()
        };
        assert!(!c.conflicts(&fresh));
    }
}
