//! [`RemoteError`]: why a remote backup failed, keeping apart what the server's engine said
//! (an ESE error with its code), what the network did, and what writing the set did.

use ese_actors::Error;

/// Why a [`RemoteBackup`](super::RemoteBackup) failed.
#[derive(Debug)]
pub enum RemoteError {
    /// The server answered with an ESE error (`{"error": {"name", "code", "message"}}`).
    Ese {
        /// The engine's error rebuilt from its code, with the server's message as its detail
        /// (`InternalError` with that detail for a code this build does not know).
        error: Error,
        /// The ESE name the server sent, e.g. `JET_errBackupAbortByServer`.
        name: String,
        /// The ESE number the server sent, e.g. -801.
        code: i32,
        /// The HTTP status.
        status: u16,
    },
    /// The server answered something other than what the protocol promises: a status
    /// without an ESE error body (a proxy's 502), malformed JSON, a missing header.
    Protocol {
        /// The HTTP status, if the answer got that far.
        status: Option<u16>,
        /// What was wrong, in a sentence.
        message: String,
    },
    /// The bytes of a file do not match the checksum or size the server sent for them: the
    /// set is never written with them.
    Integrity(String),
    /// The server could not be reached, or the connection kept failing for longer than the
    /// lease allows a resume.
    Transport {
        /// The URL asked for.
        url: String,
        /// What happened, in a sentence.
        message: String,
    },
    /// A local failure: writing the set (`DiskFull` -1808, `DiskIO` -1022, ...), a target
    /// that cannot take a set, or options refused before anything was sent.
    Local(Error),
    /// A failure after the server truncated its logs: the set is complete and holds logs
    /// the source no longer has, so it was kept.
    Kept {
        /// What failed.
        error: Box<RemoteError>,
        /// The set, as a person reads its location.
        location: String,
    },
}

impl RemoteError {
    /// The ESE error this failure carries, if any: the server's, or the local one. Hosts map
    /// it to their exit codes or statuses.
    pub fn ese(&self) -> Option<&Error> {
        match self {
            RemoteError::Ese { error, .. } | RemoteError::Local(error) => Some(error),
            RemoteError::Kept { error, .. } => error.ese(),
            _ => None,
        }
    }

    /// The ESE number, if the failure carries an ESE error.
    pub fn code(&self) -> Option<i32> {
        self.ese().map(Error::code)
    }

    /// Whether the set was kept (complete, after the source's logs were truncated).
    pub fn set_kept(&self) -> bool {
        matches!(self, RemoteError::Kept { .. })
    }

    pub(crate) fn protocol(status: Option<u16>, message: impl Into<String>) -> RemoteError {
        RemoteError::Protocol {
            status,
            message: message.into(),
        }
    }

    /// The error of a transport failure on `url`, in a sentence a person can act on.
    pub(crate) fn transport(url: &str, e: &reqwest::Error) -> RemoteError {
        let what = if e.is_connect() {
            "cannot connect"
        } else if e.is_timeout() {
            "timed out"
        } else if e.is_body() || e.is_decode() {
            "the connection broke during the answer"
        } else {
            "the request failed"
        };
        RemoteError::Transport {
            url: url.to_string(),
            message: format!("{what}: {}", chain(e)),
        }
    }
}

/// An error and its sources in one line (reqwest's own Display stops at the outermost).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::Ese { error, status, .. } => {
                write!(f, "the server answered {error} (HTTP {status})")
            }
            RemoteError::Protocol {
                status: Some(s),
                message,
            } => write!(f, "unexpected answer from the server (HTTP {s}): {message}"),
            RemoteError::Protocol {
                status: None,
                message,
            } => write!(f, "unexpected answer from the server: {message}"),
            RemoteError::Integrity(m) => write!(f, "damaged transfer: {m}"),
            RemoteError::Transport { url, message } => write!(f, "{url}: {message}"),
            RemoteError::Local(e) => write!(f, "{e}"),
            RemoteError::Kept { error, location } => write!(
                f,
                "{error}; the set {location} is complete and holds logs the source no longer \
                 has: keep it"
            ),
        }
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteError::Ese { error, .. } | RemoteError::Local(error) => Some(error),
            RemoteError::Kept { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

impl From<Error> for RemoteError {
    fn from(e: Error) -> RemoteError {
        RemoteError::Local(e)
    }
}
