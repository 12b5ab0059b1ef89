//! Scan slices: what one message of a scan produces. A slice is the next rows of the range
//! from the tree, merged with the session's own uncommitted writes, bounded so that no
//! handler builds more than `SLICE_ROWS` rows or about `SLICE_BYTES` bytes; the scan
//! resumes past the slice's last key (above it going forward, below it in reverse).

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

/// The order a scan yields its rows in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending keys, from the low bound up.
    #[default]
    Forward,
    /// Descending keys, from the high bound down.
    Reverse,
}

impl Direction {
    /// Whether `a` comes after `b` in this direction's order.
    fn after(self, a: &[u8], b: &[u8]) -> bool {
        match self {
            Direction::Forward => a > b,
            Direction::Reverse => a < b,
        }
    }
}

/// The smallest key greater than every key that starts with `prefix`: the exclusive high
/// bound of a prefix scan. `None` when no key is (`prefix` is empty or all `0xFF`): the scan
/// is then unbounded above.
///
/// ```
/// use ese::prefix_end;
///
/// assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
/// assert_eq!(prefix_end(&[1, 0xFF, 0xFF]), Some(vec![2]));
/// assert_eq!(prefix_end(&[0xFF]), None);
/// assert_eq!(prefix_end(b""), None);
/// ```
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    // 0xFF has no successor byte: the keys after every extension of `q ++ [0xFF]` are the
    // keys after every extension of `q`, so trailing 0xFFs drop and the last byte left goes up.
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// One slice of a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    /// Rows as the session sees them, in the scan's [`Direction`].
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// `Some(k)`: the range goes on past `k`; `None`: done. A forward scan's next slice
    /// starts just after `k` (low bound `Bound::Excluded(k)`), a reverse scan's just below
    /// it (high bound `Bound::Excluded(k)`); the other bound stays as it was.
    pub resume: Option<Vec<u8>>,
}

/// The budget of a slice asked for at most `max_rows` rows.
pub(crate) fn budget(max_rows: usize) -> Budget {
    Budget {
        rows: max_rows.clamp(1, SLICE_ROWS),
        bytes: SLICE_BYTES,
    }
}

