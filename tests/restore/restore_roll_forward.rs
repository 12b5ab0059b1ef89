//! Restores that roll forward through the source instance's later logs (behaviour.md §3,
//! step 4): a full backup, four log rolls after it, then `external_restore` with the source's
//! log directory as its `log_dir`. Every later log comes back; a damaged one, or an archived one
//! cut before its end record, is `LogCorruptDuringHardRestore` (-573); a generation missing
//! while later ones are there is `MissingCurrentLogFiles` (-565). Before, both ended the replay
//! early with a warning and dropped the commits in the logs after it.

use crate::support;

use std::path::PathBuf;

use ese_actors::{BackupKind, BackupManifest, Engine, RestoreReport, RestoreSpec, Result, Term};
use support::actor::*;

/// A source with 100 rows, a full backup of it in `full/`, then four log rolls.
struct Rolled {
    engine: Engine,
    dir: tempfile::TempDir,
    src: PathBuf,
    set: PathBuf,
    manifest: BackupManifest,
    /// Every row the source committed.
    rows: usize,
}

async fn rolled() -> Rolled {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 100).await;
    let set = dir.path().join("full");
    let manifest = inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    let next = roll_logs(&inst, t, 4, 1000).await;
    inst.term(Term::empty()).await.unwrap();
    Rolled {
        engine,
        src,
        set,
        manifest,
        rows: 100 + (next - 1000) as usize,
        dir,
    }
}

impl Rolled {
    /// An archived later log of the source.
    fn later_log(&self, after_backup: u32) -> PathBuf {
        let g = self.manifest.gen_high + after_backup;
        self.src.join(format!("edb{g:08X}.log"))
    }

