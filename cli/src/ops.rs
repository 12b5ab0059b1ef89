//! `ese backup`, `ese verify`, `ese restore`: a target is a folder of sets or an object
//! store (`s3://BUCKET/PREFIX`), the same code for both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::Arc;

use ese_actors::ese::BackupPace;
use ese_actors::{
    restore_from, restore_sets, verify_at, BackupHandle, BackupKind, BackupOptions, BackupTarget,
    Engine, ReadProgress, SetChoice, StopAt, Term, VerifyDepth,
};

use crate::open::{open_instance, Files};
use crate::progress::{transfer_note, Step};
use crate::{Failure, Out};

/// `ese backup`.
pub async fn backup(
    dir: &Path,
    to: &BackupTarget,
    kind: BackupKind,
    dbs: Vec<PathBuf>,
    base: &str,
    options: BackupOptions,
    out: Out,
) -> Result<(), Failure> {
    let engine = Engine::new();
    let files = Files {
        dir,
        dbs,
        base,
        create: None,
    };
    // Nothing else commits on an instance opened for one backup: the pace would never hold.
    let (inst, _) = open_instance(&engine, "backup", files, BackupPace::Full, out).await?;
    let step = Step::start(out, &format!("{kind:?} backup to {to}"));
    let t = Instant::now();
    // From here a signal cancels the backup (its partial set removed), then the process ends.
    let signals = crate::serve::Signals::install();
    let res = match (inst.start_backup_to(to, kind, options).await, signals) {
        (Ok(h), Ok(mut signals)) => {
            follow(h, &step, &format!("{kind:?} backup"), &mut signals).await
        }
        (Ok(h), Err(e)) => {
            h.cancel();
            let _ = h.wait().await;
            Err(e)
        }
        (Err(e), _) => Err(e.into()),
    };
    let _ = inst.term(Term::empty()).await;
    let m = match res {
        Ok(m) => m,
        Err(e) => {
            step.failed(match e {
                Failure::Signal(_) => "backup interrupted",
                _ => "backup failed",
            });
            return Err(e);
        }
    };
    let bytes = m.content_bytes();
    let secs = t.elapsed().as_secs_f64();
    step.done(&format!(
        "backed up {:.1} MiB in {secs:.2}s",
        bytes as f64 / 1048576.0
    ));
    if out.json {
        println!("{}", serde_json::to_string_pretty(&m).unwrap_or_default());
    } else {
        println!(
            "backup {} ({:?}): {} database(s), logs {}..={}, {:.1} MiB ({:.1} MiB stored), {:.1} MB/s",
            m.id,
            m.kind,
            m.databases.len(),
            m.gen_low,
            m.gen_high,
            bytes as f64 / 1048576.0,
            m.stored_bytes() as f64 / 1048576.0,
            bytes as f64 / 1e6 / secs.max(1e-9)
        );
        println!(
            "set {}/{}",
            to.location().trim_end_matches('/'),
            m.name.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// Awaits a backup, showing its phase and bytes on the step as they change. A signal cancels
/// it, unless it is past cancelling (its set complete, logs being truncated: it finishes).
async fn follow(
    mut h: BackupHandle,
    step: &Step,
    what: &str,
    signals: &mut crate::serve::Signals,
) -> Result<ese_actors::BackupManifest, Failure> {
    loop {
        let p = tokio::select! {
            p = h.changed() => p,
            sig = signals.next() => {
                if h.cancel() {
                    // Over once the partial set is removed.
                    let _ = h.wait().await;
                    return Err(Failure::Signal(sig));
                }
                continue;
            }
        };
        if p.phase.is_finished() {
            return Ok(h.wait().await?);
        }
        let of = match p.total_known {
            true => "",
            false => "at least ",
        };
        if p.total_known {
            step.bytes(p.bytes_done, p.bytes_total);
        }
        let files = (p.files_done, p.files_total);
        let bytes = (p.bytes_done, p.bytes_total);
        step.note(&transfer_note(what, p.phase, bytes, of, files, ""));
    }
}

/// `ese verify`.
pub async fn verify(
    (target, set): (BackupTarget, String),
    depth: VerifyDepth,
    out: Out,
) -> Result<(), Failure> {
    let step = Step::start(out, &format!("verifying {}/{set}", target.location()));
    let progress = ReadProgress::new();
    let work = verify_at(&target, &set, depth, Some(progress.clone()));
    let r = match watch(work, &step, &progress).await {
        Ok(r) => r,
        Err(e) => {
            step.failed("verification failed");
            return Err(e.into());
        }
    };
    step.done("verified");
    let what = match depth {
        VerifyDepth::Quick => "every file present with its size (quick: nothing read)".to_string(),
        VerifyDepth::Sample { percent, .. } => {
            format!(
                "{} file(s) read back ({percent}% sample), the rest present with their sizes",
                r.logs
            )
        }
        VerifyDepth::Full => format!("{} page(s) and {} log file(s) verified", r.pages, r.logs),
    };
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "ok": true, "id": r.manifest.id, "name": r.manifest.name, "kind": r.manifest.kind, "pages": r.pages, "logs": r.logs,
                "gen_low": r.manifest.gen_low, "gen_high": r.manifest.gen_high, "depth": format!("{depth:?}") })
        );
    } else {
        println!(
            "OK: {:?} backup {}, {what}, logs {}..={}",
            r.manifest.kind, r.manifest.id, r.manifest.gen_low, r.manifest.gen_high
        );
    }
    Ok(())
}

