//! Downloading one file of the backup into the set, resuming a cut download with
//! `Range: bytes=N-` from exactly the bytes received, while the lease allows.
//!
//! Every byte is checked: the whole file, as the set's writer summed it while writing it
//! (the sum its manifest entry carries), against the server's `x-ese-file-crc32c` trailer,
//! or, if no trailer arrived (something on the way dropped it), against the `crc32c` the
//! status resource lists for the completed file. A mismatch fails the backup; a file is never
//! finished unchecked. Each response's own `x-ese-crc32c` is not summed again here: the
//! file's sum covers every byte of every response, in order, and one pass over the bytes
//! instead of two is a tenth of a pull's CPU.

use std::time::{Duration, Instant};

use ese_actors::ese::backup::set::Content;
use ese_actors::{Error, Pacer};
use http_body_util::BodyExt;
use reqwest::header::{HeaderMap, CONTENT_RANGE};
use reqwest::StatusCode;

use super::api::{Api, FileView};
use super::error::{chain, RemoteError};
use super::progress::RunTracker;
use super::receiver::{Gone, Link};
use super::set::{lock, Shared};
use crate::stream::{FILE_CRC_TRAILER, SIZE_HEADER};

/// The first wait before a resume; it doubles up to the session's maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Resumes in a row that may end at the byte the one before ended at, over at least half a
/// lease, before the client gives up. A server that cuts every answer at the same byte while
/// the backup runs is not suffering a flaky network: without a bound the client would ask
/// for ever, and its requests would keep the lease, and the logs it holds, alive. Both
/// bounds, so that neither a quick run of failures on a lossy link nor a slow one ends it.
const MAX_STUCK_RESUMES: u32 = 8;

/// Where the last cuts of one file came, to tell resumes that make progress from a loop.
#[derive(Debug, Default)]
struct Cuts {
    /// The byte the last cut came at, and when the first cut at that byte came.
    at: Option<(u64, Instant)>,
    /// Cuts at that byte after the first.
    stuck: u32,
}

impl Cuts {
    /// A cut after `len` bytes of the file, at `now`: whether to give up, `budget` being the
    /// least time to spend stuck at one byte.
    fn give_up(&mut self, len: u64, now: Instant, budget: Duration) -> bool {
        match self.at {
            Some((at, since)) if at == len => {
                self.stuck += 1;
                self.stuck >= MAX_STUCK_RESUMES && now.saturating_duration_since(since) >= budget
            }
            _ => {
                (self.at, self.stuck) = (Some((len, now)), 0);
                false
            }
        }
    }
}

/// What a download needs of the run: the backup, its lease, and when the server was last
/// heard from (every answer and every chunk renews the lease server-side). It lives on the
/// receiving thread ([`super::receiver`]), so its `Api` has a client of its own.
pub(crate) struct Session {
    pub api: Api,
    pub id: String,
    pub lease_ttl: Duration,
    pub max_backoff: Duration,
    pub last_contact: Instant,
    /// The run's figures (a later run's are not touched).
    pub tracker: RunTracker,
    /// `RemoteOptions::max_rate`'s pacer, if the run has one.
    pub pacer: Option<Pacer>,
}

/// How an attempt ended short of the file's end.
enum Stop {
    /// The connection broke (or the server cut the stream): worth a resume.
    Cut(String),
    /// An answer that ends the run.
    Fatal(RemoteError),
}

impl From<RemoteError> for Stop {
    fn from(e: RemoteError) -> Stop {
        Stop::Fatal(e)
    }
}

impl From<Gone> for Stop {
    fn from(g: Gone) -> Stop {
        Stop::Fatal(g.into())
    }
}

/// What was received, and written, of the file so far.
#[derive(Default)]
struct Got {
    len: u64,
    size: Option<u64>,
}

