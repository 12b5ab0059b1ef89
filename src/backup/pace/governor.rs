//! The backup's rate, decided window by window from the durable commits' latencies
//! (module docs of [`super`]). Plain data driven by the caller's clock, so every decision is
//! testable without threads or timers.

use std::time::{Duration, Instant};

use super::{BackupPace, CommitLatencies, LatencyWindow};

/// How often the rate is decided: short enough to back off within a few of a commit's fsyncs
/// of a burst, long enough to hold a hundred commits on a busy instance.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Commits a window needs before its p99 means anything; a window waits for them up to
/// [`QUIET_AFTER`] windows.
pub const MIN_COMMITS: u64 = 100;
/// Windows without [`MIN_COMMITS`] commits after which the commits count as idle: the backup
/// reads at full speed.
pub const QUIET_AFTER: u32 = 10;
/// How much of the pooled no-backup latencies each new such window keeps: older ones fade
/// over about ten windows.
const QUIET_KEEP: f64 = 0.9;
/// The rate a backup starts at beside busy commits, in floors: it grows from there.
const START_FLOORS: f64 = 2.0;
/// Per window judged within the share. Window p99s are noisy, so some windows are judged
/// over by chance; the rate settles where growth and halving balance, with about
/// ln(GROW) / (ln(GROW) + ln 2) of the windows judged over: 12% at 1.1. At 1.25 (24%) the
/// writers' p99 over whole seconds ran 1.28x–1.40x a quiet one's in the remote bench; at 1.1,
/// 1.11x–1.16x.
const GROW: f64 = 1.1;
const SHRINK: f64 = 0.5;
/// How far past the rate a window read the limit may grow.
const WINDUP: f64 = 4.0;

/// Decides when each backup read may start (see [`BackupPace`]).
pub struct Governor {
    /// The allowed p99 as a ratio of the no-backup p99, and the floor in bytes per second;
    /// `None` for [`BackupPace::Full`].
    limits: Option<(f64, f64)>,
    window_start: Instant,
    /// Bytes admitted in the current window: the backup read in it.
    read_bytes: u64,
    /// Latencies of recent windows without backup reads, pooled.
    quiet: LatencyWindow,
    /// The lowest window p99 seen while a backup read: the baseline until a window without
    /// backup reads gives one.
    lowest_p99: Option<f64>,
    /// The last window had enough commits to protect.
    busy: bool,
    /// Bytes per second the reads may take; `None`: no limit.
    rate: Option<f64>,
    /// When the next read may start.
    next_free: Instant,
    /// When a read was last admitted: windows soon after it are not taken as ones without a
    /// backup (its reads may be held, on disk or being sent in them).
    last_read: Option<Instant>,
}

impl Governor {
    /// A governor with no history, at `now`.
    pub fn new(pace: BackupPace, now: Instant) -> Self {
        let limits = match pace {
            BackupPace::Full => None,
            BackupPace::YieldToCommits {
                p99_percent,
                floor_bytes_per_sec,
            } => Some((
                f64::from(p99_percent.max(100)) / 100.0,
                floor_bytes_per_sec.max(1) as f64,
            )),
        };
        Governor {
            limits,
            window_start: now,
            read_bytes: 0,
            quiet: LatencyWindow::default(),
            lowest_p99: None,
            busy: false,
            rate: None,
            next_free: now,
            last_read: None,
        }
    }

    /// Whether commits' latencies are to be recorded at all.
    pub fn is_on(&self) -> bool {
        self.limits.is_some()
    }

    /// The rate reads are held to, in bytes per second; `None` when they are not.
    pub fn limit(&self) -> Option<f64> {
        self.rate
    }

    /// Closes the window if it is over, deciding the rate from the commits `latencies`
    /// recorded in it. Called on every durable commit and every backup read.
    pub fn tick(&mut self, now: Instant, latencies: &CommitLatencies) {
        let age = now.saturating_duration_since(self.window_start);
        if self.limits.is_none() || age < WINDOW {
            return;
        }
        if latencies.count() < MIN_COMMITS && age < WINDOW * QUIET_AFTER {
            return;
        }
        let w = latencies.take();
        self.close(&w, age, now);
        self.window_start = now;
        self.read_bytes = 0;
    }

