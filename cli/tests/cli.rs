//! The `ese` binary, run as a user would: the demo, backup -> verify -> restore, damaged
//! sets, dumps, and bad arguments.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use ese_actors::{Commit, Engine, InstanceParams, Term};

#[test]
fn demo_succeeds_and_its_report_parses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let out = ese(&[
        "demo",
        "--seconds",
        "2",
        "--writers",
        "3",
        "--json",
        "--dir",
        d.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["verdict"], "OK");
    assert!(v["commits"].as_u64().unwrap() > 0);
    assert!(v["full_backup"]["mb_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["rows_compared"].as_u64().unwrap() > 0);
    // The text report too.
    let d2 = dir.path().join("demo2");
    let out = ese(&["demo", "--seconds", "1", "--dir", d2.to_str().unwrap()]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(
        s.contains("commits/s") && s.contains("MB/s") && s.contains(": OK"),
        "{s}"
    );
}

#[test]
fn backup_verify_restore_round_trip_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    let rows = make_instance(&inst, 3000);
    let repo = dir.path().join("backups");
    let out = ese(&[
        "backup",
        "--instance-dir",
        inst.to_str().unwrap(),
        "--to",
        repo.to_str().unwrap(),
        "--kind",
        "full",
        "-q",
    ]);
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("backup "));
    let set = only_set(&repo);
    assert!(
        text(&out.stdout).contains(&format!("set {}", set.display())),
        "{}",
        text(&out.stdout)
    );
    let out = ese(&["verify", set.to_str().unwrap()]);
    assert!(out.status.success(), "verify: {}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("OK"));
    let to = dir.path().join("restored");
    let out = ese(&[
        "restore",
        set.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(
        read_rows(&to.join("data.edb"), &dir.path().join("scratch")),
        rows
    );

    // Damage: a flipped bit in a log, then verify and restore both refuse with the ESE name.
    let log = std::fs::read_dir(set.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&log).unwrap();
    // The first record's durable mark, which its checksum covers.
    b[4096 + 16] ^= 1;
    std::fs::write(&log, b).unwrap();
    let out = ese(&["verify", set.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("JET_errLogFileCorrupt (-501)"),
        "{}",
        text(&out.stderr)
    );
    let out = ese(&[
        "restore",
        set.to_str().unwrap(),
        "--to",
        dir.path().join("r2").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("JET_errLogFileCorrupt"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn backup_of_a_running_instance_is_refused_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let inst_dir = dir.path().join("inst");
    make_instance(&inst_dir, 10);
    let set = dir.path().join("set");
    let backup = |json: bool| {
        let mut args = vec![
            "backup",
            "--instance-dir",
            inst_dir.to_str().unwrap(),
            "--to",
            set.to_str().unwrap(),
            "-q",
        ];
        if json {
            args.push("--json");
        }
        ese(&args)
    };
    // This process runs the instance; the `ese` process is another one.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = Engine::new();
    let (running, t) = rt.block_on(async {
        let i = engine
            .create_instance(
                "running",
                InstanceParams::new(&inst_dir).log_file_size(256 * 1024),
            )
            .await
            .unwrap();
        i.init().await.unwrap();
        let db = i.attach_database(inst_dir.join("data.edb")).await.unwrap();
        let t = i.open_table(db, "t").await.unwrap();
        (i, t)
    });
    let out = backup(false);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("JET_errFileAccessDenied (-1032)"), "{err}");
    assert!(err.contains("in use by a running instance"), "{err}");
    assert!(err.contains("through its"), "{err}");
    assert!(!set.exists(), "a refused backup wrote its set");
    let out = backup(true);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(v["code"], -1032);
    assert_eq!(v["category"], "IO");
    assert!(v["hint"].as_str().unwrap().contains("host"));
    // The running instance was not disturbed; once it is terminated the backup runs.
    rt.block_on(async {
        let mut tx = running.transaction().await.unwrap();
        tx.put(t, b"after", b"the refused backup").await.unwrap();
        tx.commit(Commit::Durable).await.unwrap();
        running.term(Term::empty()).await.unwrap();
    });
    let out = backup(false);
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
}

#[test]
fn dumps_print_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 100);
    let out = ese(&["dump", "header", inst.join("data.edb").to_str().unwrap()]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    for field in [
        "state",
        "page_size",
        "db_signature",
        "log_signature",
        "last_full",
        "last_incremental",
        "last_copy",
        "last_differential",
    ] {
        assert!(s.contains(field), "missing {field}: {s}");
    }
    assert!(
        s.contains("dirty shutdown"),
        "a dirty term leaves the header dirty"
    );
    let out = ese(&[
        "dump",
        "log",
        inst.join("edb.log").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["generation"].as_u64().unwrap() >= 1);
    assert!(
        v["records"]["commit"].as_u64().unwrap() >= 1
            || v["records"]["attach_list"].as_u64().is_some()
    );
    let out = ese(&[
        "dump",
        "checkpoint",
        inst.join("edb.chk").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["checkpoint"].as_str().unwrap().contains(':'));
    // Not a database / not a log: an ESE error, exit 1.
    let out = ese(&["dump", "header", inst.join("edb.chk").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("JET_errDatabaseCorrupted"));
    let out = ese(&["dump", "log", inst.join("data.edb").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("JET_err"));
}

/// Wrong arguments exit 2, whether the parser sees them or the command does (a value out of
/// range, options that do not go together), before anything is read or written.
#[test]
fn bad_arguments_give_usage_not_a_panic() {
    let url = "http://127.0.0.1:1/v1/instances/x";
    for args in [
        &["restore"][..],
        &["backup", "--to", "x"],
        &["frobnicate"],
        &["demo", "--seconds", "lots"],
        &["restore", "a", "--to", "b", "--stop-at-time", "yesterday"],
        &["restore", "a", "b", "--set", "latest", "--to", "c"],
        &["verify", "a", "--sample", "150"],
        &[
            "backup",
            "--instance-dir",
            "i",
            "--to",
            "x",
            "--compress",
            "gzip",
        ],
        &[
            "backup",
            "--instance-dir",
            "i",
            "--to",
            "x",
            "--compress",
            "zstd:40",
        ],
        &[
            "backup",
            "--instance-dir",
            "i",
            "--to",
            "x",
            "--max-rate-mib",
            "0",
        ],
        &["backup", "--url", url, "--to", "x", "--max-rate-mib", "0"],
        &["backup", "--url", url, "--to", "x", "--kind", "copy"],
        &[
            "backup",
            "--url",
            url,
            "--to",
            "x",
            "--kind",
            "differential",
        ],
        &[
            "backup",
            "--url",
            "ftp://127.0.0.1/v1/instances/x",
            "--to",
            "x",
        ],
        &["backup", "--url", "http://", "--to", "x"],
        &[
            "backup",
            "--url",
            "http://127.0.0.1:1/v1/instances/x?a=1",
            "--to",
            "x",
        ],
        &["backup", "--url", url, "--to", "s3://"],
        &["backup", "--instance-dir", "i", "--to", "s3://"],
        // Object-store settings S3 cannot take: refused before the instance is opened (it
        // used to be opened, soft recovery run, and the refusal exit 1).
        &[
            "backup",
            "--instance-dir",
            "i",
            "--to",
            "s3://b/p",
            "--part-size-mib",
            "0",
        ],
        &["sets", "s3://b/p", "--parts-in-flight", "0"],
        &[
            "restore",
            "s3://b/p",
            "--set",
            "latest",
            "--to",
            "c",
            "--part-size-mib",
            "9999",
        ],
        // A prune without anything to keep by.
        &["prune", "x"],
        &["prune", "x", "--keep-full", "0"],
        &["prune", "x", "--keep-full", "0", "--keep-within", "7d"],
    ] {
        let out = ese(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let e = text(&out.stderr);
        assert!(
            !e.contains("panicked") && !e.contains("internal error"),
            "{args:?}: {e}"
        );
        assert!(e.contains("Usage") || e.contains("error"), "{args:?}: {e}");
    }
    // A scheme in capitals is a URL like any other: the client tries the server (none
    // listens on port 1) and fails with the connection, exit 1, not a usage error.
    let out = ese(&[
        "backup",
        "--url",
        "HTTP://127.0.0.1:1/v1/instances/x",
        "--to",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // With --json a usage error is a JSON line too, with the engine's code for it.
    let out = ese(&[
        "--json",
        "backup",
        "--url",
        "ftp://h/v1/instances/x",
        "--to",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], -1003, "{v}");
}

#[test]
fn backup_and_verify_failures_print_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 200);
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let backup = |to: &Path| {
        ese(&[
            "backup",
            "--instance-dir",
            inst.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
            "-q",
        ])
    };
    let out = backup(&file);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(
        e.contains("JET_errInvalidPath (-1023)") && e.contains("is a file"),
        "{e}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");

    let repo = dir.path().join("backups");
    assert!(backup(&repo).status.success());
    let set = only_set(&repo);
    std::fs::write(set.join("manifest.json"), b"").unwrap();
    let out = ese(&["verify", set.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(e.contains("JET_errInvalidBackup (-526)"), "{e}");
    assert!(
        e.contains("manifest.json") && e.contains("empty (0 bytes)"),
        "{e}"
    );
    assert!(!e.contains("circular"), "{e}");
}

/// The issue's own command: `ese backup --to` a 2 MiB tmpfs must fail with `DiskFull` and
/// leave no set, not report a good backup.
#[test]
fn backup_to_a_full_tmpfs_fails_with_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&tiny)
        .output();
    match &mounted {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("skipped: a 2 MiB tmpfs cannot be mounted here (needs root): {other:?}");
            return;
        }
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&tiny);
    let inst = dir.path().join("inst");
    make_instance(&inst, 60_000);
    let set = tiny.join("backups");
    let out = ese(&[
        "backup",
        "--instance-dir",
        inst.to_str().unwrap(),
        "--to",
        set.to_str().unwrap(),
        "-q",
    ]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("JET_errDiskFull (-1808)"), "{e}");
    assert!(
        !text(&out.stdout).contains("backup "),
        "reported as a backup"
    );
    assert!(!set.exists(), "the partial set stays");
}

/// An orphan whose name says 2020 but whose file was written just now: `ese sets` shows when
/// it was last written, and `ese prune --dry-run` leaves it within its grace period exactly
/// as the prune does (a dry run used to judge orphans by their name alone).
#[test]
fn sets_and_a_dry_run_judge_an_orphan_by_its_newest_file() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 100);
    let repo = dir.path().join("backups");
    let r = repo.to_str().unwrap();
    let out = ese(&[
        "backup",
        "--instance-dir",
        inst.to_str().unwrap(),
        "--to",
        r,
        "-q",
    ]);
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    let orphan = "20200101T000000.000Z-full-dead";
    let before = ese_actors::ese::backup::repo::name::now_ms();
    std::fs::create_dir_all(repo.join(orphan).join("databases")).unwrap();
    std::fs::write(repo.join(orphan).join("databases/00-data.edb"), b"half").unwrap();
    let out = ese(&["sets", r, "--json"]);
    assert!(out.status.success(), "sets: {}", text(&out.stderr));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let o = v.iter().find(|s| s["name"] == orphan).unwrap();
    assert_eq!(o["state"], "orphan");
    let written = o["modified_ms"].as_u64().unwrap();
    // A file system's times may be a tick coarser than the clock's.
    assert!(written + 1000 >= before, "{o} written before {before}");
    let out = ese(&["sets", r]);
    assert!(
        text(&out.stdout).contains(&format!(
            "last written {}",
            ese_actors::ese::backup::repo::name::stamp(written)
        )),
        "{}",
        text(&out.stdout)
    );
    for dry in [true, false] {
        let mut args = vec![
            "prune",
            r,
            "--keep-full",
            "1",
            "--orphan-grace",
            "1h",
            "--json",
        ];
        if dry {
            args.push("--dry-run");
        }
        let out = ese(&args);
        assert!(out.status.success(), "prune: {}", text(&out.stderr));
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(p["left"], serde_json::json!([orphan]), "dry run {dry}: {p}");
        assert_eq!(
            p["orphans_removed"],
            serde_json::json!([]),
            "dry run {dry}: {p}"
        );
    }
    assert!(repo.join(orphan).exists());
}

/// `ese sets` aligns its columns past the 36 characters a full's name takes (an
/// incremental's is 37: its kind column used to start one character late), and says so when
/// a folder target does not exist instead of listing it as a target without sets.
#[test]
fn sets_align_long_names_and_name_a_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 100);
    let repo = dir.path().join("backups");
    let r = repo.to_str().unwrap();
    for kind in ["full", "incremental"] {
        let i = inst.to_str().unwrap();
        let out = ese(&[
            "backup",
            "--instance-dir",
            i,
            "--to",
            r,
            "--kind",
            kind,
            "-q",
        ]);
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
    }
    let out = ese(&["sets", r]);
    assert!(out.status.success(), "sets: {}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let kind_at = lines[0].find("KIND").unwrap();
    for (line, kind) in lines[1..].iter().zip(["full", "incremental"]) {
        assert_eq!(
            line.find(&format!(" {kind} ")),
            Some(kind_at - 1),
            "{table}"
        );
    }
    let nope = dir.path().join("nope");
    let out = ese(&["sets", nope.to_str().unwrap()]);
    assert!(out.status.success(), "sets: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert!(!nope.exists());
}

/// Every path under `dir`, relative to it, sorted: the tree a refused command must leave.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A set's folder given where a target is expected (the `set TARGET/SET` line of the last
/// backup pasted into the next `--to`): the backup used to write a new set inside the old
/// set, where `ese sets`, `latest` and `prune` of the real target never see it, and a full
/// one truncated the source's logs into that hidden set. It is refused, naming the target to
/// give, and the set is left as it was; `ese sets` of a set's folder says what it is instead
/// of listing its `databases` and `logs` as orphans.
#[test]
fn a_set_folder_is_refused_as_a_backup_target() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 100);
    let repo = dir.path().join("backups");
    let backup = |to: &Path| {
        ese(&[
            "backup",
            "--instance-dir",
            inst.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
            "-q",
        ])
    };
    let out = backup(&repo);
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    let set = only_set(&repo);
    let before = tree(&repo);
    let out = backup(&set);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("JET_errInvalidPath (-1023)"), "{e}");
    assert!(
        e.contains("is a backup set") && e.contains(repo.to_str().unwrap()),
        "{e}"
    );
    assert_eq!(tree(&repo), before);
    let out = ese(&["sets", set.to_str().unwrap()]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{e}", text(&out.stdout));
    assert!(e.contains("is a backup set"), "{e}");
}

/// `ese dump header` reads a header, not a database: a database of a terabyte (sparse here)
/// dumps like a small one. It used to read the whole file into memory first, and failed with
/// `JET_errDiskIO (-1022)`, naming nothing, when that could not be allocated (a real
/// database of tens of gigabytes would have been read whole, or the process killed).
#[test]
fn dump_header_of_a_huge_database_reads_its_header_only() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 100);
    let head = std::fs::read(inst.join("data.edb")).unwrap();
    let big = dir.path().join("big.edb");
    std::fs::write(&big, &head[..2 * 8192]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let small = ese(&[
        "--json",
        "dump",
        "header",
        inst.join("data.edb").to_str().unwrap(),
    ]);
    assert!(small.status.success(), "{}", text(&small.stderr));
    let out = ese(&["--json", "dump", "header", big.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&small.stdout).unwrap(),
        serde_json::from_slice(&out.stdout).unwrap(),
    );
    assert_eq!(a["db_signature"], b["db_signature"], "{b}");
    assert_eq!(b["page_size"], 8192, "{b}");
    assert_eq!(b["trailer"], serde_json::Value::Null, "{b}");
}

/// With `--json`, every failure is one JSON object on stdout, whatever failed: the engine's
/// errors and bad arguments were, but a failure that is not an ESE error (no database in the
/// directory, a server that cannot be reached, an unreadable token file) printed nothing on
/// stdout, so a script reading it found no document to parse.
#[test]
fn json_failures_are_json_whatever_failed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let to = dir.path().join("sets");
    let to = to.to_str().unwrap();
    let url = "http://127.0.0.1:1/v1/instances/x";
    let tokens = dir.path().to_str().unwrap(); // a folder
    for args in [
        &[
            "--json",
            "backup",
            "--instance-dir",
            empty.to_str().unwrap(),
            "--to",
            to,
        ][..],
        &["--json", "backup", "--url", url, "--to", to],
        &[
            "--json",
            "backup",
            "--url",
            url,
            "--to",
            to,
            "--token-file",
            tokens,
        ],
    ] {
        let out = ese(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout {:?}: {e}", text(&out.stdout)));
        let m = v["message"].as_str().unwrap_or_default();
        assert!(
            !m.is_empty() && text(&out.stderr).contains(m),
            "{args:?}: {v}"
        );
    }
}

/// Ctrl-C (SIGINT) or SIGTERM of `ese backup --instance-dir` while it streams: the backup is
/// cancelled, its partial set removed and the instance termed before the process exits (130
/// or 143). It used to die at once, leaving the partial set in the target (as large as what
/// was copied) for `prune` to find a day later, and the instance's files not termed.
#[test]
fn an_interrupted_backup_removes_its_partial_set() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    // About 32 MiB at 1 MiB/s: the backup is mid-stream when it is told to stop.
    make_instance_sized(&inst, 16_000, 2000);
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let repo = dir.path().join(format!("backups-{sig}"));
        let child = Command::new(env!("CARGO_BIN_EXE_ese"))
            .args(["backup", "--instance-dir", inst.to_str().unwrap()])
            .args(["--to", repo.to_str().unwrap(), "--max-rate-mib", "1", "-q"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Streaming: a database image is being written into the set.
        while !std::fs::read_dir(&repo).is_ok_and(|mut sets| {
            sets.next().is_some_and(|s| {
                std::fs::read_dir(s.unwrap().path().join("databases"))
                    .is_ok_and(|mut f| f.next().is_some())
            })
        }) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        let e = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "signal {sig}: {:?} {e}",
            out.status
        );
        // The target holds nothing (the folder the backup made may be gone too).
        let left: Vec<_> = std::fs::read_dir(&repo)
            .map(|r| r.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "signal {sig}: {left:?}");
    }
    let repo = dir.path().join("backups-after");
    let out = ese(&[
        "backup",
        "--instance-dir",
        inst.to_str().unwrap(),
        "--to",
        repo.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A set's folder named with a `.` (the current folder, from inside the set, or `SET/.`) is
/// that folder: `ese verify .` in a set verifies it, and `ese restore .` restores it. They
/// were refused with `JET_errInvalidPath (-1023): "." is not a backup set name`, though the
/// help says a set's folder is taken.
#[test]
fn a_set_folder_named_with_a_dot_is_that_folder() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    make_instance(&inst, 50);
    let repo = dir.path().join("backups");
    let out = ese(&[
        "backup",
        "--instance-dir",
        inst.to_str().unwrap(),
        "--to",
        repo.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let set = only_set(&repo);
    let in_set = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ese"))
            .args(args)
            .current_dir(&set)
            .output()
            .unwrap()
    };
    let out = in_set(&["verify", ".", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dotted = format!("{}/.", set.display());
    let out = ese(&["verify", &dotted, "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let to = dir.path().join("restored");
    let out = in_set(&["restore", ".", "--to", to.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(to.join("data.edb").exists());
}

/// A dump that cannot read its file names the file: `ese dump log DIR` said
/// `JET_errDiskIO (-1022): a disk I/O operation failed` and `ese dump checkpoint` of a
/// missing file `the checkpoint file could not be found`, naming nothing.
#[test]
fn a_dump_that_cannot_read_its_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.chk");
    for (what, path) in [
        ("log", dir.path()),
        ("checkpoint", dir.path()),
        ("log", missing.as_path()),
        ("checkpoint", missing.as_path()),
        ("header", missing.as_path()),
    ] {
        let out = ese(&["dump", what, path.to_str().unwrap()]);
        let e = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what} {path:?}: {e}");
        assert!(
            e.contains("JET_err") && e.contains(path.to_str().unwrap()),
            "{what}: {e}"
        );
    }
}

/// `ese demo --dir FILE` says the path is a file: it failed with `JET_errDiskIO (-1022): a
/// disk I/O operation failed`, naming nothing, after starting the demo.
#[test]
fn demo_into_a_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = ese(&["demo", "--dir", file.to_str().unwrap(), "--seconds", "1"]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains(file.to_str().unwrap()) && e.contains("is a file"),
        "{e}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
