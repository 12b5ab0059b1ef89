//! `ese backup --url`: pulls a backup of a running instance from its host's HTTP(S) backup
//! API (`ese_http::client::RemoteBackup`) into a new set of a target, with the local
//! backup's progress, output and exit codes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ese_actors::{BackupKind, BackupTarget};
use ese_http::client::{RemoteBackup, RemoteError, RemoteOptions};

use crate::progress::{transfer_note, Step};
use crate::{Failure, Out};

/// What `ese backup --url` was given.
pub struct Args {
    pub url: String,
    pub kind: BackupKind,
    pub token_file: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    pub compress: Option<i32>,
    /// `--max-rate-mib`, in bytes per second.
    pub max_rate: Option<u64>,
}

/// The token: from `--token-file`, else `ESE_TOKEN`; none at all is allowed (a server
/// without tokens serves loopback only).
fn token(file: Option<&Path>) -> Result<Option<String>, Failure> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Failure::Other(format!("--token-file {}: {e}", f.display())))?;
        return match token_in(&text) {
            Some(t) => Ok(Some(t.to_string())),
            None => Err(Failure::Other(format!(
                "--token-file {}: the file holds no token",
                f.display()
            ))),
        };
    }
    Ok(std::env::var("ESE_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// The token a client's token file holds: the first word of its first line that is neither
/// blank nor a `#` comment. A file with the bare token works, and so does a line of the
/// server's own file (`TOKEN scope,scope`), whose scopes are not part of the token.
fn token_in(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
}

/// `ese backup --url URL --to TARGET`.
pub async fn backup(args: Args, to: &BackupTarget, out: Out) -> Result<(), Failure> {
    let mut options = RemoteOptions::default().kind(args.kind);
    options.token = token(args.token_file.as_deref())?;
    if let Some(ca) = &args.ca_cert {
        let pem = std::fs::read(ca)
            .map_err(|e| Failure::Other(format!("--ca-cert {}: {e}", ca.display())))?;
        options = options.ca_pem(pem);
    }
    options.compress = args.compress;
    options.max_rate = args.max_rate;
    // Everything `new` refuses is in the arguments: the URL, the kind, the CA file, the rate.
    let backup = RemoteBackup::new(&args.url, options).map_err(|e| match e {
        RemoteError::Local(e) if e.code() == ese_actors::Error::InvalidParameter.code() => {
            Failure::Usage(e.to_string())
        }
        e => failure(e),
    })?;
    if backup.token_in_clear() {
        eprintln!(
            "ese: warning: the token goes unencrypted over http:// to {}; anyone on the way can \
             read it and use its scopes. Serve with --tls-cert/--tls-key and use https://",
            args.url
        );
    }
    let what = format!("{:?} backup", args.kind);
    let step = Step::start(out, &format!("{what} of {} to {to}", args.url));
    let mut progress = backup.subscribe();
    let t = Instant::now();
    // Installed before the run: a signal now ends the run (the backup aborted on the server,
    // the partial set removed) instead of the process.
    let mut signals = crate::serve::Signals::install()?;
    let mut run = Box::pin(backup.run(to));
    let res = loop {
        tokio::select! {
            r = &mut run => break r,
            sig = signals.next() => {
                // Past its manifest the run truncates logs the set alone may now hold: it
                // finishes (as a local backup past cancelling does).
                if progress.borrow().phase == ese_actors::BackupPhase::Finishing {
                    continue;
                }
                // Dropping the run removes its partial set (on the blocking pool, which the
                // runtime waits for as the process exits) and sends the server its abort.
                drop(run);
                backup.settle().await;
                step.failed("backup interrupted");
                return Err(Failure::Signal(sig));
            }
            Ok(()) = progress.changed() => {
                let p = *progress.borrow_and_update();
                step.bytes(p.bytes_done, p.bytes_total);
                let resumed = match p.resumes {
                    0 => String::new(),
                    n => format!(", {n} resume(s)"),
                };
                let files = (p.files_done, p.files_total);
                let bytes = (p.bytes_done, p.bytes_total);
                step.note(&transfer_note(&what, p.phase, bytes, "", files, &resumed));
            }
        }
    };
    let done = match res {
        Ok(d) => d,
        Err(e) => {
            step.failed("backup failed");
            return Err(failure(e));
        }
    };
    let m = &done.manifest;
    let bytes = m.content_bytes();
    let secs = t.elapsed().as_secs_f64();
    step.done(&format!(
        "backed up {:.1} MiB in {secs:.2}s",
        bytes as f64 / 1048576.0
    ));
    if out.json {
        println!("{}", serde_json::to_string_pretty(m).unwrap_or_default());
    } else {
        println!(
            "backup {} ({:?}) from {}: {} database(s), logs {}..={}, {:.1} MiB ({:.1} MiB stored), {:.1} MB/s, {} resume(s)",
            m.id,
            m.kind,
            args.url,
            m.databases.len(),
            m.gen_low,
            m.gen_high,
            bytes as f64 / 1048576.0,
            m.stored_bytes() as f64 / 1048576.0,
            bytes as f64 / 1e6 / secs.max(1e-9),
            done.progress.resumes
        );
        println!("set {}", done.location);
    }
    Ok(())
}

/// The command's failure: an ESE error keeps its name and code (the server's or the set's);
/// a refused token says what to check; anything else is one sentence.
fn failure(e: RemoteError) -> Failure {
    match e {
        RemoteError::Ese {
            error,
            status: status @ (401 | 403),
            ..
        } => Failure::EseHint(
            error,
            format!(
                "the server refused the token (HTTP {status}): check --token-file or ESE_TOKEN \
                 and the token's scopes (read, truncate, end)"
            ),
        ),
        RemoteError::Ese { error, .. } | RemoteError::Local(error) => Failure::Ese(error),
        other => Failure::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::token_in;

    #[test]
    fn a_token_file_gives_the_first_word_of_its_first_real_line() {
        assert_eq!(token_in("abc123\n"), Some("abc123"));
        assert_eq!(token_in("  abc123  "), Some("abc123"));
        assert_eq!(
            token_in("# backup client\n\nadmin-0123456789abcdef read,truncate,end\nother x\n"),
            Some("admin-0123456789abcdef")
        );
        assert_eq!(token_in("# only a comment\n\n   \n"), None);
        assert_eq!(token_in(""), None);
    }
}