    /// A read of `bytes` asks to start at `now`: answers when it may, if later.
    pub fn admit(&mut self, bytes: u64, now: Instant) -> Option<Instant> {
        self.read_bytes += bytes;
        let (_, floor) = self.limits?;
        self.last_read = Some(now);
        if self.rate.is_none() && self.busy {
            // A backup beginning beside busy commits starts slow and speeds up while they
            // bear it, rather than taking the cores first and backing off after.
            self.rate = Some(floor * START_FLOORS);
            self.next_free = now;
        }
        let Some(rate) = self.rate else {
            self.next_free = now;
            return None;
        };
        let start = self.next_free.max(now);
        self.next_free = start + Duration::from_secs_f64(bytes as f64 / rate);
        (start > now).then_some(start)
    }

    fn close(&mut self, w: &LatencyWindow, age: Duration, now: Instant) {
        let Some((ratio, floor)) = self.limits else {
            return;
        };
        let p99 = match w.quantile_us(0.99) {
            Some(p) if w.len() >= MIN_COMMITS as f64 => p,
            _ => {
                // Too few commits to protect: read at full speed.
                if self.rate.take().is_some() {
                    tracing::debug!("backup pace: commits idle, reads unlimited");
                }
                self.busy = false;
                self.lowest_p99 = None;
                // Commits that come back may come back at another pace: learn it anew.
                self.quiet = LatencyWindow::default();
                return;
            }
        };
        self.busy = true;
        if self.read_bytes == 0 {
            let lately = self
                .last_read
                .is_some_and(|t| now.saturating_duration_since(t) < WINDOW * QUIET_AFTER);
            if !lately && self.next_free <= self.window_start {
                self.quiet.pool(w, QUIET_KEEP);
            }
            return;
        }
        let base = self
            .quiet
            .quantile_us(0.99)
            .or(self.lowest_p99)
            .unwrap_or(p99);
        self.lowest_p99 = Some(self.lowest_p99.map_or(p99, |l| l.min(p99)));
        let read = self.read_bytes as f64 / age.as_secs_f64().max(1e-3);
        let rate = self.rate.map_or(read, |r| r.min(read));
        self.rate = Some(if p99 > base * ratio {
            (rate * SHRINK).max(floor)
        } else {
            // Never far past what was read: a client slower than its limit would otherwise
            // build up an allowance (growing without end) to spend at once when it speeds up.
            self.rate
                .map_or(read, |r| (r * GROW).min(read * WINDUP))
                .max(floor)
        });
        tracing::debug!(
            p99_us = p99,
            base_us = base,
            rate_mib = self.rate.unwrap_or(0.0) / (1 << 20) as f64,
            "backup pace"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn yielding() -> BackupPace {
        BackupPace::YieldToCommits {
            p99_percent: 110,
            floor_bytes_per_sec: 4 * MIB,
        }
    }

    /// Drives a governor through whole windows on a clock of its own.
    struct Clock {
        governor: Governor,
        lat: CommitLatencies,
        now: Instant,
    }

    impl Clock {
        fn new(pace: BackupPace) -> Clock {
            let now = Instant::now();
            Clock {
                governor: Governor::new(pace, now),
                lat: CommitLatencies::default(),
                now,
            }
        }

        /// One window: `commits` commits of `us` each, and a backup reading `read` bytes in
        /// 1 MiB chunks; answers the delays the reads were given.
        fn window(&mut self, commits: u64, us: u64, read: u64) -> Vec<Duration> {
            for _ in 0..commits {
                self.lat.record(Duration::from_micros(us));
            }
            let mut waits = Vec::new();
            for _ in 0..read / MIB {
                if let Some(t) = self.governor.admit(MIB, self.now) {
                    waits.push(t - self.now);
                }
            }
            self.now += WINDOW;
            self.governor.tick(self.now, &self.lat);
            waits
        }
    }

    #[test]
    fn without_commits_reads_are_never_held() {
        let mut c = Clock::new(yielding());
        for _ in 0..30 {
            assert!(c.window(0, 0, 64 * MIB).is_empty());
        }
        assert_eq!(c.governor.limit(), None);
    }

    #[test]
    fn full_pace_never_holds_reads_whatever_the_commits() {
        let mut c = Clock::new(BackupPace::Full);
        assert!(!c.governor.is_on());
        c.window(1000, 300, 0);
        for _ in 0..10 {
            assert!(c.window(1000, 3000, 64 * MIB).is_empty());
        }
        assert_eq!(c.governor.limit(), None);
    }

    #[test]
    fn a_backup_beside_busy_commits_starts_slow() {
        let mut c = Clock::new(yielding());
        c.window(1000, 300, 0);
        let waits = c.window(1000, 300, 4 * MIB);
        let grown = START_FLOORS * 4.0 * MIB as f64 * GROW;
        assert_eq!(c.governor.limit(), Some(grown), "2 floors, then grown");
        // 8 MiB/s: the second to fourth MiB wait 1/8 s each more than the one before.
        assert_eq!(waits.len(), 3);
        assert!(
            (waits[2].as_secs_f64() - 3.0 / 8.0).abs() < 1e-6,
            "{waits:?}"
        );
    }

    #[test]
    fn slower_commits_halve_the_rate_down_to_the_floor() {
        let mut c = Clock::new(yielding());
        c.window(1000, 300, 0);
        c.window(1000, 300, MIB);
        let before = c.governor.limit().unwrap();
        c.window(1000, 600, MIB);
        let after = c.governor.limit().unwrap();
        assert!(after <= before / 2.0 + 1.0, "{before} -> {after}");
        for _ in 0..20 {
            c.window(1000, 600, MIB);
        }
        assert_eq!(c.governor.limit(), Some(4.0 * MIB as f64));
    }

    #[test]
    fn commits_as_fast_as_without_a_backup_let_the_rate_grow() {
        let mut c = Clock::new(yielding());
        c.window(1000, 300, 0);
        let mut last = 0.0;
        for _ in 0..10 {
            c.window(1000, 310, 64 * MIB);
            let now = c.governor.limit().unwrap();
            assert!(now > last, "{last} -> {now}");
            last = now;
        }
    }

    #[test]
    fn a_client_slower_than_its_limit_builds_up_no_allowance() {
        let mut c = Clock::new(yielding());
        c.window(1000, 300, 0);
        // 1 MiB a window (10 MiB/s), within the share, for a minute of windows.
        for _ in 0..600 {
            c.window(1000, 300, MIB);
        }
        let limit = c.governor.limit().unwrap();
        assert!(limit <= 4.0 * 10.0 * MIB as f64 + 1.0, "{limit}");
    }

    #[test]
    fn windows_soon_after_a_read_do_not_become_the_baseline() {
        let mut c = Clock::new(yielding());
        c.window(1000, 300, 0);
        c.window(1000, 300, MIB);
        // No read admitted, but the backup's last read is recent (held, or being sent): its
        // slow commits must not raise the baseline.
        for _ in 0..3 {
            c.window(1000, 2000, 0);
        }
        let before = c.governor.limit().unwrap();
        c.window(1000, 900, MIB);
        assert!(
            c.governor.limit().unwrap() < before,
            "judged against 300 µs"
        );
    }

    #[test]
    fn idle_commits_lift_the_limit() {
        let mut c = Clock::new(yielding());
        c.window(1000, 300, 0);
        c.window(1000, 900, MIB);
        assert!(c.governor.limit().is_some());
        // Fewer than MIN_COMMITS over QUIET_AFTER windows: the commits are idle.
        for _ in 0..QUIET_AFTER {
            c.window(5, 300, 0);
        }
        assert_eq!(c.governor.limit(), None);
        assert!(c.window(0, 0, 16 * MIB).is_empty());
    }

    #[test]
    fn without_a_quiet_baseline_the_lowest_backup_window_is_the_baseline() {
        let mut c = Clock::new(yielding());
        // Busy from the start, the first window already with a backup: it is the baseline.
        c.window(1000, 500, MIB);
        c.window(1000, 500, MIB);
        let grown = c.governor.limit().unwrap();
        c.window(1000, 800, MIB);
        assert!(c.governor.limit().unwrap() < grown);
    }

    #[test]
    fn a_window_waits_for_enough_commits_to_judge() {
        let mut c = Clock::new(yielding());
        c.window(1000, 300, 0);
        c.window(1000, 300, MIB);
        let before = c.governor.limit();
        // 50 slow commits: not enough to judge, the window goes on.
        c.window(50, 3000, MIB);
        assert_eq!(c.governor.limit(), before);
        c.window(60, 3000, MIB);
        assert!(c.governor.limit() < before);
    }
}
