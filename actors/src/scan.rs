//! Range scans as hosts use them: a [`KeyRange`] (bounds borrowed from the caller, a limit,
//! an order) and a [`RowStream`] that fetches the range slice by slice, one message per
//! slice, so memory stays bounded by one slice and other messages are served in between.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Bound;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use ese::{Result, TableId};
use futures_core::Stream;

use crate::instance::Instance;
use crate::messages::{CloseScan, Scan, ScanNext};
use crate::types::{ScanCursor, ScanSlice, SessionKey};

/// A row: its key and its value.
pub type Row = (Bytes, Bytes);

/// Which keys a scan visits, in which order, and how many rows it returns at most. Bounds
/// borrow the caller's bytes; nothing is allocated until the scan is sent.
///
/// ```
/// use ese_actors::KeyRange;
///
/// let users = KeyRange::prefix(b"user:");
/// let newest_ten = KeyRange::prefix(b"log:").reverse().limit(10);
/// let page = KeyRange::between(b"a", b"m").limit(100);
/// let next_page = KeyRange::between(b"a", b"m").limit(100).resume_after(b"f17");
/// # let _ = (users, newest_ten, page, next_page);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange<'a> {
    lo: Bound<Cow<'a, [u8]>>,
    hi: Bound<Cow<'a, [u8]>>,
    limit: usize,
    reverse: bool,
}

impl<'a> KeyRange<'a> {
    /// Every key, in ascending order, without a limit.
    pub fn all() -> KeyRange<'static> {
        KeyRange {
            lo: Bound::Unbounded,
            hi: Bound::Unbounded,
            limit: usize::MAX,
            reverse: false,
        }
    }

    /// Keys within two bounds.
    pub fn new(lo: Bound<&'a [u8]>, hi: Bound<&'a [u8]>) -> KeyRange<'a> {
        KeyRange {
            lo: lo.map(Cow::Borrowed),
            hi: hi.map(Cow::Borrowed),
            ..KeyRange::all()
        }
    }

    /// Keys from `lo` (included) to `hi` (excluded).
    pub fn between(lo: &'a [u8], hi: &'a [u8]) -> KeyRange<'a> {
        KeyRange::new(Bound::Included(lo), Bound::Excluded(hi))
    }

    /// Keys from `lo` (included) to the end.
    pub fn from_key(lo: &'a [u8]) -> KeyRange<'a> {
        KeyRange::new(Bound::Included(lo), Bound::Unbounded)
    }

    /// Keys that start with `prefix` (the upper bound is [`prefix_end`](ese::prefix_end)).
    pub fn prefix(prefix: &'a [u8]) -> KeyRange<'a> {
        // Every key starts with the empty prefix: the same range as `all`, the same bounds.
        let lo = match prefix.is_empty() {
            true => Bound::Unbounded,
            false => Bound::Included(Cow::Borrowed(prefix)),
        };
        KeyRange {
            lo,
            hi: ese::prefix_end(prefix).map_or(Bound::Unbounded, |e| Bound::Excluded(e.into())),
            ..KeyRange::all()
        }
    }

    /// At most `n` rows: the first ones in the scan's order. The instance builds no more than
    /// that. 0 returns nothing without asking.
    pub fn limit(mut self, n: usize) -> KeyRange<'a> {
        self.limit = n;
        self
    }

    /// Descending key order.
    pub fn reverse(mut self) -> KeyRange<'a> {
        self.reverse = true;
        self
    }

    /// Continues a scan after `key`, the last row a previous scan of this range returned
    /// ([`RowStream::cursor`]): keys strictly beyond it in the scan's order. The limit and
    /// the order stay as they are.
    pub fn resume_after(mut self, key: &'a [u8]) -> KeyRange<'a> {
        match self.reverse {
            false => self.lo = Bound::Excluded(Cow::Borrowed(key)),
            true => self.hi = Bound::Excluded(Cow::Borrowed(key)),
        }
        self
    }

    /// The bounds, low then high.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.lo.as_ref().map(|c| &**c),
            self.hi.as_ref().map(|c| &**c),
        )
    }

    /// Whether the scan is in descending order.
    pub fn is_reverse(&self) -> bool {
        self.reverse
    }

    /// The row limit (`usize::MAX` for none).
    pub fn row_limit(&self) -> usize {
        self.limit
    }
}

/// What is fetching the next slice: its answer, owned, so the stream needs no borrow of the
/// instance while it waits.
type SliceFuture = Pin<Box<dyn Future<Output = Result<ScanSlice>> + Send>>;

