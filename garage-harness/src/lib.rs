//! A real 3-node [Garage](https://garagehq.deuxfleurs.fr) S3 cluster on loopback, for
//! integration tests and benchmarks.
//!
//! Mocks of S3 agree with whatever the code under test believes S3 does. A real server with real
//! replication catches what they do not: signing, multipart rules, quorum errors when nodes die,
//! a node that comes back without the writes it missed. Garage is small, starts in about a
//! second and runs three replicas on one machine, so each test binary can afford its own
//! cluster. Garage is AGPL, so it is only ever run as a separate server binary and never linked:
//! this crate depends on nothing of Garage's.
//!
//! ```no_run
//! let mut cluster = ese_garage::Cluster::start()?;
//! cluster.create_bucket("my-test")?;
//! // point an S3 client at cluster.endpoint(1) with cluster.key_id() / cluster.secret(),
//! // region cluster.region(), path-style requests and plain HTTP; or use cluster.env(1).
//! cluster.kill(3)?; // SIGKILL: a crash, not a clean shutdown
//! cluster.restart(3)?;
//! # Ok::<(), String>(())
//! ```
//!
//! What it does, and why each step is there (times measured on a 2-core machine, daemons and
//! client sharing it):
//!
//! * **The binary** ([`garage_binary`]) is found rather than built when possible, because a
//!   build takes about 9 minutes on 2 cores. When it has to be built, an exclusive file lock
//!   makes the test binaries that `cargo test` runs one after another, or nextest runs at once,
//!   build it only once.
//! * **Ports** are picked at random among 330 blocks below Linux's ephemeral range, each checked
//!   free by binding it, so that parallel test binaries (each with its own cluster) do not
//!   collide, and outgoing connections never sit on them. The check races with other processes,
//!   so a cluster whose daemon fails to bind is torn down and started again on other ports.
//! * **Each cluster gets a fresh random `rpc_secret`**, so that even if two clusters' ports were
//!   ever mixed up their nodes could not join each other.
//! * **Daemons are spawned from one long-lived thread with `PR_SET_PDEATHSIG = SIGKILL`** (on
//!   Linux), so that they die with the test process even when nothing drops the [`Cluster`]:
//!   the one from [`shared`] lives in a static, and a test process can be killed. The signal
//!   follows the *thread* that forked the child, so forking from a test thread would kill the
//!   daemons when that test ends; the dedicated thread never ends.
//! * **Readiness is `garage status` exiting 0**, not `garage node id`, which only reads a key
//!   file and succeeds while the daemon is still down.
//! * **Nodes are told to `node connect` each other, both ways**, at start and on restart. A
//!   node counts a peer up only over a connection it dialled itself. Left to gossip, a fresh
//!   cluster takes about a second longer to be HEALTHY; and after a SIGKILL the restarted node
//!   has forgotten its peers while they redial it only every 30 s, so the cluster would stay
//!   DEGRADED for up to 30 s.
//! * **[`Cluster::kill`] waits until the survivors count the node down.** Garage notices a
//!   dead peer only when a write to its connection fails, which left alone happens at the next
//!   ping, up to 15 s later; until then requests routed to the dead node hang (a multipart
//!   upload took 9 s instead of 0.1 s). The harness makes each survivor send two RPCs to the
//!   dead node, which closes the connection at once.
//! * **A fixed access key is imported**, so nothing has to parse CLI output for credentials and
//!   a failing test can be replayed by hand with the same key.
//! * **Every wait is bounded** ([`ClusterOptions::timeout`]), and its error carries the tail of
//!   the node's log, because a hung test says nothing about why.
//! * **Cluster directories carry their owner's pid** and each start deletes those whose owner
//!   is gone: the [`shared`] cluster's directory is never deleted by its own process.
//!
//! Each node has its own S3 endpoint ([`Cluster::endpoint`]); a client of a killed node gets
//! "connection refused", so tests that kill a node must talk to a survivor. Garage 2.5.0 accepts
//! but does not enforce conditional writes (`If-None-Match`, `If-Match`), and accepts multipart
//! parts under 5 MiB that AWS would reject: tests of that logic pass here without proving
//! anything.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The access key id imported into every cluster.
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// The secret of [`KEY_ID`].
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The S3 region every node is configured with; a client must sign for exactly this one.
pub const REGION: &str = "garage";
/// The Garage version [`garage_binary`] installs when it finds none.
pub const GARAGE_VERSION: &str = "2.5.0";

