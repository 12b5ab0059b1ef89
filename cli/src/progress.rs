//! Progress for long work: a spinner with a message on a terminal, plain lines otherwise,
//! nothing with `--quiet` or `--json`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::Out;

/// One step of long work.
pub struct Step {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Step {
    /// Starts a step named `msg`.
    pub fn start(out: Out, msg: &str) -> Step {
        let quiet = out.quiet || out.json;
        if quiet {
            return Step { bar: None, quiet };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(msg.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            Step {
                bar: Some(bar),
                quiet,
            }
        } else {
            eprintln!("[ese] {msg} ...");
            Step { bar: None, quiet }
        }
    }

    /// Shows `done` of `total` bytes as a bar (once `total` is known).
    pub fn bytes(&self, done: u64, total: u64) {
        let Some(b) = &self.bar else { return };
        if total == 0 {
            return;
        }
        if b.length() != Some(total) {
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_length(total);
        }
        b.set_position(done.min(total));
    }

    /// Updates the message.
    pub fn note(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    /// Ends the step with a failure line; the error itself is printed by the caller.
    pub fn failed(self, msg: &str) {
        match self.bar {
            Some(b) => b.abandon_with_message(msg.to_string()),
            None if !self.quiet => eprintln!("[ese] {msg}"),
            None => {}
        }
    }

    /// Ends the step with a result line.
    pub fn done(self, msg: &str) {
        match self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None if !self.quiet => eprintln!("[ese] {msg}"),
            None => {}
        }
    }
}

/// A backup's progress as one line: `WHAT: PHASE, DONE of [at least ]TOTAL MiB, F/N files`,
/// then `extra` (e.g. the resumes of a remote backup).
pub fn transfer_note(
    what: &str,
    phase: impl std::fmt::Debug,
    (done, total): (u64, u64),
    of: &str,
    (files_done, files_total): (impl std::fmt::Display, impl std::fmt::Display),
    extra: &str,
) -> String {
    format!(
        "{what}: {phase:?}, {:.1} of {of}{:.1} MiB, {files_done}/{files_total} files{extra}",
        done as f64 / 1048576.0,
        total as f64 / 1048576.0,
    )
}
