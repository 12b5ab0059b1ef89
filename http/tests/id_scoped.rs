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

/// Each resource checks the id itself: every call below is the first one on a backup the host
/// replaced, so none can be answered from what an earlier call learned. A handler that lost
/// its check would reach the host's backup (and, e.g., seal its logs) instead of answering
/// NoBackup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_on_a_replaced_backup_checks_the_id_itself() {
    let h = host(Opts::default()).await;
    let no_backup = (410, -520, "JET_errNoBackup".to_string());
    for call in [
        "seal",
        "truncate info",
        "truncate",
        "record",
        "databases",
        "file",
        "end",
    ] {
        let id = h.begin("full").await;
        if call != "databases" {
            h.databases(&id).await;
        }
        h.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
        h.inst
            .begin_external_backup(BackupBegin::empty())
            .await
            .unwrap();
        let res = match call {
            "seal" => h.post(&id, "/logs").await,
            "truncate info" => h.get(&id, "/truncation").await,
            "truncate" => h.post(&id, "/truncation").await,
            "record" => h.get(&id, "/record").await,
            "databases" => h.get(&id, "/databases").await,
            "file" => get_file(&h, &id, "0", None).await,
            _ => h.end_normal(&id).await,
        };
        assert_eq!(ese_error(res).await, no_backup, "{call}");
        // The host's backup is still in its database phase: the attach info is served.
        let attach = h.inst.get_attach_info().await;
        assert!(attach.is_ok(), "{call}: {attach:?}");
        h.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    }
    h.inst.term(Term::empty()).await.unwrap();
}

/// An end the instance's gate refuses (`stop_service`) did not end the backup: the client
/// gets -1329 for it and for every later call (contract 1.2), never a NoBackup of the router's
/// own, and the backup is still there for the host's `term(STOP_BACKUP)` to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_refused_by_stop_service_keeps_answering_1329() {
    let h = host(Opts::default()).await;
    let id = h.begin("full").await;
    h.databases(&id).await;
    h.inst.stop_service().await.unwrap();
    let stopping = (
        503,
        -1329,
        "JET_errClientRequestToStopJetService".to_string(),
    );
    assert_eq!(ese_error(h.end_normal(&id).await).await, stopping);
    assert_eq!(ese_error(h.end_normal(&id).await).await, stopping);
    assert_eq!(ese_error(h.post(&id, "/logs").await).await, stopping);
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A connection that broke after a file's last byte, before its trailers: a resume from
/// exactly the end answers nothing more and the trailers, so the client can finish the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_the_end_of_a_file_sends_its_trailers() {
    let h = host(Opts::default()).await;
    let id = h.begin("full").await;
    h.databases(&id).await;
    let whole = pull(get_file(&h, &id, "0", None).await).await;
    assert_eq!(whole.status, 200);
    let size = whole.bytes.len() as u64;
    let end = pull(get_file(&h, &id, "0", Some(size)).await).await;
    assert_eq!(end.status, 206);
    assert!(end.bytes.is_empty());
    assert_eq!(end.trailer("x-ese-file-crc32c"), Some(crc(&whole.bytes)));
    // Past the end is still refused.
    let past = ese_error(get_file(&h, &id, "0", Some(size + 1)).await).await;
    assert_eq!((past.0, past.1), (416, -1003));
    h.end(&id, json!({"mode": "abort"})).await;
    h.inst.term(Term::empty()).await.unwrap();
}
