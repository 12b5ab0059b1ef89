//! The rate limit of a backup: [`Pacer`], a pure state machine a run asks after each chunk
//! how long to wait. No clock of its own and no runtime: the caller hands it the instant and
//! sleeps (asynchronously) for what it answers, so it is tested without either. Backup-set
//! runs use it, and so does ese-http's client for a remote backup's `max_rate`.

use std::time::{Duration, Instant};

/// Paces a stream to at most `rate` bytes per second, as a token bucket that holds at most
/// `burst` worth of time: a caller that spent time elsewhere (reading, writing) is credited
/// for it up to `burst`, so it does not wait twice for the same second, but a long stall
/// never buys a burst of more than that.
///
/// Whatever the credit, when the caller has slept for every answer, at least
/// `bytes / rate` has passed since its first [`Pacer::take`]: each take moves the instant
/// the stream is paid up to by at least the chunk's cost, and the answer is the time until
/// that instant.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ese_actors::Pacer;
///
/// let mut p = Pacer::new(1 << 20, Duration::from_millis(100)); // 1 MiB/s
/// let t0 = Instant::now();
/// assert_eq!(p.take(512 << 10, t0), Duration::from_millis(500));
/// ```
#[derive(Debug)]
pub struct Pacer {
    rate: u64,
    burst: Duration,
    /// When the bytes charged so far are paid for; `None` before the first chunk.
    paid_until: Option<Instant>,
}

impl Pacer {
    /// A pacer of `rate` bytes per second (at least 1) crediting at most `burst` of idle time.
    pub fn new(rate: u64, burst: Duration) -> Pacer {
        Pacer {
            rate: rate.max(1),
            burst,
            paid_until: None,
        }
    }

    /// Charges `bytes` just moved at `now`; answers how long to wait before the next chunk.
    pub fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        let cost = cost(bytes, self.rate);
        // An instant `burst` before now may not exist (a clock near its origin): no credit.
        let credited_from = now.checked_sub(self.burst).unwrap_or(now);
        let start = match self.paid_until {
            Some(t) => t.max(credited_from),
            None => now,
        };
        match start.checked_add(cost) {
            Some(paid) => {
                self.paid_until = Some(paid);
                paid.saturating_duration_since(now)
            }
            // Past what the clock can name: wait the cost itself, from now.
            None => {
                self.paid_until = Some(now);
                cost
            }
        }
    }
}

/// How long `bytes` take at `rate` bytes per second; saturates instead of overflowing.
pub(crate) fn cost(bytes: u64, rate: u64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_caller_that_sleeps_as_told_moves_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 100 * MS);
        let mut now = t0;
        for _ in 0..10 {
            let wait = p.take(100, now);
            assert_eq!(wait, 100 * MS);
            now += wait;
        }
        assert_eq!(now - t0, Duration::from_secs(1));
    }

    #[test]
    fn time_spent_elsewhere_is_credited_up_to_the_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 100 * MS);
        assert_eq!(p.take(100, t0), 100 * MS);
        // The next chunk took 60 ms to move after the wait: only the rest is waited.
        let now = t0 + 160 * MS;
        assert_eq!(p.take(100, now), 40 * MS);
        // A stall of 10 s is credited only 100 ms: the next chunk is free, the one after not.
        let now = now + 40 * MS + Duration::from_secs(10);
        assert_eq!(p.take(100, now), Duration::ZERO);
        assert_eq!(p.take(100, now), 100 * MS);
    }

    #[test]
    fn never_faster_than_the_rate_whatever_the_steps_take() {
        let t0 = Instant::now();
        let mut p = Pacer::new(4096, 250 * MS);
        let (mut now, mut bytes) = (t0, 0u64);
        for i in 0..200u64 {
            let chunk = 512 + (i * 7919) % 3000;
            now += p.take(chunk, now);
            bytes += chunk;
            // Some steps take time of their own, some none.
            now += Duration::from_micros((i * 104_729) % 400_000);
        }
        let least = Duration::from_secs_f64(bytes as f64 / 4096.0);
        assert!(now - t0 >= least, "{:?} < {least:?}", now - t0);
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let now = Instant::now();
        let mut p = Pacer::new(0, Duration::MAX);
        let wait = p.take(u64::MAX, now);
        assert!(wait >= Duration::from_secs(1 << 30));
        let _ = p.take(u64::MAX, now);
        assert_eq!(Pacer::new(u64::MAX, MS).take(1, now), Duration::ZERO);
        assert_eq!(Pacer::new(5, MS).take(0, now), Duration::ZERO);
    }
}
