//! `ese`: the command-line face of the engine. `ese demo` is the main job; `backup`,
//! `verify`, `restore` and `dump` are the operator's tools (like ESE's eseutil).

mod demo;
mod dump;
mod ops;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// An embedded transactional storage engine modelled on Microsoft ESE, with online backup.
#[derive(Parser, Debug)]
#[command(name = "ese", version, about)]
struct Cli {
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Writers commit while a full and an incremental backup stream; the chain is restored
    /// and checked against the source.
    Demo {
        /// Work in this directory (default: a temporary one, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// How long the writers run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent writer sessions.
        #[arg(long, default_value_t = 4)]
        writers: usize,
    },
    /// Opens the files of an instance that is not running (soft recovery) and writes a
    /// backup set. A running instance is backed up through its host.
    Backup {
        /// The instance's directory (logs, checkpoint, databases).
        #[arg(long)]
        instance_dir: PathBuf,
        /// The backup set's directory (must be empty or absent).
        #[arg(long)]
        to: PathBuf,
        /// What kind of backup.
        #[arg(long, value_enum, default_value_t = Kind::Full)]
        kind: Kind,
        /// Databases to attach (default: every *.edb in the instance directory).
        #[arg(long = "db")]
        dbs: Vec<PathBuf>,
        /// Log base name.
        #[arg(long, default_value = "edb")]
        base: String,
    },
    /// Checks a backup set without restoring it.
    Verify {
        /// The backup set's directory.
        set: PathBuf,
    },
    /// Restores a chain of backup sets (full first, then incrementals) into a directory.
    Restore {
        /// The sets, oldest first.
        #[arg(required = true)]
        sets: Vec<PathBuf>,
        /// Where the databases go.
        #[arg(long)]
        to: PathBuf,
        /// Replay no commit of a later log generation.
        #[arg(long, conflicts_with = "stop_at_time")]
        stop_at_gen: Option<u32>,
        /// Replay no commit made after this time (RFC 3339, e.g. 2026-11-25T14:00:00Z).
        #[arg(long)]
        stop_at_time: Option<String>,
    },
    /// Measures the engine on this machine (no peers): backup throughput, durable and group
    /// commits, latency under backup, restore speed, actor round trips, stop latency, memory.
    Bench {
        /// The short form (about a minute).
        #[arg(long)]
        quick: bool,
        /// Work in this directory (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Prints a file's header fields (like eseutil /mh, /ml, /mk).
    Dump {
        #[command(subcommand)]
        what: DumpWhat,
    },
}

#[derive(Subcommand, Debug)]
enum DumpWhat {
    /// A database file or streamed database image.
    Header {
        /// The file.
        file: PathBuf,
    },
    /// A log file.
    Log {
        /// The file.
        file: PathBuf,
    },
    /// A checkpoint file.
    Checkpoint {
        /// The file.
        file: PathBuf,
    },
}

/// Backup kinds on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Full,
    Incremental,
    Copy,
    Differential,
}

impl From<Kind> for ese_actors::BackupKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Full => ese_actors::BackupKind::Full,
            Kind::Incremental => ese_actors::BackupKind::Incremental,
            Kind::Copy => ese_actors::BackupKind::Copy,
            Kind::Differential => ese_actors::BackupKind::Differential,
        }
    }
}

/// What a command failed with: an ESE error, or something about the command itself.
#[derive(Debug)]
pub enum Failure {
    /// The engine refused, with ESE's code.
    Ese(ese_actors::Error),
    /// The engine refused, and the refusal calls for something else to do, said in a sentence.
    EseHint(ese_actors::Error, String),
    /// Anything else, in a sentence.
    Other(String),
    /// The command ran and its check failed (the demo's verdict).
    Check(String),
}

impl From<ese_actors::Error> for Failure {
    fn from(e: ese_actors::Error) -> Self {
        Failure::Ese(e)
    }
}

/// Output settings shared by every command.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// No progress.
    pub quiet: bool,
    /// JSON on stdout.
    pub json: bool,
}

