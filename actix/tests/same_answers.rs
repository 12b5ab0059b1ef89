//! Every typed message through the adapter answers what the `Instance` method (or
//! `Instance::ask`, for a message with no method of its own) answers: two instances given the
//! same calls in lockstep, one directly and one through `Addr::send(Ask(..))`, must give the
//! same results and the same ESE codes, which each step also pins down. The races of
//! behaviour.md §1 and §2 (stop_service during a read, term with a backup running,
//! stop_backup then end) are held at a latch on the database file, so each runs the same way
//! on both sides.

mod support;

use std::ops::Bound;
use std::time::Duration;

use ese_actors::messages::*;
use ese_actors::{BackupBegin, BackupEnd, BackupFile, Commit, Instance, OpenOptions, WriteBatch};
use support::pair::Pair;
use support::PAGE;

const DB: &str = "/s/db.edb";
const OTHER: &str = "/s/other.edb";

/// `|i| async move { i.method(args).await }`: the direct side of a step.
macro_rules! call {
    ($m:ident $(, $a:expr)*) => {
        |i: Instance| async move { i.$m($($a),*).await }
    };
}

fn begin(grbit: BackupBegin) -> BeginBackup {
    BeginBackup { grbit }
}

fn end(grbit: BackupEnd) -> EndBackup {
    EndBackup { grbit }
}

fn read(file: BackupFile, max_len: usize) -> ReadFile {
    ReadFile { file, max_len }
}

/// Reads an open file to its end on both sides, chunk by chunk; returns its length.
async fn read_to_end(p: &mut Pair, f: BackupFile, chunk: usize) -> usize {
    let mut len = 0;
    loop {
        let b = p
            .same("read_file", call!(read_file, f, chunk), read(f, chunk))
            .await
            .expect("read");
        if b.is_empty() {
            return len;
        }
        len += b.len();
    }
}

/// Initialised, with `DB` holding table `t` of 200 rows, a full backup begun and `DB`
/// opened in it: the open file.
async fn backup_with_open_db(p: &mut Pair) -> BackupFile {
    p.same("init", call!(init), Init {}).await.unwrap();
    let db = p
        .same("create_database", call!(create_database, DB), create_db(DB))
        .await
        .unwrap();
    let t = p
        .same(
            "create_table",
            call!(create_table, db, "t"),
            create_table(db),
        )
        .await
        .unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..200u32 {
        batch.put(t, format!("k{i:04}").as_bytes(), &[(i % 251) as u8; 300]);
    }
    let b = batch.clone();
    p.same(
        "write",
        call!(write, b, Commit::Durable),
        ApplyBatch {
            batch,
            durability: Commit::Durable,
        },
    )
    .await
    .unwrap();
    let full = BackupBegin::empty();
    p.same("begin", call!(begin_external_backup, full), begin(full))
        .await
        .unwrap();
    let (f, _) = p
        .same("open_file", call!(open_file, DB), open(DB))
        .await
        .unwrap();
    f
}

fn create_db(path: &str) -> CreateDatabase {
    CreateDatabase { path: path.into() }
}

fn create_table(db: ese_actors::DbId) -> CreateTable {
    CreateTable {
        db,
        table: "t".into(),
    }
}

fn open(path: &str) -> OpenFile {
    OpenFile { path: path.into() }
}

