//! `ese serve` as a child process: started on a free loopback port, its URL read from the
//! first line it prints, stopped with a real signal.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `ese serve`.
pub struct Served {
    pub child: Child,
    /// `http(s)://127.0.0.1:PORT/v1/instances/NAME`.
    pub url: String,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Served {
    /// Starts `ese serve --instance-dir DIR --listen 127.0.0.1:0 ARGS...` and waits for its URL.
    pub fn start(dir: &Path, args: &[&str]) -> Served {
        Served::start_on(dir, "127.0.0.1:0", args)
    }

    /// As [`Served::start`], listening on `listen`.
    pub fn start_on(dir: &Path, listen: &str, args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ese"))
            .args(["serve", "--instance-dir", dir.to_str().unwrap()])
            .args(["--listen", listen, "-q"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ese serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap_or(0);
        if n == 0 {
            let out = child.wait_with_output().unwrap();
            panic!(
                "ese serve exited before serving: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let url = line
            .trim()
            .strip_prefix("serving ")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .to_string();
        Served {
            child,
            url,
            stdout: Some(stdout),
        }
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill");
    }

    /// Waits (at most `limit`) for the process to exit; its status, the rest of its stdout,
    /// and its stderr.
    pub fn wait(mut self, limit: Duration) -> Output {
        let t = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                panic!("ese serve did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut stdout = Vec::new();
        if let Some(mut s) = self.stdout.take() {
            s.read_to_end(&mut stdout).unwrap();
        }
        let mut stderr = Vec::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_end(&mut stderr).unwrap();
        }
        Output {
            status: self.child.wait().unwrap(),
            stdout,
            stderr,
        }
    }

    /// SIGTERM, then [`Served::wait`].
    pub fn stop(self) -> Output {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(60))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
