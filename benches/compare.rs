//! Ours against peers and baselines, in one run: prints one table
//! (figure | ours | peer or baseline | ratio | target | pass/fail), writes it as JSON to
//! `target/bench/compare.json` and a plot of durable commit throughput against concurrent
//! sessions to `target/bench/commit_throughput.svg` (both under the workspace root).
//!
//! `ESE_BENCH_QUICK=1 cargo bench -p ese-bench --features peers --bench compare` runs the
//! quick scale (about three minutes on two cores). The figures and their targets are
//! `ese_bench::figures::TABLE`, measured by `ese_bench::run::run` with the peers of
//! `ese_bench::peers`. Every figure is the median of several repetitions, ours and the peer
//! interleaved, so ratios compare runs taken under the same machine noise.

use std::path::Path;
use std::time::Instant;

use ese_bench::peers::SqliteRedb;
use ese_bench::run::{run, AnyResult};
use ese_bench::table::{out_dir, print_table};
use ese_bench::workloads::Scale;
use plotters::prelude::*;
use serde_json::json;

fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (cpus, model)
}

fn plot(
    path: &Path,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let ymin = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(f64::MAX, f64::min)
        .max(1.0);
    let root = SVGBackend::new(path, (960, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Durable commit throughput vs concurrent sessions (16 B key, 100 B value)",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (1.0f64..64.0).log_scale(),
            (ymin / 2.0..ymax * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("concurrent sessions (ours: tokio tasks; peers: OS threads)")
        .y_desc("durable commits / s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let colors = [RED, BLUE, GREEN];
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Counts the heap's live bytes for the memory rows (figure 10); a relaxed atomic per
/// allocation, noise next to what the other rows measure.
#[global_allocator]
static ALLOC: ese_bench::heap::CountingAlloc = ese_bench::heap::CountingAlloc;

fn main() -> AnyResult<()> {
    // `cargo bench` passes --bench; there are no other options.
    let scale = Scale::from_env();
    let (cpus, model) = machine();
    let t0 = Instant::now();
    eprintln!(
        "ese compare: {} mode, {cpus} CPUs ({model})",
        if scale.quick { "quick" } else { "full" }
    );
    let tmp = tempfile::Builder::new().prefix("ese-compare").tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut peers = SqliteRedb::default();
    let report = rt.block_on(run(&scale, tmp.path(), Some(&mut peers), &|m| {
        eprintln!("{m}")
    }))?;
    drop(rt);
    let (rows, series) = (report.rows, report.sweep);
    let total = t0.elapsed().as_secs_f64();

    println!();
    println!(
        "ese compare ({} mode, {cpus} CPUs: {model}; {total:.0} s)",
        if scale.quick { "quick" } else { "full" }
    );
    print_table(&rows, "peer or baseline");

    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let json = json!({
        "mode": if scale.quick { "quick" } else { "full" },
        "machine": { "cpus": cpus, "cpu_model": model },
        "seconds": total,
        "rows": rows,
        "commit_sweep": series.iter().map(|(name, pts)| json!({
            "series": name,
            "points": pts.iter().map(|(n, r)| json!({"sessions": *n as u64, "commits_per_sec": r})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let jp = dir.join("compare.json");
    std::fs::write(&jp, serde_json::to_string_pretty(&json)?)?;
    let sp = dir.join("commit_throughput.svg");
    if let Err(e) = plot(&sp, &series) {
        eprintln!("plot failed: {e}");
    }
    println!();
    println!("wrote {} and {}", jp.display(), sp.display());
    let failed = rows.iter().filter(|r| r.pass == Some(false)).count();
    println!(
        "{} targets, {} pass, {failed} fail",
        rows.iter().filter(|r| r.pass.is_some()).count(),
        rows.iter().filter(|r| r.pass == Some(true)).count()
    );
    Ok(())
}