#[actix_rt::test]
async fn lifecycle_data_and_sessions_answer_as_the_direct_calls() {
    let mut p = Pair::new().await;
    p.fails("stats before init", -1029, call!(stats), GetStats {})
        .await;
    p.same("init", call!(init), Init {}).await.unwrap();
    p.fails("init again", -1030, call!(init), Init {}).await;
    let db = p
        .same("create_database", call!(create_database, DB), create_db(DB))
        .await
        .unwrap();
    p.fails(
        "create_database again",
        -1201,
        call!(create_database, DB),
        create_db(DB),
    )
    .await;
    let opts = OpenOptions { create: true };
    let open_other = OpenDatabase {
        path: OTHER.into(),
        create: true,
    };
    p.same(
        "open_database",
        call!(open_database, OTHER, opts),
        open_other,
    )
    .await
    .unwrap();
    let detach = DetachDatabase { path: OTHER.into() };
    p.same("detach_database", call!(detach_database, OTHER), detach)
        .await
        .unwrap();
    let info = GetDatabaseInfo { path: OTHER.into() };
    p.same(
        "database_info (detached)",
        call!(database_info, OTHER),
        info,
    )
    .await
    .unwrap();
    let attach = || AttachDatabase { path: OTHER.into() };
    p.same("attach_database", call!(attach_database, OTHER), attach())
        .await
        .unwrap();
    p.fails(
        "attach again",
        -1201,
        call!(attach_database, OTHER),
        attach(),
    )
    .await;
    let t = p
        .same(
            "create_table",
            call!(create_table, db, "t"),
            create_table(db),
        )
        .await
        .unwrap();
    p.fails(
        "create_table again",
        -1303,
        call!(create_table, db, "t"),
        create_table(db),
    )
    .await;
    let open_t = OpenTable {
        db,
        table: "t".into(),
    };
    p.same("open_table", call!(open_table, db, "t"), open_t)
        .await
        .unwrap();
    let missing = OpenTable {
        db,
        table: "missing".into(),
    };
    p.fails(
        "open_table missing",
        -1305,
        call!(open_table, db, "missing"),
        missing,
    )
    .await;
    let ensure = EnsureTable {
        db,
        table: "u".into(),
    };
    p.same("ensure_table", call!(ensure_table, db, "u"), ensure)
        .await
        .unwrap();

    // A session's calls have no `Instance` method: `Instance::ask` is the direct call.
    let s = p.ask("begin_session", BeginSession {}).await.unwrap();
    let put = |key: &str, in_transaction: bool| Put {
        session: s,
        table: t,
        key: key.into(),
        value: b"v".to_vec(),
        in_transaction,
    };
    let get = |key: &str| Get {
        session: s,
        table: t,
        key: key.into(),
    };
    let del = |key: &str| Delete {
        session: s,
        table: t,
        key: key.into(),
        in_transaction: false,
    };
    p.ask("begin_transaction", BeginTransaction { session: s })
        .await
        .unwrap();
    p.ask("put in a transaction", put("k1", true))
        .await
        .unwrap();
    let seen = p.ask("get own write", get("k1")).await.unwrap();
    assert!(seen.is_some());
    let commit = CommitTransaction {
        session: s,
        durability: Commit::Durable,
    };
    p.ask("commit", commit).await.unwrap();
    let r = p
        .ask("put in a transaction, none open", put("k2", true))
        .await;
    p.expect_code("put in a transaction, none open", &r, -1054);
    p.ask("put on its own", put("k2", false)).await.unwrap();
    p.ask("delete", del("k2")).await.unwrap();
    let r = p.ask("delete missing", del("k2")).await;
    p.expect_code("delete missing", &r, -1601);
    p.ask("begin_transaction", BeginTransaction { session: s })
        .await
        .unwrap();
    p.ask("put", put("k3", true)).await.unwrap();
    p.ask("rollback", Rollback { session: s }).await.unwrap();
    let gone = p.ask("get rolled back", get("k3")).await.unwrap();
    assert!(gone.is_none());
    let r = p.ask("rollback, none open", Rollback { session: s }).await;
    p.expect_code("rollback, none open", &r, -1054);

    let mut batch = WriteBatch::new();
    for i in 0..40u8 {
        batch.put(t, format!("r{i:02}").as_bytes(), &[i; 100]);
    }
    let b = batch.clone();
    let apply = ApplyBatch {
        batch,
        durability: Commit::Lazy,
    };
    p.same("write", call!(write, b, Commit::Lazy), apply)
        .await
        .unwrap();
    let scan = Scan {
        session: s,
        table: t,
        lo: Bound::Included(b"r".to_vec()),
        hi: Bound::Unbounded,
        max_rows: 5,
        reverse: false,
    };
    let slice = p.ask("scan", scan).await.unwrap();
    assert_eq!(slice.rows.len(), 5);
    let cursor = slice.next.expect("the range goes on");
    p.ask(
        "scan_next",
        ScanNext {
            cursor,
            max_rows: 5,
        },
    )
    .await
    .unwrap();
    p.ask("close_scan", CloseScan { cursor }).await.unwrap();
    let r = p.ask("close_scan again", CloseScan { cursor }).await;
    p.expect_code("close_scan again", &r, -1310);
    p.same("instance_info", call!(instance_info), GetInstanceInfo {})
        .await
        .unwrap();
    p.same("stats", call!(stats), GetStats {}).await.unwrap();
    p.ask("end_session", EndSession { session: s })
        .await
        .unwrap();

    // The end of the lifecycle (behaviour.md §1.2).
    p.same("stop_service", call!(stop_service), StopService {})
        .await
        .unwrap();
    p.same("stop_service again", call!(stop_service), StopService {})
        .await
        .unwrap();
    p.fails("stats after stop_service", -1329, call!(stats), GetStats {})
        .await;
    p.fails("init after stop_service", -1329, call!(init), Init {})
        .await;
    let get_after = p.ask("get after stop_service", get("k1")).await;
    p.expect_code("get after stop_service", &get_after, -1329);
    let plain = ese_actors::Term::empty();
    p.same("term", call!(term, plain), Term { grbit: plain })
        .await
        .unwrap();
    p.fails("stats after term", -1115, call!(stats), GetStats {})
        .await;
    p.fails(
        "term again",
        -1115,
        call!(term, plain),
        Term { grbit: plain },
    )
    .await;
    p.fails(
        "stop_backup after term",
        -1115,
        call!(stop_backup),
        StopBackup {},
    )
    .await;
}

