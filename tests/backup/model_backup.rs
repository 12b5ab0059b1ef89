//! Model-based race testing of behaviour.md §1 and §2. A reference model (a plain state
//! machine) says what every call answers in every state. Random programs of up to four
//! concurrent backup clients plus the host's stop_backup / stop_service / term run against a
//! real instance; every history must be explained by some order of the calls that respects
//! real time (linearizability), with each reply exactly the model's. 256 cases in `cargo test`,
//! `PROPTEST_CASES=N` for long runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ese::io::{FaultStorage, StorageRef};
use ese_actors::{BackupBegin, BackupEnd, BackupFile, Engine, Instance, InstanceParams, Term};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Call {
    BeginFull,
    BeginIncremental,
    BeginAtomic,
    AttachInfo,
    OpenDb,
    OpenBad,
    ReadOwn,
    CloseOwn,
    LogInfo,
    Truncate,
    EndNormal,
    EndAbort,
    EndBad,
    // The host's.
    StopBackup,
    StopService,
    TermComplete,
    TermAbrupt,
    /// The moment a term starts tearing down (every other call then gets TermInProgress);
    /// the term's reply comes at its end. Added by the checker, never sent.
    TermBegins,
}

/// A reply as the model sees it: success (opens carry their handle) or an ESE code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Reply {
    Ok,
    Opened(u64),
    Err(i32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Backup {
    full: bool,
    logs_phase: bool,
    stop: bool,
    open: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Model {
    terminated: bool,
    terminating: bool,
    stop_service: bool,
    not_allowed: bool,
    backup: Option<Backup>,
    /// Handles are never reused within an instance's life (behaviour.md §2.2): the counter
    /// outlives each backup.
    next_handle: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            terminated: false,
            terminating: false,
            stop_service: false,
            not_allowed: false,
            backup: None,
            next_handle: 1,
        }
    }

    fn gate(&self) -> Result<(), i32> {
        if self.terminated {
            return Err(-1115);
        }
        if self.stop_service {
            return Err(-1329);
        }
        if self.terminating {
            return Err(-1000);
        }
        Ok(())
    }

    /// The reply to `call` by a client whose last opened handle is `own`, and the next state.
    fn step(&self, call: Call, own: Option<u64>) -> (Reply, Model) {
        let mut m = self.clone();
        let r = m.apply(call, own);
        (r, m)
    }

    fn apply(&mut self, call: Call, own: Option<u64>) -> Reply {
        use Reply::*;
        match call {
            Call::StopBackup => {
                if self.terminated {
                    return Err(-1115);
                }
                if let Some(b) = &mut self.backup {
                    b.stop = true;
                }
                return Ok;
            }
            Call::StopService => {
                if self.terminated {
                    return Err(-1115);
                }
                self.stop_service = true;
                return Ok;
            }
            Call::TermBegins => {
                if self.terminated || self.terminating {
                    return Err(0);
                }
                self.terminating = true;
                return Ok;
            }
            Call::TermComplete | Call::TermAbrupt => {
                if self.terminated {
                    return Err(-1115);
                }
                // A term that ran (Ok or -505) was split by the checker: its begin came first.
                if !self.terminating {
                    return Err(-1000);
                }
                self.terminating = false;
                if self.backup.is_some() && call == Call::TermComplete {
                    self.not_allowed = true;
                    return Err(-505);
                }
                self.backup = None;
                self.terminated = true;
                return Ok;
            }
            _ => {}
        }
        if let Some(e) = self.gate().err() {
            return Reply::Err(e);
        }
        if call == Call::EndBad {
            return Err(-1003);
        }
        if matches!(
            call,
            Call::BeginFull | Call::BeginIncremental | Call::BeginAtomic
        ) {
            if self.not_allowed {
                return Err(-523);
            }
            if call == Call::BeginAtomic {
                return Err(-900);
            }
            if self.backup.is_some() {
                return Err(-505);
            }
            if call == Call::BeginIncremental {
                return Err(-560); // no full backup ever completes in these programs
            }
            self.backup = Some(Backup {
                full: true,
                logs_phase: false,
                stop: false,
                open: vec![],
            });
            return Ok;
        }
        let Some(b) = self.backup.as_mut() else {
            return Err(-520);
        };
        match call {
            Call::CloseOwn => match own {
                Some(h) if b.open.contains(&h) => {
                    b.open.retain(|x| *x != h);
                    Ok
                }
                _ => Err(-1003),
            },
            Call::EndAbort => {
                self.backup = None;
                Ok
            }
            Call::EndNormal => {
                let stop = b.stop;
                self.backup = None;
                // No client reads the logs here, so a normal end is never complete.
                Err(if stop { -801 } else { -800 })
            }
            _ if b.stop => Err(-801),
            Call::AttachInfo => {
                if b.full {
                    Ok
                } else {
                    Err(-521)
                }
            }
            Call::OpenDb | Call::OpenBad => {
                if !b.open.is_empty() {
                    return Err(-1011);
                }
                if call == Call::OpenBad {
                    if b.logs_phase {
                        self.backup = None;
                        return Err(-1003);
                    }
                    return Err(-1203);
                }
                if b.logs_phase {
                    self.backup = None;
                    return Err(-521);
                }
                let h = self.next_handle;
                self.next_handle += 1;
                b.open.push(h);
                Opened(h)
            }
            Call::ReadOwn => match own {
                Some(h) if b.open.contains(&h) => Ok,
                _ => Err(-1003),
            },
            Call::LogInfo => {
                if !b.open.is_empty() {
                    return Err(-521);
                }
                b.logs_phase = true;
                Ok
            }
            Call::Truncate => {
                if !b.open.is_empty() || !b.logs_phase {
                    return Err(-521);
                }
                Err(-616)
            }
            _ => unreachable!(),
        }
    }
}

