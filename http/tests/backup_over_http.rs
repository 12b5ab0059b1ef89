//! The backup sequence over real HTTP on loopback, against a real instance on files in a
//! tempdir. Every test asserts the exact ESE codes.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ese_actors::ese::io::{Fault, FaultStorage};
use ese_actors::{BackupBegin, BackupEnd, RestoreSpec, Term};
use serde_json::{json, Value};
use support::*;

/// A full backup pulled over HTTP while a writer commits restores into a consistent database:
/// every preloaded row, and the writer's keys as a gap-free prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backup_pulled_over_http_restores_consistently() {
    let h = host(Opts::default()).await;
    let w = h.writer();
    let id = h.begin("full").await;
    let set = h.dir.path().join("pulled");
    std::fs::create_dir_all(set.join("logs")).unwrap();

    let dbs: Value = h.databases(&id).await;
    let db = &dbs["files"][0];
    assert_eq!(db["kind"], "database");
    let source = db["source_path"].as_str().unwrap().to_string();
    let image = pull(get_file(&h, &id, "0", None).await).await;
    assert_eq!(image.status, 200);
    assert_eq!(
        image.headers["x-ese-file-size"].to_str().unwrap(),
        image.bytes.len().to_string()
    );
    assert!(
        image.bytes.len() > 4 * CHUNK,
        "the image spans several chunks"
    );
    assert_eq!(image.trailer("x-ese-crc32c"), Some(crc(&image.bytes)));
    assert_eq!(image.trailer("x-ese-file-crc32c"), Some(crc(&image.bytes)));
    let img_path = set.join("restored.edb");
    std::fs::write(&img_path, &image.bytes).unwrap();

    let logs: Value = h.seal(&id).await;
    let files = logs["files"].as_array().unwrap();
    assert!(!files.is_empty());
    for f in files {
        let name = f["name"].as_str().unwrap();
        let log = pull(get_file(&h, &id, name, None).await).await;
        assert_eq!(log.status, 200, "{name}");
        assert_eq!(log.trailer("x-ese-file-crc32c"), Some(crc(&log.bytes)));
        std::fs::write(set.join("logs").join(name), &log.bytes).unwrap();
    }
    // The status lists every file complete with the checksum the trailers gave.
    let st: Value = json(h.get(&id, "").await).await;
    assert_eq!(
        st["files"][0]["crc32c"],
        format!("{:08x}", crc(&image.bytes))
    );
    assert!(st["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["complete"] == true));

    let end = h.end_normal(&id).await;
    assert_eq!(end.status(), 200);
    w.stop().await;
    // The ended backup answers NoBackup.
    let (status, code, _) = ese_error(h.get(&id, "").await).await;
    assert_eq!((status, code), (410, -520));
    h.inst.term(Term::empty()).await.unwrap();

    h.engine
        .external_restore(RestoreSpec {
            checkpoint_dir: set.clone(),
            log_dir: set.join("logs"),
            backup_log_dir: set.join("logs"),
            gen_low: logs["gen_low"].as_u64().unwrap() as u32,
            gen_high: logs["gen_high"].as_u64().unwrap() as u32,
            base_name: logs["base_name"].as_str().unwrap().to_string(),
            restore_map: vec![(source.into(), img_path.clone())],
            stop_at: None,
        })
        .await
        .unwrap();
    assert_restored(&h, &img_path).await;
}

/// A connection cut in the middle of a database image: the client resumes with `Range`, gets
/// only the missing bytes, and the whole is the file the server streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_with_range() {
    let h = host(Opts::default()).await;
    let w = h.writer();
    let id = h.begin("full").await;
    h.get(&id, "/databases").await;
    let mut got = pull_some(get_file(&h, &id, "0", None).await, CHUNK + 1).await;
    let have = got.len() as u64;

    let rest = pull(get_file(&h, &id, "0", Some(have)).await).await;
    assert_eq!(rest.status, 206);
    let size: u64 = rest.headers["x-ese-file-size"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        rest.headers["content-range"].to_str().unwrap(),
        format!("bytes {have}-{}/{size}", size - 1)
    );
    assert_eq!(
        rest.bytes.len() as u64,
        size - have,
        "only the missing bytes"
    );
    assert_eq!(rest.trailer("x-ese-crc32c"), Some(crc(&rest.bytes)));
    got.extend_from_slice(&rest.bytes);
    assert_eq!(rest.trailer("x-ese-file-crc32c"), Some(crc(&got)));

    // A straight pull of the same file (from the server's window) gives the same bytes.
    let straight = pull(get_file(&h, &id, "0", None).await).await;
    assert_eq!(straight.status, 200);
    assert_eq!(crc(&straight.bytes), crc(&got));
    assert_eq!(straight.bytes, got);

    // The sequence goes on and ends normally.
    let logs: Value = h.seal(&id).await;
    for f in logs["files"].as_array().unwrap() {
        let log = pull(get_file(&h, &id, &f["index"].to_string(), None).await).await;
        assert_eq!(log.status, 200);
    }
    let end = h.end_normal(&id).await;
    assert_eq!(end.status(), 200);
    w.stop().await;
    h.inst.term(Term::empty()).await.unwrap();
}