#[actix_rt::test]
async fn a_whole_backup_sequence_answers_as_the_direct_calls() {
    let mut p = Pair::new().await;
    p.same("init", call!(init), Init {}).await.unwrap();
    let db = p
        .same("create_database", call!(create_database, DB), create_db(DB))
        .await
        .unwrap();
    p.same(
        "create other",
        call!(create_database, OTHER),
        create_db(OTHER),
    )
    .await
    .unwrap();
    let t = p
        .same(
            "create_table",
            call!(create_table, db, "t"),
            create_table(db),
        )
        .await
        .unwrap();
    // Under half a log, so no flush is due on either instance: a flush that ends before the
    // backup begins moves the checkpoint, and with it the first log the backup lists, on one
    // instance and not the other.
    let mut batch = WriteBatch::new();
    for i in 0..40u32 {
        batch.put(t, format!("k{i:04}").as_bytes(), &[7u8; 300]);
    }
    let b = batch.clone();
    let apply = ApplyBatch {
        batch,
        durability: Commit::Durable,
    };
    p.same("write", call!(write, b, Commit::Durable), apply)
        .await
        .unwrap();
    for inst in [&p.direct, &p.adapted] {
        assert_eq!(inst.stats().await.unwrap().flushes, 0, "a flush was due");
    }

    // The refusals before a backup runs (behaviour.md §2.1, §2.4).
    p.fails(
        "attach info, no backup",
        -520,
        call!(get_attach_info),
        GetAttachInfo {},
    )
    .await;
    let both = BackupEnd::NORMAL | BackupEnd::ABORT;
    p.fails(
        "end NORMAL|ABORT",
        -1003,
        call!(end_external_backup, both),
        end(both),
    )
    .await;
    let normal = BackupEnd::NORMAL;
    p.fails(
        "end, no backup",
        -520,
        call!(end_external_backup, normal),
        end(normal),
    )
    .await;
    let atomic = BackupBegin::ATOMIC;
    p.fails(
        "begin ATOMIC",
        -900,
        call!(begin_external_backup, atomic),
        begin(atomic),
    )
    .await;

    // A full backup, every call of the sequence.
    let full = BackupBegin::empty();
    p.same(
        "begin full",
        call!(begin_external_backup, full),
        begin(full),
    )
    .await
    .unwrap();
    p.fails(
        "begin again",
        -505,
        call!(begin_external_backup, full),
        begin(full),
    )
    .await;
    let detach = DetachDatabase { path: OTHER.into() };
    p.fails(
        "detach during a backup",
        -505,
        call!(detach_database, OTHER),
        detach,
    )
    .await;
    let dbs = p
        .same("get_attach_info", call!(get_attach_info), GetAttachInfo {})
        .await
        .unwrap();
    assert_eq!(dbs.len(), 2);
    p.fails("open empty path", -1003, call!(open_file, ""), open(""))
        .await;
    let nothing = "/s/nothing.edb";
    p.fails(
        "open no database",
        -1203,
        call!(open_file, nothing),
        open(nothing),
    )
    .await;
    let record = p.ask("backup record too early", GetBackupRecord {}).await;
    p.expect_code("backup record too early", &record, -521);
    for path in &dbs {
        let (msg, path) = (OpenFile { path: path.clone() }, path.clone());
        let (f, size) = p
            .same("open_file", call!(open_file, path), msg)
            .await
            .unwrap();
        p.fails("second open", -1011, call!(open_file, OTHER), open(OTHER))
            .await;
        p.fails("read of 0", -1003, call!(read_file, f, 0), read(f, 0))
            .await;
        p.fails(
            "first read < 3 pages",
            -1003,
            call!(read_file, f, PAGE),
            read(f, PAGE),
        )
        .await;
        assert_eq!(read_to_end(&mut p, f, 8 * PAGE).await as u64, size);
        p.same("close_file", call!(close_file, f), CloseFile { file: f })
            .await
            .unwrap();
        p.fails(
            "close again",
            -1003,
            call!(close_file, f),
            CloseFile { file: f },
        )
        .await;
    }
    let logs = p
        .same("get_log_info", call!(get_log_info), GetLogInfo {})
        .await
        .unwrap();
    let trunc = GetTruncateLogInfo {};
    p.same("get_truncate_log_info", call!(get_truncate_log_info), trunc)
        .await
        .unwrap();
    p.ask("backup record", GetBackupRecord {}).await.unwrap();
    p.fails(
        "truncate before the logs",
        -616,
        call!(truncate_log),
        TruncateLog {},
    )
    .await;
    for path in logs.files {
        let msg = OpenFile { path: path.clone() };
        let (f, _) = p
            .same("open log", call!(open_file, path), msg)
            .await
            .unwrap();
        read_to_end(&mut p, f, 8 * PAGE).await;
        p.same("close log", call!(close_file, f), CloseFile { file: f })
            .await
            .unwrap();
    }
    p.same("truncate_log", call!(truncate_log), TruncateLog {})
        .await
        .unwrap();
    p.same(
        "end NORMAL",
        call!(end_external_backup, normal),
        end(normal),
    )
    .await
    .unwrap();
    let info = GetDatabaseInfo { path: DB.into() };
    let after = p
        .same("database_info", call!(database_info, DB), info)
        .await
        .unwrap();
    assert!(after.last_full.is_some());

    // An incremental: no database phase.
    let incr = BackupBegin::INCREMENTAL;
    p.same(
        "begin incremental",
        call!(begin_external_backup, incr),
        begin(incr),
    )
    .await
    .unwrap();
    p.fails(
        "attach info, incremental",
        -521,
        call!(get_attach_info),
        GetAttachInfo {},
    )
    .await;
    let abort = BackupEnd::ABORT;
    p.same("end ABORT", call!(end_external_backup, abort), end(abort))
        .await
        .unwrap();

    // The backup of a whole-sequence caller, ended by its id.
    let id = p
        .ask("begin with id", BeginBackupWithId { grbit: full })
        .await
        .unwrap();
    p.ask("abort if running", AbortBackupIf { id })
        .await
        .unwrap();
    p.fails(
        "attach info, aborted",
        -520,
        call!(get_attach_info),
        GetAttachInfo {},
    )
    .await;
    p.ask("abort if, already over", AbortBackupIf { id })
        .await
        .unwrap();

    // The id-scoped calls a host makes for a remote client's backup.
    let id = p
        .ask("begin with id, again", BeginBackupWithId { grbit: full })
        .await
        .unwrap();
    p.ask("check, running", CheckBackup { id }).await.unwrap();
    p.same("stop_backup", call!(stop_backup), StopBackup {})
        .await
        .unwrap();
    let r = p.ask("check, stopped", CheckBackup { id }).await;
    p.expect_code("check, stopped", &r, -801);
    p.ask("expire if", ExpireBackupIf { id }).await.unwrap();
    let r = p.ask("check, expired", CheckBackup { id }).await;
    p.expect_code("check, expired", &r, -520);
    let grbit = BackupEnd::ABORT;
    let r = p.ask("end if, over", EndBackupIf { id, grbit }).await;
    p.expect_code("end if, over", &r, -520);
    p.same("stop_backup, no backup", call!(stop_backup), StopBackup {})
        .await
        .unwrap();
    p.same(
        "begin after it",
        call!(begin_external_backup, full),
        begin(full),
    )
    .await
    .unwrap();
    p.same("end ABORT", call!(end_external_backup, abort), end(abort))
        .await
        .unwrap();
    let plain = ese_actors::Term::empty();
    p.same("term", call!(term, plain), Term { grbit: plain })
        .await
        .unwrap();
}

