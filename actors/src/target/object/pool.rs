//! [`PartPool`]: the part buffers of a repository's uploads, reused from one part to the
//! next. A part is filled on the backup's thread and freed on whichever runtime worker sent
//! it; with glibc's allocator each worker's arena then keeps the freed 16 MiB, so a backup's
//! resident memory grew to more than twice its live buffers. Buffers that come back to the
//! pool are filled again instead, and the pool keeps no more than one upload can have in
//! memory at once, so resident memory stays at what the parts in flight need.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

/// Part buffers free for the next part.
#[derive(Debug)]
pub(crate) struct PartPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers kept at most; more are freed.
    keep: usize,
}

impl PartPool {
    /// A pool keeping at most `keep` buffers.
    pub(crate) fn new(keep: usize) -> Arc<PartPool> {
        Arc::new(PartPool {
            free: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// An empty buffer of at least `size` bytes' capacity: a returned one if there is one.
    pub(crate) fn take(&self, size: usize) -> Vec<u8> {
        let reused = {
            let mut free = self.free.lock();
            let at = free.iter().position(|b| b.capacity() >= size);
            at.map(|i| free.swap_remove(i))
        };
        reused.unwrap_or_else(|| Vec::with_capacity(size))
    }

    /// `buf` as [`Bytes`] that hand the buffer back to the pool when the last of them is
    /// dropped (the request that sent it is done, retries included).
    pub(crate) fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut free = self.free.lock();
        if free.len() < self.keep {
            free.push(buf);
        }
    }

    /// Buffers free now.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.free.lock().len()
    }
}

/// A part buffer lent out as [`Bytes`].
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<PartPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_bytes_go() {
        let pool = PartPool::new(2);
        let mut buf = pool.take(1024);
        buf.extend_from_slice(b"part");
        let ptr = buf.as_ptr();
        let bytes = pool.share(buf);
        let clone = bytes.clone();
        assert_eq!(&clone[..], b"part");
        drop(bytes);
        assert_eq!(pool.free(), 0, "a clone still holds it");
        drop(clone);
        assert_eq!(pool.free(), 1);
        let again = pool.take(1024);
        assert_eq!(again.as_ptr(), ptr, "the same buffer, filled again");
        assert!(again.is_empty());
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_bound() {
        let pool = PartPool::new(1);
        let a = pool.share(pool.take(16));
        let b = pool.share(pool.take(16));
        drop((a, b));
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn a_buffer_too_small_is_not_taken() {
        let pool = PartPool::new(2);
        drop(pool.share(pool.take(16)));
        let big = pool.take(1 << 20);
        assert!(big.capacity() >= 1 << 20);
        assert_eq!(pool.free(), 1, "the small one stays");
    }
}