impl Session {
    /// Streams the file `f` into the set's file being written (started by the caller, who
    /// finishes it once this returns). Blocks: the network through `link`, the writes here.
    pub fn download(
        &mut self,
        link: &mut Link<'_>,
        set: &Shared,
        f: &FileView,
    ) -> Result<(), RemoteError> {
        let mut got = Got::default();
        let mut cuts = Cuts::default();
        loop {
            match self.attempt(link, set, f, &mut got) {
                Ok(trailer_crc) => {
                    let written = lock(set).written();
                    return self.check_file(link, f, &got, written, trailer_crc);
                }
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::Cut(why)) => {
                    tracing::info!(file = %f.name, at = got.len, reason = %why, "download cut; resuming");
                    // The server's verdict first: a backup it ended is reported as such.
                    self.recover(link, f, &why)?;
                    if cuts.give_up(got.len, Instant::now(), self.lease_ttl / 2) {
                        return Err(RemoteError::Transport {
                            url: self.api.file_url(&self.id, f.index),
                            message: format!(
                                "{why}; the server cut the download at byte {} of {} again and \
                                 again ({MAX_STUCK_RESUMES} resumes without a byte more)",
                                got.len, f.name
                            ),
                        });
                    }
                    self.tracker.update(|p| p.resumes += 1);
                }
            }
        }
    }

    /// One GET from the bytes received so far, each frame written to the set as it comes.
    /// `Ok` once the response ended with the file complete, with the whole file's CRC-32C
    /// from its trailer if one came.
    fn attempt(
        &mut self,
        link: &mut Link<'_>,
        set: &Shared,
        f: &FileView,
        got: &mut Got,
    ) -> Result<Option<u32>, Stop> {
        let from = got.len;
        let res = match link.wait(self.api.file(&self.id, f.index, from))? {
            Ok(r) => r,
            Err(RemoteError::Transport { message, .. }) => return Err(Stop::Cut(message)),
            Err(e) => return Err(Stop::Fatal(e)),
        };
        self.last_contact = Instant::now();
        let status = res.status();
        check_start(status, res.headers(), from)?;
        let size = header_u64(res.headers(), SIZE_HEADER).ok_or_else(|| {
            RemoteError::protocol(
                Some(status.as_u16()),
                format!("no valid {SIZE_HEADER} header"),
            )
        })?;
        match got.size {
            None => {
                got.size = Some(size);
                self.tracker
                    .update(|p| p.bytes_total = p.bytes_total.saturating_add(size));
            }
            Some(s) if s != size => {
                return Err(Stop::Fatal(RemoteError::Integrity(format!(
                    "{}: the size changed from {s} to {size} bytes between two requests",
                    f.name
                ))))
            }
            Some(_) => {}
        }
        let res: axum::http::Response<reqwest::Body> = res.into();
        let mut body = res.into_body();
        let mut trailers = None;
        loop {
            let frame = match link.wait(body.frame())? {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Err(Stop::Cut(chain(&e))),
            };
            self.last_contact = Instant::now();
            let data = match frame.into_data() {
                Ok(d) => d,
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    continue;
                }
            };
            if got.len + data.len() as u64 > size {
                return Err(Stop::Fatal(RemoteError::Integrity(format!(
                    "{}: the server sent more than the file's {size} bytes",
                    f.name
                ))));
            }
            lock(set).append(&data).map_err(RemoteError::from)?;
            let n = data.len() as u64;
            got.len += n;
            self.tracker.update(|p| {
                p.bytes_received += n;
                p.bytes_done += n;
            });
            self.pace(link, n)?;
        }
        if got.len < size {
            return Err(Stop::Cut(format!(
                "the answer ended after {} of {size} bytes",
                got.len
            )));
        }
        match trailers {
            Some(t) => trailer_crc(&t, FILE_CRC_TRAILER),
            None => Ok(None),
        }
    }

    /// Waits as long as the rate asks before the next frame is read: the bytes wait in the
    /// socket, and TCP holds the server to the rate. reqwest's read timeout counts only
    /// while a read waits, not between reads, so a wait of any length does not time out
    /// (pinned by `tests/read_timeout.rs`, as a reqwest upgrade could change it).
    fn pace(&mut self, link: &mut Link<'_>, bytes: u64) -> Result<(), Gone> {
        let Some(pacer) = self.pacer.as_mut() else {
            return Ok(());
        };
        let wait = pacer.take(bytes, Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        link.sleep(wait)
    }

    /// The whole file, as written, against the server's CRC-32C of it.
    fn check_file(
        &mut self,
        link: &mut Link<'_>,
        f: &FileView,
        got: &Got,
        written: Option<Content>,
        trailer: Option<u32>,
    ) -> Result<(), RemoteError> {
        let written = written.filter(|w| w.len == got.len).ok_or_else(|| {
            RemoteError::Local(Error::InternalError.with_detail(format!(
                "{}: the set's file does not hold the {} bytes received",
                f.name, got.len
            )))
        })?;
        let expected = match trailer {
            Some(c) => c,
            None => {
                // No trailer came through: the status resource lists the complete file's sum.
                let files = link.wait(self.api.files(&self.id))??;
                self.last_contact = Instant::now();
                let listed = files.iter().find(|v| v.index == f.index);
                listed
                    .and_then(|v| v.crc32c.as_deref())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        RemoteError::protocol(
                            None,
                            format!(
                                "{}: neither a trailer nor the status gives its CRC-32C",
                                f.name
                            ),
                        )
                    })?
            }
        };
        let crc = written.crc32c;
        if expected != crc {
            return Err(RemoteError::Integrity(format!(
                "{}: the {} bytes received have CRC-32C {crc:08x}, the server streamed {expected:08x}",
                f.name, got.len
            )));
        }
        Ok(())
    }

    /// After a cut: waits a little, then asks the engine whether the backup still runs. The
    /// server cuts a file's stream when the engine refuses a read (its status line is sent
    /// already, so the refusal cannot be an answer); a harmless call surfaces that refusal
    /// (`BackupAbortByServer`, the gate's errors, `NoBackup` for an expired lease) before
    /// the download is asked for again. Gives up once half the lease went by without a word
    /// from the server (it would soon end the backup anyway), but asks once in any case, so
    /// that a client that was stalled past its lease reports the server's verdict
    /// (`NoBackup`) rather than a bare transport error.
    fn recover(&mut self, link: &mut Link<'_>, f: &FileView, why: &str) -> Result<(), RemoteError> {
        let budget = self.lease_ttl / 2;
        let mut backoff = FIRST_BACKOFF;
        let mut asked = false;
        loop {
            if asked && self.last_contact.elapsed() + backoff >= budget {
                return Err(RemoteError::Transport {
                    url: self.api.file_url(&self.id, f.index),
                    message: format!(
                        "{why}; the download could not be resumed within {budget:?} (half the \
                         backup's lease of {:?})",
                        self.lease_ttl
                    ),
                });
            }
            link.sleep(backoff)?;
            backoff = (backoff * 2).min(self.max_backoff);
            asked = true;
            match link.wait(self.api.databases(&self.id))? {
                // In an incremental, asking for the databases is out of sequence (-521, the
                // backup goes on): the engine's other checks came first, so it still runs.
                Ok(_) => {}
                Err(RemoteError::Ese { code: -521, .. }) => {}
                Err(RemoteError::Transport { .. }) => continue,
                Err(e) => return Err(e),
            }
            self.last_contact = Instant::now();
            return Ok(());
        }
    }
}

