//! The instance's counters of backup work and the backup span, through the public API: a
//! client streams whole backups and the counters must equal what it received; every backup
//! event must run in a `backup` span with the backup's kind and id, inside the instance's.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::{BackupBegin, BackupEnd, Commit, Engine, Instance, InstanceParams, TableId};

const PAGE: usize = 4096;

/// An initialised instance with `db.edb`, its table "t" and `rows` rows.
async fn instance(engine: &Engine, name: &str, dir: &Path, rows: u32) -> (Instance, TableId) {
    let params = InstanceParams::new(dir)
        .page_size(PAGE as u32)
        .log_file_size(128 * 1024)
        .cache_pages(256);
    let inst = engine.create_instance(name, params).await.unwrap();
    inst.init().await.unwrap();
    let path = dir.join("db.edb");
    let db = inst.create_database(&path).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    put_rows(&inst, t, 0..rows).await;
    (inst, t)
}

/// Rows `range` of table `t`, 20 to a durable commit.
async fn put_rows(inst: &Instance, t: TableId, range: std::ops::Range<u32>) {
    let mut s = inst.begin_session().await.unwrap();
    for chunk in range.collect::<Vec<_>>().chunks(20) {
        let mut tx = s.transaction().await.unwrap();
        for i in chunk {
            tx.put(t, format!("k{i:06}").as_bytes(), &[(*i % 251) as u8; 200])
                .await
                .unwrap();
        }
        tx.commit(Commit::Durable).await.unwrap();
    }
}

/// Streams one file in chunks of 5 pages; the bytes received.
async fn stream(inst: &Instance, path: &Path) -> u64 {
    let (f, size) = inst.open_file(path).await.unwrap();
    let mut got = 0;
    loop {
        let chunk = inst.read_file(f, 5 * PAGE).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        got += chunk.len() as u64;
    }
    inst.close_file(f).await.unwrap();
    assert_eq!(got, size, "{}", path.display());
    got
}

/// One whole backup with truncation: the bytes the client received, and the data pages of
/// the database images it received (an image is its pages, two header copies, a trailer).
async fn backup(inst: &Instance, grbit: BackupBegin) -> (u64, u64) {
    inst.begin_external_backup(grbit).await.unwrap();
    let (mut bytes, mut pages) = (0, 0);
    if !grbit.contains(BackupBegin::INCREMENTAL) {
        for db in inst.get_attach_info().await.unwrap() {
            let n = stream(inst, &db).await;
            bytes += n;
            pages += n / PAGE as u64 - 3;
        }
    }
    let info = inst.get_log_info().await.unwrap();
    assert!(!info.files.is_empty());
    for log in &info.files {
        bytes += stream(inst, log).await;
    }
    inst.truncate_log().await.unwrap();
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    (bytes, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_bytes_streamed_and_the_pages_verified() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = instance(&engine, "stats", dir.path(), 300).await;
    let s = inst.stats().await.unwrap();
    assert_eq!((s.backup_bytes_streamed, s.backup_pages_verified), (0, 0));
    // 15 durable commits of rows, the table's, the database's: each made durable by a group.
    assert!(s.log_group_writes >= 17, "{s:?}");
    assert!(
        s.log_groups >= 1 && s.log_groups <= s.log_group_writes,
        "{s:?}"
    );
    assert!(s.log_largest_group >= 1, "{s:?}");

    let (bytes, pages) = backup(&inst, BackupBegin::empty()).await;
    assert!(pages > 10, "a database of several pages: {pages}");
    let s = inst.stats().await.unwrap();
    assert_eq!(s.backup_bytes_streamed, bytes);
    assert_eq!(s.backup_pages_verified, pages);

    // A second full backup adds to both; an incremental streams logs only.
    put_rows(&inst, t, 300..600).await;
    let (b2, p2) = backup(&inst, BackupBegin::empty()).await;
    let s = inst.stats().await.unwrap();
    assert_eq!(s.backup_bytes_streamed, bytes + b2);
    assert_eq!(s.backup_pages_verified, pages + p2);
    put_rows(&inst, t, 600..700).await;
    let (b3, p3) = backup(&inst, BackupBegin::INCREMENTAL).await;
    assert_eq!(p3, 0);
    let s = inst.stats().await.unwrap();
    assert_eq!(s.backup_bytes_streamed, bytes + b2 + b3);
    assert_eq!(s.backup_pages_verified, pages + p2);
    inst.term(crate::Term::empty()).await.unwrap();
}

type Fields = BTreeMap<String, String>;

struct FieldsOf(Fields);

impl Visit for FieldsOf {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_string(), v.to_string());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0.insert(f.name().to_string(), format!("{v:?}"));
    }
}

