//! [`Forwarding`]: a forwarded message's future, which the instance's runtime finishes if
//! the actix thread drops it first.
//!
//! The adapter polls it once in its handler, which puts the message into the instance's
//! mailbox in the order the adapter took messages. Then it normally runs to its end on the
//! actix thread, so the instance's answer wakes that thread directly, with no task in
//! between. If the actix thread drops it before its end (its arbiter stops: an actix-web
//! worker shutting down), the rest moves to a task on the instance's runtime, so a message
//! still waiting for room in a full mailbox is delivered all the same.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::runtime::Handle;

/// A future of a forwarded message: finishes on `rt` if dropped before its end.
pub(crate) struct Forwarding<F: Future + Send + 'static> {
    fut: Option<Pin<Box<F>>>,
    /// The output of a first poll that was already ready.
    out: Option<F::Output>,
    rt: Handle,
}

// Never pinned in place: the future is boxed, and the output is only ever moved out.
impl<F: Future + Send + 'static> Unpin for Forwarding<F> {}

impl<F: Future + Send + 'static> Forwarding<F> {
    /// Starts `fut` now: its first poll runs here, inside `rt`'s context.
    pub(crate) fn start(fut: F, rt: &Handle) -> Forwarding<F> {
        let mut me = Forwarding {
            fut: Some(Box::pin(fut)),
            out: None,
            rt: rt.clone(),
        };
        // No one waits yet: the waker of whoever polls next replaces this one.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(out) = Pin::new(&mut me).poll(&mut cx) {
            me.out = Some(out);
        }
        me
    }
}

impl<F: Future + Send + 'static> Future for Forwarding<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let me = self.get_mut();
        if let Some(out) = me.out.take() {
            return Poll::Ready(out);
        }
        let Some(fut) = me.fut.as_mut() else {
            // Polled after its end: nothing more will come.
            return Poll::Pending;
        };
        // Inside the instance's runtime: whatever the future touches (a timer, a spawn)
        // belongs there, not to the actix thread.
        let _entered = me.rt.enter();
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            me.fut = None;
        }
        out
    }
}

impl<F: Future + Send + 'static> Drop for Forwarding<F> {
    fn drop(&mut self) {
        if let Some(rest) = self.fut.take() {
            // On a runtime already shut down the rest is dropped unrun; the instance died
            // with that runtime.
            drop(self.rt.spawn(async move {
                let _ = rest.await;
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::sync::oneshot;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// The first poll happens in `start`, before anyone awaits: that is what puts a message
    /// into the mailbox in the order the adapter took it.
    #[test]
    fn start_polls_once_at_once() {
        let rt = runtime();
        let polled = Arc::new(AtomicBool::new(false));
        let p = polled.clone();
        let f = Forwarding::start(
            async move {
                p.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await
            },
            rt.handle(),
        );
        assert!(polled.load(Ordering::SeqCst));
        drop(f);
    }

    /// Dropped before its end (its actix thread stopped), the rest runs on the runtime.
    #[test]
    fn a_dropped_forwarding_finishes_on_the_runtime() {
        let rt = runtime();
        let (go, wait) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel::<()>();
        let f = Forwarding::start(
            async move {
                let _ = wait.await;
                let _ = done.send(());
            },
            rt.handle(),
        );
        drop(f);
        let _ = go.send(());
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), finished)
                .await
                .expect("the rest ran on the runtime")
                .expect("sent");
        });
    }

    /// A ready first poll keeps its output for the first await.
    #[test]
    fn a_ready_output_is_kept() {
        let rt = runtime();
        let f = Forwarding::start(async { 7 }, rt.handle());
        assert_eq!(rt.block_on(f), 7);
    }
}