/// Merges a bounded tree scan with the session's writes in the same range, both in `dir`'s
/// order: a put shows its value, a delete hides the row. When the tree part stopped early at
/// key `L`, only writes up to `L` (down to it, in reverse) belong to this slice; the rest
/// come with later slices.
pub(crate) fn merge<'w>(
    part: ScanPart,
    writes: impl Iterator<Item = (&'w [u8], &'w Op)>,
    budget: Budget,
    dir: Direction,
) -> Slice {
    let covered: Option<Vec<u8>> = if part.more {
        part.rows.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    let limit = covered.clone();
    let mut writes = writes
        .take_while(move |(k, _)| limit.as_deref().is_none_or(|l| !dir.after(k, l)))
        .peekable();
    let mut tree = part.rows.into_iter().peekable();
    let mut out = Slice::default();
    let (mut examined, mut bytes) = (0, 0);
    let mut last = None;
    while examined < budget.rows && bytes < budget.bytes {
        let Some((k, v)) = next_row(&mut tree, &mut writes, dir) else {
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

/// The next key of either side, in `dir`'s order, as the session sees it: `None` as the
/// value when the session deleted it. On equal keys the session's write wins.
fn next_row<'w>(
    tree: &mut Peekable<impl Iterator<Item = (Vec<u8>, Vec<u8>)>>,
    writes: &mut Peekable<impl Iterator<Item = (&'w [u8], &'w Op)>>,
    dir: Direction,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    // `Less`: the tree's key comes first in the scan's order.
    let order = match (tree.peek(), writes.peek()) {
        (None, None) => return None,
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some((t, _)), Some((w, _))) => match dir {
            Direction::Forward => t.as_slice().cmp(w),
            Direction::Reverse => w.cmp(&t.as_slice()),
        },
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
        let s = merge(part, writes.into_iter(), budget(10), Direction::Forward);
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
        let s = merge(part, writes.into_iter(), budget(2), Direction::Forward);
        assert!(s.rows.is_empty());
        assert_eq!(s.resume.as_deref(), Some(&b"b"[..]));
        let done = merge(
            ScanPart::default(),
            std::iter::empty(),
            budget(2),
            Direction::Forward,
        );
        assert_eq!(
            done,
            Slice::default(),
            "an empty range is one empty, final slice"
        );
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(
            prefix_end(b""),
            None,
            "every key starts with the empty prefix"
        );
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(&[0xff, 0xff, 0xff]), None);
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[0]), Some(vec![1]));
        assert_eq!(prefix_end(&[1, 0xfe, 0xff]), Some(vec![1, 0xff]));
        // Against the definition, on keys around the bound: from the prefix on, a key has
        // the prefix exactly when it is below the bound.
        let prefix = [7u8, 0xff];
        let end = prefix_end(&prefix).unwrap();
        let keys: [&[u8]; 7] = [
            &[7, 0xff],
            &[7, 0xff, 0xff, 0xff],
            &[7, 0xff, 0],
            &[8],
            &[8, 0],
            &[0xff],
            &[7, 0xfe, 0xff],
        ];
        for key in keys.into_iter().filter(|k| *k >= &prefix[..]) {
            assert_eq!(key.starts_with(&prefix), key < end.as_slice(), "{key:?}");
        }
    }

    fn desc(keys: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut r = rows(keys);
        r.reverse();
        r
    }

    #[test]
    fn a_reverse_merge_interleaves_descending() {
        let part = ScanPart {
            rows: desc(&["b", "c", "e", "g"]),
            more: false,
        };
        let put = Op::Put(b"w".to_vec());
        // Descending, as the session's writes are handed over for a reverse slice.
        let writes = [
            (&b"h"[..], &put),
            (&b"e"[..], &Op::Delete),
            (&b"d"[..], &put),
            (&b"c"[..], &put),
            (&b"a"[..], &Op::Delete),
        ];
        let s = merge(part, writes.into_iter(), budget(10), Direction::Reverse);
        let want: Vec<(Vec<u8>, Vec<u8>)> =
            [("h", "w"), ("g", "t"), ("d", "w"), ("c", "w"), ("b", "t")]
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
        assert_eq!(s.rows, want);
        assert_eq!(s.resume, None, "both sides ran out");
    }

    #[test]
    fn a_reverse_merge_stops_at_the_budget_and_resumes_below() {
        let part = ScanPart {
            rows: desc(&["a", "c", "e"]),
            more: false,
        };
        let put = Op::Put(b"w".to_vec());
        let writes = [
            (&b"f"[..], &put),
            (&b"d"[..], &Op::Delete),
            (&b"b"[..], &put),
        ];
        let s = merge(part, writes.into_iter(), budget(3), Direction::Reverse);
        assert_eq!(
            s.rows,
            vec![
                (b"f".to_vec(), b"w".to_vec()),
                (b"e".to_vec(), b"t".to_vec())
            ],
            "the hidden `d` counts against the budget"
        );
        assert_eq!(
            s.resume.as_deref(),
            Some(&b"d"[..]),
            "the next slice is below `d`"
        );
    }

    #[test]
    fn reverse_writes_below_an_early_stop_wait_for_the_next_slice() {
        let part = ScanPart {
            rows: desc(&["d", "f"]),
            more: true,
        };
        let put = Op::Put(b"w".to_vec());
        let writes = [
            (&b"g"[..], &put),
            (&b"d"[..], &Op::Delete),
            (&b"c"[..], &put),
        ];
        let s = merge(part, writes.into_iter(), budget(10), Direction::Reverse);
        assert_eq!(
            s.rows,
            vec![
                (b"g".to_vec(), b"w".to_vec()),
                (b"f".to_vec(), b"t".to_vec())
            ]
        );
        assert_eq!(
            s.resume.as_deref(),
            Some(&b"d"[..]),
            "covered down to the tree's last key; `c` comes with the next slice"
        );
    }
}