/// behaviour.md §1.2: `stop_service` is answered at once while a read is on disk; the read,
/// already being served, completes normally; then every gated call fails with -1329,
/// `close_file` and `end_external_backup` included; only `term` with `STOP_BACKUP` ends the
/// backup.
#[actix_rt::test]
async fn stop_service_during_a_read() {
    let mut p = Pair::new().await;
    let f = backup_with_open_db(&mut p).await;
    let held = p.held_reads(f, 8 * PAGE).await;
    let stop = p.same(
        "stop_service, read on disk",
        call!(stop_service),
        StopService {},
    );
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("stop_service is answered while a read is on disk")
        .unwrap();
    let (d, a) = held.finish().await;
    p.agree("the read being served", &d, &a);
    assert_eq!(a.expect("completes normally").len(), 8 * PAGE);
    p.fails(
        "next read",
        -1329,
        call!(read_file, f, 8 * PAGE),
        read(f, 8 * PAGE),
    )
    .await;
    p.fails(
        "close_file",
        -1329,
        call!(close_file, f),
        CloseFile { file: f },
    )
    .await;
    let abort = BackupEnd::ABORT;
    p.fails("end", -1329, call!(end_external_backup, abort), end(abort))
        .await;
    p.same(
        "stop_backup skips the gate",
        call!(stop_backup),
        StopBackup {},
    )
    .await
    .unwrap();
    let plain = ese_actors::Term::empty();
    p.fails(
        "term, backup running",
        -505,
        call!(term, plain),
        Term { grbit: plain },
    )
    .await;
    let stop_backup = ese_actors::Term::STOP_BACKUP;
    let t = Term { grbit: stop_backup };
    p.same("term STOP_BACKUP", call!(term, stop_backup), t)
        .await
        .unwrap();
    p.fails("after term", -1115, call!(stats), GetStats {})
        .await;
}

