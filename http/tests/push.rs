//! Push mode: the server runs the whole backup into a target the host allows; the client
//! polls its progress, may cancel it, and gets the set's name or the ESE error.

mod support;

use std::path::{Path, PathBuf};

use ese_actors::{BackupOptions, Term};
use ese_http::Builder;
use serde_json::{json, Value};
use support::*;

/// The folder pushes may go to, inside the host's tempdir.
fn sets(dir: &Path) -> PathBuf {
    dir.join("sets")
}

/// A host allowing pushes into its `sets` folder, at `rate` bytes per second if given (a slow
/// push leaves time to act while it runs).
async fn push_host(rate: Option<u64>) -> Host {
    host_with(Opts::default(), |b: Builder, dir| {
        let options = BackupOptions {
            max_rate: rate,
            ..BackupOptions::default()
        };
        b.push_targets([sets(dir).to_string_lossy().into_owned()])
            .push_options(options)
    })
    .await
}

fn target(h: &Host) -> String {
    sets(h.dir.path()).to_string_lossy().into_owned()
}

/// What the folder of sets holds (nothing if it was never made).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The ESE error of a push's failed outcome: (code, name).
fn failure(st: &Value) -> (i64, String) {
    let e = &st["outcome"]["error"];
    assert!(e["message"].is_string(), "{st}");
    (
        e["code"].as_i64().unwrap(),
        e["name"].as_str().unwrap().into(),
    )
}

/// A full push while a writer commits: progress moves through the phases to `done`, the set
/// verifies, and it restores every preloaded row and a gap-free prefix of the writer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_into_a_folder_verifies_and_restores() {
    let h = push_host(None).await;
    let w = h.writer();
    let id = h.push("full", &target(&h)).await;
    assert!(id.starts_with("push-"), "{id}");
    let (st, phases) = h.push_outcome(&id).await;
    w.stop().await;
    assert_eq!(phases.last().unwrap(), "done", "{phases:?}");
    assert_eq!(st["files_done"], st["files_total"], "{st}");
    assert_eq!(st["bytes_done"], st["bytes_total"], "{st}");
    assert!(st["bytes_done"].as_u64().unwrap() > 2_000_000, "{st}");
    let set = st["outcome"]["set"].as_str().unwrap();
    assert!(!st["outcome"]["manifest_id"].as_str().unwrap().is_empty());
    assert_eq!(entries(&sets(h.dir.path())), [set]);
    let set_dir = sets(h.dir.path()).join(set);
    let info = h.inst.database_info(&h.db_path).await.unwrap();
    assert!(info.last_full.is_some(), "a pushed full backup truncates");
    h.inst.term(Term::empty()).await.unwrap();

    ese_actors::verify_backup_set(&set_dir).unwrap();
    let restored = h.dir.path().join("restored");
    let report = ese_actors::restore_backup_chain(&h.engine, &[set_dir], &restored)
        .await
        .unwrap();
    assert_restored(&h, &report.databases[0].1).await;
}

/// Targets outside the allowed folder are 403 (PermissionDenied), hostile forms 400
/// (InvalidPath); nothing is created and no backup begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_outside_the_allowlist_are_refused() {
    let h = push_host(None).await;
    let base = target(&h);
    let elsewhere = h.dir.path().join("elsewhere");
    let cases = [
        (elsewhere.to_string_lossy().into_owned(), 403, -1809),
        (format!("{base}x"), 403, -1809),
        (format!("{base}/../elsewhere"), 400, -1023),
        (format!("{base}/%2e%2e/elsewhere"), 400, -1023),
        ("relative/sets".to_string(), 400, -1023),
        ("ftp://host/sets".to_string(), 400, -1023),
    ];
    for (t, status, code) in cases {
        let res = h
            .begin_with(json!({"kind": "full", "target": t}), None)
            .await;
        let (s, c, _) = ese_error(res).await;
        assert_eq!((s, c), (status, code), "{t}");
    }
    assert!(!elsewhere.exists());
    assert!(entries(&sets(h.dir.path())).is_empty());
    // No backup began: the host can begin one.
    host_backup_begins(&h).await;
    h.inst.term(Term::empty()).await.unwrap();
}

