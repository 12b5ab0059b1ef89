//! [`InstanceActor`]: an instance behind an actix `Addr`, and [`Ask`], the actix message that
//! carries any typed message of the instance to it.

use std::future::Future;

use actix::{Actor, Context, Handler, ResponseFuture};
use ese_actors::{Instance, Result};
use tokio::sync::oneshot;

use crate::forward::Forward;
use crate::forwarding::Forwarding;
use crate::runtime::{gone, InstanceRuntime};

/// The adapter's actix mailbox depth for `send` (actix's default is 16): as deep as the
/// instance's own mailbox, whose bound is the back-pressure that matters.
const MAILBOX: usize = 1024;

/// An actix actor that owns an [`Instance`] handle and answers every typed message of
/// [`ese_actors::messages`], sent as [`Ask`], with the `Result` the `Instance` method of the
/// same name gives: `addr.send(Ask(EndBackup { grbit })).await`.
///
/// **Forwarded at once.** Its handler puts the message into the instance's mailbox before it
/// returns, which keeps the order the adapter took messages in. A message the adapter took
/// is then served and its effect lands whatever happens on the actix side: a caller that
/// drops its future, or an actix thread that stops before the answer comes (the rest of the
/// forwarding, e.g. a wait for room in a full mailbox, then finishes on the instance's
/// runtime).
///
/// **Before the adapter takes it**, actix's own rule applies: actix skips a message sent with
/// `Addr::send` whose caller dropped the future while the message still waited in the
/// adapter's actix mailbox (the instance never sees it). [`AskExt::ask`](crate::AskExt::ask)
/// closes that gap: it sends without an actix reply channel, so the message is always
/// handed on. Use it for what must land whatever the caller does (`EndBackup`, `StopService`,
/// `Term`).
///
/// **Runtimes.** The adapter runs on any actix arbiter (an actix `System`, an actix-web
/// worker); it awaits each answer there, so the instance's reply wakes the actix thread
/// directly. The instance's task lives on the [`InstanceRuntime`] given to
/// [`InstanceActor::new`], never on the actix thread: an actix-web worker that stops takes
/// its adapters with it, not the instance, which keeps answering through another adapter
/// or its `Instance` handle.
#[derive(Debug)]
pub struct InstanceActor {
    inst: Instance,
    rt: InstanceRuntime,
    /// Set by [`InstanceActor::start_in_thread`]: the adapter's `System` is its own, and it
    /// stops with the adapter.
    pub(crate) owns_system: bool,
}

impl InstanceActor {
    /// An adapter for `inst`, whose task lives on `rt` (create it with
    /// [`InstanceRuntime::create_instance`]). Start it with `Actor::start` on an actix
    /// arbiter, or with [`InstanceActor::start_in_thread`] from a tokio host.
    pub fn new(inst: Instance, rt: InstanceRuntime) -> InstanceActor {
        InstanceActor {
            inst,
            rt,
            owns_system: false,
        }
    }

    /// The instance's handle (for calls that are not one message, run them on
    /// [`InstanceActor::runtime`]).
    pub fn instance(&self) -> &Instance {
        &self.inst
    }

    /// The runtime the instance lives on.
    pub fn runtime(&self) -> &InstanceRuntime {
        &self.rt
    }

    /// Hands `msg` to the instance now: when this returns the message is in the instance's
    /// mailbox, or waits in order for room in it (or, for `term` and `begin_external_backup`,
    /// for a dropped backup's cleanup, as their methods do). The returned future answers it;
    /// dropped before its end, it finishes on the instance's runtime.
    pub(crate) fn forward<M: Forward>(
        &self,
        msg: M,
    ) -> Forwarding<impl Future<Output = Result<M::Reply>> + Send + 'static> {
        Forwarding::start(msg.forward(self.inst.clone()), self.rt.handle())
    }

    /// [`InstanceActor::forward`], with the answer sent into `reply`, on the actix thread or,
    /// if that stops first, on the instance's runtime.
    pub(crate) fn forward_to<M: Forward>(&self, msg: M, reply: oneshot::Sender<Result<M::Reply>>) {
        let answer = AnswerOnDrop(Some(reply));
        let work = msg.forward(self.inst.clone());
        let task = Forwarding::start(async move { answer.send(work.await) }, self.rt.handle());
        actix::spawn(task);
    }
}

impl Actor for InstanceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if self.owns_system {
            actix::System::current().stop();
        }
    }
}

/// Any typed message of the instance, as an actix message for [`InstanceActor`]. Its answer
/// is the `Result` the `Instance` method gives:
///
/// ```no_run
/// # async fn f(addr: actix::Addr<ese_actix::InstanceActor>) -> Result<(), Box<dyn std::error::Error>> {
/// use ese_actix::Ask;
/// use ese_actors::messages::{BeginBackup, EndBackup};
/// use ese_actors::{BackupBegin, BackupEnd};
///
/// addr.send(Ask(BeginBackup { grbit: BackupBegin::empty() })).await??;
/// // ... stream the files ...
/// addr.send(Ask(EndBackup { grbit: BackupEnd::ABORT })).await??;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Ask<M>(pub M);

impl<M: Forward> actix::Message for Ask<M> {
    type Result = Result<M::Reply>;
}

impl<M: Forward> Handler<Ask<M>> for InstanceActor {
    type Result = ResponseFuture<Result<M::Reply>>;

    fn handle(&mut self, Ask(msg): Ask<M>, _ctx: &mut Context<Self>) -> Self::Result {
        Box::pin(self.forward(msg))
    }
}

/// Where a forwarded message's answer goes. Dropped unanswered (the rest of its forwarding
/// never ran because the instance's runtime is shut down), it answers `InvalidInstance`, so
/// no caller waits for an answer that cannot come.
struct AnswerOnDrop<T>(Option<oneshot::Sender<Result<T>>>);

impl<T> AnswerOnDrop<T> {
    fn send(mut self, r: Result<T>) {
        if let Some(tx) = self.0.take() {
            // A caller that stopped waiting has dropped the receiver: nothing to tell.
            let _ = tx.send(r);
        }
    }
}

impl<T> Drop for AnswerOnDrop<T> {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Err(gone("the forwarding was dropped unfinished")));
        }
    }
}
