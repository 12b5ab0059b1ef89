//! The lease of a remote backup as plain data: a deadline that every request on the backup
//! pushes forward, and an end. The clock is passed in, so the state machine is tested without
//! a runtime; the timer task (`timer.rs`) only sleeps until [`Lease::poll`] says so.

use std::time::{Duration, Instant};

/// Why a lease is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseEnd {
    /// No request came for a whole TTL: the server ends the backup.
    Expired,
    /// The client (or the host) ended the backup.
    Ended,
}

/// The answer to a request's renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The lease runs for another TTL.
    Renewed,
    /// The request came after the deadline, before the timer noticed: the lease expires now,
    /// and the caller ends the backup (the timer will not).
    ExpiredNow,
    /// The lease was over already.
    Over(LeaseEnd),
}

/// What the timer should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Sleep until this instant, then poll again (a renewal may have moved the deadline).
    SleepUntil(Instant),
    /// The lease just expired: end the backup. Returned once.
    Expire,
    /// The lease is over already: the timer stops.
    Stop,
}

/// One backup's lease.
#[derive(Clone, Debug)]
pub struct Lease {
    ttl: Duration,
    deadline: Instant,
    end: Option<LeaseEnd>,
}

impl Lease {
    /// A lease taken at `now` for `ttl`.
    pub fn new(now: Instant, ttl: Duration) -> Lease {
        Lease {
            ttl,
            deadline: after(now, ttl),
            end: None,
        }
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A request on the backup at `now`: the lease runs for another TTL. A request that comes
    /// after the deadline, before the timer noticed, is too late: the lease expires, so what a
    /// client sees never depends on how late the timer runs.
    pub fn renew(&mut self, now: Instant) -> Renewal {
        if let Some(end) = self.end {
            return Renewal::Over(end);
        }
        if now >= self.deadline {
            self.end = Some(LeaseEnd::Expired);
            return Renewal::ExpiredNow;
        }
        self.deadline = after(now, self.ttl);
        Renewal::Renewed
    }

    /// The timer's question at `now`.
    pub fn poll(&mut self, now: Instant) -> Tick {
        match self.end {
            Some(_) => Tick::Stop,
            None if now >= self.deadline => {
                self.end = Some(LeaseEnd::Expired);
                Tick::Expire
            }
            None => Tick::SleepUntil(self.deadline),
        }
    }

    /// The backup was ended explicitly. An expired lease stays expired.
    pub fn end(&mut self) {
        self.end.get_or_insert(LeaseEnd::Ended);
    }

    /// Whether and why the lease is over.
    pub fn ended(&self) -> Option<LeaseEnd> {
        self.end
    }
}

/// `now + ttl`, at most a year ahead: a TTL too large for the clock (e.g. `Duration::MAX`)
/// must not panic after the backup began, it only means "practically never".
fn after(now: Instant, ttl: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(ttl.min(YEAR)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_fresh_lease_sleeps_until_its_deadline() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0, TTL);
        assert_eq!(l.poll(t0), Tick::SleepUntil(t0 + TTL));
    }

    #[test]
    fn a_renewal_moves_the_deadline() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0, TTL);
        assert_eq!(l.renew(at(t0, 4_000)), Renewal::Renewed);
        // The timer wakes at the old deadline and is told to sleep on.
        assert_eq!(l.poll(t0 + TTL), Tick::SleepUntil(at(t0, 14_000)));
    }

    #[test]
    fn expiry_is_reported_once_then_stops() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0, TTL);
        assert_eq!(l.poll(t0 + TTL), Tick::Expire);
        assert_eq!(l.poll(at(t0, 20_000)), Tick::Stop);
        assert_eq!(l.ended(), Some(LeaseEnd::Expired));
    }

    #[test]
    fn a_request_after_the_deadline_is_refused_even_before_the_timer_ran() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0, TTL);
        assert_eq!(l.renew(t0 + TTL), Renewal::ExpiredNow);
        // The timer then only stops; the router ends the backup on the refusal.
        assert_eq!(l.poll(t0 + TTL), Tick::Stop);
        assert_eq!(l.renew(t0 + TTL), Renewal::Over(LeaseEnd::Expired));
    }

    #[test]
    fn an_ended_lease_refuses_requests_and_stops_the_timer() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0, TTL);
        l.end();
        assert_eq!(l.renew(at(t0, 1)), Renewal::Over(LeaseEnd::Ended));
        assert_eq!(l.poll(at(t0, 1)), Tick::Stop);
    }

    #[test]
    fn ending_an_expired_lease_keeps_it_expired() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0, TTL);
        assert_eq!(l.poll(t0 + TTL), Tick::Expire);
        l.end();
        assert_eq!(l.ended(), Some(LeaseEnd::Expired));
    }
}