/// Begins and aborts a backup of the host's own: nothing else runs.
async fn host_backup_begins(h: &Host) {
    let full = ese_actors::BackupBegin::empty();
    h.inst.begin_external_backup(full).await.unwrap();
    let abort = ese_actors::BackupEnd::ABORT;
    h.inst.end_external_backup(abort).await.unwrap();
}

/// Without configured targets push mode is off; with tokens, pushing needs the push scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_needs_a_configured_target_and_the_push_scope() {
    let h = host(Opts::default()).await;
    let off = h
        .begin_with(json!({"kind": "full", "target": "/srv/sets"}), None)
        .await;
    let (status, code, _) = ese_error(off).await;
    assert_eq!((status, code), (403, -1809));

    let tokens = "reader-0123456789abcdef read\npusher-0123456789abcdef read,push\n";
    let h = host_with(
        Opts {
            tokens: Some(tokens),
            ..Opts::default()
        },
        |b, dir| b.push_targets([sets(dir).to_string_lossy().into_owned()]),
    )
    .await;
    let body = json!({"kind": "full", "target": target(&h)});
    let reader = h
        .begin_with(body.clone(), Some("reader-0123456789abcdef"))
        .await;
    assert_eq!(ese_error(reader).await.1, -1809);
    let pusher = h.begin_with(body, Some("pusher-0123456789abcdef")).await;
    assert_eq!(pusher.status(), 201);
    let id = json(pusher).await["id"].as_str().unwrap().to_string();
    let st = send_as(h.http.get(h.backup(&id)), "reader-0123456789abcdef").await;
    assert_eq!(st.status(), 200);
    let cancel = send_as(h.http.delete(h.backup(&id)), "reader-0123456789abcdef").await;
    assert_eq!(ese_error(cancel).await.1, -1809);
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// DELETE while a push runs: the cancel came in time, the run ends with BackupAbortByCaller
/// (-800), its partial set is gone, and a later begin works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_push_removes_its_partial_set() {
    let h = push_host(Some(1 << 20)).await;
    let id = h.push("full", &target(&h)).await;
    h.push_reaches(&id, "databases").await;
    let res = h.delete(&id).await;
    assert_eq!(res.status(), 200);
    let st = json(res).await;
    assert_eq!(st["cancelled"], true, "{st}");
    assert_eq!(st["phase"], "cancelled", "{st}");
    assert_eq!(failure(&st), (-800, "JET_errBackupAbortByCaller".into()));
    assert!(entries(&sets(h.dir.path())).is_empty());
    // A cancel of a finished push does nothing.
    assert_eq!(json(h.delete(&id).await).await["cancelled"], false);
    let pull = h.begin("full").await;
    let abort = h.end(&pull, json!({"mode": "abort"})).await;
    assert_eq!(abort.status(), 204);
    h.inst.term(Term::empty()).await.unwrap();
}

/// `stop_backup` while a push runs: its outcome is BackupAbortByServer (-801).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_backup_while_pushing_is_801() {
    let h = push_host(Some(1 << 20)).await;
    let id = h.push("full", &target(&h)).await;
    h.push_reaches(&id, "databases").await;
    h.inst.stop_backup().await.unwrap();
    let (st, _) = h.push_outcome(&id).await;
    assert_eq!(st["phase"], "failed", "{st}");
    assert_eq!(failure(&st), (-801, "JET_errBackupAbortByServer".into()));
    h.inst.term(Term::empty()).await.unwrap();
}

/// A push and a pull exclude each other through the engine: BackupInProgress (409, -505).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_a_pull_exclude_each_other() {
    let h = push_host(Some(1 << 20)).await;
    let push = h.push("full", &target(&h)).await;
    let pull = h.begin_with(json!({"kind": "full"}), None).await;
    assert_eq!(
        ese_error(pull).await,
        (409, -505, "JET_errBackupInProgress".into())
    );
    assert_eq!(json(h.delete(&push).await).await["cancelled"], true);

    let pull = h.begin("full").await;
    let body = json!({"kind": "full", "target": target(&h)});
    let (status, code, _) = ese_error(h.begin_with(body, None).await).await;
    assert_eq!((status, code), (409, -505));
    assert_eq!(h.end(&pull, json!({"mode": "abort"})).await.status(), 204);
    h.inst.term(Term::empty()).await.unwrap();
}
