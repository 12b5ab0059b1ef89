//! `ese sets` and `ese prune`: what a target holds, and retention.

use ese_actors::{list_sets, prune_sets, BackupTarget, Listed, Retention, SetState};

use crate::progress::Step;
use crate::{Failure, Out};

/// `ese sets`: a table (or `--json`) of every set, orphans and damaged ones included.
pub async fn sets(target: &BackupTarget, out: Out) -> Result<(), Failure> {
    let step = Step::start(out, &format!("listing {target}"));
    let sets = match list_sets(target).await {
        Ok(s) => s,
        Err(e) => {
            step.failed("listing failed");
            return Err(e.into());
        }
    };
    // A folder that is not there lists as empty, as an empty prefix of a store does; say so,
    // or a mistyped path reads as a target without sets.
    let missing = match target.dir() {
        Some(dir) => !tokio::fs::try_exists(dir).await.unwrap_or(true),
        None => false,
    };
    match missing {
        true => step.done("0 names: the folder does not exist"),
        false => step.done(&format!("{} name(s)", sets.len())),
    }
    if out.json {
        let rows: Vec<_> = sets.iter().map(json_row).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(());
    }
    // As wide as the longest name (an incremental's is 37 characters), so the columns align.
    let w = sets.iter().map(|s| s.name.len()).max().unwrap_or(0).max(36);
    println!(
        "{:<w$} {:<12} {:<16} {:<16} {:>13} {:>10} {:>10}  BEGAN (UTC)",
        "SET", "KIND", "ID", "PARENT", "LOGS", "SIZE MiB", "STORED MiB"
    );
    for s in &sets {
        match &s.state {
            SetState::Complete(m) => println!(
                "{:<w$} {:<12} {:<16} {:<16} {:>13} {:>10.1} {:>10.1}  {}",
                s.name,
                format!("{:?}", m.kind).to_lowercase(),
                m.id,
                m.parent_id.as_deref().unwrap_or("-"),
                format!("{}..={}", m.gen_low, m.gen_high),
                m.content_bytes() as f64 / 1048576.0,
                m.stored_bytes() as f64 / 1048576.0,
                ese_actors::ese::backup::repo::name::stamp(m.mark_time_ms),
            ),
            SetState::Orphan => println!(
                "{:<w$} (incomplete: no manifest, last written {}; prune removes it after its grace period)",
                s.name,
                s.modified_ms
                    .map_or("at an unknown time".to_string(), ese_actors::ese::backup::repo::name::stamp),
            ),
            SetState::Damaged(e) => println!("{:<w$} (damaged: {e})", s.name),
        }
    }
    Ok(())
}

fn json_row(s: &Listed) -> serde_json::Value {
    match &s.state {
        SetState::Complete(m) => serde_json::json!({
            "name": s.name, "state": "complete", "kind": m.kind, "id": m.id, "parent": m.parent_id,
            "gen_low": m.gen_low, "gen_high": m.gen_high, "bytes": m.content_bytes(),
            "stored_bytes": m.stored_bytes(), "began_ms": m.mark_time_ms,
            "databases": m.databases.len(), "logs": m.logs.len(),
        }),
        SetState::Orphan => serde_json::json!({
            "name": s.name, "state": "orphan", "modified_ms": s.modified_ms,
        }),
        SetState::Damaged(e) => serde_json::json!({
            "name": s.name, "state": "damaged", "error": e.name(), "code": e.code(), "detail": e.detail(),
        }),
    }
}

/// `ese prune`.
pub async fn prune(
    target: &BackupTarget,
    r: Retention,
    dry_run: bool,
    out: Out,
) -> Result<(), Failure> {
    let step = Step::start(out, &format!("pruning {target}"));
    let result = if dry_run {
        match list_sets(target).await {
            Ok(sets) => ese_actors::ese::backup::repo::prune::plan(
                &sets,
                &r,
                ese_actors::ese::backup::repo::name::now_ms(),
            )
            .map(|p| (p, 0)),
            Err(e) => Err(e),
        }
    } else {
        prune_sets(target, r).await
    };
    let (plan, removed) = match result {
        Ok(x) => x,
        Err(e) => {
            step.failed("prune failed");
            return Err(e.into());
        }
    };
    step.done(&format!(
        "{} set(s) and {} orphan(s) {}",
        plan.remove.len(),
        plan.orphans.len(),
        if dry_run { "would go" } else { "removed" }
    ));
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "dry_run": dry_run, "keep": plan.keep, "removed": plan.remove,
                "orphans_removed": plan.orphans, "left": plan.left, "held_back": plan.held_back,
                "objects_removed": removed })
        );
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        for n in &plan.remove {
            println!("{verb} {n}");
        }
        for n in &plan.orphans {
            println!("{verb} {n} (orphan)");
        }
        for n in &plan.keep {
            println!("kept {n}");
        }
        for n in &plan.left {
            println!("left {n} (orphan within its grace period, referenced, or damaged)");
        }
        if let Some(why) = &plan.held_back {
            println!("held back: {why}");
        }
    }
    Ok(())
}
