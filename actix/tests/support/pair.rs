//! Two instances given the same calls in lockstep: one through its `Instance` methods, one
//! through the adapter. Each step asserts that both answers have the same shape, or the same
//! ESE error code.

use std::future::Future;

use actix::{Actor, Addr};
use ese_actix::{Ask, Forward, InstanceActor, InstanceRuntime};
use ese_actors::{Engine, Instance, Result};

use super::shape::{outcome, Shape};
use super::{gated, instance_on, GatedStorage};

/// The direct instance, the adapted one and their storages (index 0 direct, 1 adapter).
pub struct Pair {
    pub direct: Instance,
    pub adapted: Instance,
    pub addr: Addr<InstanceActor>,
    pub gates: [GatedStorage; 2],
    pub rt: InstanceRuntime,
    /// Every step's outcome, printed when a test fails.
    pub transcript: Vec<String>,
}

impl Pair {
    /// Two fresh instances (each on its own engine and in-memory file system, with the same
    /// paths) on one dedicated runtime, the second behind an adapter on this actix thread.
    pub async fn new() -> Pair {
        let rt = InstanceRuntime::dedicated(2).expect("runtime");
        let gates = [gated(), gated()];
        let direct = instance_on(&rt, &Engine::new(), "direct", gates[0].storage()).await;
        let adapted = instance_on(&rt, &Engine::new(), "adapted", gates[1].storage()).await;
        let addr = InstanceActor::new(adapted.clone(), rt.clone()).start();
        Pair {
            direct,
            adapted,
            addr,
            gates,
            rt,
            transcript: Vec::new(),
        }
    }

    /// One step: `direct` on the direct instance, `msg` through the adapter. Asserts that
    /// both answers agree and returns the adapter's.
    pub async fn same<M, F, Fut>(&mut self, what: &str, direct: F, msg: M) -> Result<M::Reply>
    where
        M: Forward,
        M::Reply: Shape,
        F: FnOnce(Instance) -> Fut,
        Fut: Future<Output = Result<M::Reply>>,
    {
        let d = direct(self.direct.clone()).await;
        let a = self.via_adapter(msg).await;
        self.agree(what, &d, &a);
        a
    }

    /// A message with no method of its own: `Instance::ask` against the adapter.
    pub async fn ask<M>(&mut self, what: &str, msg: M) -> Result<M::Reply>
    where
        M: Forward + Clone,
        M::Reply: Shape,
    {
        let m = msg.clone();
        self.same(what, |i| async move { i.ask(m).await }, msg)
            .await
    }

    /// [`Pair::same`], asserting the error code too.
    pub async fn fails<M, F, Fut>(&mut self, what: &str, code: i32, direct: F, msg: M)
    where
        M: Forward,
        M::Reply: Shape,
        F: FnOnce(Instance) -> Fut,
        Fut: Future<Output = Result<M::Reply>>,
    {
        let r = self.same(what, direct, msg).await;
        self.expect_code(what, &r, code);
    }

    /// Asserts an answer is the error `code`.
    pub fn expect_code<R: Shape>(&self, what: &str, r: &Result<R>, code: i32) {
        let got = r.as_ref().err().map(|e| e.code());
        assert_eq!(got, Some(code), "{what}: {}\n{}", outcome(r), self.log());
    }

    /// Sends `msg` through the adapter; a closed adapter fails the test.
    pub async fn via_adapter<M: Forward>(&self, msg: M) -> Result<M::Reply> {
        self.addr.send(Ask(msg)).await.expect("the adapter answers")
    }

    /// Records a step and asserts the two answers agree.
    pub fn agree<R: Shape>(&mut self, what: &str, d: &Result<R>, a: &Result<R>) {
        let (d, a) = (outcome(d), outcome(a));
        self.transcript.push(format!("{what}: {a}"));
        assert_eq!(d, a, "{what}: direct vs adapter\n{}", self.log());
    }

    fn log(&self) -> String {
        self.transcript.join("\n")
    }
}

/// A backup read held on disk on both sides (the latches of both storages), with the tasks
/// that await the two answers.
pub struct HeldReads {
    latches: [super::ReleaseOnDrop; 2],
    direct: tokio::task::JoinHandle<Result<bytes::Bytes>>,
    adapter:
        tokio::task::JoinHandle<std::result::Result<Result<bytes::Bytes>, actix::MailboxError>>,
}

impl HeldReads {
    /// Releases both reads and awaits their answers (direct, adapter).
    pub async fn finish(self) -> (Result<bytes::Bytes>, Result<bytes::Bytes>) {
        for l in &self.latches {
            l.0.release();
        }
        let d = self.direct.await.expect("direct read task");
        let a = self.adapter.await.expect("adapter read task");
        (d, a.expect("the adapter answers"))
    }
}

impl Pair {
    /// Starts `read_file(file, max_len)` on both sides, each held at a latch on its database
    /// file, and returns once both are on disk. Later reads pass.
    pub async fn held_reads(&self, file: ese_actors::BackupFile, max_len: usize) -> HeldReads {
        let latches = [0, 1].map(|i| self.gates[i].latch_reads("db.edb"));
        let inst = self.direct.clone();
        let direct = tokio::spawn(async move { inst.read_file(file, max_len).await });
        let msg = ese_actors::messages::ReadFile { file, max_len };
        let adapter = actix::spawn(self.addr.send(Ask(msg)));
        for l in &latches {
            l.arrived_at_least(1).await;
        }
        for g in &self.gates {
            g.clear();
        }
        HeldReads {
            latches: latches.map(super::ReleaseOnDrop),
            direct,
            adapter,
        }
    }

    /// Sends the same call on both sides, each again and again, until it answers `code`
    /// (for at most 10 s): for a state the other side's task brings about (a term that
    /// waits for a read).
    pub async fn until_code<M, F, Fut>(
        &mut self,
        what: &str,
        code: i32,
        direct: F,
        msg: impl Fn() -> M,
    ) where
        M: Forward,
        M::Reply: Shape,
        F: Fn(Instance) -> Fut,
        Fut: Future<Output = Result<M::Reply>>,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut d = direct(self.direct.clone()).await;
        while d.as_ref().err().map(|e| e.code()) != Some(code)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            d = direct(self.direct.clone()).await;
        }
        let mut a = self.via_adapter(msg()).await;
        while a.as_ref().err().map(|e| e.code()) != Some(code)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            a = self.via_adapter(msg()).await;
        }
        self.agree(what, &d, &a);
        self.expect_code(what, &a, code);
    }
}