/// The rows of a scan as a [`Stream`], fetched one slice at a time ([`SLICE_ROWS`] rows or
/// about [`SLICE_BYTES`] bytes), and a slice only when the rows before it were taken: memory
/// stays at one slice whatever the size of the range. Each slice is its own message, so
/// other sessions' commits are served between slices; each slice is consistent on its own,
/// and a later slice sees what committed meanwhile (read committed, not one snapshot).
///
/// A scan that began before `stop_service` runs to its end; once `term` began, its next slice
/// gets `TermInProgress` (-1000). An error ends the stream. Dropping the stream closes its
/// cursor in the instance.
///
/// [`SLICE_ROWS`]: ese::SLICE_ROWS
/// [`SLICE_BYTES`]: ese::SLICE_BYTES
pub struct RowStream<'a> {
    instance: Instance,
    /// The first slice's message, until it is sent.
    first: Option<Scan>,
    pending: Option<SliceFuture>,
    rows: VecDeque<Row>,
    /// The instance's cursor of the next slice, while the range goes on.
    cursor: Option<ScanCursor>,
    /// Rows still wanted.
    left: usize,
    last: Option<Bytes>,
    _borrow: PhantomData<&'a ()>,
}

impl std::fmt::Debug for RowStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("buffered", &self.rows.len())
            .field("left", &self.left)
            .finish()
    }
}

impl<'a> RowStream<'a> {
    pub(crate) fn new(
        instance: &Instance,
        session: SessionKey,
        table: TableId,
        range: &KeyRange<'_>,
    ) -> RowStream<'a> {
        let (lo, hi) = range.bounds();
        let first = Scan {
            session,
            table,
            lo: lo.map(<[u8]>::to_vec),
            hi: hi.map(<[u8]>::to_vec),
            max_rows: slice_rows(range.limit),
            reverse: range.reverse,
        };
        RowStream {
            instance: instance.clone(),
            first: (range.limit > 0).then_some(first),
            pending: None,
            rows: VecDeque::new(),
            cursor: None,
            left: range.limit,
            last: None,
            _borrow: PhantomData,
        }
    }

    /// The key of the last row the stream returned: resume a scan after it with
    /// [`KeyRange::resume_after`].
    pub fn cursor(&self) -> Option<&[u8]> {
        self.last.as_deref()
    }

    /// The next row, for callers without a `StreamExt` at hand.
    pub async fn next(&mut self) -> Option<Result<Row>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Every row left, in order.
    pub async fn collect(mut self) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        while let Some(row) = self.next().await {
            out.push(row?);
        }
        Ok(out)
    }

    /// The message of the next slice, or `None` when the range is done.
    fn next_request(&mut self) -> Option<SliceFuture> {
        let instance = self.instance.clone();
        if let Some(first) = self.first.take() {
            return Some(Box::pin(async move { instance.ask(first).await }));
        }
        let cursor = self.cursor?;
        let max_rows = slice_rows(self.left);
        Some(Box::pin(async move {
            instance.ask(ScanNext { cursor, max_rows }).await
        }))
    }

    fn take_row(&mut self) -> Option<Row> {
        let row = self.rows.pop_front()?;
        self.left -= 1;
        self.last = Some(row.0.clone());
        Some(row)
    }
}

impl Stream for RowStream<'_> {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Row>>> {
        loop {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            if let Some(row) = self.take_row() {
                return Poll::Ready(Some(Ok(row)));
            }
            if self.pending.is_none() {
                match self.next_request() {
                    Some(f) => self.pending = Some(f),
                    None => return Poll::Ready(None),
                }
            }
            let Some(pending) = self.pending.as_mut() else {
                return Poll::Ready(None);
            };
            let answer = std::task::ready!(pending.as_mut().poll(cx));
            self.pending = None;
            match answer {
                Ok(slice) => {
                    self.cursor = slice.next;
                    self.rows.extend(slice.rows);
                }
                Err(e) => {
                    // The instance closed the cursor with the error.
                    self.cursor = None;
                    self.left = 0;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl Drop for RowStream<'_> {
    fn drop(&mut self) {
        // A slice still being served closes the cursor itself when it finds its caller gone.
        if let Some(cursor) = self.cursor.take() {
            self.instance.tell(CloseScan { cursor });
        }
    }
}

/// Rows the next slice asks for: what is still wanted, at most one slice.
fn slice_rows(left: usize) -> usize {
    left.min(ese::SLICE_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_moves_the_bound_on_the_scans_side() {
        let fwd = KeyRange::between(b"a", b"m").resume_after(b"f");
        assert_eq!(
            fwd.bounds(),
            (Bound::Excluded(&b"f"[..]), Bound::Excluded(&b"m"[..]))
        );
        let rev = KeyRange::between(b"a", b"m").reverse().resume_after(b"f");
        assert_eq!(
            rev.bounds(),
            (Bound::Included(&b"a"[..]), Bound::Excluded(&b"f"[..]))
        );
    }

    #[test]
    fn a_prefix_ends_before_the_next_prefix() {
        let r = KeyRange::prefix(b"ab");
        assert_eq!(
            r.bounds(),
            (Bound::Included(&b"ab"[..]), Bound::Excluded(&b"ac"[..]))
        );
        let top = KeyRange::prefix(&[0xff, 0xff]);
        assert_eq!(top.bounds().1, Bound::Unbounded);
        assert_eq!(KeyRange::prefix(b"").bounds(), KeyRange::all().bounds());
    }

    #[test]
    fn the_limit_caps_each_slice_request() {
        assert_eq!(slice_rows(10), 10);
        assert_eq!(slice_rows(usize::MAX), ese::SLICE_ROWS);
        assert_eq!(slice_rows(0), 0);
    }
}