/// One call as it happened.
#[derive(Clone, Debug)]
struct Event {
    /// Which client made the call (99: the host); shown when a history is refused.
    #[allow(dead_code)]
    client: usize,
    call: Call,
    /// The handle the client used (its last opened one).
    own: Option<u64>,
    reply: Reply,
    start: Instant,
    end: Instant,
}

fn to_reply<T>(r: ese::Result<T>) -> Reply {
    match r {
        Ok(_) => Reply::Ok,
        Err(e) => Reply::Err(e.code()),
    }
}

async fn perform(inst: &Instance, db: &std::path::Path, call: Call, own: Option<u64>) -> Reply {
    let bad = || BackupFile::from_raw(999_999);
    match call {
        Call::BeginFull => to_reply(inst.begin_external_backup(BackupBegin::empty()).await),
        Call::BeginIncremental => {
            to_reply(inst.begin_external_backup(BackupBegin::INCREMENTAL).await)
        }
        Call::BeginAtomic => to_reply(inst.begin_external_backup(BackupBegin::ATOMIC).await),
        Call::AttachInfo => to_reply(inst.get_attach_info().await),
        Call::OpenDb => match inst.open_file(db).await {
            Ok((h, _)) => Reply::Opened(h.raw()),
            Err(e) => Reply::Err(e.code()),
        },
        Call::OpenBad => to_reply(inst.open_file(db.with_file_name("nope.edb")).await),
        Call::ReadOwn => to_reply(
            inst.read_file(own.map_or_else(bad, BackupFile::from_raw), 64 * 1024)
                .await,
        ),
        Call::CloseOwn => to_reply(
            inst.close_file(own.map_or_else(bad, BackupFile::from_raw))
                .await,
        ),
        Call::LogInfo => to_reply(inst.get_log_info().await),
        Call::Truncate => to_reply(inst.truncate_log().await),
        Call::EndNormal => to_reply(inst.end_external_backup(BackupEnd::NORMAL).await),
        Call::EndAbort => to_reply(inst.end_external_backup(BackupEnd::ABORT).await),
        Call::EndBad => to_reply(
            inst.end_external_backup(BackupEnd::NORMAL | BackupEnd::ABORT)
                .await,
        ),
        Call::StopBackup => to_reply(inst.stop_backup().await),
        Call::StopService => to_reply(inst.stop_service().await),
        Call::TermComplete => to_reply(inst.term(Term::COMPLETE).await),
        Call::TermAbrupt => to_reply(inst.term(Term::ABRUPT).await),
        Call::TermBegins => unreachable!("added by the checker"),
    }
}

