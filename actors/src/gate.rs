//! The gate of contract 1.1: which error wins when several states hold at once. A pure
//! function of the instance's lifecycle flags, so its order is tested without a runtime.

use ese::{Error, Result};

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
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
    pub phase: Phase,
    pub stop_service: bool,
    pub unavailable: Option<Error>,
    pub restoring: bool,
}

/// Checks a call against the gate, in the contract's order.
pub(crate) fn check(s: &GateState) -> Result<()> {
    if s.phase == Phase::Terminated {
        return Err(Error::InvalidInstance);
    }
    if s.stop_service {
        return Err(Error::ClientRequestToStopJetService);
    }
    if let Some(e) = &s.unavailable {
        return Err(e.clone());
    }
    match s.phase {
        Phase::Terminating => Err(Error::TermInProgress),
        _ if s.restoring => Err(Error::RestoreInProgress),
        Phase::Initialising | Phase::Created => Err(Error::NotInitialized),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(phase: Phase) -> GateState {
        GateState {
            phase,
            stop_service: false,
            unavailable: None,
            restoring: false,
        }
    }

    #[test]
    fn order_of_the_gate() {
        let mut s = st(Phase::Terminated);
        s.stop_service = true;
        assert_eq!(check(&s).unwrap_err().code(), -1115);
        let mut s = st(Phase::Created);
        s.stop_service = true;
        assert_eq!(
            check(&s).unwrap_err().code(),
            -1329,
            "stop_service beats not-initialised"
        );
        let mut s = st(Phase::Terminating);
        s.stop_service = true;
        assert_eq!(
            check(&s).unwrap_err().code(),
            -1329,
            "stop_service beats term-in-progress"
        );
        let mut s = st(Phase::Terminating);
        s.unavailable = Some(Error::LogWriteFail);
        assert_eq!(
            check(&s).unwrap_err().code(),
            -510,
            "unavailable beats term-in-progress"
        );
        assert_eq!(check(&st(Phase::Terminating)).unwrap_err().code(), -1000);
        let mut s = st(Phase::Running);
        s.restoring = true;
        assert_eq!(check(&s).unwrap_err().code(), -506);
        assert_eq!(check(&st(Phase::Initialising)).unwrap_err().code(), -1029);
        assert_eq!(check(&st(Phase::Created)).unwrap_err().code(), -1029);
        assert!(check(&st(Phase::Running)).is_ok());
    }
}
