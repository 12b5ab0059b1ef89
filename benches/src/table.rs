//! Printing a run's rows as one Markdown table, and where the benches write their JSON.

use std::path::{Path, PathBuf};

use crate::figures::Row;

/// Prints `rows` as a Markdown table (figure, ours, `baseline_head`, ratio, target,
/// pass/fail), then each row's detail.
pub fn print_table(rows: &[Row], baseline_head: &str) {
    let cells: Vec<[String; 6]> = rows.iter().map(Row::cells).collect();
    let head = [
        "figure",
        "ours",
        baseline_head,
        "ratio",
        "target",
        "pass/fail",
    ];
    let mut w = head.map(|h| h.len());
    for c in &cells {
        for i in 0..6 {
            w[i] = w[i].max(c[i].chars().count());
        }
    }
    let line = |c: &[String; 6]| {
        let mut s = String::from("|");
        for i in 0..6 {
            s.push_str(&format!(" {:<w$} |", c[i], w = w[i]));
        }
        s
    };
    println!("{}", line(&head.map(String::from)));
    println!(
        "|{}|",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for c in &cells {
        println!("{}", line(c));
    }
    println!();
    for r in rows.iter().filter(|r| !r.detail.is_empty()) {
        println!("  {}: {}", r.label, r.detail);
    }
}

/// `target/bench` of the workspace (this crate sits in its `benches/`).
pub fn out_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("target")
        .join("bench")
}