    /// Restores the set's image into `name/` and rolls forward through the source's logs.
    async fn restore(&self, name: &str) -> (Result<RestoreReport>, PathBuf) {
        let target = self.dir.path().join(name);
        std::fs::create_dir_all(&target).unwrap();
        let img = target.join("db.edb");
        std::fs::copy(self.set.join(&self.manifest.databases[0].file), &img).unwrap();
        let spec = RestoreSpec {
            checkpoint_dir: target.clone(),
            log_dir: self.src.clone(),
            backup_log_dir: self.set.join("logs"),
            gen_low: self.manifest.gen_low,
            gen_high: self.manifest.gen_high,
            base_name: "edb".into(),
            restore_map: vec![(
                self.manifest.databases[0].original_path.clone(),
                img.clone(),
            )],
            stop_at: None,
        };
        (self.engine.external_restore(spec).await, img)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_later_log_of_the_source_is_replayed() {
    let r = rolled().await;
    let (report, img) = r.restore("all").await;
    let report = report.unwrap();
    assert!(
        report.gens.1 >= r.manifest.gen_high + 4,
        "{:?}",
        report.gens
    );
    assert_eq!(
        rows_in(&r.engine, &img, &img.with_file_name("probe")).await,
        r.rows
    );
}

/// Damages the first later log with `damage(bytes, where its last record ends: its end
/// record's offset)`, restores, and returns the restore's error code.
async fn damaged_later_log(name: &str, damage: impl FnOnce(&mut Vec<u8>, usize)) -> i32 {
    let r = rolled().await;
    let p = r.later_log(1);
    let log = ese::internals::log::reader::read_file(&*ese::io::os(), &p).unwrap();
    let end_record = log.records.last().unwrap().end.offset() as usize;
    let mut bytes = std::fs::read(&p).unwrap();
    damage(&mut bytes, end_record);
    std::fs::write(&p, &bytes).unwrap();
    code(r.restore(name).await.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_later_log_cut_before_its_end_record_is_refused() {
    // Zeros from the end record on: the file reads as one still being written, which only
    // `edb.log` may be.
    let code = damaged_later_log("cut", |b, end| b[end..].fill(0)).await;
    assert_eq!(code, -573, "LogCorruptDuringHardRestore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_logs_damaged_end_record_is_refused() {
    let code = damaged_later_log("end-flipped", |b, end| b[end + 2] ^= 0x40).await;
    assert_eq!(code, -573, "LogCorruptDuringHardRestore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_inside_a_later_log_is_refused() {
    let code = damaged_later_log("record-flipped", |b, end| b[end - 16] ^= 0x40).await;
    assert_eq!(code, -573, "LogCorruptDuringHardRestore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_log_missing_before_others_is_refused() {
    let r = rolled().await;
    std::fs::remove_file(r.later_log(2)).unwrap();
    // Without `edb.log` too: the later archived logs alone tell of the gap.
    std::fs::remove_file(r.src.join("edb.log")).unwrap();
    let (report, _) = r.restore("gap").await;
    assert_eq!(code(report), -565, "MissingCurrentLogFiles");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_archived_logs_missing_before_the_current_one_is_refused() {
    let r = rolled().await;
    // Every archived later log gone: only `edb.log`, generations past the backup's, is left.
    for after in 1.. {
        let p = r.later_log(after);
        if !p.exists() {
            break;
        }
        std::fs::remove_file(p).unwrap();
    }
    assert!(r.src.join("edb.log").exists());
    let (report, _) = r.restore("no-archived").await;
    assert_eq!(code(report), -565, "MissingCurrentLogFiles");
}

/// A gap in the later logs while `edb.log` is there but does not continue the logs before the
/// gap (another stream's, or an old copy of an earlier generation). The search looked no
/// further than `edb.log` and ended quietly at the gap, dropping the commits of the later
/// archived logs of the same stream beyond it: `MissingCurrentLogFiles` (-565), as for a gap
/// with no `edb.log`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_log_missing_before_others_is_refused_whatever_edb_log_holds() {
    let r = rolled().await;
    let other = r.dir.path().join("other");
    let (inst, _, _) = instance_with_data(&r.engine, "other", &other, 10).await;
    inst.term(Term::empty()).await.unwrap();
    std::fs::remove_file(r.later_log(2)).unwrap();
    let current = r.src.join("edb.log");
    for (what, from) in [
        ("another stream's", other.join("edb.log")),
        ("an earlier generation's", r.later_log(1)),
    ] {
        std::fs::copy(&from, &current).unwrap();
        let (report, _) = r.restore(what).await;
        assert_eq!(code(report), -565, "edb.log {what}: MissingCurrentLogFiles");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_logs_of_another_stream_end_the_roll_forward_quietly() {
    let r = rolled().await;
    // The source's later logs replaced by another instance's: none of them continues the set.
    let other = r.dir.path().join("other");
    let (inst, t, _) = instance_with_data(&r.engine, "other", &other, 10).await;
    roll_logs(&inst, t, 6, 1000).await;
    inst.term(Term::empty()).await.unwrap();
    for e in std::fs::read_dir(&r.src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            std::fs::remove_file(&p).unwrap();
        }
    }
    for e in std::fs::read_dir(&other).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            std::fs::copy(&p, r.src.join(p.file_name().unwrap())).unwrap();
        }
    }
    let (report, img) = r.restore("other-stream").await;
    let report = report.unwrap();
    assert_eq!(report.gens.1, r.manifest.gen_high, "{:?}", report.gens);
    assert_eq!(
        rows_in(&r.engine, &img, &img.with_file_name("probe")).await,
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_log_directory_does_not_exist_yet_restores_the_set() {
    let r = rolled().await;
    let target = r.dir.path().join("fresh");
    std::fs::create_dir_all(&target).unwrap();
    let img = target.join("db.edb");
    std::fs::copy(r.set.join(&r.manifest.databases[0].file), &img).unwrap();
    let spec = RestoreSpec {
        checkpoint_dir: target.clone(),
        log_dir: target.join("logs-not-made-yet"),
        backup_log_dir: r.set.join("logs"),
        gen_low: r.manifest.gen_low,
        gen_high: r.manifest.gen_high,
        base_name: "edb".into(),
        restore_map: vec![(r.manifest.databases[0].original_path.clone(), img.clone())],
        stop_at: None,
    };
    let report = r.engine.external_restore(spec).await.unwrap();
    assert_eq!(report.gens.1, r.manifest.gen_high);
    assert_eq!(
        rows_in(&r.engine, &img, &img.with_file_name("probe")).await,
        100
    );
}
