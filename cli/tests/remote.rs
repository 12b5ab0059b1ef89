//! `ese` against a real 3-node Garage cluster, configured the way an operator would: the
//! standard AWS environment. Backup, sets, verify (quick, sample, full), restore `latest`;
//! backups SIGKILLed at random points never leave a visible half set and prune removes what
//! they left; stores that cannot be used fail with a clear error and exit code, nothing
//! written; the secret never appears in any output.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The AWS environment for node 1 of the shared cluster.
fn env() -> Vec<(String, String)> {
    ese_garage::shared().env(1)
}

fn bucket(what: &str) -> String {
    let b = format!("{what}-{}", std::process::id());
    ese_garage::shared().create_bucket(&b).unwrap();
    b
}

/// Runs `ese` with the cluster's environment; no output may hold the secret.
fn run(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let out = ese_env(args, env);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !all.contains(ese_garage::SECRET),
        "the secret was printed: {all}"
    );
    out
}

/// `ese sets TARGET --json`: every name, orphans and damaged sets included.
fn all_sets(target: &str, env: &[(String, String)]) -> Vec<serde_json::Value> {
    let out = run(&["sets", target, "--json"], env);
    assert!(out.status.success(), "sets: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn complete_sets(target: &str, env: &[(String, String)]) -> Vec<serde_json::Value> {
    let v = all_sets(target, env);
    v.into_iter().filter(|s| s["state"] == "complete").collect()
}

#[test]
fn backup_sets_verify_and_restore_latest_on_the_cluster() {
    let b = bucket("cli");
    let target = format!("s3://{b}/ese");
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    let rows = make_instance(&inst, 3000);
    for kind in ["full", "incremental"] {
        let out = run(
            &[
                "backup",
                "--instance-dir",
                inst.to_str().unwrap(),
                "--to",
                &target,
                "--kind",
                kind,
                "-q",
            ],
            &env,
        );
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(&format!("set {target}/")),
            "{}",
            text(&out.stdout)
        );
    }
    let sets = complete_sets(&target, &env);
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[1]["parent"], sets[0]["id"]);
    let table = run(&["sets", &target], &env);
    let t = text(&table.stdout);
    assert!(
        t.contains("SET") && t.contains("full") && t.contains("incremental"),
        "{t}"
    );
    for s in &sets {
        let set = format!("{target}/{}", s["name"].as_str().unwrap());
        for extra in [&["--quick"][..], &["--sample", "50"], &[]] {
            let mut args = vec!["verify", set.as_str()];
            args.extend_from_slice(extra);
            let out = run(&args, &env);
            assert!(
                out.status.success(),
                "verify {extra:?}: {}",
                text(&out.stderr)
            );
            assert!(text(&out.stdout).starts_with("OK"));
        }
    }
    let to = dir.path().join("restored");
    let out = run(
        &[
            "restore",
            &target,
            "--set",
            "latest",
            "--to",
            to.to_str().unwrap(),
            "--json",
        ],
        &env,
    );
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sets"].as_array().unwrap().len(), 2);
    assert_eq!(
        read_rows(&to.join("data.edb"), &dir.path().join("scratch")),
        rows
    );
}