/// A range the server cannot serve (past the end, or malformed) is 416 with InvalidParameter,
/// and the download can still go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ranges_are_416_and_change_nothing() {
    let h = host(Opts::default()).await;
    let id = h.begin("full").await;
    h.get(&id, "/databases").await;
    let (status, code, _) = ese_error(get_file(&h, &id, "0", Some(1 << 40)).await).await;
    assert_eq!((status, code), (416, -1003));
    for bad in ["bytes=5-3", "bytes=-100", "pages=1-"] {
        let res = h
            .http
            .get(format!("{}/files/0", h.backup(&id)))
            .header("range", bad)
            .send()
            .await
            .unwrap();
        let (status, code, _) = ese_error(res).await;
        assert_eq!((status, code), (416, -1003), "{bad}");
    }
    let whole = pull(get_file(&h, &id, "0", None).await).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.trailer("x-ese-file-crc32c"), Some(crc(&whole.bytes)));
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// No request for a whole TTL: the server ends the backup; a request on it then gets NoBackup
/// (-520), and the next begin works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_ends_the_backup() {
    let h = host(Opts {
        ttl: std::time::Duration::from_millis(300),
        ..Opts::default()
    })
    .await;
    let id = h.begin("full").await;
    let mut expired = h.server.expirations();
    expired.wait_for(|n| *n >= 1).await.unwrap();
    let (status, code, name) = ese_error(h.get(&id, "/databases").await).await;
    assert_eq!(
        (status, code, name.as_str()),
        (410, -520, "JET_errNoBackup")
    );
    // The engine's backup is over: the host can begin and end one of its own.
    h.inst
        .begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    h.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    // And a client can begin again.
    let id2 = h.begin("full").await;
    assert_ne!(id, id2);
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A lease that expires after its backup was ended by the host never touches the host's later
/// backup (the router ends backups by id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_never_ends_a_later_backup() {
    let h = host(Opts {
        ttl: std::time::Duration::from_millis(300),
        ..Opts::default()
    })
    .await;
    let _id = h.begin("full").await;
    h.inst.stop_backup().await.unwrap();
    assert_eq!(
        h.inst
            .end_external_backup(BackupEnd::NORMAL)
            .await
            .unwrap_err()
            .code(),
        -801
    );
    h.inst
        .begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let mut expired = h.server.expirations();
    expired.wait_for(|n| *n >= 1).await.unwrap();
    // The host's backup still runs.
    assert_eq!(h.inst.get_attach_info().await.unwrap().len(), 1);
    h.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    h.inst.term(Term::empty()).await.unwrap();
}

