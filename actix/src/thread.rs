//! An adapter on an actix `System` of its own, for a tokio host that runs no actix.

use actix::{Actor, Addr};

use crate::actor::InstanceActor;

impl InstanceActor {
    /// Starts the adapter on a new thread (`ese-actix`) running an actix `System` of its
    /// own, and returns its address, which any runtime may send to. The thread ends when the
    /// adapter stops: when the last `Addr` is dropped, or on `ctx.stop()`.
    ///
    /// # Errors
    ///
    /// The operating system's, if the thread cannot be started; `Interrupted` if it died
    /// before starting the adapter.
    pub fn start_in_thread(mut self) -> std::io::Result<Addr<InstanceActor>> {
        self.owns_system = true;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("ese-actix".into())
            .spawn(move || {
                let system = actix::System::new();
                system.block_on(async move {
                    let _ = tx.send(self.start());
                });
                // Runs until the adapter's `stopped` stops the System.
                let _ = system.run();
            })?;
        rx.recv().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the ese-actix thread ended before its adapter started",
            )
        })
    }
}
