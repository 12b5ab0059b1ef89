//! The gate of behaviour.md §1.1: which error wins when several states hold at once. A pure
//! function of the instance's lifecycle flags, so its order is tested without a runtime.

use ese::{Error, Result};

/// Where an instance is in its life (a backup's progress is `ese::internals::backup::Phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Created, not initialised.
    Created,
    /// Soft recovery running.
    Initialising,
    /// Initialised.
    Running,
    /// Term running.
    Terminating,
    /// Gone; the handle outlived it.
    Terminated,
}

/// Everything the gate looks at.
#[derive(Clone, Debug)]
pub(crate) struct GateState {
    pub lifecycle: Lifecycle,
    pub stop_service: bool,
    pub unavailable: Option<Error>,
    pub restoring: bool,
}

/// Checks a call against the gate, in the order of behaviour.md §1.1.
pub(crate) fn check(s: &GateState) -> Result<()> {
    if s.lifecycle == Lifecycle::Terminated {
        return Err(Error::InvalidInstance);
    }
    if s.stop_service {
        return Err(Error::ClientRequestToStopJetService);
    }
    if let Some(e) = &s.unavailable {
        return Err(e.clone());
    }
    match s.lifecycle {
        Lifecycle::Terminating => Err(Error::TermInProgress),
        _ if s.restoring => Err(Error::RestoreInProgress),
        Lifecycle::Initialising | Lifecycle::Created => Err(Error::NotInitialized),
        _ => Ok(()),
    }
}

/// Whether `e`, a gate's answer, can pass with the instance running on: `TermInProgress`
/// (-1000: a term may yet fail with BackupInProgress) and `NotInitialized` (-1029: `init`
/// runs). Every other answer of the gate holds until the instance is termed, and no other
/// error is the gate's. A caller that met one of these may ask again.
pub fn gate_answer_may_pass(e: &Error) -> bool {
    [Error::TermInProgress.code(), Error::NotInitialized.code()].contains(&e.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(lifecycle: Lifecycle) -> GateState {
        GateState {
            lifecycle,
            stop_service: false,
            unavailable: None,
            restoring: false,
        }
    }

    #[test]
    fn order_of_the_gate() {
        let mut s = st(Lifecycle::Terminated);
        s.stop_service = true;
        assert_eq!(check(&s).unwrap_err().code(), -1115);
        let mut s = st(Lifecycle::Created);
        s.stop_service = true;
        assert_eq!(
            check(&s).unwrap_err().code(),
            -1329,
            "stop_service beats not-initialised"
        );
        let mut s = st(Lifecycle::Terminating);
        s.stop_service = true;
        assert_eq!(
            check(&s).unwrap_err().code(),
            -1329,
            "stop_service beats term-in-progress"
        );
        let mut s = st(Lifecycle::Terminating);
        s.unavailable = Some(Error::LogWriteFail);
        assert_eq!(
            check(&s).unwrap_err().code(),
            -510,
            "unavailable beats term-in-progress"
        );
        assert_eq!(
            check(&st(Lifecycle::Terminating)).unwrap_err().code(),
            -1000
        );
        let mut s = st(Lifecycle::Running);
        s.restoring = true;
        assert_eq!(check(&s).unwrap_err().code(), -506);
        assert_eq!(
            check(&st(Lifecycle::Initialising)).unwrap_err().code(),
            -1029
        );
        assert_eq!(check(&st(Lifecycle::Created)).unwrap_err().code(), -1029);
        assert!(check(&st(Lifecycle::Running)).is_ok());
    }

    #[test]
    fn only_the_answers_of_passing_states_may_pass() {
        use Lifecycle::*;
        for (lifecycle, passes) in [
            (Created, true),
            (Initialising, true),
            (Terminating, true),
            (Terminated, false),
        ] {
            let e = check(&st(lifecycle)).unwrap_err();
            assert_eq!(gate_answer_may_pass(&e), passes, "{lifecycle:?}");
        }
        let mut s = st(Lifecycle::Terminating);
        s.stop_service = true;
        assert!(!gate_answer_may_pass(&check(&s).unwrap_err()));
        let mut s = st(Lifecycle::Running);
        s.unavailable = Some(Error::LogWriteFail);
        assert!(!gate_answer_may_pass(&check(&s).unwrap_err()));
        assert!(!gate_answer_may_pass(&Error::BackupAbortByServer));
    }
}