/// A fresh download must be 200; a resume 206 from exactly the byte asked for, never an
/// earlier one (which would write bytes twice) nor a later one (a hole).
fn check_start(status: StatusCode, headers: &HeaderMap, from: u64) -> Result<(), Stop> {
    let bad = |m: String| Stop::Fatal(RemoteError::protocol(Some(status.as_u16()), m));
    if from == 0 {
        return match status {
            StatusCode::OK => Ok(()),
            s => Err(bad(format!("a download answered {s}, not 200"))),
        };
    }
    if status != StatusCode::PARTIAL_CONTENT {
        return Err(bad(format!(
            "a resume from byte {from} answered {status}, not 206"
        )));
    }
    let start = headers
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('-'))
        .and_then(|(s, _)| s.parse::<u64>().ok());
    match start {
        Some(s) if s == from => Ok(()),
        other => Err(bad(format!(
            "a resume from byte {from} answered a Content-Range starting at {other:?}"
        ))),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// A CRC trailer: absent is `None`, malformed is an error.
fn trailer_crc(t: &HeaderMap, name: &str) -> Result<Option<u32>, Stop> {
    let Some(v) = t.get(name) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|s| s.len() == 8)
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .map(Some)
        .ok_or_else(|| {
            Stop::Fatal(RemoteError::protocol(
                None,
                format!("a malformed {name} trailer: {v:?}"),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_give_up_only_when_cut_at_the_same_byte_again_and_again_for_long() {
        let t0 = Instant::now();
        let budget = Duration::from_secs(30);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut c = Cuts::default();
        for n in 0..20 {
            // Progress between cuts, however small, never gives up.
            assert!(!c.give_up(n * 10, at(n * 10), budget));
        }
        // Stuck at one byte: many quick failures are not enough, nor is time alone.
        let mut c = Cuts::default();
        for _ in 0..=MAX_STUCK_RESUMES + 5 {
            assert!(!c.give_up(500, at(1), budget));
        }
        assert!(c.give_up(500, at(31), budget));
        let mut c = Cuts::default();
        assert!(!c.give_up(500, at(0), budget));
        assert!(!c.give_up(500, at(100), budget), "one resume, however late");
        // A byte more starts both counts again.
        let mut c = Cuts::default();
        for i in 0..MAX_STUCK_RESUMES {
            assert!(!c.give_up(7, at(u64::from(i) * 10), budget));
        }
        assert!(!c.give_up(8, at(200), budget));
    }
}
