//! Round trip of one typed message (`GetStats`, answered from the instance's memory):
//! through the adapter from an actix actor, against the direct `Instance` call from a tokio
//! task, in one run, with plain actix round trips for scale. Prints p50 and p99 per call
//! (one caller, sequential) and throughput (`CALLERS` callers at once).
//!
//! `cargo bench -p ese-actix --bench roundtrip`

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, ResponseFuture};
use ese_actix::{Ask, AskExt, InstanceActor, InstanceRuntime};
use ese_actors::messages::GetStats;
use ese_actors::{Engine, Instance, InstanceParams, Term};
use std::rc::Rc;

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;
const CALLERS: usize = 16;
const THROUGHPUT_FOR: Duration = Duration::from_secs(1);

/// p50 and p99 of one caller's round trips, and requests per second with `CALLERS` callers.
struct Figure {
    what: &'static str,
    p50: Duration,
    p99: Duration,
    per_s: f64,
}

/// A boxed round trip, for callers that hold several kinds of target.
type Call = Pin<Box<dyn Future<Output = ()>>>;

/// The latencies of `n` sequential calls made by `call`, after a warm-up, sorted.
async fn latencies<F: Future<Output = ()>>(mut call: impl FnMut() -> F) -> Vec<Duration> {
    for _ in 0..WARMUP {
        call().await;
    }
    let mut v = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        call().await;
        v.push(t.elapsed());
    }
    v.sort();
    v
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Calls per second of `CALLERS` loops of `call`, each started by `spawn`.
async fn throughput<F, S, J>(call: F, spawn: S) -> f64
where
    F: Fn() -> Call + Clone + 'static,
    S: Fn(Pin<Box<dyn Future<Output = ()>>>) -> J,
    J: Future,
{
    let stop = Rc::new(AtomicBool::new(false));
    let done = Rc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for _ in 0..CALLERS {
        let (call, stop, done) = (call.clone(), stop.clone(), done.clone());
        loops.push(spawn(Box::pin(async move {
            while !stop.load(Ordering::Relaxed) {
                call().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        })));
    }
    let t = Instant::now();
    tokio::time::sleep(THROUGHPUT_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    for l in loops {
        l.await;
    }
    n as f64 / secs
}

/// The direct call from a tokio task on `rt`, the runtime the instance lives on.
fn direct(rt: &InstanceRuntime, inst: &Instance) -> Figure {
    let inst = inst.clone();
    let (lat, per_s) = rt.handle().block_on(async move {
        let i = inst.clone();
        let lat = tokio::spawn(async move {
            latencies(|| {
                let i = i.clone();
                async move {
                    i.stats().await.expect("stats");
                }
            })
            .await
        })
        .await
        .expect("task");
        let local = tokio::task::LocalSet::new();
        let per_s = local
            .run_until(throughput(
                move || {
                    let i = inst.clone();
                    Box::pin(async move {
                        i.stats().await.expect("stats");
                    }) as Call
                },
                |f| tokio::task::spawn_local(f),
            ))
            .await;
        (lat, per_s)
    });
    figure("direct Instance call, tokio task", &lat, per_s)
}

fn figure(what: &'static str, lat: &[Duration], per_s: f64) -> Figure {
    Figure {
        what,
        p50: quantile(lat, 0.5),
        p99: quantile(lat, 0.99),
        per_s,
    }
}

/// A plain actix actor that answers at once: one actix hop, for scale.
struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

struct Ping;

impl actix::Message for Ping {
    type Result = u64;
}

impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        1
    }
}

/// The caller: an actix actor whose handler makes the round trips it is asked for.
struct Caller;

impl Actor for Caller {
    type Context = Context<Self>;
}

/// Measure the round trips of `call`, from this actor's handler.
struct Measure(Rc<dyn Fn() -> Call>);

impl actix::Message for Measure {
    type Result = (Vec<Duration>, f64);
}

impl Handler<Measure> for Caller {
    type Result = ResponseFuture<(Vec<Duration>, f64)>;

    fn handle(&mut self, m: Measure, _: &mut Context<Self>) -> Self::Result {
        let call = m.0;
        Box::pin(async move {
            let c = call.clone();
            let lat = latencies(|| c()).await;
            let per_s = throughput(move || call(), |f| actix::spawn(f)).await;
            (lat, per_s)
        })
    }
}

// `Measure` carries an `Rc`: it is only ever sent within the one System thread.
unsafe impl Send for Measure {}

