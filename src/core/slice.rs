//! Scan slices: what one message of a scan produces. A slice is the next rows of the range
//! from the tree, merged with the session's own uncommitted writes, bounded so that no
//! handler builds more than `SLICE_ROWS` rows or about `SLICE_BYTES` bytes; the scan
//! resumes after the slice's last key.

use std::iter::Peekable;

use crate::btree::{Budget, ScanPart};
use crate::txn::Op;

/// Rows one slice examines at most (tree rows and the session's writes together). Small
/// enough that a slice is a short handler (commits wait at most one slice), large enough that
/// the message round trip per slice is noise next to building the rows.
pub const SLICE_ROWS: usize = 256;

/// Bytes of keys and values after which a slice stops (the row that crosses it is kept, so a
/// single large value still makes progress).
pub const SLICE_BYTES: usize = 256 << 10;

/// One slice of a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    /// Rows as the session sees them, in key order.
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// `Some(k)`: the range goes on; the next slice starts just after `k`. `None`: done.
    pub resume: Option<Vec<u8>>,
}

/// The budget of a slice asked for at most `max_rows` rows.
pub(crate) fn budget(max_rows: usize) -> Budget {
    Budget {
        rows: max_rows.clamp(1, SLICE_ROWS),
        bytes: SLICE_BYTES,
    }
}

/// Merges a bounded tree scan with the session's writes in the same range (in key order):
/// a put shows its value, a delete hides the row. When the tree part stopped early at key
/// `L`, only writes up to `L` belong to this slice; the rest come with later slices.
pub(crate) fn merge<'w>(
    part: ScanPart,
    writes: impl Iterator<Item = (&'w [u8], &'w Op)>,
    budget: Budget,
) -> Slice {
    let covered: Option<Vec<u8>> = if part.more {
        part.rows.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    let limit = covered.clone();
    let mut writes = writes
        .take_while(move |(k, _)| limit.as_deref().is_none_or(|l| *k <= l))
        .peekable();
    let mut tree = part.rows.into_iter().peekable();
    let mut out = Slice::default();
    let (mut examined, mut bytes) = (0, 0);
    let mut last = None;
    while examined < budget.rows && bytes < budget.bytes {
        let Some((k, v)) = next_row(&mut tree, &mut writes) else {
            break;
        };
        examined += 1;
        if let Some(v) = v {
            bytes += k.len() + v.len();
            out.rows.push((k.clone(), v));
        }
        last = Some(k);
    }
    let exhausted = tree.peek().is_none() && writes.peek().is_none();
    out.resume = match exhausted {
        true => covered,
        false => last,
    };
    out
}

/// The next key of either side as the session sees it: `None` as the value when the
/// session deleted it. On equal keys the session's write wins.
fn next_row<'w>(
    tree: &mut Peekable<impl Iterator<Item = (Vec<u8>, Vec<u8>)>>,
    writes: &mut Peekable<impl Iterator<Item = (&'w [u8], &'w Op)>>,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let order = match (tree.peek(), writes.peek()) {
        (None, None) => return None,
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some((t, _)), Some((w, _))) => t.as_slice().cmp(w),
    };
    if order.is_lt() {
        return tree.next().map(|(k, v)| (k, Some(v)));
    }
    if order.is_eq() {
        tree.next();
    }
    writes.next().map(|(k, op)| {
        let v = match op {
            Op::Put(v) => Some(v.clone()),
            Op::Delete => None,
        };
        (k.to_vec(), v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(keys: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
        keys.iter()
            .map(|k| (k.as_bytes().to_vec(), b"t".to_vec()))
            .collect()
    }

    #[test]
    fn writes_past_an_early_stop_wait_for_the_next_slice() {
        let part = ScanPart {
            rows: rows(&["b", "d"]),
            more: true,
        };
        let put = Op::Put(b"w".to_vec());
        let writes = [
            (&b"a"[..], &put),
            (&b"d"[..], &Op::Delete),
            (&b"e"[..], &put),
        ];
        let s = merge(part, writes.into_iter(), budget(10));
        assert_eq!(
            s.rows,
            vec![
                (b"a".to_vec(), b"w".to_vec()),
                (b"b".to_vec(), b"t".to_vec())
            ]
        );
        assert_eq!(
            s.resume.as_deref(),
            Some(&b"d"[..]),
            "covered up to the tree's last key"
        );
    }

    #[test]
    fn the_budget_counts_what_the_session_hid() {
        let part = ScanPart {
            rows: rows(&["a", "b", "c"]),
            more: false,
        };
        let writes = [(&b"a"[..], &Op::Delete), (&b"b"[..], &Op::Delete)];
        let s = merge(part, writes.into_iter(), budget(2));
        assert!(s.rows.is_empty());
        assert_eq!(s.resume.as_deref(), Some(&b"b"[..]));
        let done = merge(ScanPart::default(), std::iter::empty(), budget(2));
        assert_eq!(
            done,
            Slice::default(),
            "an empty range is one empty, final slice"
        );
    }
}
