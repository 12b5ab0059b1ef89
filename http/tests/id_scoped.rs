//! A remote backup's calls reach that backup only: after `stop_backup` even bytes the server
//! still holds are refused with -801, and once the host ended the client's backup and began
//! its own, the client's calls get NoBackup (-520) and leave the host's backup alone.

mod support;

use ese_actors::{BackupBegin, BackupEnd, Term};
use serde_json::json;
use support::*;

/// A resume served wholly from the server's window never reaches the engine's read; after
/// `stop_backup` it is still refused with BackupAbortByServer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_from_the_window_after_stop_backup_is_801() {
    let h = host(Opts::default()).await;
    let id = h.begin("full").await;
    h.databases(&id).await;
    let whole = pull(get_file(&h, &id, "0", None).await).await;
    assert_eq!(whole.status, 200);
    // Before the stop the window serves the tail.
    let tail = pull(get_file(&h, &id, "0", Some(1)).await).await;
    assert_eq!((tail.status, &tail.bytes[..]), (206, &whole.bytes[1..]));
    h.inst.stop_backup().await.unwrap();
    let refused = ese_error(get_file(&h, &id, "0", Some(1)).await).await;
    assert_eq!(refused, (409, -801, "JET_errBackupAbortByServer".into()));
    let end = h.end_normal(&id).await;
    assert_eq!(ese_error(end).await.1, -801);
    h.inst.term(Term::empty()).await.unwrap();
}

/// The host ends the client's backup and begins its own: every later call of the client gets
/// NoBackup (410, -520), and the host's backup completes normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_a_backup_the_host_replaced_are_520() {
    let h = host(Opts::default()).await;
    let id = h.begin("full").await;
    h.databases(&id).await;
    h.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    h.inst
        .begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let no_backup = (410, -520, "JET_errNoBackup".to_string());
    assert_eq!(ese_error(h.post(&id, "/logs").await).await, no_backup);
    assert_eq!(ese_error(h.get(&id, "/truncation").await).await, no_backup);
    assert_eq!(ese_error(h.post(&id, "/truncation").await).await, no_backup);
    assert_eq!(ese_error(h.get(&id, "/record").await).await, no_backup);
    assert_eq!(ese_error(h.get(&id, "/databases").await).await, no_backup);
    assert_eq!(ese_error(h.end_normal(&id).await).await, no_backup);
    let abort = h.end(&id, json!({"mode": "abort"})).await;
    assert_eq!(ese_error(abort).await, no_backup);

    // Untouched: the host's backup is still in its database phase (a sealed log phase would
    // refuse the attach info) and runs to a normal end.
    host_finish(&h.inst).await;
    let info = h.inst.database_info(&h.db_path).await.unwrap();
    assert!(info.last_copy.is_some(), "the host's backup ended normally");
    h.inst.term(Term::empty()).await.unwrap();
}
