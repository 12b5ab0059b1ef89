//! `ese-bench`: the benchmarks of ese, in one crate that is not published and not a default
//! member of the workspace.
//!
//! - [`workloads`]: every figure's measurement of ours through the public actor API, and
//!   the engine-free baselines (a raw `std::fs` read, a bare tokio echo task).
//! - [`host_api`]: the workloads of the host API's figures (a `WriteBatch` against single
//!   puts, the memory of a streaming scan).
//! - [`figures`]: the table of figures (key, label, name, unit, baseline, how the ratio is
//!   formed, target) and the measured [`figures::Row`].
//! - [`run`]: the one run of every figure in the table's order, with or without peers.
//! - `peers` (feature `peers`): SQLite and redb, driven with the same rows as ours.
//!
//! `ese bench [--quick]` (the CLI) is [`run::run`] without peers. The compare bench adds
//! them, prints the whole table and writes JSON and a plot:
//! `ESE_BENCH_QUICK=1 cargo bench -p ese-bench --features peers --bench compare`. The
//! criterion micro-benchmarks of the core: `cargo bench -p ese-bench --features micro --bench
//! micro`. Without those features the crate builds neither SQLite, redb, plotters nor
//! criterion, so `cargo test --workspace` does not either.
//!
//! ```no_run
//! # async fn f() -> ese_bench::run::AnyResult<()> {
//! let dir = std::env::temp_dir().join("ese-bench");
//! let report = ese_bench::run::run(&ese_bench::workloads::Scale::quick(), &dir, None, &|_| {})
//!     .await?;
//! for row in &report.rows {
//!     println!("{row}");
//! }
//! # Ok(()) }
//! ```

pub mod figures;
pub mod heap;
pub mod host_api;
#[cfg(feature = "peers")]
pub mod peers;
pub mod run;
pub mod table;
pub mod workloads;