/// Counts the heap's live bytes, for `ese bench`'s memory row (figure 10); a relaxed atomic
/// per allocation, nothing any command would notice.
#[global_allocator]
static ALLOC: ese_bench::heap::CountingAlloc = ese_bench::heap::CountingAlloc;

fn main() -> ExitCode {
    // A bug must not greet the user with a backtrace: one sentence, and a distinct code.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("ese: internal error: {info}. Please report it.");
    }));
    let cli = Cli::parse();
    // Engine events (ESE event ids included) go to stderr; `RUST_LOG=info` shows them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let out = Out {
        quiet: cli.quiet,
        json: cli.json,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ese: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(run(cli.cmd, out));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Ese(e)) => {
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": e.name(), "code": e.code(), "category": e.category().name(), "message": e.to_string(), "detail": e.detail() })
                );
            }
            eprintln!("ese: error: {e}");
            ExitCode::from(1)
        }
        Err(Failure::EseHint(e, hint)) => {
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": e.name(), "code": e.code(), "category": e.category().name(), "message": e.to_string(), "hint": hint })
                );
            }
            eprintln!("ese: error: {e}");
            eprintln!("ese: {hint}");
            ExitCode::from(1)
        }
        Err(Failure::Other(m)) => {
            eprintln!("ese: error: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Check(m)) => {
            eprintln!("ese: check failed: {m}");
            ExitCode::from(3)
        }
    }
}

async fn run(cmd: Cmd, out: Out) -> Result<(), Failure> {
    match cmd {
        Cmd::Demo {
            dir,
            seconds,
            writers,
        } => demo::run(dir, seconds, writers.max(1), out).await,
        Cmd::Backup {
            instance_dir,
            to,
            kind,
            dbs,
            base,
        } => ops::backup(&instance_dir, &to, kind.into(), dbs, &base, out).await,
        Cmd::Verify { set } => ops::verify(&set, out).await,
        Cmd::Restore {
            sets,
            to,
            stop_at_gen,
            stop_at_time,
        } => {
            let stop = match (stop_at_gen, stop_at_time) {
                (Some(g), _) => Some(ese_actors::StopAt::Generation(g)),
                (None, Some(t)) => Some(ese_actors::StopAt::Time(
                    humantime::parse_rfc3339_weak(&t)
                        .map_err(|e| Failure::Other(format!("--stop-at-time {t:?}: {e}")))?,
                )),
                (None, None) => None,
            };
            ops::restore(&sets, &to, stop, out).await
        }
        Cmd::Bench { quick, dir } => bench(quick, dir, out).await,
        Cmd::Dump { what } => match what {
            DumpWhat::Header { file } => dump::header(&file, out),
            DumpWhat::Log { file } => dump::log(&file, out),
            DumpWhat::Checkpoint { file } => dump::checkpoint(&file, out),
        },
    }
}

/// `ese bench`: the run of `ese_bench` without peers, the figures of its table that need none.
async fn bench(quick: bool, dir: Option<PathBuf>, out: Out) -> Result<(), Failure> {
    let tmp = tempfile::tempdir().map_err(|e| Failure::Other(e.to_string()))?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let scale = if quick {
        ese_bench::workloads::Scale::quick()
    } else {
        ese_bench::workloads::Scale::full()
    };
    let step = progress::Step::start(
        out,
        if quick {
            "benchmark (quick)"
        } else {
            "benchmark"
        },
    );
    let report = ese_bench::run::run(&scale, &dir, None, &|m| step.note(m.trim())).await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            step.failed("benchmark failed");
            return Err(match e.downcast::<ese_actors::Error>() {
                Ok(e) => Failure::Ese(*e),
                Err(e) => Failure::Other(e.to_string()),
            });
        }
    };
    step.done("measured");
    if out.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.rows).unwrap_or_default()
        );
    } else {
        for row in &report.rows {
            println!("{row}");
        }
    }
    Ok(())
}