/// How long a single CLI call may take. They take 0.05–0.1 s; a stuck one must not stall a test.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of cluster directories, so stale ones can be recognised and swept.
const DIR_PREFIX: &str = "ese-garage-";
/// File in a cluster directory naming the process that owns it.
const OWNER_FILE: &str = "owner.pid";
const START_ATTEMPTS: usize = 3;
/// How Garage's log reports a port taken (the `io::Error` text on Linux and macOS).
const ADDR_IN_USE: &str = "Address already in use";

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// The path of a Garage 2.x binary, installing Garage [`GARAGE_VERSION`] if there is none.
///
/// Looked for in this order: `$ESE_GARAGE` (used as given, only checked to run); `garage` on
/// `PATH`; `$CARGO_HOME/bin/garage`; `~/.cargo/bin/garage`; `<workspace>/target/garage/bin/garage`
/// (where an earlier install put it). Each but the first must report a 2.x version. If none
/// does, `scripts/install-garage.sh` builds it into `<workspace>/target/garage` (about 9 min on 2
/// cores, log in `target/garage/install.log`) under an exclusive lock on
/// `target/garage/.install.lock`. The answer is cached for the process.
pub fn garage_binary() -> Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(find_or_install).clone()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in a workspace directory")
        .to_path_buf()
}

fn install_root() -> PathBuf {
    workspace_root().join("target").join("garage")
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ESE_GARAGE") {
        let path = PathBuf::from(path);
        // An explicit choice is trusted on its version (it may be a dev build), but a typo
        // should fail here rather than as a daemon that never comes up.
        return match binary_version(&path) {
            Some(_) => Ok(path),
            None => Err(format!(
                "ESE_GARAGE={} does not run (`--version` failed)",
                path.display()
            )),
        };
    }
    let mut candidates = vec![PathBuf::from("garage")];
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(home).join("bin").join("garage"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(
            PathBuf::from(home)
                .join(".cargo")
                .join("bin")
                .join("garage"),
        );
    }
    candidates.push(install_root().join("bin").join("garage"));

    let mut rejected = Vec::new();
    for candidate in candidates {
        match binary_version(&candidate) {
            Some(version) if is_version_2(&version) => return Ok(candidate),
            Some(version) => rejected.push(format!("{} is `{version}`", candidate.display())),
            None => rejected.push(format!("no {}", candidate.display())),
        }
    }
    install(&rejected.join(", "))
}

/// The first line of `garage --version`, if the binary runs.
fn binary_version(binary: &Path) -> Option<String> {
    let output = run_bounded(
        Command::new(binary).arg("--version"),
        Duration::from_secs(10),
    )
    .ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Some(stdout.lines().next().unwrap_or("").trim().to_string())
}