/// `stop_backup` on the server while a client streams: the client's next request gets
/// BackupAbortByServer (-801) in the JSON body; its end too; then a new backup begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_backup_while_streaming_answers_801() {
    let h = host(Opts::default()).await;
    let w = h.writer();
    let id = h.begin("full").await;
    h.get(&id, "/databases").await;
    let _part = pull_some(get_file(&h, &id, "0", None).await, 1).await;
    h.inst.stop_backup().await.unwrap();
    let (status, code, name) = ese_error(h.post(&id, "/logs").await).await;
    assert_eq!(
        (status, code, name.as_str()),
        (409, -801, "JET_errBackupAbortByServer")
    );
    let end = h.end_normal(&id).await;
    assert_eq!(ese_error(end).await.1, -801);
    // The engine ended it: the id is gone, and a new backup begins.
    assert_eq!(ese_error(h.get(&id, "").await).await.1, -520);
    h.begin("full").await;
    w.stop().await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// `stop_service` while a backup runs: every later request on it gets -1329 (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_service_answers_1329() {
    let h = host(Opts::default()).await;
    let id = h.begin("full").await;
    h.get(&id, "/databases").await;
    let _part = pull_some(get_file(&h, &id, "0", None).await, 1).await;
    h.inst.stop_service().await.unwrap();
    let (status, code, name) = ese_error(h.post(&id, "/logs").await).await;
    assert_eq!(
        (status, code, name.as_str()),
        (503, -1329, "JET_errClientRequestToStopJetService")
    );
    let res = h
        .http
        .post(format!("{}/backups", h.url))
        .json(&json!({"kind": "full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ese_error(res).await.1, -1329);
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

const TOKENS: &str =
    "# test tokens\nreader-0123456789abcdef read\nadmin-0123456789abcdef read,truncate,end\n";

/// Missing and unknown tokens are 401, a wrong scope 403, and none of them changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_scopes() {
    let h = host(Opts {
        tokens: Some(TOKENS),
        ..Opts::default()
    })
    .await;
    let begin = |token: Option<&'static str>| {
        let mut r = h
            .http
            .post(format!("{}/backups", h.url))
            .json(&json!({"kind": "full"}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(
        ese_error(begin(None).await.unwrap()).await,
        (401, -1907, "JET_errAccessDenied".into())
    );
    assert_eq!(
        ese_error(begin(Some("reader-0123456789abcdeX")).await.unwrap())
            .await
            .1,
        -1907
    );
    // Without a valid token a body is not even read: a malformed one is 401, not 400, and
    // neither is an unknown token's with a push target (whose scope the body decides).
    for (token, body) in [
        (None, "{not json".to_string()),
        (Some("reader-0123456789abcdeX"), "{not json".to_string()),
        (
            None,
            json!({"kind": "full", "target": "/tmp/x"}).to_string(),
        ),
    ] {
        let mut r = h
            .http
            .post(format!("{}/backups", h.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        assert_eq!(ese_error(r.send().await.unwrap()).await.0, 401);
    }
    let end = h
        .http
        .post(format!("{}/end", h.backup("0000000000000001")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(ese_error(end).await.0, 401);
    // With a valid token the same malformed body is 400.
    let bad = h
        .http
        .post(format!("{}/backups", h.url))
        .header("content-type", "application/json")
        .bearer_auth("reader-0123456789abcdef")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(ese_error(bad).await.0, 400);
    // Nothing began: the host can begin (and abort) a backup of its own.
    h.inst
        .begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    h.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();

    let res = begin(Some("reader-0123456789abcdef")).await.unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reader = |r: reqwest::RequestBuilder| r.bearer_auth("reader-0123456789abcdef").send();
    let end = reader(
        h.http
            .post(format!("{}/end", h.backup(&id)))
            .json(&json!({"mode": "abort"})),
    )
    .await
    .unwrap();
    assert_eq!(
        ese_error(end).await,
        (403, -1809, "JET_errPermissionDenied".into())
    );
    let del = reader(h.http.delete(h.backup(&id))).await.unwrap();
    assert_eq!(ese_error(del).await.1, -1809);
    let trunc = reader(h.http.post(format!("{}/truncation", h.backup(&id))))
        .await
        .unwrap();
    assert_eq!(ese_error(trunc).await.1, -1809);
    let anon = h.get(&id, "/databases").await;
    assert_eq!(ese_error(anon).await.0, 401);
    // The backup still runs, untouched.
    assert_eq!(
        h.inst
            .begin_external_backup(BackupBegin::empty())
            .await
            .unwrap_err()
            .code(),
        -505
    );
    assert_eq!(
        reader(h.http.get(format!("{}/databases", h.backup(&id))))
            .await
            .unwrap()
            .status(),
        200
    );
    let del = h
        .http
        .delete(h.backup(&id))
        .bearer_auth("admin-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    h.inst.term(Term::empty()).await.unwrap();
}

/// Without a token file the router serves loopback only.
#[tokio::test]
async fn no_token_file_off_loopback_is_refused() {
    let h = host(Opts::default()).await;
    let b = ese_http::Builder::new().instance("src", h.inst.clone());
    let e = b.build("0.0.0.0:8080".parse().unwrap()).unwrap_err();
    assert!(matches!(e, ese_http::BuildError::NoTokensOffLoopback(_)));
    let with = ese_http::Builder::new()
        .instance("src", h.inst.clone())
        .tokens(ese_http::Tokens::parse(TOKENS).unwrap());
    assert!(with.build("0.0.0.0:8080".parse().unwrap()).is_ok());
    h.inst.term(Term::empty()).await.unwrap();
}

/// A read held by the instance's backup pace renews no lease: the router refuses a lease
/// that ten of the longest holds would outlast (the default pace's floor is 4 MiB/s, so a
/// 1 MiB chunk may wait a quarter of a second).
#[tokio::test]
async fn a_lease_shorter_than_ten_held_reads_is_refused() {
    let h = host(Opts::default()).await;
    let addr = "127.0.0.1:0".parse().unwrap();
    let with = |ttl_ms: u64, chunk: usize| {
        ese_http::Builder::new()
            .instance("src", h.inst.clone())
            .chunk_bytes(chunk)
            .lease_ttl(Duration::from_millis(ttl_ms))
            .build(addr)
    };
    let e = with(2_000, 1 << 20).map(|_| ()).unwrap_err();
    assert_eq!(
        e,
        ese_http::BuildError::LeaseTooShort(
            "src".into(),
            Duration::from_millis(250),
            Duration::from_secs(2)
        )
    );
    assert!(
        e.to_string().contains("raise the floor or the lease"),
        "{e}"
    );
    assert!(with(2_500, 1 << 20).is_ok());
    // Smaller chunks are held for less.
    assert!(with(2_000, 256 << 10).is_ok());
    h.inst.term(Term::empty()).await.unwrap();
}

/// Malformed JSON, unknown names and ids, hostile file names: 4xx with the ESE error, and the
/// backup goes on untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_requests_are_refused() {
    let h = host(Opts::default()).await;
    let post = |body: &'static str| {
        h.http
            .post(format!("{}/backups", h.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        "{",
        "[]",
        "{\"kind\":\"snapshot\"}",
        "{\"kind\":\"full\",\"x\":1}",
        "",
    ] {
        assert_eq!(
            ese_error(post(body).await.unwrap()).await,
            (400, -1003, "JET_errInvalidParameter".into()),
            "{body}"
        );
    }
    let res = h
        .http
        .post(format!(
            "{}/../other/backups",
            h.url.replace("/src", "/nope")
        ))
        .json(&json!({"kind": "full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = h
        .http
        .post(h.url.replace("/src", "/nope/backups"))
        .json(&json!({"kind": "full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ese_error(res).await,
        (404, -1115, "JET_errInvalidInstance".into())
    );

    let id = h.begin("full").await;
    for bad in ["abc", "99999", "-1"] {
        let (status, code, _) = ese_error(h.get(bad, "").await).await;
        assert_eq!((status, code), (404, -520), "{bad}");
    }
    h.get(&id, "/databases").await;
    let outside = h.dir.path().join("inst").join("data.edb");
    // Names the server decodes and finds in no list: FileNotFound (-1811).
    let hostile = [
        "..%2F..%2Fetc%2Fpasswd".to_string(),
        "%2Fetc%2Fpasswd".to_string(),
        outside.to_string_lossy().replace('/', "%2F"),
        "edb.chk".to_string(),
        "edb.log".to_string(),
        "1".to_string(),
        "+0".to_string(),
        "data.edb%00".to_string(),
        "data.edb%2F..".to_string(),
    ];
    for f in &hostile {
        let res = h
            .http
            .get(format!("{}/files/{f}", h.backup(&id)))
            .send()
            .await
            .unwrap();
        let (status, code, _) = ese_error(res).await;
        assert_eq!((status, code), (404, -1811), "{f}");
    }
    // Dot segments (`%2E%2E` is one for the client's URL parser) name no resource at all:
    // the fallback's InvalidParameter (-1003).
    for f in ["%2E%2E", "..", "%2E%2E/%2E%2E/inst/data.edb"] {
        let res = h
            .http
            .get(format!("{}/files/{f}", h.backup(&id)))
            .send()
            .await
            .unwrap();
        let (status, code, _) = ese_error(res).await;
        assert_eq!((status, code), (404, -1003), "{f}");
    }
    // A file name that is not UTF-8 once decoded: InvalidParameter (-1003), 400.
    let res = h
        .http
        .get(format!("{}/files/%FF", h.backup(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ese_error(res).await,
        (400, -1003, "JET_errInvalidParameter".into())
    );
    let end = h
        .http
        .post(format!("{}/end", h.backup(&id)))
        .body("{\"mode\":\"sideways\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(ese_error(end).await.1, -1003);
    // Nothing was read or aborted: the database streams by name.
    let whole = pull(get_file(&h, &id, "data.edb", None).await).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.trailer("x-ese-file-crc32c"), Some(crc(&whole.bytes)));
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// 64 concurrent begins: exactly one backup runs, every other gets BackupInProgress (-505).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_begins_start_exactly_one_backup() {
    let h = host(Opts::default()).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (c, url) = (h.http.clone(), format!("{}/backups", h.url));
            tokio::spawn(async move {
                c.post(url)
                    .json(&json!({"kind": "full"}))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut codes = BTreeSet::new();
    for t in tasks {
        let res = t.await.unwrap();
        if res.status() == 201 {
            created += 1;
        } else {
            let (status, code, _) = ese_error(res).await;
            codes.insert((status, code));
        }
    }
    assert_eq!(created, 1);
    assert_eq!(codes, BTreeSet::from([(409, -505)]));
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// Pulls every file of the running backup's log phase (seals the logs first); answers the
/// log info.
async fn pull_logs(h: &Host, id: &str) -> Value {
    let logs: Value = h.seal(id).await;
    for f in logs["files"].as_array().unwrap() {
        let log = pull(get_file(h, id, &f["index"].to_string(), None).await).await;
        assert_eq!(log.status, 200);
        assert_eq!(log.trailer("x-ese-file-crc32c"), Some(crc(&log.bytes)));
    }
    logs
}

/// A full backup with truncation, then an incremental, both over HTTP: the headers record a
/// full and an incremental backup, and the sequence's refusals come back with their codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_with_truncation_then_incremental() {
    let h = host(Opts::default()).await;
    let w = h.writer();
    let id = h.begin("full").await;
    h.get(&id, "/databases").await;
    // Truncation before the log phase is out of sequence (the backup goes on).
    let early = h.post(&id, "/truncation").await;
    assert_eq!(
        ese_error(early).await,
        (409, -521, "JET_errInvalidBackupSequence".into())
    );
    let image = pull(get_file(&h, &id, "0", None).await).await;
    assert_eq!(image.status, 200);
    pull_logs(&h, &id).await;
    let names: Value = json(h.get(&id, "/truncation").await).await;
    assert!(names["files"].is_array());
    let t = h.post(&id, "/truncation").await;
    assert_eq!(t.status(), 204);
    let end = h.end_normal(&id).await;
    assert_eq!(end.status(), 200);
    let info = h.inst.database_info(&h.db_path).await.unwrap();
    assert!(info.last_full.is_some());

    let inc = h.begin("incremental").await;
    // No attach info in an incremental: InvalidBackupSequence, the backup goes on.
    let dbs = h.get(&inc, "/databases").await;
    assert_eq!(ese_error(dbs).await.1, -521);
    pull_logs(&h, &inc).await;
    let end = h
        .end(&inc, json!({"mode": "normal", "truncate_done": true}))
        .await;
    assert_eq!(end.status(), 200);
    w.stop().await;
    let info = h.inst.database_info(&h.db_path).await.unwrap();
    assert!(info.last_incremental.is_some());
    h.inst.term(Term::empty()).await.unwrap();
}

/// Ending before the log phase: BackupAbortByCaller (-800), and the backup is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_end_before_the_logs_is_800() {
    let h = host(Opts::default()).await;
    let id = h.begin("full").await;
    let end = h.end_normal(&id).await;
    assert_eq!(
        ese_error(end).await,
        (409, -800, "JET_errBackupAbortByCaller".into())
    );
    let (status, code, _) = ese_error(h.get(&id, "").await).await;
    assert_eq!((status, code), (410, -520));
    h.begin("full").await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A full backup pulled over HTTP and written, chunk by chunk, as a backup set (the format of
/// `backup_to_dir`): `verify_backup_set` passes and `restore_backup_chain` restores every
/// preloaded row and a gap-free prefix of the writer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_backup_written_as_a_set_verifies_and_restores() {
    use ese_actors::ese::backup::set::{SetDir, SetFacts, SetWriter};
    use ese_actors::ese::internals::db::Signature;

    let h = host(Opts::default()).await;
    let w = h.writer();
    let id = h.begin("full").await;
    let set = h.dir.path().join("set");
    let mut sw = SetWriter::new(Box::new(SetDir::new(ese_actors::ese::io::os(), &set)));
    sw.check_new().unwrap();
    sw.prepare().unwrap();

    let dbs: Value = h.databases(&id).await;
    for db in dbs["files"].as_array().unwrap() {
        let source = std::path::PathBuf::from(db["source_path"].as_str().unwrap());
        let image = pull(get_file(&h, &id, &db["index"].to_string(), None).await).await;
        assert_eq!(image.status, 200);
        sw.start_database(&source).unwrap();
        sw.append(&image.bytes).unwrap();
        sw.finish_file().unwrap();
    }
    let logs: Value = h.seal(&id).await;
    let gen_low = logs["gen_low"].as_u64().unwrap() as u32;
    for (i, f) in logs["files"].as_array().unwrap().iter().enumerate() {
        let log = pull(get_file(&h, &id, &f["index"].to_string(), None).await).await;
        assert_eq!(log.status, 200);
        let name = std::path::PathBuf::from(f["name"].as_str().unwrap());
        sw.start_log(gen_low + i as u32, &name).unwrap();
        sw.append(&log.bytes).unwrap();
        sw.finish_file().unwrap();
    }
    let facts: Value = json(h.get(&id, "/record").await).await;
    let rec = &facts["record"];
    let record = ese_actors::BackupInfo {
        mark: rec["mark"].as_u64().unwrap(),
        time_ms: rec["time_ms"].as_u64().unwrap(),
        gen_low: rec["gen_low"].as_u64().unwrap() as u32,
        gen_high: rec["gen_high"].as_u64().unwrap() as u32,
        stream: rec["stream"].as_u64().map(|s| s as u32),
    };
    sw.seal().unwrap();
    sw.publish(SetFacts {
        kind: ese_actors::BackupKind::Full,
        parent_id: None,
        instance: facts["instance"].as_str().unwrap().to_string(),
        base_name: facts["base_name"].as_str().unwrap().to_string(),
        page_size: facts["page_size"].as_u64().unwrap() as u32,
        log_signature: Signature::from_hex(facts["log_signature"].as_str().unwrap()).unwrap(),
        gen_low,
        gen_high: logs["gen_high"].as_u64().unwrap() as u32,
        record,
    })
    .unwrap();
    let end = h.end_normal(&id).await;
    assert_eq!(end.status(), 200);
    w.stop().await;
    h.inst.term(Term::empty()).await.unwrap();

    ese_actors::verify_backup_set(&set).unwrap();
    let target = h.dir.path().join("restored");
    let report = ese_actors::restore_backup_chain(&h.engine, &[set], &target)
        .await
        .unwrap();
    assert_restored(&h, &report.databases[0].1).await;
}

/// The server keeps only its window of a file: a resume from before it is 416 with
/// InvalidParameter, one inside it is served, and the backup goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_older_than_the_window_is_416() {
    let h = host(Opts {
        window: Some(CHUNK as u64),
        ..Opts::default()
    })
    .await;
    let id = h.begin("full").await;
    h.get(&id, "/databases").await;
    let whole = pull(get_file(&h, &id, "0", None).await).await;
    assert_eq!(whole.status, 200);
    let size = whole.bytes.len() as u64;
    let (status, code, _) = ese_error(get_file(&h, &id, "0", Some(0)).await).await;
    assert_eq!((status, code), (416, -1003));
    let tail = pull(get_file(&h, &id, "0", Some(size - 1)).await).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.bytes, whole.bytes[whole.bytes.len() - 1..]);
    assert_eq!(tail.trailer("x-ese-file-crc32c"), Some(crc(&whole.bytes)));
    pull_logs(&h, &id).await;
    let end = h.end_normal(&id).await;
    assert_eq!(end.status(), 200);
    h.inst.term(Term::empty()).await.unwrap();
}

/// A damaged page, or a read the disk fails, ends the image's stream (its status line was
/// sent); from then on every request for that file answers the engine's error at once, as
/// JSON, instead of reading on a handle the engine dropped (which a resuming client would
/// meet at the same byte for ever); the backup goes on, as the engine's does: its logs can
/// still be sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_fails_that_file_for_good_and_the_backup_goes_on() {
    for disk_fails in [false, true] {
        let fs = Arc::new(FaultStorage::new());
        let h = host(Opts {
            damaged_page: (!disk_fails).then_some(40),
            faults: disk_fails.then(|| fs.clone()),
            ..Opts::default()
        })
        .await;
        let id = h.begin("full").await;
        let dbs = h.databases(&id).await;
        assert_eq!(dbs["files"].as_array().unwrap().len(), 1);
        fs.arm(Fault::FailRead {
            nth: 1,
            path_contains: Some("data.edb".into()),
        });
        let res = get_file(&h, &id, "0", None).await;
        assert_eq!(res.status(), 200);
        let got = res.bytes().await;
        assert!(
            got.is_err(),
            "the stream was not cut ({disk_fails}): {:?}",
            got.as_ref().map(|b| b.len())
        );
        let (code, name) = match disk_fails {
            true => (-1022, "JET_errDiskIO"),
            false => (-1018, "JET_errReadVerifyFailure"),
        };
        for range in [None, Some(0)] {
            let (status, c, n) = ese_error(get_file(&h, &id, "0", range).await).await;
            assert_eq!((status, c, n.as_str()), (500, code, name));
        }
        let logs = h.seal(&id).await;
        assert!(!logs["files"].as_array().unwrap().is_empty(), "{logs}");
        assert_eq!(h.delete(&id).await.status(), 204);
        h.inst.term(Term::empty()).await.unwrap();
    }
}

/// A backup ended through the router takes its lease's timer with it: begun and ended 20
/// times under a lease of ten minutes, the runtime holds about as many tasks as after the
/// first (a few connections' more, not one per backup: each timer used to sleep on until its
/// old deadline, holding its backup's state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_backups_leave_no_lease_timer_behind() {
    let mut h = host(Opts::default()).await;
    // One idle connection at most: a request sent before the last one's connection went back
    // to the pool opens another, whose tasks (client and server) would otherwise idle on.
    h.http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let cycle = || async {
        let id = h.begin("full").await;
        assert_eq!(h.delete(&id).await.status(), 204);
    };
    cycle().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = alive();
    for _ in 0..20 {
        cycle().await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive() > before + 8 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(alive() <= before + 8, "{} tasks, {before} before", alive());
    h.inst.term(Term::empty()).await.unwrap();
}