/// An event: its fields, and the spans it ran in, innermost first (name and fields).
#[derive(Clone, Debug)]
struct Seen {
    fields: Fields,
    spans: Vec<(String, Fields)>,
}

impl Seen {
    fn span(&self, name: &str) -> Option<&Fields> {
        self.spans.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }
}

/// Every event of the process, with its spans.
struct Capture(Arc<Mutex<Vec<Seen>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = FieldsOf(Fields::new());
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(f.0);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut f = FieldsOf(Fields::new());
        event.record(&mut f);
        let spans = ctx.event_scope(event).map_or_else(Vec::new, |scope| {
            scope
                .map(|s| {
                    let fields = s.extensions().get::<Fields>().cloned().unwrap_or_default();
                    (s.name().to_string(), fields)
                })
                .collect()
        });
        self.0.lock().unwrap().push(Seen { fields: f.0, spans });
    }
}

/// The process-wide capture (the actor's events come from tokio's workers and its blocking
/// pool, so a thread-local subscriber would miss most of them).
fn captured() -> &'static Arc<Mutex<Vec<Seen>>> {
    static SEEN: OnceLock<Arc<Mutex<Vec<Seen>>>> = OnceLock::new();
    SEEN.get_or_init(|| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(seen.clone()));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        seen
    })
}

/// ESE's backup event ids (`ese::backup::events`).
const BACKUP_EVENTS: &[&str] = &[
    "206", "210", "211", "213", "214", "215", "217", "218", "220", "221", "222", "223", "224",
    "225", "226", "459", "520",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backup_event_runs_in_the_span_of_its_backup() {
    let seen = captured();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = instance(&engine, "span-test", dir.path(), 300).await;
    backup(&inst, BackupBegin::empty()).await;
    put_rows(&inst, t, 300..400).await;
    backup(&inst, BackupBegin::INCREMENTAL).await;
    inst.term(crate::Term::empty()).await.unwrap();

    let mine: Vec<Seen> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.span("instance")
                .is_some_and(|f| f.get("name").map(String::as_str) == Some("span-test"))
        })
        .cloned()
        .collect();
    assert!(
        mine.iter()
            .any(|s| s.fields.get("event_id").map(String::as_str) == Some("105")),
        "the instance's own events are in its span: {mine:#?}"
    );
    // (backup id, kind, event id) of every backup event, in order.
    let mut events = Vec::new();
    for s in &mine {
        let Some(id) = s.fields.get("event_id") else {
            continue;
        };
        if !BACKUP_EVENTS.contains(&id.as_str()) {
            continue;
        }
        let b = s
            .span("backup")
            .unwrap_or_else(|| panic!("event {id} outside a backup span: {s:#?}"));
        events.push((b["id"].clone(), b["kind"].clone(), id.clone()));
    }
    let of = |backup: &str| -> Vec<String> {
        events
            .iter()
            .filter(|(b, _, _)| b == backup)
            .map(|(_, _, e)| e.clone())
            .collect()
    };
    let kinds = |backup: &str| -> Vec<&str> {
        let mut k: Vec<&str> = events
            .iter()
            .filter(|(b, _, _)| b == backup)
            .map(|(_, k, _)| k.as_str())
            .collect();
        k.dedup();
        k
    };
    assert_eq!(kinds("1"), ["Full"]);
    assert_eq!(kinds("2"), ["Incremental"]);
    let full = of("1");
    let incr = of("2");
    // The full backup: start, the database copied, the log phase, each log copied,
    // truncation (or nothing to truncate), the end.
    assert_eq!(full[..4], ["210", "220", "221", "223"], "{full:?}");
    assert_eq!(incr[..2], ["211", "223"], "{incr:?}");
    for (name, evs) in [("full", &full), ("incremental", &incr)] {
        let logs = &evs[evs.iter().position(|e| e == "223").unwrap() + 1..evs.len() - 2];
        assert!(!logs.is_empty(), "{name}: {evs:?}");
        assert!(
            logs.chunks(2).all(|c| c == ["220", "221"]),
            "{name}: each log opened, then read to its end: {evs:?}"
        );
        assert!(
            ["224", "225"].contains(&evs[evs.len() - 2].as_str()),
            "{name}: {evs:?}"
        );
        assert_eq!(evs[evs.len() - 1], "213", "{name}: {evs:?}");
    }
}

