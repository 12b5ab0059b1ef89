//! Point-in-time edges (behaviour.md §3.2, §3 step 5): stop points that lie before what a
//! backup's image already holds. The image holds every commit made before the backup began,
//! including those in logs older than the set's first log, which replay never sees: a stop
//! point before them cannot be honoured and must be refused (`EndingRestoreLogTooLow` -553),
//! never answered with a database that holds commits made after it.

use crate::support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ese_actors::{restore_backup_chain_to, BackupKind, BackupManifest, Engine, StopAt, Term};
use support::actor::*;

/// 100 rows, then (after `stop`) 100 more, a clean term and a new instance on the same files,
/// a full backup (no commit in its logs), 100 more rows and an incremental.
struct Quiet {
    engine: Engine,
    dir: tempfile::TempDir,
    full: PathBuf,
    inc: PathBuf,
    full_m: BackupManifest,
    /// A time after the first 100 rows' commits and before the next ones.
    stop: SystemTime,
    /// The generation the first 100 rows' commits ended in.
    gen_a: u32,
}

async fn quiet() -> Quiet {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, db) = instance_with_data(&engine, "src", &src, 100).await;
    let gen_a = inst.instance_info().await.unwrap().current_gen;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stop = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    roll_logs(&inst, t, 3, 100).await;
    // An earlier backup rolls the log past the last commit; a clean term then moves the
    // checkpoint there: the next full backup's logs hold no commit.
    inst.backup_to_dir(dir.path().join("earlier"), BackupKind::Copy)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();

    let inst = engine.create_instance("src", params(&src)).await.unwrap();
    inst.init().await.unwrap();
    let id = inst.attach_database(&db).await.unwrap();
    let t = inst.open_table(id, "t").await.unwrap();
    let full = dir.path().join("full");
    let full_m = inst.backup_to_dir(&full, BackupKind::Full).await.unwrap();
    assert!(
        full_m.gen_low > gen_a + 1,
        "the set's logs start after the commits made after the stop point"
    );
    put_rows(&inst, t, 100_000..100_100).await;
    let inc = dir.path().join("inc");
    inst.backup_to_dir(&inc, BackupKind::Incremental)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
    Quiet {
        engine,
        dir,
        full,
        inc,
        full_m,
        stop,
        gen_a,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_before_commits_the_full_image_holds_is_refused() {
    let q = quiet().await;
    let stops = [
        ("time", StopAt::Time(q.stop)),
        ("generation", StopAt::Generation(q.gen_a)),
        (
            "position",
            StopAt::LogPosition(ese::Lsn::new(q.gen_a + 1, 0)),
        ),
    ];
    for (name, stop) in stops {
        for (chain, sets) in [
            ("full", vec![q.full.clone()]),
            ("chain", vec![q.full.clone(), q.inc.clone()]),
        ] {
            let target = q.dir.path().join(format!("{name}-{chain}"));
            let r = restore_backup_chain_to(&q.engine, &sets, &target, Some(stop)).await;
            let what = match &r {
                Ok(rep) => {
                    let rows = rows_in(&q.engine, &rep.databases[0].1, &target.join("probe")).await;
                    format!("restored {rows} rows (stopped: {})", rep.restore.stopped)
                }
                Err(e) => format!("{e}"),
            };
            assert_eq!(
                r.as_ref().err().map(|e| e.code()),
                Some(-553),
                "{name} stop, {chain}: {what}; only the first 100 rows were committed before \
                 the stop point (full set gen_low {})",
                q.full_m.gen_low
            );
        }
    }
}
