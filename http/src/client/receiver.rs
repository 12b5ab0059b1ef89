//! The thread that receives the files' bodies and writes them into the set.
//!
//! One OS thread per run takes the downloads from the run, one file at a time. It drives its
//! own HTTP client on a current-thread runtime of its own, and only for the network: each
//! request, each frame of a body, each pause is one `block_on`, and between them the thread
//! writes what arrived into the set, outside any runtime. So no async code waits on a file,
//! and the bytes go from the socket to the set on one thread, where the run's own workers
//! handed every frame to another thread and every write to a third: in the bench that
//! difference was figure 1's largest cost (16 to 22 thread switches per MiB against 1 to 5
//! for a raw copy through the socket). While the thread writes, nothing reads the socket,
//! so TCP holds the server back, as a blocking client would.
//!
//! The client is the thread's own (its connections live on its runtime), built from the
//! run's options. The run waits for each download on a oneshot; when the run's future is
//! dropped, that channel closes, and the thread stops at its next wait for the network.
//! Writes go to the set the run holds ([`Shared`]), so a set the run removes refuses them.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Duration;

use ese_actors::Error;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::api::FileView;
use super::error::RemoteError;
use super::resume::Session;
use super::set::{PartialSet, Shared};

type Reply = oneshot::Sender<Result<(), RemoteError>>;

/// One file to download into the set's file being written.
struct Job {
    set: Shared,
    file: FileView,
    reply: Reply,
}

/// The run's handle on its receiving thread; the thread ends once this is dropped.
pub(crate) struct Receiver {
    jobs: mpsc::Sender<Job>,
}

impl Receiver {
    /// Starts the thread for `session` (whose `Api` has a client of its own, used on no
    /// other runtime).
    pub fn start(session: Session) -> Result<Receiver, RemoteError> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("ese-receive".into())
            .spawn(move || serve(session, queue))
            .map_err(|e| internal(format!("cannot start the receiving thread: {e}")))?;
        Ok(Receiver { jobs })
    }

    /// Downloads `file` into `set`'s file being written (started by the caller, who
    /// finishes it once this returns), resuming after cuts while the lease allows.
    pub async fn download(&self, set: &PartialSet, file: &FileView) -> Result<(), RemoteError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            set: set.shared(),
            file: file.clone(),
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| internal("the receiving thread has ended".into()))?;
        answer
            .await
            .map_err(|_| internal("the receiving thread ended during a download".into()))?
    }
}

/// The thread: its runtime, then the run's downloads in order until the run lets go.
fn serve(mut session: Session, queue: mpsc::Receiver<Job>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    while let Ok(mut job) = queue.recv() {
        let result = match &rt {
            Ok(rt) => {
                let mut link = Link {
                    rt,
                    reply: &mut job.reply,
                };
                // A bug must reach the run as an error that says what happened, not as a
                // channel that closed.
                let run = AssertUnwindSafe(|| session.download(&mut link, &job.set, &job.file));
                std::panic::catch_unwind(run).unwrap_or_else(|p| {
                    Err(internal(format!(
                        "the receiving thread panicked during a download: {}",
                        panic_text(&*p)
                    )))
                })
            }
            Err(e) => Err(internal(format!(
                "cannot start the receiving thread's runtime: {e}"
            ))),
        };
        let _ = job.reply.send(result);
    }
}

/// A panic's message, where it has one.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn internal(message: String) -> RemoteError {
    RemoteError::Local(Error::InternalError.with_detail(message))
}

/// The run stopped waiting for the download (its future was dropped).
#[derive(Debug)]
pub(crate) struct Gone;

impl From<Gone> for RemoteError {
    fn from(_: Gone) -> RemoteError {
        internal("the run ended during a download".into())
    }
}

/// What a download waits on the network with: the thread's runtime, and the run's end of
/// the job, to stop when the run is gone.
pub(crate) struct Link<'a> {
    rt: &'a Runtime,
    reply: &'a mut Reply,
}

impl Link<'_> {
    /// Runs `fut` on the thread's runtime until it is done or the run is gone.
    pub fn wait<F: Future>(&mut self, fut: F) -> Result<F::Output, Gone> {
        let Link { rt, reply } = self;
        rt.block_on(async {
            tokio::select! {
                biased;
                () = reply.closed() => Err(Gone),
                out = fut => Ok(out),
            }
        })
    }

    /// Sleeps `d`, or less if the run is gone.
    pub fn sleep(&mut self, d: Duration) -> Result<(), Gone> {
        // Made inside the runtime: a timer needs the runtime's clock.
        self.wait(async move { tokio::time::sleep(d).await })
    }
}