/// Whether some real-time-respecting order of `events` replays through the model exactly.
fn linearizable(events: &[Event]) -> bool {
    fn search(
        events: &[Event],
        done: &mut Vec<bool>,
        m: &Model,
        seen: &mut HashSet<(Vec<bool>, Model)>,
    ) -> bool {
        if done.iter().all(|d| *d) {
            return true;
        }
        if !seen.insert((done.clone(), m.clone())) {
            return false;
        }
        // The earliest end among pending calls bounds which calls may go next.
        let min_end = events
            .iter()
            .zip(done.iter())
            .filter(|(_, d)| !**d)
            .map(|(e, _)| e.end)
            .min()
            .unwrap();
        for i in 0..events.len() {
            if done[i] || events[i].start > min_end {
                continue;
            }
            let e = &events[i];
            let (r, next) = m.step(e.call, e.own);
            if r == e.reply {
                done[i] = true;
                if search(events, done, &next, seen) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    // A term that ran is two steps: it begins (others get TermInProgress), then it answers.
    let mut all = Vec::with_capacity(events.len() + 2);
    for e in events {
        let ran = matches!(e.call, Call::TermComplete | Call::TermAbrupt)
            && matches!(e.reply, Reply::Ok | Reply::Err(-505));
        if ran {
            all.push(Event {
                call: Call::TermBegins,
                reply: Reply::Ok,
                ..e.clone()
            });
        }
        all.push(e.clone());
    }
    let mut done = vec![false; all.len()];
    search(&all, &mut done, &Model::new(), &mut HashSet::new())
}

fn client_call() -> impl Strategy<Value = Call> {
    prop_oneof![
        3 => Just(Call::BeginFull),
        1 => Just(Call::BeginIncremental),
        1 => Just(Call::BeginAtomic),
        1 => Just(Call::AttachInfo),
        3 => Just(Call::OpenDb),
        1 => Just(Call::OpenBad),
        3 => Just(Call::ReadOwn),
        2 => Just(Call::CloseOwn),
        2 => Just(Call::LogInfo),
        1 => Just(Call::Truncate),
        1 => Just(Call::EndNormal),
        1 => Just(Call::EndAbort),
        1 => Just(Call::EndBad),
    ]
}

fn host_call() -> impl Strategy<Value = Call> {
    prop_oneof![
        Just(Call::StopBackup),
        Just(Call::StopService),
        Just(Call::TermComplete),
        Just(Call::TermAbrupt)
    ]
}

async fn run_case(
    storage: StorageRef,
    clients: Vec<Vec<Call>>,
    host: Vec<(u64, Call)>,
    case: u64,
) -> Vec<Event> {
    let engine = Engine::new();
    let dir = format!("/m/{case}");
    let params = InstanceParams::new(&dir)
        .log_file_size(64 * 1024)
        .page_size(4096)
        .cache_pages(64);
    let inst = engine
        .create_instance_on("m", params, storage)
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = std::path::PathBuf::from(format!("{dir}/db.edb"));
    let id = inst.create_database(&db).await.unwrap();
    let t = inst.create_table(id, "t").await.unwrap();
    let s = inst.begin_session().await.unwrap();
    for i in 0..40u32 {
        s.put(t, &i.to_be_bytes(), &[1u8; 200]).await.unwrap();
    }
    drop(s);
    let mut tasks = Vec::new();
    for (c, calls) in clients.into_iter().enumerate() {
        let (inst, db) = (inst.clone(), db.clone());
        tasks.push(tokio::spawn(async move {
            let mut own = None;
            let mut events = Vec::new();
            for call in calls {
                let start = Instant::now();
                let reply = perform(&inst, &db, call, own).await;
                events.push(Event {
                    client: c,
                    call,
                    own,
                    reply,
                    start,
                    end: Instant::now(),
                });
                if let Reply::Opened(h) = reply {
                    own = Some(h);
                }
            }
            events
        }));
    }
    let host_task = {
        let (inst, db) = (inst.clone(), db.clone());
        tokio::spawn(async move {
            let mut events = Vec::new();
            for (delay, call) in host {
                tokio::time::sleep(Duration::from_micros(delay)).await;
                let start = Instant::now();
                let reply = perform(&inst, &db, call, None).await;
                events.push(Event {
                    client: 99,
                    call,
                    own: None,
                    reply,
                    start,
                    end: Instant::now(),
                });
            }
            events
        })
    };
    let mut events = Vec::new();
    for t in tasks {
        events.extend(t.await.unwrap());
    }
    events.extend(host_task.await.unwrap());
    // Leave nothing running.
    let _ = inst.term(Term::ABRUPT).await;
    events
}

proptest! {
    // The regressions are kept beside this file, `model_backup.proptest-regressions`: proptest's
    // default (`SourceParallel`) would look for them in `tests/proptest-regressions/`, as this
    // file's directory holds the binary's `main.rs`.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_history_is_explained_by_the_model(
        clients in prop::collection::vec(prop::collection::vec(client_call(), 1..7), 1..=4),
        host in prop::collection::vec((0u64..1500, host_call()), 0..=2),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let storage: StorageRef = Arc::new(FaultStorage::new());
        let case = rand::random::<u64>();
        let events = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), run_case(storage, clients, host, case)).await.expect("a case hung")
        });
        prop_assert!(linearizable(&events), "no order of the calls explains these replies: {:#?}", events);
    }
}

#[test]
fn the_model_rejects_a_wrong_history() {
    // Sanity: a reply behaviour.md does not allow is caught.
    let t = Instant::now();
    let ev = |call, reply| Event {
        client: 0,
        call,
        own: None,
        reply,
        start: t,
        end: t,
    };
    assert!(linearizable(&[
        ev(Call::BeginFull, Reply::Ok),
        ev(Call::BeginFull, Reply::Err(-505))
    ]));
    assert!(!linearizable(&[
        ev(Call::BeginFull, Reply::Ok),
        ev(Call::BeginFull, Reply::Ok)
    ]));
    assert!(!linearizable(&[ev(Call::AttachInfo, Reply::Ok)]));
}
