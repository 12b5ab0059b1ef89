//! `ese-http`: ESE's online external backup over HTTP. A host mounts the router of
//! [`Builder`] for its named instances; a client drives the backup sequence
//! (begin, attach info, files, log sealing, truncation, end) as resources, each one a typed
//! message to the instance's actor. Every ESE error comes back as
//! `{"error": {"name", "code", "message"}}` with a fitting status ([`errors::status_of`]).
//!
//! A remote backup holds a lease ([`lease::Lease`]): every request on it renews it; when no
//! request comes for a whole TTL, the server ends that backup (and only that one) as aborted.
//! Requests carry bearer tokens with scopes ([`auth::Tokens`]); without a token file
//! [`Builder::build`] refuses any address but loopback. [`serve_until`] limits connections
//! ([`ConnLimits`]: how many, and how long a request's headers may take) and, with a
//! certificate, TLS handshakes ([`tls::HandshakeLimits`]).
//!
//! The other side is [`client::RemoteBackup`]: it drives the sequence over HTTP(S) into a
//! standard backup set (a folder, `file://` or `s3://` target), so `verify` and `restore`
//! take a pulled set like a local one. A download cut mid-file resumes with
//! `Range: bytes=N-` from the bytes received while the lease allows, every file is checked
//! against the server's CRC-32C, and a failure before truncation aborts the backup and
//! removes the partial set. `ese backup --url` is its command-line face.

mod accept;
pub mod allow;
pub mod auth;
pub mod client;
pub mod errors;
pub mod files;
pub mod lease;
mod push;
mod router;
mod server;
mod state;
mod status;
pub mod stream;
mod timer;
pub mod tls;

pub use accept::ConnLimits;
pub use auth::{Scope, TokenFileError, Tokens};
pub use errors::ApiError;
pub use server::{
    check_lease, serve, serve_until, serve_until_with_limits, BackupServer, BuildError, Builder,
    HOLDS_PER_LEASE,
};
pub use state::{Config, Kind};
