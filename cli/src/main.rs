//! `ese`: the command-line face of the engine. `ese demo` is the main job; `backup`,
//! `verify`, `restore` and `dump` are the operator's tools (like ESE's eseutil).

mod demo;
mod dump;
mod open;
mod ops;
mod progress;
mod remote;
mod serve;
mod targets;

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
    /// Opens the files of an instance that is not running (soft recovery) and writes a new
    /// backup set into a target. A running instance is backed up through its host, or with
    /// `--url` from the host's HTTP(S) backup API.
    Backup {
        /// The instance's directory (logs, checkpoint, databases).
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        instance_dir: Option<PathBuf>,
        /// Pull the backup from a running instance's host instead:
        /// `http(s)://HOST:PORT/v1/instances/NAME` (full or incremental only).
        #[arg(long)]
        url: Option<String>,
        /// With `--url`: the bearer token is the first word of this file's first line that is
        /// not a `#` comment (default: `ESE_TOKEN`).
        #[arg(long, requires = "url")]
        token_file: Option<PathBuf>,
        /// With `--url`: one more CA certificate (PEM) to trust, for a self-signed server.
        #[arg(long, requires = "url")]
        ca_cert: Option<PathBuf>,
        /// Where the set goes: `s3://BUCKET/PREFIX` (endpoint and credentials from the AWS
        /// environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        /// AWS_REGION, AWS_ALLOW_HTTP), `file:///PATH` or a folder. The set is a new
        /// folder or prefix inside, named for its time and kind.
        #[arg(long)]
        to: String,
        /// What kind of backup.
        #[arg(long, value_enum, default_value_t = Kind::Full)]
        kind: Kind,
        /// Databases to attach (default: every *.edb in the instance directory).
        #[arg(long = "db", conflicts_with = "url")]
        dbs: Vec<PathBuf>,
        /// Log base name.
        #[arg(long, default_value = "edb")]
        base: String,
        /// Compress every file: `zstd` (level 3) or `zstd:LEVEL` (1 to 22).
        #[arg(long)]
        compress: Option<String>,
        /// Stream at most this many MiB per second (like pg_basebackup's --max-rate); with
        /// --url, receive at most that many, which holds the server's reads to the rate too.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_rate_mib: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Runs an instance as a service (soft recovery, its databases attached) that can be
    /// backed up over HTTP (`ese backup --url`), until SIGINT or SIGTERM.
    Serve {
        /// The instance's directory (logs, checkpoint, databases).
        #[arg(long)]
        instance_dir: PathBuf,
        /// The name in the URL, `/v1/instances/NAME` (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Where to listen (port 0: any free port; the URL is printed first on stdout).
        #[arg(long, default_value = "127.0.0.1:8417")]
        listen: std::net::SocketAddr,
        /// Bearer tokens with their scopes, one `TOKEN scope[,scope...]` per line (scopes:
        /// read, truncate, end; push is refused here, as `ese serve` has no push targets).
        /// Required to listen beyond loopback.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Serve HTTPS with this PEM certificate chain (leaf first).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Databases to attach (default: every *.edb in the instance directory).
        #[arg(long = "db")]
        dbs: Vec<PathBuf>,
        /// Log base name.
        #[arg(long, default_value = "edb")]
        base: String,
        /// Without any database in the directory, create `NAME.edb`.
        #[arg(long)]
        create: bool,
        /// Keep N sessions committing orders into the table `orders` while serving (a busy
        /// service to back up, as in `ese demo`).
        #[arg(long, default_value_t = 0)]
        writers: usize,
        /// How long a remote backup lives without a request, in seconds (1 to 86400).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        lease_secs: u64,
        /// How backups share the machine with durable commits: `yield` slows a backup's reads
        /// while commits' p99 latency is more than a tenth above its value without one;
        /// `full` reads as fast as the client asks.
        #[arg(long, value_enum, default_value_t = Pace::Yield)]
        backup_pace: Pace,
        /// With `--backup-pace yield`: the least a backup reads at beside busy commits, MiB/s
        /// [default: 4].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
        backup_floor_mib: Option<u64>,
    },
    /// Checks a backup set without restoring it: `TARGET/SET`, or a set's folder.
    Verify {
        /// The set: `s3://BUCKET/PREFIX/SET`, or the set's folder.
        set: String,
        /// Only that every file is there with its size (LIST and HEAD; no download).
        #[arg(long, conflicts_with = "sample")]
        quick: bool,
        /// Reads back about PERCENT of the files (sizes and checksums), the rest quick.
        #[arg(long, value_name = "PERCENT")]
        sample: Option<f64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Restores a chain of backup sets (full first, then incrementals) into a directory:
    /// `ese restore TARGET --set SET|latest --to DIR`, or the sets named one by one.
    Restore {
        /// With `--set`, the target holding the sets; without, each set of the chain
        /// (`TARGET/SET` or a set's folder), oldest first.
        #[arg(required = true)]
        sources: Vec<String>,
        /// The set to restore with the chain it continues, or `latest`: the newest complete
        /// set (refused if its chain is broken, or if a set lies later in its log than it;
        /// name a set to restore another chain); with a stop point, the newest chain whose
        /// full began before it.
        #[arg(long)]
        set: Option<String>,
        /// Where the databases go.
        #[arg(long)]
        to: PathBuf,
        /// Replay no commit of a later log generation.
        #[arg(long, conflicts_with = "stop_at_time")]
        stop_at_gen: Option<u32>,
        /// Replay no commit made after this time (RFC 3339, e.g. 2026-11-25T14:00:00Z).
        #[arg(long)]
        stop_at_time: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lists the backup sets of a target: name, kind, parent, log range, size, time; orphans
    /// with when their newest file was written.
    Sets {
        /// The target: `s3://BUCKET/PREFIX`, `file:///PATH` or a folder.
        target: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Removes whole backup sets that no kept chain needs, and old orphans (sets whose
    /// backup never finished).
    Prune {
        /// The target.
        target: String,
        /// Keep the newest N full sets and every set that continues them.
        #[arg(long)]
        keep_full: Option<usize>,
        /// Keep every set begun within this long (e.g. 7d, 36h).
        #[arg(long)]
        keep_within: Option<humantime::Duration>,
        /// Remove orphans whose newest file is older than this (default 24h).
        #[arg(long, default_value = "24h")]
        orphan_grace: humantime::Duration,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        store: StoreArgs,
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

/// How an object-store target uploads and reads (ignored for folders).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct StoreArgs {
    /// Multipart part size in MiB (at least 5).
    #[arg(long, default_value_t = 16)]
    part_size_mib: usize,
    /// Parts uploading at once per file (memory: this times the part size).
    #[arg(long, default_value_t = 8)]
    parts_in_flight: usize,
    /// Retries of a failed request.
    #[arg(long, default_value_t = 3)]
    retries: usize,
    /// How long one request may keep retrying, in seconds.
    #[arg(long, default_value_t = 30)]
    retry_timeout_secs: u64,
}

impl StoreArgs {
    /// The target `s` with these settings.
    pub fn target(&self, s: &str) -> Result<ese_actors::BackupTarget, Failure> {
        let t = ese_actors::BackupTarget::parse(s).map_err(usage)?;
        self.fit(t)
    }

    /// The set location `s` (`TARGET/SET`) with these settings.
    pub fn set(&self, s: &str) -> Result<(ese_actors::BackupTarget, String), Failure> {
        let (t, name) = ese_actors::BackupTarget::parse_set(s).map_err(usage)?;
        Ok((self.fit(t)?, name))
    }

    /// `t` with these settings, refused (exit 2) before anything is opened if it is an object
    /// store that cannot take them (a folder ignores them).
    fn fit(&self, t: ese_actors::BackupTarget) -> Result<ese_actors::BackupTarget, Failure> {
        let options = self.options();
        if t.dir().is_none() {
            options.check().map_err(usage)?;
        }
        Ok(t.with_options(options))
    }

    fn options(&self) -> ese_actors::ObjectOptions {
        ese_actors::ObjectOptions {
            part_size: self.part_size_mib.saturating_mul(1 << 20),
            parts_in_flight: self.parts_in_flight,
            max_retries: self.retries,
            retry_timeout: std::time::Duration::from_secs(self.retry_timeout_secs),
            ..ese_actors::ObjectOptions::default()
        }
    }
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

/// `ese serve --backup-pace`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Pace {
    Yield,
    Full,
}

impl Pace {
    /// The engine's pace; a floor only goes with `yield` (with `full` nothing is held, and
    /// a floor given there would be silently ignored).
    fn with_floor(self, floor_mib: Option<u64>) -> Result<ese_actors::ese::BackupPace, Failure> {
        use ese_actors::ese::{BackupPace, DEFAULT_FLOOR_BYTES_PER_SEC, DEFAULT_P99_PERCENT};
        match (self, floor_mib) {
            (Pace::Full, None) => Ok(BackupPace::Full),
            (Pace::Full, Some(_)) => Err(Failure::Usage(
                "--backup-floor-mib applies to --backup-pace yield only: with full, no read is \
                 held"
                    .into(),
            )),
            (Pace::Yield, floor) => Ok(BackupPace::YieldToCommits {
                p99_percent: DEFAULT_P99_PERCENT,
                floor_bytes_per_sec: floor.map_or(DEFAULT_FLOOR_BYTES_PER_SEC, |mib| mib << 20),
            }),
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
    /// A signal (`SIGINT`, `SIGTERM`) ended the command after it cleaned up: exit 128 plus
    /// the signal's number, as a shell reports a process the signal ended.
    Signal(String),
    /// The arguments are wrong in a way the parser could not tell (a value out of range, two
    /// options that do not go together): exit 2, as for the parser's own refusals.
    Usage(String),
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
        // Colour codes only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            if out.json {
                // No ESE error to name: the same shape, its name and code null.
                println!(
                    "{}",
                    serde_json::json!({ "error": null, "code": null, "category": null, "message": m })
                );
            }
            eprintln!("ese: error: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Signal(sig)) => {
            let m =
                format!("interrupted by {sig}: the backup was aborted, its partial set removed");
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": null, "code": null, "category": null, "message": m })
                );
            }
            eprintln!("ese: {m}");
            ExitCode::from(if sig == "SIGINT" { 130 } else { 143 })
        }
        Err(Failure::Check(m)) => {
            eprintln!("ese: check failed: {m}");
            ExitCode::from(3)
        }
        Err(Failure::Usage(m)) => {
            if out.json {
                // What the engine says of a bad argument, so a script reads one shape.
                let e = ese_actors::Error::InvalidParameter;
                println!(
                    "{}",
                    serde_json::json!({ "error": e.name(), "code": e.code(), "category": e.category().name(), "message": m })
                );
            }
            eprintln!("ese: error: {m}");
            ExitCode::from(2)
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
            url,
            token_file,
            ca_cert,
            to,
            kind,
            dbs,
            base,
            compress,
            max_rate_mib,
            store,
        } => {
            let target = store.target(&to)?;
            let (Some(instance_dir), None) = (instance_dir, &url) else {
                if !matches!(kind, Kind::Full | Kind::Incremental) {
                    let name = kind.to_possible_value().map(|v| v.get_name().to_string());
                    return Err(Failure::Usage(format!(
                        "--kind {}: a pull over --url is full or incremental",
                        name.unwrap_or_default()
                    )));
                }
                let args = remote::Args {
                    url: url.unwrap_or_default(),
                    kind: kind.into(),
                    token_file,
                    ca_cert,
                    compress: compress.as_deref().map(parse_compress).transpose()?,
                    max_rate: max_rate_mib.map(|m| m.saturating_mul(1 << 20)),
                };
                return remote::backup(args, &target, out).await;
            };
            let options = ese_actors::BackupOptions {
                compress: compress.as_deref().map(parse_compress).transpose()?,
                max_rate: max_rate_mib.map(|m| m.saturating_mul(1 << 20)),
                ..ese_actors::BackupOptions::default()
            };
            ops::backup(
                &instance_dir,
                &target,
                kind.into(),
                dbs,
                &base,
                options,
                out,
            )
            .await
        }
        Cmd::Serve {
            instance_dir,
            name,
            listen,
            token_file,
            tls_cert,
            tls_key,
            dbs,
            base,
            create,
            writers,
            lease_secs,
            backup_pace,
            backup_floor_mib,
        } => {
            let serve = serve::Serve {
                instance_dir,
                name,
                listen,
                token_file,
                tls: tls_cert.zip(tls_key),
                dbs,
                base,
                create,
                writers,
                lease_secs,
                pace: backup_pace.with_floor(backup_floor_mib)?,
            };
            serve::run(serve, out).await
        }
        Cmd::Verify {
            set,
            quick,
            sample,
            store,
        } => {
            let depth = match (quick, sample) {
                (true, _) => ese_actors::VerifyDepth::Quick,
                (_, Some(p)) if (0.0..=100.0).contains(&p) => ese_actors::VerifyDepth::Sample {
                    percent: p,
                    seed: ese_actors::ese::backup::repo::name::now_ms(),
                },
                (_, Some(p)) => {
                    return Err(Failure::Usage(format!(
                        "--sample {p}: give 0 to 100 (percent)"
                    )))
                }
                (false, None) => ese_actors::VerifyDepth::Full,
            };
            ops::verify(store.set(&set)?, depth, out).await
        }
        Cmd::Restore {
            sources,
            set,
            to,
            stop_at_gen,
            stop_at_time,
            store,
        } => {
            let stop = match (stop_at_gen, stop_at_time) {
                (Some(g), _) => Some(ese_actors::StopAt::Generation(g)),
                (None, Some(t)) => Some(ese_actors::StopAt::Time(
                    humantime::parse_rfc3339_weak(&t)
                        .map_err(|e| Failure::Usage(format!("--stop-at-time {t:?}: {e}")))?,
                )),
                (None, None) => None,
            };
            let from = match set {
                Some(choice) => {
                    let [target] = &sources[..] else {
                        return Err(Failure::Usage(
                            "with --set, give exactly one target (the place that holds the sets)"
                                .into(),
                        ));
                    };
                    ops::From::Target(store.target(target)?, ese_actors::SetChoice::parse(&choice))
                }
                None => ops::From::Sets(
                    sources
                        .iter()
                        .map(|s| store.set(s))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            ops::restore(from, &to, stop, out).await
        }
        Cmd::Sets { target, store } => targets::sets(&store.target(&target)?, out).await,
        Cmd::Prune {
            target,
            keep_full,
            keep_within,
            orphan_grace,
            dry_run,
            store,
        } => {
            if keep_full.is_none() && keep_within.is_none() || keep_full == Some(0) {
                return Err(Failure::Usage(
                    "prune needs --keep-full N (N >= 1) or --keep-within DURATION: it never \
                     removes every set"
                        .into(),
                ));
            }
            let r = ese_actors::Retention {
                keep_full,
                keep_within_ms: keep_within.map(|d| d.as_millis() as u64),
                orphan_grace_ms: orphan_grace.as_millis() as u64,
            };
            targets::prune(&store.target(&target)?, r, dry_run, out).await
        }
        Cmd::Bench { quick, dir } => bench(quick, dir, out).await,
        Cmd::Dump { what } => match what {
            DumpWhat::Header { file } => dump::header(&file, out),
            DumpWhat::Log { file } => dump::log(&file, out),
            DumpWhat::Checkpoint { file } => dump::checkpoint(&file, out),
        },
    }
}

/// A target or set the parser refused (`InvalidParameter`, `InvalidPath`) is a usage error;
/// anything else stays the engine's.
fn usage(e: ese_actors::Error) -> Failure {
    let in_the_argument = [
        ese_actors::Error::InvalidParameter.code(),
        ese_actors::Error::InvalidPath.code(),
    ];
    match in_the_argument.contains(&e.code()) {
        true => Failure::Usage(e.to_string()),
        false => Failure::Ese(e),
    }
}

/// `zstd` or `zstd:LEVEL`.
fn parse_compress(s: &str) -> Result<i32, Failure> {
    match s.split_once(':') {
        None if s == "zstd" => Ok(3),
        Some(("zstd", level)) => level
            .parse()
            .ok()
            .filter(|l| (1..=22).contains(l))
            .ok_or_else(|| Failure::Usage(format!("--compress {s}: the level is 1 to 22"))),
        _ => Err(Failure::Usage(format!(
            "--compress {s}: give zstd or zstd:LEVEL"
        ))),
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