/// The actix figures, from a `Caller` actor on this thread's System: the adapter (both
/// forms) and a plain actix hop.
fn from_actix(rt: &InstanceRuntime, inst: &Instance) -> Vec<Figure> {
    let system = actix::System::new();
    let (rt, inst) = (rt.clone(), inst.clone());
    let (rt2, inst2) = (rt.clone(), inst.clone());
    system.block_on(async move {
        let caller = Caller.start();
        let adapter = InstanceActor::new(inst, rt).start();
        let echo = Echo.start();
        let echo2 = echo.clone();
        let mut out = Vec::new();
        let a = adapter.clone();
        let send: Rc<dyn Fn() -> Call> = Rc::new(move || {
            let a = a.clone();
            Box::pin(async move {
                a.send(Ask(GetStats {}))
                    .await
                    .expect("adapter")
                    .expect("stats");
            })
        });
        let (lat, per_s) = caller.send(Measure(send)).await.expect("caller");
        out.push(figure(
            "adapter from an actix actor, send(Ask)",
            &lat,
            per_s,
        ));
        let a = adapter.clone();
        let ask: Rc<dyn Fn() -> Call> = Rc::new(move || {
            let a = a.clone();
            Box::pin(async move {
                a.ask(GetStats {}).await.expect("adapter").expect("stats");
            })
        });
        let (lat, per_s) = caller.send(Measure(ask)).await.expect("caller");
        out.push(figure("adapter from an actix actor, ask", &lat, per_s));
        let ping: Rc<dyn Fn() -> Call> = Rc::new(move || {
            let e = echo.clone();
            Box::pin(async move {
                e.send(Ping).await.expect("echo");
            })
        });
        let (lat, per_s) = caller.send(Measure(ping)).await.expect("caller");
        out.push(figure(
            "one actix hop: actix actor to actix actor",
            &lat,
            per_s,
        ));
        let i = inst2.clone();
        let plain: Rc<dyn Fn() -> Call> = Rc::new(move || {
            let i = i.clone();
            Box::pin(async move {
                i.stats().await.expect("stats");
            })
        });
        let (lat, per_s) = caller.send(Measure(plain)).await.expect("caller");
        out.push(figure(
            "direct Instance call from an actix actor",
            &lat,
            per_s,
        ));
        // A tokio task on the instance's runtime calling an actix actor on this thread: the
        // hop of an actix actor embedded in a tokio host.
        let e = echo2.clone();
        let lat = rt2
            .handle()
            .spawn(async move {
                latencies(|| {
                    let e = e.clone();
                    async move {
                        e.send(Ping).await.expect("echo");
                    }
                })
                .await
            })
            .await
            .expect("task");
        out.push(figure(
            "tokio task to an actix actor on another thread",
            &lat,
            f64::NAN,
        ));
        out
    })
}

/// The table, then what the adapter adds: over the direct call from a tokio task, over the
/// direct call from the same actix actor, and one actix hop for scale.
fn print_figures(figures: &[Figure]) {
    println!(
        "{:<50} {:>8} {:>8} {:>16}",
        "round trip of GetStats",
        "p50 µs",
        "p99 µs",
        format!("{CALLERS} callers/s")
    );
    for f in figures {
        let per_s = match f.per_s.is_nan() {
            true => "-".to_string(),
            false => format!("{:.0}", f.per_s),
        };
        println!(
            "{:<50} {:>8.2} {:>8.2} {:>16}",
            f.what,
            us(f.p50),
            us(f.p99),
            per_s
        );
    }
    let [direct, send, _ask, hop, from_actix, tokio_hop] = figures else {
        return;
    };
    println!(
        "adapter (send) minus direct call from a tokio task: {:.2} µs at p50; \
         minus direct call from the same actix actor: {:.2} µs; \
         one actix hop: {:.2} µs from a tokio task, {:.2} µs within a System",
        us(send.p50) - us(direct.p50),
        us(send.p50) - us(from_actix.p50),
        us(tokio_hop.p50),
        us(hop.p50)
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // The instance's runtime: one worker thread, so the direct caller shares it with the
    // instance, as a task on a host's runtime does.
    let rt = InstanceRuntime::dedicated(1)?;
    let inst = rt.handle().block_on(async {
        let inst = rt
            .create_instance(&Engine::new(), "bench", InstanceParams::new(dir.path()))
            .await?;
        inst.init().await?;
        Ok::<_, ese_actors::Error>(inst)
    })?;
    let mut figures = vec![direct(&rt, &inst)];
    figures.extend(from_actix(&rt, &inst));
    print_figures(&figures);
    rt.handle().block_on(inst.term(Term::empty()))?;
    Ok(())
}