/// Whether `garage --version` output names a 2.x release. A cargo install prints
/// `garage cargo:2.5.0 [features: ...]`, a release build `garage v2.5.0 [...]`.
fn is_version_2(version: &str) -> bool {
    version.split_whitespace().any(|token| {
        let token = token.strip_prefix("cargo:").unwrap_or(token);
        let token = token.strip_prefix('v').unwrap_or(token);
        token
            .strip_prefix("2.")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

fn install(why: &str) -> Result<PathBuf, String> {
    let root = install_root();
    let bin = root.join("bin").join("garage");
    fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let lock_path = root.join(".install.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    // Blocks while another test binary builds it: one build, not one per binary.
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Whoever held the lock before us may have just finished the install.
    if binary_version(&bin).is_some_and(|v| is_version_2(&v)) {
        return Ok(bin);
    }

    let script = workspace_root().join("scripts").join("install-garage.sh");
    let log_path = root.join("install.log");
    eprintln!(
        "ese-garage: installing garage {GARAGE_VERSION} into {} with {} (about 9 min on 2 cores, \
         log {}; set ESE_GARAGE to use another binary), because no garage 2.x was found ({why})",
        root.display(),
        script.display(),
        log_path.display()
    );
    let log =
        File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cloning {}: {e}", log_path.display()))?;
    let status = Command::new("bash")
        .arg(&script)
        .arg(&root)
        .env("GARAGE_VERSION", GARAGE_VERSION)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!(
            "{} failed ({status}); last lines of {}:\n{}",
            script.display(),
            log_path.display(),
            tail(&log_path, 20)
        ));
    }
    match binary_version(&bin) {
        Some(v) if is_version_2(&v) => Ok(bin),
        other => Err(format!(
            "{} succeeded but {} reports {other:?}",
            script.display(),
            bin.display()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` to completion, killing it if it takes longer than `timeout`.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drained on their own threads so a chatty command cannot block on a full pipe while we
    // poll for its exit.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("did not finish within {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns a daemon from the one thread that lives as long as the process (see the crate doc:
/// the parent-death signal follows the forking thread, not the process).
fn spawn_daemon(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("ese-garage-spawner".into())
            .spawn(move || {
                // The sender sits in a static and is never dropped, so this loop, and the
                // thread, never ends.
                for mut request in rx {
                    set_parent_death_signal(&mut request.cmd);
                    let _ = request.reply.send(request.cmd.spawn());
                }
            })
            .expect("spawning the ese-garage spawner thread");
        tx
    });
    let (reply, answer) = mpsc::channel();
    sender
        .send(SpawnRequest { cmd, reply })
        .map_err(|_| io::Error::other("the ese-garage spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the ese-garage spawner thread dropped the request"))?
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only prctl and
    // getppid, which are async-signal-safe, and builds its error without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // If the test process died between fork and prctl, no signal will ever come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {
    // No PDEATHSIG here: daemons of a cluster that is never dropped outlive the process.
}

/// Whether a process exists (for sweeping directories of dead test processes).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks that the pid exists and may be signalled.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// Lowest base port. Blocks of 30 up to 29 900 stay below Linux's ephemeral range (32 768+), so
/// the kernel never hands one of our ports to an outgoing connection.
const PORT_FLOOR: u16 = 20_000;
const PORT_BLOCKS: u32 = 330;
const PORT_STRIDE: u16 = 30;

/// Bases taken by clusters of this process, which the bind check cannot see while their
/// daemons are still starting.
static RESERVED_BASES: Mutex<Vec<u16>> = Mutex::new(Vec::new());

struct PortReservation(u16);

impl Drop for PortReservation {
    fn drop(&mut self) {
        let mut bases = RESERVED_BASES.lock().unwrap_or_else(|e| e.into_inner());
        bases.retain(|&b| b != self.0);
    }
}

/// Node `n`'s (S3, RPC, admin) ports: the reference layout, 10 apart per node.
fn node_ports(base: u16, n: usize) -> (u16, u16, u16) {
    let p = base + 10 * (n as u16 - 1);
    (p, p + 1, p + 3)
}

fn reserve_ports() -> Result<PortReservation, String> {
    for _ in 0..200 {
        let r = u32::from_str_radix(&random_hex(4)?, 16).expect("hex");
        let base = PORT_FLOOR + (r % PORT_BLOCKS) as u16 * PORT_STRIDE;
        let mut bases = RESERVED_BASES.lock().unwrap_or_else(|e| e.into_inner());
        if bases.contains(&base) {
            continue;
        }
        let free = (1..=3).all(|n| {
            let (s3, rpc, admin) = node_ports(base, n);
            [s3, rpc, admin]
                .iter()
                .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            bases.push(base);
            return Ok(PortReservation(base));
        }
    }
    Err("found no block of 9 free loopback ports in 200 tries".into())
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// Garage's `consistency_mode`: how many of the 3 replicas reads and writes wait for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Reads and writes need 2 of 3 (Garage's default).
    #[default]
    Consistent,
    /// Reads need 1 (and can be stale), writes 2.
    Degraded,
    /// Reads and writes need 1.
    Dangerous,
}

impl Consistency {
    fn as_str(self) -> &'static str {
        match self {
            Consistency::Consistent => "consistent",
            Consistency::Degraded => "degraded",
            Consistency::Dangerous => "dangerous",
        }
    }
}

/// How to start a [`Cluster`]; `ClusterOptions { rpc_timeout_msec: Some(5000),
/// ..Default::default() }`.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Garage's `rpc_timeout_msec` (default 300 000). A node that missed writes gets their data
    /// blocks only 2 × this after `repair_tables`; tests that fail nodes one after another
    /// want it low (5000 worked).
    pub rpc_timeout_msec: Option<u64>,
    /// The same on all three nodes, as Garage requires.
    pub consistency: Consistency,
    /// Where the cluster directory is created; the system temp dir if `None`. Benchmarks may
    /// want a particular disk.
    pub parent_dir: Option<PathBuf>,
    /// Bound on each wait: for the daemons to answer, for the cluster to be healthy.
    pub timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            rpc_timeout_msec: None,
            consistency: Consistency::Consistent,
            parent_dir: None,
            timeout: Duration::from_secs(30),
        }
    }
}

struct Node {
    config: PathBuf,
    log: PathBuf,
    s3_port: u16,
    admin_port: u16,
    /// `node id -q`: `<hex id>@127.0.0.1:<rpc port>`, what `node connect` takes.
    id: String,
    /// A mutex so that `is_running(&self)` can reap an exited daemon through a shared
    /// reference (the [`shared`] cluster is only ever seen through one).
    child: Mutex<Option<Child>>,
}

/// A running 3-node Garage cluster on 127.0.0.1 with a fixed key ([`KEY_ID`], [`SECRET`]).
///
/// Nodes are numbered 1 to 3; methods taking a node number panic on any other. Dropping it
/// SIGKILLs the daemons and deletes its directory.
pub struct Cluster {
    binary: PathBuf,
    nodes: Vec<Node>,
    options: ClusterOptions,
    _ports: PortReservation,
    // Last, so the daemons are dead (Drop) before their directory goes.
    dir: tempfile::TempDir,
}

/// Why one start attempt failed, and whether another set of ports may fix it.
struct StartFailure {
    port_conflict: bool,
    message: String,
}

impl Cluster {
    /// Starts a cluster with the default options: see [`Cluster::start_with`].
    pub fn start() -> Result<Cluster, String> {
        Cluster::start_with(ClusterOptions::default())
    }

    /// Starts a cluster: three daemons, connected, with a layout applied, healthy on all
    /// nodes, with the key imported. Finds or installs the binary first ([`garage_binary`]).
    pub fn start_with(options: ClusterOptions) -> Result<Cluster, String> {
        let binary = garage_binary()?;
        let parent = options
            .parent_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        sweep_stale_dirs(&parent);
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Cluster::try_start(&binary, &parent, &options) {
                Ok(cluster) => return Ok(cluster),
                Err(f) if f.port_conflict => last = f.message,
                Err(f) => return Err(f.message),
            }
        }
        Err(format!(
            "ports were taken by someone else {START_ATTEMPTS} times; last: {last}"
        ))
    }

    fn try_start(
        binary: &Path,
        parent: &Path,
        options: &ClusterOptions,
    ) -> Result<Cluster, StartFailure> {
        let plain = |message: String| StartFailure {
            port_conflict: false,
            message,
        };
        fs::create_dir_all(parent)
            .map_err(|e| plain(format!("creating {}: {e}", parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(parent)
            .map_err(|e| {
                plain(format!(
                    "creating a cluster dir in {}: {e}",
                    parent.display()
                ))
            })?;
        fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
            .map_err(|e| plain(format!("writing the owner file: {e}")))?;
        let ports = reserve_ports().map_err(plain)?;
        let rpc_secret = random_hex(32).map_err(plain)?;
        let admin_token = random_hex(32).map_err(plain)?;

        let mut nodes = Vec::new();
        for n in 1..=3 {
            let node_dir = dir.path().join(format!("node{n}"));
            let (s3_port, rpc_port, admin_port) = node_ports(ports.0, n);
            let config = node_dir.join("garage.toml");
            let text = node_config(
                &node_dir,
                options,
                &rpc_secret,
                &admin_token,
                (s3_port, rpc_port, admin_port),
            );
            fs::create_dir_all(&node_dir)
                .and_then(|_| fs::write(&config, text))
                .map_err(|e| plain(format!("writing {}: {e}", config.display())))?;
            nodes.push(Node {
                config,
                log: node_dir.join("server.log"),
                s3_port,
                admin_port,
                id: String::new(),
                child: Mutex::new(None),
            });
        }
        let mut cluster = Cluster {
            binary: binary.to_path_buf(),
            nodes,
            options: options.clone(),
            _ports: ports,
            dir,
        };
        // On failure `cluster` is dropped here, which kills whatever did start.
        match cluster.bring_up() {
            Ok(()) => Ok(cluster),
            Err(message) => Err(StartFailure {
                port_conflict: cluster.port_conflict(),
                message,
            }),
        }
    }

    fn bring_up(&mut self) -> Result<(), String> {
        for n in 1..=3 {
            self.spawn(n, false)?;
        }
        for n in 1..=3 {
            self.wait_answering(n)?;
        }
        for n in 1..=3 {
            let id = self.cli(n, &["node", "id", "-q"])?.trim().to_string();
            self.nodes[n - 1].id = id;
        }
        // Every node dials every other one. Node 1 dialling the others would be enough in the
        // end (gossip introduces them), but a node counts a peer up only over a connection it
        // dialled itself, and left to gossip that takes about a second longer.
        self.connect(&[(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)])?;
        let hex_ids: Vec<String> = self
            .nodes
            .iter()
            .map(|node| node.id.split('@').next().unwrap_or("").to_string())
            .collect();
        let mut assign = vec!["layout", "assign", "-z", "dc1", "-c", "1G"];
        assign.extend(hex_ids.iter().map(String::as_str));
        self.cli(1, &assign)?;
        self.cli(1, &["layout", "apply", "--version", "1"])?;
        // All three, not just node 1: a client may go to any node first.
        self.wait_converged()?;
        for n in 1..=3 {
            self.check_listening(n)?;
        }
        self.cli(
            1,
            &["key", "import", "--yes", "-n", "ese-test", KEY_ID, SECRET],
        )?;
        Ok(())
    }

    /// Whether a daemon of this cluster found one of its ports taken (then a retry on other
    /// ports makes sense).
    fn port_conflict(&self) -> bool {
        (1..=3).any(|n| {
            fs::read_to_string(&self.nodes[n - 1].log).is_ok_and(|log| log.contains(ADDR_IN_USE))
        })
    }

    /// Checks that node `n` serves its S3 and admin ports. A daemon that cannot bind its RPC
    /// port panics, but one that cannot bind its S3 or admin port logs an error and carries on
    /// without it, answering `status` as if all were well. By the time this runs (after the
    /// cluster converged) the binds, which follow the RPC one within a millisecond, are long
    /// done. The connect alone could reach whoever holds the port, hence the log as well.
    fn check_listening(&self, n: usize) -> Result<(), String> {
        if !self.is_running(n) {
            return Err(self.node_failure(n, "exited during startup"));
        }
        let node = self.node(n);
        if fs::read_to_string(&node.log).is_ok_and(|log| log.contains(ADDR_IN_USE)) {
            return Err(self.node_failure(n, "found a port taken"));
        }
        for port in [node.s3_port, node.admin_port] {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                return Err(self.node_failure(n, &format!("does not listen on {addr}: {e}")));
            }
        }
        Ok(())
    }

    fn node(&self, n: usize) -> &Node {
        assert!((1..=3).contains(&n), "node numbers are 1..=3, not {n}");
        &self.nodes[n - 1]
    }

    fn spawn(&mut self, n: usize, append: bool) -> Result<(), String> {
        let node = self.node(n);
        let log = File::options()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&node.log)
            .map_err(|e| format!("opening {}: {e}", node.log.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("cloning log: {e}"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg(&node.config)
            .arg("server")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = spawn_daemon(cmd)
            .map_err(|e| format!("starting {} server: {e}", self.binary.display()))?;
        *self.nodes[n - 1]
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    /// Waits until node `n`'s RPC answers `garage status`.
    fn wait_answering(&self, n: usize) -> Result<(), String> {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            if !self.is_running(n) {
                return Err(self.node_failure(n, "exited before answering"));
            }
            if self.cli(n, &["status"]).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.node_failure(
                    n,
                    &format!("did not answer `status` within {:?}", self.options.timeout),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running node sees exactly the running nodes up and, when all three
    /// run, says HEALTHY. Checking each node catches a restarted one that has not rejoined, and
    /// a survivor that has not noticed a kill.
    fn wait_converged(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.options.timeout;
        let running: Vec<usize> = (1..=3).filter(|&n| self.is_running(n)).collect();
        let mut last = String::new();
        loop {
            let mut all_good = true;
            let mut stale = Vec::new();
            for &n in &running {
                // `health` exits 1 when the cluster is unavailable, which is the expected
                // state with one node up, so its output counts whatever the exit code.
                let out = self.cli_output(n, &["health"])?;
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let field = |name: &str| {
                    text.lines().find_map(|line| {
                        let (key, value) = line.split_once(':')?;
                        (key.trim() == name).then(|| value.trim().to_string())
                    })
                };
                let up = field("Storage nodes up").and_then(|v| v.parse::<usize>().ok());
                let status = field("Cluster health").unwrap_or_default();
                if up == Some(running.len()) && (running.len() < 3 || status == "HEALTHY") {
                    continue;
                }
                all_good = false;
                last = format!("node {n} says: {}", text.trim());
                if up.is_some_and(|up| up > running.len()) {
                    stale.push(n);
                }
            }
            thread::scope(|scope| {
                for &n in &stale {
                    scope.spawn(move || self.nudge(n));
                }
            });
            if all_good {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = running
                    .iter()
                    .map(|&n| {
                        format!(
                            "--- {}:\n{}",
                            self.nodes[n - 1].log.display(),
                            tail(&self.nodes[n - 1].log, 10)
                        )
                    })
                    .collect();
                return Err(format!(
                    "nodes {running:?} did not converge within {:?}; {last}\n{}",
                    self.options.timeout,
                    logs.join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes node `n` find out that a peer it still counts up is dead. Garage notices a dead
    /// outgoing connection only when a write to it fails, and the first write after the peer
    /// died still succeeds (it only draws the RST); left alone, that happens at the next ping,
    /// up to 15 s later, and until then every request node `n` routes to the dead peer hangs
    /// (an S3 request through it took 9 s in the self-test). `worker get -a` sends an RPC to
    /// every peer, so two of them close the connection. The first hangs on the dead peer,
    /// hence the short bound and the ignored result.
    fn nudge(&self, n: usize) {
        for _ in 0..2 {
            let _ = run_bounded(
                Command::new(&self.binary)
                    .arg("-c")
                    .arg(&self.node(n).config)
                    .args(["worker", "get", "-a"]),
                Duration::from_millis(300),
            );
        }
    }

    fn node_failure(&self, n: usize, what: &str) -> String {
        let node = self.node(n);
        format!(
            "garage node {n} {what}; last lines of {}:\n{}",
            node.log.display(),
            tail(&node.log, 20)
        )
    }

    fn cli_output(&self, n: usize, args: &[&str]) -> Result<Output, String> {
        let node = self.node(n);
        run_bounded(
            Command::new(&self.binary)
                .arg("-c")
                .arg(&node.config)
                .args(args),
            CLI_TIMEOUT,
        )
        .map_err(|e| format!("garage (node {n}) {}: {e}", args.join(" ")))
    }

    /// Runs `garage -c <node n's config> ARGS...` (bounded to 10 s) and returns its stdout, or
    /// an error with its stderr if it exits non-zero. The escape hatch for anything this type
    /// does not wrap.
    pub fn cli(&self, n: usize, args: &[&str]) -> Result<String, String> {
        let out = self.cli_output(n, args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "garage (node {n}) {} failed ({}): {}\n{}",
                args.join(" "),
                describe(out.status),
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            )
            .trim_end()
            .to_string())
        }
    }

    /// A running node to send admin commands through: the cluster commands work from any.
    fn admin_node(&self) -> Result<usize, String> {
        (1..=3)
            .find(|&n| self.is_running(n))
            .ok_or_else(|| "no garage node is running".to_string())
    }

    /// `http://127.0.0.1:PORT`, node `n`'s S3 endpoint. Each node serves the whole cluster, but
    /// only while it runs.
    pub fn endpoint(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}", self.node(n).s3_port)
    }

    /// `http://127.0.0.1:PORT`, node `n`'s admin API; `GET /health` needs no token (200 while
    /// the cluster has quorum, 503 without).
    pub fn admin_endpoint(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}", self.node(n).admin_port)
    }

    /// [`KEY_ID`].
    pub fn key_id(&self) -> &'static str {
        KEY_ID
    }

    /// [`SECRET`].
    pub fn secret(&self) -> &'static str {
        SECRET
    }

    /// [`REGION`] (`"garage"`).
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// The standard AWS variables for a client of node `n`: `AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`. Meant for
    /// `Command::envs` or a builder's config keys; setting them in the test process itself
    /// races with other test threads.
    pub fn env(&self, n: usize) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint(n)),
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Creates bucket `name` and gives the key read, write and owner rights on it. The name
    /// must follow S3's rules (3 to 63 characters of lowercase letters, digits, `-` and `.`).
    /// Fails if it exists: tests sharing a cluster should each use their own bucket.
    pub fn create_bucket(&self, name: &str) -> Result<(), String> {
        let n = self.admin_node()?;
        self.cli(n, &["bucket", "create", name])?;
        self.cli(
            n,
            &[
                "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_ID,
            ],
        )?;
        Ok(())
    }

    /// SIGKILLs node `n` (a crash, not a clean shutdown), waits until it has exited, and then
    /// until every surviving node counts it down. Without that last wait a survivor would
    /// route requests to the dead node for up to 15 s, and each would hang until then (see
    /// the crate doc). Does nothing if it is not running. Fails only if the survivors do not
    /// notice within [`ClusterOptions::timeout`]; the node is dead either way.
    pub fn kill(&mut self, n: usize) -> Result<(), String> {
        self.kill_nodes(&[n])
    }

    /// SIGKILLs every node of `nodes` at once, then waits as [`Cluster::kill`] does, once.
    /// Killing them one after the other would leave the first wait's length (the `garage`
    /// CLI's calls, half a second or more on a loaded machine) between the deaths, during
    /// which the cluster still has its quorum.
    pub fn kill_nodes(&mut self, nodes: &[usize]) -> Result<(), String> {
        let mut killed = false;
        for &n in nodes {
            killed |= self.kill_process(n);
        }
        if !killed {
            return Ok(());
        }
        self.wait_converged()
    }

    /// SIGKILLs node `n` and reaps it; whether it was running.
    fn kill_process(&mut self, n: usize) -> bool {
        self.node(n);
        let slot = self.nodes[n - 1]
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        let Some(mut child) = slot.take() else {
            return false;
        };
        // `Child::kill` is SIGKILL by pid on Unix; it fails only if the daemon was already
        // reaped, and `wait` collects it either way.
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    /// Starts node `n` again with its config and data, has it `node connect` each running
    /// peer, and waits until every running node sees all running nodes up. Fails if it is
    /// already running.
    pub fn restart(&mut self, n: usize) -> Result<(), String> {
        if self.is_running(n) {
            return Err(format!("garage node {n} is already running"));
        }
        self.spawn(n, true)?;
        self.wait_answering(n)?;
        self.check_listening(n)?;
        // Both directions. The restarted node has forgotten its peers. And a peer counts a node
        // up only over a connection it dialled itself: the incoming one from the restarted
        // node does not count, and its own redial waits out a 30 s retry interval after the
        // failed attempt it made when the node died.
        let pairs: Vec<(usize, usize)> = (1..=3)
            .filter(|&m| m != n && self.is_running(m))
            .flat_map(|m| [(n, m), (m, n)])
            .collect();
        self.connect(&pairs)?;
        self.wait_converged()
    }

    /// `node connect` for each (from, to) pair, all at once: each call takes about 0.1 s, most
    /// of it waiting on the handshake.
    fn connect(&self, pairs: &[(usize, usize)]) -> Result<(), String> {
        thread::scope(|scope| {
            let calls: Vec<_> = pairs
                .iter()
                .map(|&(from, to)| {
                    let peer = &self.nodes[to - 1].id;
                    scope.spawn(move || self.cli(from, &["node", "connect", peer]).map(drop))
                })
                .collect();
            calls
                .into_iter()
                .try_for_each(|call| call.join().expect("node connect thread panicked"))
        })
    }

    /// `garage repair --all-nodes --yes tables`: pushes the object metadata a returned node
    /// missed now, instead of at the next anti-entropy pass (every 10 min). Its data blocks
    /// follow 2 × `rpc_timeout_msec` later. The repair runs in the background; this returns
    /// once it is launched.
    pub fn repair_tables(&self) -> Result<(), String> {
        let n = self.admin_node()?;
        self.cli(n, &["repair", "--all-nodes", "--yes", "tables"])
            .map(drop)
    }

    /// Whether node `n`'s daemon is alive (by its process, which unlike `garage health` knows
    /// at once).
    pub fn is_running(&self, n: usize) -> bool {
        let mut slot = self.node(n).child.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut().map(|child| child.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                *slot = None;
                false
            }
            None => false,
        }
    }

    /// Node `n`'s pid while it runs.
    pub fn pid(&self, n: usize) -> Option<u32> {
        if !self.is_running(n) {
            return None;
        }
        let slot = self.node(n).child.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(Child::id)
    }

    /// The cluster directory: `node{1,2,3}/` with `garage.toml`, `server.log`, `meta/`, `data/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Node `n`'s daemon log (stdout and stderr, appended across restarts).
    pub fn log_path(&self, n: usize) -> PathBuf {
        self.node(n).log.clone()
    }

    /// The Garage binary this cluster runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL, not SIGTERM: a clean shutdown takes 2-2.5 s per node and the data is thrown
        // away anyway.
        for n in 1..=3 {
            self.kill_process(n);
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir.path())
            .field(
                "endpoints",
                &(1..=3).map(|n| self.endpoint(n)).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit {code}"),
        None => status.to_string(),
    }
}

fn node_config(
    node_dir: &Path,
    options: &ClusterOptions,
    rpc_secret: &str,
    admin_token: &str,
    (s3, rpc, admin): (u16, u16, u16),
) -> String {
    // Debug formatting quotes and escapes the paths as TOML basic strings need.
    let meta = format!("{:?}", node_dir.join("meta").display().to_string());
    let data = format!("{:?}", node_dir.join("data").display().to_string());
    let rpc_timeout = options
        .rpc_timeout_msec
        .map(|ms| format!("rpc_timeout_msec = {ms}\n"))
        .unwrap_or_default();
    let consistency = options.consistency.as_str();
    format!(
        r#"metadata_dir = {meta}
data_dir = {data}
db_engine = "sqlite"

replication_factor = 3
consistency_mode = "{consistency}"
compression_level = 1
{rpc_timeout}
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{admin_token}"
metrics_token = "{admin_token}"
"#
    )
}

/// Removes cluster directories whose owning process is gone: those of [`shared`] clusters,
/// which are never dropped, and of test processes that were killed.
fn sweep_stale_dirs(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let path = entry.path();
        // No owner file: a cluster still being created, or not ours. Leave it.
        let Ok(owner) = fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        if let Ok(pid) = owner.trim().parse::<u32>() {
            if pid != std::process::id() && !process_alive(pid) {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

/// One cluster for the whole test binary, started on first use. Tests sharing it should each
/// use their own bucket; tests that kill nodes need their own [`Cluster`].
///
/// It is never dropped: its daemons die with the process (parent-death signal, Linux) and its
/// directory is swept by the next cluster start after the process is gone. Panics if it could
/// not start, with the same message in every test that asks.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match SHARED.get_or_init(Cluster::start) {
        Ok(cluster) => cluster,
        Err(e) => panic!("ese-garage: the shared cluster did not start: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings() {
        assert!(is_version_2(
            "garage cargo:2.5.0 [features: bundled-libs, k2v, lmdb, metrics, sqlite]"
        ));
        assert!(is_version_2("garage v2.1.0 [features: k2v]"));
        assert!(is_version_2("garage 2.0.0"));
        assert!(!is_version_2("garage v1.0.1 [features: k2v]"));
        assert!(!is_version_2("garage v12.0.0"));
        assert!(!is_version_2(""));
    }

    #[test]
    fn ports_do_not_overlap_between_nodes() {
        let base = PORT_FLOOR + (PORT_BLOCKS as u16 - 1) * PORT_STRIDE;
        let (_, _, last) = node_ports(base, 3);
        assert!(last < 32_768, "stays below the ephemeral range");
        assert!(node_ports(base, 3).2 < base + PORT_STRIDE);
    }

    #[test]
    fn config_quotes_paths() {
        let text = node_config(
            Path::new("/tmp/a \"b\""),
            &ClusterOptions {
                rpc_timeout_msec: Some(5000),
                ..Default::default()
            },
            "s",
            "t",
            (1, 2, 3),
        );
        assert!(
            text.contains(r#"metadata_dir = "/tmp/a \"b\"/meta""#),
            "{text}"
        );
        assert!(text.contains("rpc_timeout_msec = 5000\n"));
    }
}