/// behaviour.md §2.6: the events of the sequence's refusals and aborts, each with ESE's id:
/// 206 (incremental without a full backup), 217 (not an attached database), 222 (closed
/// before its end), 520 (truncation before the logs were copied), 215 (ended by the caller:
/// ABORT, or NORMAL before the log phase), 226 (NORMAL after `stop_backup`, and `term` with
/// `STOP_BACKUP`), 214 (a call's error aborted the backup), 459 (a listed log missing), 225
/// (nothing to truncate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_aborts_emit_their_event_ids() {
    let seen = captured();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _) = instance(&engine, "events-errors", dir.path(), 100).await;
    let db = dir.path().join("db.edb");
    let start = seen.lock().unwrap().len();
    let ids = || -> Vec<String> {
        seen.lock().unwrap()[start..]
            .iter()
            .filter(|s| {
                s.span("instance")
                    .is_some_and(|f| f.get("name").map(String::as_str) == Some("events-errors"))
            })
            .filter_map(|s| s.fields.get("event_id").cloned())
            .collect()
    };
    let code = |r: crate::Result<()>| r.unwrap_err().code();
    let mark = || ids().len();
    let since = |at: usize| ids()[at..].to_vec();

    let at = mark();
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::INCREMENTAL).await),
        -560
    );
    assert!(since(at).contains(&"206".to_string()), "{:?}", since(at));

    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let at = mark();
    assert!(inst.open_file(dir.path().join("nope.edb")).await.is_err());
    assert!(since(at).contains(&"217".to_string()), "{:?}", since(at));
    let (f, _) = inst.open_file(&db).await.unwrap();
    inst.read_file(f, 3 * PAGE).await.unwrap();
    let at = mark();
    inst.close_file(f).await.unwrap();
    assert!(since(at).contains(&"222".to_string()), "{:?}", since(at));
    inst.get_log_info().await.unwrap();
    let at = mark();
    assert_eq!(code(inst.truncate_log().await), -616);
    assert!(since(at).contains(&"520".to_string()), "{:?}", since(at));
    let at = mark();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    assert!(since(at).contains(&"215".to_string()), "{:?}", since(at));

    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let at = mark();
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -800
    );
    assert!(since(at).contains(&"215".to_string()), "{:?}", since(at));

    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    inst.stop_backup().await.unwrap();
    let at = mark();
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -801
    );
    assert!(since(at).contains(&"226".to_string()), "{:?}", since(at));

    // A database after the log phase aborts the backup: 214.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    inst.get_log_info().await.unwrap();
    let at = mark();
    assert!(inst.open_file(&db).await.is_err());
    assert!(since(at).contains(&"214".to_string()), "{:?}", since(at));

    // A listed log missing: 459. Nothing to truncate (the database was not copied and has no
    // full backup): 225.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    for log in &info.files {
        stream(&inst, log).await;
    }
    let at = mark();
    inst.truncate_log().await.unwrap();
    assert!(since(at).contains(&"225".to_string()), "{:?}", since(at));
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    std::fs::remove_file(&info.files[0]).unwrap();
    let at = mark();
    assert!(inst.open_file(&info.files[0]).await.is_err());
    assert!(since(at).contains(&"459".to_string()), "{:?}", since(at));

    // term with STOP_BACKUP ends a running backup as aborted by the server: 226.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let at = mark();
    inst.term(crate::Term::STOP_BACKUP).await.unwrap();
    assert!(since(at).contains(&"226".to_string()), "{:?}", since(at));
}
