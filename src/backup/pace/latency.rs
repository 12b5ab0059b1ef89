//! Durable commits' latencies, recorded by whichever thread answers a commit (the log writer)
//! and read by the actor once per pacing window. A fixed array of atomic counters: recording
//! is two atomic adds, no lock and no allocation on the commit path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two: a bucket spans at most 1/8 of its value (12.5%), finer than
/// the 10% a pacing target is usually set to resolve. Quantiles answer a bucket's midpoint, so
/// they are off by at most half of that.
const SUB_BITS: u32 = 3;
const SUBS: usize = 1 << SUB_BITS;
/// Powers of two of microseconds covered: up to 2^30 µs (about 18 minutes); longer counts in
/// the last bucket.
const OCTAVES: usize = 28;
const BUCKETS: usize = OCTAVES * SUBS;

/// Latencies of the durable commits answered since the last [`CommitLatencies::take`].
pub struct CommitLatencies {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
}

impl Default for CommitLatencies {
    fn default() -> Self {
        CommitLatencies {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }
}

impl CommitLatencies {
    /// Counts one commit that took `d` from its arrival to its durable answer.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Commits recorded since the last take (a hint: a record racing the read may be missed).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Everything recorded since the last take; the counters start again from zero.
    pub fn take(&self) -> LatencyWindow {
        let mut w = LatencyWindow::default();
        for (c, b) in w.counts.iter_mut().zip(self.buckets.iter()) {
            *c = b.swap(0, Ordering::Relaxed) as f64;
        }
        self.count.store(0, Ordering::Relaxed);
        w
    }
}

/// Latencies taken out of [`CommitLatencies`]: one window's, or several pooled with weights
/// (so counts are fractional).
#[derive(Clone)]
pub struct LatencyWindow {
    counts: Box<[f64; BUCKETS]>,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            counts: Box::new([0.0; BUCKETS]),
        }
    }
}

impl LatencyWindow {
    /// Commits in the window (weighted, if pooled).
    pub fn len(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// Whether no commit was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0.0
    }

    /// Pools `w` in, after weighing what was here by `keep` (0..=1): older windows fade.
    pub fn pool(&mut self, w: &LatencyWindow, keep: f64) {
        for (c, n) in self.counts.iter_mut().zip(w.counts.iter()) {
            *c = *c * keep + n;
        }
    }

    /// The `q`-quantile (0 < q <= 1) in microseconds, to within a bucket; `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let n = self.len();
        if n <= 0.0 {
            return None;
        }
        // The smallest value with at least q*n at or below it.
        let rank = q * n;
        let mut seen = 0.0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if *c > 0.0 && seen >= rank {
                let (lo, hi) = bounds_of(i);
                return Some((lo + hi) / 2.0);
            }
        }
        None
    }
}

/// The bucket of a latency in microseconds: values below `SUBS` have a bucket each; above,
/// each power of two is split in `SUBS` equal parts.
fn bucket_of(us: u64) -> usize {
    if us < SUBS as u64 {
        return us as usize;
    }
    let top = 63 - us.leading_zeros(); // >= SUB_BITS
    let sub = (us >> (top - SUB_BITS)) as usize & (SUBS - 1);
    let octave = (top - SUB_BITS + 1) as usize;
    (octave * SUBS + sub).min(BUCKETS - 1)
}

/// The microseconds bucket `i` holds, `[lo, hi)`.
fn bounds_of(i: usize) -> (f64, f64) {
    let (octave, sub) = (i / SUBS, (i % SUBS) as f64);
    if octave == 0 {
        return (sub, sub + 1.0);
    }
    let step = (1u64 << (octave - 1)) as f64;
    let lo = (SUBS as f64 + sub) * step;
    (lo, lo + step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_its_buckets_bounds() {
        for us in (0..5000).chain([65_535, 1 << 20, 123_456_789]) {
            let (lo, hi) = bounds_of(bucket_of(us));
            assert!(
                lo <= us as f64 && (us as f64) < hi,
                "{us} not in [{lo}, {hi})"
            );
            assert!(
                hi - lo <= (lo / SUBS as f64).max(1.0),
                "{us}: bucket too wide"
            );
        }
    }

    #[test]
    fn buckets_rise_with_the_value() {
        let mut last = 0;
        for us in 0..100_000 {
            let b = bucket_of(us);
            assert!(b >= last);
            last = b;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_within_a_bucket_of_the_true_value() {
        let l = CommitLatencies::default();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.count(), 1000);
        let w = l.take();
        assert_eq!(w.len(), 1000.0);
        let p99 = w.quantile_us(0.99).unwrap();
        assert!((p99 - 990.0).abs() <= 990.0 / 16.0 + 1.0, "p99 {p99}");
        let p50 = w.quantile_us(0.5).unwrap();
        assert!((p50 - 500.0).abs() <= 500.0 / 16.0 + 1.0, "p50 {p50}");
    }

    #[test]
    fn take_starts_the_next_window_empty() {
        let l = CommitLatencies::default();
        l.record(Duration::from_millis(3));
        assert_eq!(l.take().len(), 1.0);
        assert_eq!(l.count(), 0);
        assert!(l.take().is_empty());
        assert_eq!(l.take().quantile_us(0.99), None);
    }

    #[test]
    fn pooling_fades_older_windows() {
        let l = CommitLatencies::default();
        let mut pooled = LatencyWindow::default();
        for _ in 0..100 {
            l.record(Duration::from_micros(100));
        }
        pooled.pool(&l.take(), 0.5);
        for _ in 0..100 {
            l.record(Duration::from_micros(1000));
        }
        pooled.pool(&l.take(), 0.5);
        // 50 weigh at 100 µs, 100 at 1000 µs: the median is the newer window's.
        assert_eq!(pooled.len(), 150.0);
        let p50 = pooled.quantile_us(0.5).unwrap();
        assert!((900.0..1100.0).contains(&p50), "p50 {p50}");
        let p30 = pooled.quantile_us(0.3).unwrap();
        assert!((90.0..110.0).contains(&p30), "p30 {p30}");
    }
}
