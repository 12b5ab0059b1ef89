//! Bounded and streaming scans (issue 13 item 3): limits, prefixes, reverse order, a stream
//! that holds one slice at a time while other messages are served, resumable from its
//! cursor.

use ese_actors::{
    Commit, Engine, Error, Instance, KeyRange, OpenOptions, Row, TableId, Term, WriteBatch,
};

use crate::support::actor::{code, params};

async fn table_with(dir: &std::path::Path, keys: &[String]) -> (Engine, Instance, TableId) {
    let engine = Engine::new();
    let inst = engine.create_instance("scan", params(dir)).await.unwrap();
    inst.init().await.unwrap();
    let opts = OpenOptions { create: true };
    let db = inst.open_database(dir.join("db.edb"), opts).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    for chunk in keys.chunks(500) {
        let mut b = WriteBatch::new();
        for k in chunk {
            b.put(t, k.as_bytes(), &[5; 64]);
        }
        inst.write(b, Commit::Lazy).await.unwrap();
    }
    (engine, inst, t)
}

fn numbered(prefix: &str, n: u32) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

fn keys(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| String::from_utf8(r.0.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_limit_returns_the_first_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let all = numbered("k", 3000);
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let ten = inst.scan(t, KeyRange::all().limit(10)).await.unwrap();
    assert_eq!(keys(&ten), all[..10]);
    let past_slices = inst.scan(t, KeyRange::all().limit(700)).await.unwrap();
    assert_eq!(keys(&past_slices), all[..700]);
    assert!(inst
        .scan(t, KeyRange::all().limit(0))
        .await
        .unwrap()
        .is_empty());
    let from = inst
        .scan(t, KeyRange::between(b"k01000", b"k01005"))
        .await
        .unwrap();
    assert_eq!(keys(&from), all[1000..1005]);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_prefix_scan_stays_within_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = numbered("a:", 300);
    all.extend(numbered("b:", 700));
    all.extend(numbered("c:", 300));
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let b = inst.scan(t, KeyRange::prefix(b"b:")).await.unwrap();
    assert_eq!(keys(&b), all[300..1000]);
    let first = inst
        .scan(t, KeyRange::prefix(b"c:").limit(3))
        .await
        .unwrap();
    assert_eq!(keys(&first), all[1000..1003]);
    assert!(inst
        .scan(t, KeyRange::prefix(b"d:"))
        .await
        .unwrap()
        .is_empty());
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_reverse_scan_returns_the_last_rows_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = numbered("a:", 400);
    all.extend(numbered("b:", 900));
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let mut want = all.clone();
    want.reverse();
    let every = inst.scan(t, KeyRange::all().reverse()).await.unwrap();
    assert_eq!(keys(&every), want);
    let newest = inst
        .scan(t, KeyRange::prefix(b"a:").reverse().limit(5))
        .await
        .unwrap();
    assert_eq!(
        keys(&newest),
        ["a:00399", "a:00398", "a:00397", "a:00396", "a:00395"]
    );
    let below = KeyRange::between(b"a:00100", b"b:00003")
        .reverse()
        .resume_after(b"b:00001");
    let got = inst.scan(t, below.limit(3)).await.unwrap();
    assert_eq!(keys(&got), ["b:00000", "a:00399", "a:00398"]);
    // Resumed page by page from the cursor, in reverse: every row once.
    let mut got = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let range = KeyRange::all().reverse().limit(250);
        let range = match &cursor {
            Some(c) => range.resume_after(c),
            None => range,
        };
        let mut s = inst.stream(t, range).await.unwrap();
        let before = got.len();
        while let Some(row) = s.next().await {
            got.push(row.unwrap());
        }
        if got.len() == before {
            break;
        }
        cursor = s.cursor().map(<[u8]>::to_vec);
    }
    assert_eq!(keys(&got), want);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_reverse_scan_in_a_transaction_merges_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let all = numbered("k", 600);
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"k99999", b"mine").await.unwrap();
    tx.delete(t, b"k00599").await.unwrap();
    tx.put(t, b"k00300x", b"mine").await.unwrap();
    let got = tx.scan(t, KeyRange::all().reverse()).await.unwrap();
    let mut want: Vec<String> = all[..599].to_vec();
    want.push("k00300x".into());
    want.push("k99999".into());
    want.sort();
    want.reverse();
    assert_eq!(keys(&got), want);
    tx.rollback().await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_stream_resumes_from_its_cursor_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let all = numbered("k", 2000);
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let mut got = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    // Pages of 333 rows, each a new stream resumed after the last key of the previous one.
    loop {
        let range = KeyRange::all().limit(333);
        let range = match &cursor {
            Some(c) => range.resume_after(c),
            None => range,
        };
        let mut s = inst.stream(t, range).await.unwrap();
        let mut n = 0;
        while let Some(row) = s.next().await {
            got.push(row.unwrap());
            n += 1;
        }
        if n == 0 {
            break;
        }
        cursor = s.cursor().map(<[u8]>::to_vec);
    }
    assert_eq!(keys(&got), all);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn commits_are_served_while_a_stream_is_open_and_later_slices_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let all = numbered("k", 2000);
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let mut stream = inst.stream(t, KeyRange::all()).await.unwrap();
    for k in &all[..10] {
        let (key, _) = stream.next().await.unwrap().unwrap();
        assert_eq!(&key[..], k.as_bytes());
    }
    // The stream is between slices: a durable commit goes through at once.
    let s = inst.begin_session().await.unwrap();
    s.put(t, b"k99999", b"late").await.unwrap();
    s.delete(t, all[1999].as_bytes()).await.unwrap();
    let rest: Vec<Row> = stream.collect().await.unwrap();
    let mut want: Vec<String> = all[10..1999].to_vec();
    want.push("k99999".into());
    assert_eq!(keys(&rest), want);
    inst.term(Term::empty()).await.unwrap();
}

/// A stream dropped between slices holds nothing up: a new stream of the range runs whole,
/// and term succeeds at once. (That the dropped stream's cursor is closed is not observable
/// from outside the instance; `reads_off_actor` covers `CloseScan` itself.)
#[tokio::test]
async fn a_stream_dropped_mid_range_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let all = numbered("k", 2000);
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let mut stream = inst.stream(t, KeyRange::all()).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let again = inst.scan(t, KeyRange::all()).await.unwrap();
    assert_eq!(keys(&again), all);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_stream_after_term_gets_the_gates_error() {
    let dir = tempfile::tempdir().unwrap();
    let all = numbered("k", 2000);
    let (_e, inst, t) = table_with(dir.path(), &all).await;
    let mut stream = inst.stream(t, KeyRange::all()).await.unwrap();
    for _ in 0..300 {
        stream.next().await.unwrap().unwrap();
    }
    inst.term(Term::empty()).await.unwrap();
    // The rest of the buffered slice is still there; the next slice is refused.
    let mut last = None;
    while let Some(r) = stream.next().await {
        if let Err(e) = r {
            last = Some(e);
            break;
        }
    }
    assert_eq!(
        code::<()>(Err(last.expect("a later slice fails"))),
        Error::InvalidInstance.code()
    );
}