/// Awaits `work`, showing `progress` on the step as it reads.
async fn watch<T>(
    work: impl std::future::Future<Output = ese_actors::Result<T>>,
    step: &Step,
    progress: &ReadProgress,
) -> ese_actors::Result<T> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tick.tick() => step.bytes(progress.done(), progress.total()),
        }
    }
}

/// Where `ese restore` takes its chain from.
pub enum From {
    /// A target and a set in it (with its chain), or the latest.
    Target(BackupTarget, SetChoice),
    /// The sets, one by one, oldest first.
    Sets(Vec<(BackupTarget, String)>),
}

/// `ese restore`.
pub async fn restore(from: From, to: &Path, stop: Option<StopAt>, out: Out) -> Result<(), Failure> {
    let engine = Engine::new();
    let what = match &from {
        From::Target(t, SetChoice::Latest) => format!("the latest chain of {t}"),
        From::Target(t, SetChoice::Named(n)) => format!("{t}/{n} and its chain"),
        From::Sets(s) => format!("{} set(s)", s.len()),
    };
    let step = Step::start(out, &format!("restoring {what} into {}", to.display()));
    let progress = ReadProgress::new();
    let p = Some(Arc::clone(&progress));
    let r = match from {
        From::Target(t, choice) => {
            watch(
                restore_from(&engine, &t, choice, to, stop, p),
                &step,
                &progress,
            )
            .await
        }
        From::Sets(sets) => {
            watch(restore_sets(&engine, &sets, to, stop, p), &step, &progress).await
        }
    };
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            step.failed("restore failed");
            return Err(e.into());
        }
    };
    step.done("restored");
    let rep = &r.restore;
    if out.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true, "sets": r.sets,
                "databases": r.databases.iter().map(|(o, n)| serde_json::json!({"original": o, "restored": n})).collect::<Vec<_>>(),
                "gen_low": rep.gens.0, "gen_high": rep.gens.1, "commits": rep.commits, "pages_written": rep.pages_written,
                "log_bytes": rep.log_bytes, "seconds": rep.seconds, "log_mb_per_sec": rep.log_bytes_per_sec / 1e6, "stopped": rep.stopped,
            })
        );
    } else {
        for (o, n) in &r.databases {
            println!("restored {} -> {}", o.display(), n.display());
        }
        println!(
            "replayed logs {}..={}: {} commits, {} pages, {:.1} MiB of log at {:.1} MB/s{}",
            rep.gens.0,
            rep.gens.1,
            rep.commits,
            rep.pages_written,
            rep.log_bytes as f64 / 1048576.0,
            rep.log_bytes_per_sec / 1e6,
            if rep.stopped {
                " (stopped at the requested point)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
