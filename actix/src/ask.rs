//! [`AskExt::ask`]: the send that no dropped future can cancel.
//!
//! actix's `Addr::send` gives the actor a reply channel, and actix skips a message whose
//! reply channel has no receiver any more when the actor comes to it: a caller that drops its
//! future (a timeout, a cancelled request) can make a sent `EndBackup` vanish. `ask` sends
//! with `do_send`, which has no actix reply channel, and carries its own: the adapter always
//! takes the message and forwards it, and the caller awaits the answer or walks away.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::{Addr, Context, Handler, MailboxError};
use ese_actors::Result;
use tokio::sync::oneshot;

use crate::actor::InstanceActor;
use crate::forward::Forward;

/// `ask` on an adapter's address.
pub trait AskExt {
    /// Sends `msg` to the adapter so that it is forwarded to the instance even if the
    /// returned future is dropped at once; the future answers what `send(Ask(msg))` would.
    /// Like `do_send`, it does not wait for room in the adapter's actix mailbox.
    fn ask<M: Forward>(&self, msg: M) -> Answer<M::Reply>;
}

impl AskExt for Addr<InstanceActor> {
    fn ask<M: Forward>(&self, msg: M) -> Answer<M::Reply> {
        let (reply, rx) = oneshot::channel();
        self.do_send(Deliver { msg, reply });
        Answer(rx)
    }
}

/// The answer of [`AskExt::ask`]: the instance's `Result`, or `MailboxError::Closed` if the
/// adapter had stopped before it took the message.
#[derive(Debug)]
#[must_use = "the message is delivered anyway; await this for its answer"]
pub struct Answer<T>(oneshot::Receiver<Result<T>>);

impl<T> Future for Answer<T> {
    type Output = std::result::Result<Result<T>, MailboxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| MailboxError::Closed))
    }
}

/// The actix message of [`AskExt::ask`]: a typed message with its own reply channel.
#[derive(Debug)]
pub struct Deliver<M: Forward> {
    msg: M,
    reply: oneshot::Sender<Result<M::Reply>>,
}

impl<M: Forward> actix::Message for Deliver<M> {
    type Result = ();
}

impl<M: Forward> Handler<Deliver<M>> for InstanceActor {
    type Result = ();

    fn handle(&mut self, d: Deliver<M>, _ctx: &mut Context<Self>) {
        self.forward_to(d.msg, d.reply);
    }
}