/// SIGKILL `ese backup` at random points of its upload, again and again: every set that
/// is visible verifies whole, the next backup succeeds, and prune removes the orphans.
#[test]
fn killed_backups_never_leave_a_visible_half_set() {
    let b = bucket("kill");
    let target = format!("s3://{b}/k");
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_big_instance(&inst, 20);
    let backup = |log: bool| {
        Command::new(env!("CARGO_BIN_EXE_ese"))
            .args([
                "backup",
                "--instance-dir",
                inst.to_str().unwrap(),
                "--to",
                &target,
            ])
            .args(["--part-size-mib", "5", "--max-rate-mib", "16", "-q"])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", if log { "info" } else { "error" })
            .stdout(Stdio::null())
            .stderr(if log { Stdio::piped() } else { Stdio::null() })
            .spawn()
            .unwrap()
    };
    assert!(backup(false).wait().unwrap().success());
    let mut x = std::process::id() as u64 | 1;
    let mut killed = 0;
    let mut rounds = 0;
    let mut all = Vec::new();
    // Six rounds, and more (up to twelve) until a kill has left an orphan: a kill after a
    // file was stored whole lands before the manifest only in a window of tens of ms.
    for round in 0..12 {
        rounds += 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // A random point of the upload, found from the child's own events: a while after a
        // file's copy began (parts in flight, nothing complete yet), or after a file was
        // stored whole (an orphan's objects exist, no manifest yet).
        let (trigger, delay) = match round % 2 {
            0 => ("copy started", Duration::from_millis(x % 1500)),
            _ => ("backed up", Duration::from_millis(x % 40)),
        };
        let mut child = backup(true);
        let lines = std::io::BufReader::new(child.stderr.take().unwrap());
        let (seen, saw) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in lines.lines().map_while(Result::ok) {
                if line.contains(trigger) {
                    let _ = seen.send(());
                }
            }
        });
        let found = saw.recv_timeout(Duration::from_secs(60)).is_ok();
        std::thread::sleep(delay);
        let at = ese_actors::ese::backup::repo::name::now_ms();
        if child.try_wait().unwrap().is_none() {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            killed += 1;
        }
        let status = child.wait().unwrap();
        eprintln!("round {round}: {delay:?} after {trigger:?} (seen: {found}): {status} at {at}");
        all = all_sets(&target, &env);
        for s in all.iter().filter(|s| s["state"] == "complete") {
            let set = format!("{target}/{}", s["name"].as_str().unwrap());
            let out = run(&["verify", &set], &env);
            assert!(
                out.status.success(),
                "visible set {set} does not verify: {}",
                text(&out.stderr)
            );
        }
        if round >= 5 && all.iter().any(|s| s["state"] == "orphan") {
            break;
        }
    }
    assert!(
        killed >= 3,
        "only {killed} of {rounds} runs were killed mid-way"
    );
    // The kills landed inside uploads: what they left is there, as orphans no reader takes
    // (the last round's listing).
    let orphans = all.iter().filter(|s| s["state"] == "orphan").count();
    eprintln!("{} name(s), {orphans} orphan(s): {all:?}", all.len());
    assert!(orphans >= 1, "no kill landed inside an upload: {all:?}");
    let t0 = Instant::now();
    let out = run(
        &[
            "backup",
            "--instance-dir",
            inst.to_str().unwrap(),
            "--to",
            &target,
            "-q",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "the next backup: {}",
        text(&out.stderr)
    );
    eprintln!("the next backup took {:?}", t0.elapsed());
    // The cluster still moves for a while after the kills. The kernel delivers what a dead
    // client left in its socket, and the server may store an object it received whole.
    // Garage filters a listing on each node before it merges the answers, so for a moment
    // after a delete a node that has not heard of it yet still lists what was deleted. Prune
    // once the listing (orphans' newest-file times included) holds still, as an operator
    // would, then wait for the listing to agree; prune once more only if an orphan stays.
    let mut left = None;
    for attempt in 0..2 {
        settle(&target, &env);
        let out = run(
            &[
                "prune",
                &target,
                "--keep-full",
                "1",
                "--orphan-grace",
                "0s",
                "--json",
            ],
            &env,
        );
        assert!(out.status.success(), "prune: {}", text(&out.stderr));
        let pruned = text(&out.stdout);
        match after_prune(&target, &env, &pruned) {
            Ok(set) => {
                left = Some(set);
                break;
            }
            Err(orphans) => {
                eprintln!("attempt {attempt}: still listed after {pruned}: {orphans:?}")
            }
        }
    }
    let kept = left.expect("orphans outlived two prunes");
    let set = format!("{target}/{}", kept["name"].as_str().unwrap());
    assert!(run(&["verify", &set], &env).status.success());
}

#[test]
fn unusable_stores_fail_with_a_clear_error_and_write_nothing() {
    let b = bucket("bad");
    let good = env();
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 100);
    let with = |key: &str, value: &str| {
        let mut e = good.clone();
        e.retain(|(k, _)| k != key);
        e.push((key.to_string(), value.to_string()));
        e
    };
    let cases = [
        (
            "wrong secret",
            format!("s3://{b}/p"),
            with("AWS_SECRET_ACCESS_KEY", &"1".repeat(64)),
            "JET_errFileAccessDenied (-1032)",
        ),
        (
            "unknown bucket",
            "s3://no-such-bucket-here/p".to_string(),
            good.clone(),
            "does not exist",
        ),
        (
            "endpoint down",
            format!("s3://{b}/p"),
            with("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            "JET_errDiskIO (-1022)",
        ),
    ];
    for (what, target, env, says) in cases {
        let t0 = Instant::now();
        let out = run(
            &[
                "backup",
                "--instance-dir",
                inst.to_str().unwrap(),
                "--to",
                &target,
                "-q",
                "--retries",
                "1",
                "--retry-timeout-secs",
                "5",
            ],
            &env,
        );
        let e = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {e}");
        assert!(e.contains(says) && e.contains(&target), "{what}: {e}");
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "{what}: {:?}",
            t0.elapsed()
        );
    }
    let out = run(&["sets", &format!("s3://{b}"), "--json"], &good);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.is_empty(), "written: {v:?}");
}

/// Lists `target` every half second for at most 30 s after a prune: each listing holds
/// exactly one set, complete; returns it once no orphan is listed, or the orphans still
/// listed at the end.
fn after_prune(
    target: &str,
    env: &[(String, String)],
    pruned: &str,
) -> Result<serde_json::Value, Vec<serde_json::Value>> {
    let mut orphans = Vec::new();
    for poll in 0..60 {
        let sets;
        (orphans, sets) = all_sets(target, env)
            .into_iter()
            .partition(|s| s["state"] == "orphan");
        assert_eq!(sets.len(), 1, "after prune ({pruned}): {sets:?}");
        assert_eq!(sets[0]["state"], "complete", "after prune ({pruned})");
        if orphans.is_empty() {
            eprintln!("no orphan listed after {poll} wait(s)");
            return Ok(sets.into_iter().next().unwrap());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(orphans)
}

/// Waits (at most 30 s) until two listings of `target` a second apart are the same: no set
/// appeared or went, and no orphan's newest file changed.
fn settle(target: &str, env: &[(String, String)]) {
    let list = || text(&run(&["sets", target, "--json"], env).stdout);
    let mut last = list();
    for _ in 0..30 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = list();
        if now == last {
            return;
        }
        last = now;
    }
}