/// behaviour.md §1.2 and §2.1: a term without `ABRUPT`/`STOP_BACKUP` is refused with -505
/// while a backup runs; the client still ends its backup; no new backup may begin (-523)
/// until the instance is termed.
#[actix_rt::test]
async fn term_with_a_backup_running() {
    let mut p = Pair::new().await;
    let f = backup_with_open_db(&mut p).await;
    let plain = ese_actors::Term::empty();
    p.fails(
        "term, backup running",
        -505,
        call!(term, plain),
        Term { grbit: plain },
    )
    .await;
    p.same(
        "the backup goes on",
        call!(read_file, f, 8 * PAGE),
        read(f, 8 * PAGE),
    )
    .await
    .unwrap();
    p.same("close_file", call!(close_file, f), CloseFile { file: f })
        .await
        .unwrap();
    let abort = BackupEnd::ABORT;
    p.same(
        "the client ends it",
        call!(end_external_backup, abort),
        end(abort),
    )
    .await
    .unwrap();
    let full = BackupBegin::empty();
    p.fails(
        "no new backup",
        -523,
        call!(begin_external_backup, full),
        begin(full),
    )
    .await;
    p.same("term now", call!(term, plain), Term { grbit: plain })
        .await
        .unwrap();
    p.fails("after term", -1115, call!(stats), GetStats {})
        .await;
}

/// behaviour.md §1.2: `term(ABRUPT)` with a read on disk waits for the read; meanwhile every
/// other call gets -1000; the read completes, the backup ends as aborted by the server, the
/// instance is gone (-1115).
#[actix_rt::test]
async fn abrupt_term_with_a_read_on_disk() {
    let mut p = Pair::new().await;
    let f = backup_with_open_db(&mut p).await;
    let held = p.held_reads(f, 8 * PAGE).await;
    let abrupt = ese_actors::Term::ABRUPT;
    let direct = p.direct.clone();
    let d_term = tokio::spawn(async move { direct.term(abrupt).await });
    let a_term = actix::spawn(p.addr.send(ese_actix::Ask(Term { grbit: abrupt })));
    p.until_code(
        "stats while term waits",
        -1000,
        call!(stats),
        || GetStats {},
    )
    .await;
    let second = ese_actors::Term::empty();
    p.fails(
        "a second term",
        -1000,
        call!(term, second),
        Term { grbit: second },
    )
    .await;
    let (d, a) = held.finish().await;
    p.agree("the read in flight", &d, &a);
    let d = d_term.await.unwrap();
    let a = a_term.await.unwrap().expect("the adapter answers");
    p.agree("term ABRUPT", &d, &a);
    a.unwrap();
    p.fails("after term", -1115, call!(stats), GetStats {})
        .await;
}

/// behaviour.md §1.2 and §2.4: after `stop_backup` every backup call but close and end gets
/// -801; `close_file` works; `end(NORMAL)` answers -801 and ends the backup (then -520); the
/// next backup begins clean. The same with the stop arriving while a read is on disk.
#[actix_rt::test]
async fn stop_backup_then_end() {
    let mut p = Pair::new().await;
    let f = backup_with_open_db(&mut p).await;
    p.same(
        "a first read",
        call!(read_file, f, 8 * PAGE),
        read(f, 8 * PAGE),
    )
    .await
    .unwrap();
    p.same("stop_backup", call!(stop_backup), StopBackup {})
        .await
        .unwrap();
    p.fails(
        "read",
        -801,
        call!(read_file, f, 8 * PAGE),
        read(f, 8 * PAGE),
    )
    .await;
    p.fails(
        "attach info",
        -801,
        call!(get_attach_info),
        GetAttachInfo {},
    )
    .await;
    p.fails("log info", -801, call!(get_log_info), GetLogInfo {})
        .await;
    p.same(
        "close_file works",
        call!(close_file, f),
        CloseFile { file: f },
    )
    .await
    .unwrap();
    let normal = BackupEnd::NORMAL;
    p.fails(
        "end NORMAL",
        -801,
        call!(end_external_backup, normal),
        end(normal),
    )
    .await;
    p.fails("it ended", -520, call!(get_attach_info), GetAttachInfo {})
        .await;

    // The next backup begins clean; this time the stop comes with a read on disk.
    let full = BackupBegin::empty();
    p.same(
        "begin again",
        call!(begin_external_backup, full),
        begin(full),
    )
    .await
    .unwrap();
    let (f, _) = p
        .same("open_file", call!(open_file, DB), open(DB))
        .await
        .unwrap();
    let held = p.held_reads(f, 8 * PAGE).await;
    let stop = p.same(
        "stop_backup, read on disk",
        call!(stop_backup),
        StopBackup {},
    );
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("stop_backup is answered while a read is on disk")
        .unwrap();
    let (d, a) = held.finish().await;
    p.agree("the read in flight", &d, &a);
    p.fails(
        "end NORMAL",
        -801,
        call!(end_external_backup, normal),
        end(normal),
    )
    .await;
    p.fails("it ended", -520, call!(get_attach_info), GetAttachInfo {})
        .await;
    let plain = ese_actors::Term::empty();
    p.same("term", call!(term, plain), Term { grbit: plain })
        .await
        .unwrap();
}
