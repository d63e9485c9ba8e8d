//! **The edge**: the page's blocking work (the admin password's PBKDF2 hash, the check, the
//! setup form's choices) on a fixed, small set of threads, never on the agent's thread.
//!
//! At most [`WORKERS`] threads, started when first needed and kept (no thread is started per
//! request, none lingers and comes back), and at most [`QUEUE`] jobs waiting: beyond that the
//! caller hears [`Busy`] at once and answers "busy, try again". A thread that cannot be started
//! (the unit's `TasksMax`, a pids cgroup) is an error for the caller, never a panic; with one
//! worker running the pool goes on with it.
//!
//! Sized for the unit's `TasksMax=16`: the agent's thread, these workers, and the threads the
//! check's serial probe starts (one per port) stay well under it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Threads doing the page's blocking work.
pub const WORKERS: usize = 2;
/// Jobs waiting for a thread; one more is refused as busy.
pub const QUEUE: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job was not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Busy {
    /// Every worker is busy and the queue is full.
    Full,
    /// No worker could be started (the system refused a thread).
    NoThread(String),
    /// The job stopped without an answer.
    Stopped,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Busy::Full => write!(f, "the page is busy: try again in a moment"),
            Busy::NoThread(e) => write!(
                f,
                "the page is busy (the system gives it no thread: {e}): try again in a moment"
            ),
            Busy::Stopped => write!(f, "the work stopped before it finished"),
        }
    }
}

pub struct Pool {
    tx: SyncSender<Job>,
    rx: Arc<Mutex<Receiver<Job>>>,
    /// Workers started, and those waiting for a job.
    started: AtomicUsize,
    idle: Arc<AtomicUsize>,
    workers: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new(WORKERS, QUEUE)
    }
}

impl Pool {
    pub fn new(workers: usize, queue: usize) -> Pool {
        let (tx, rx) = sync_channel(queue);
        Pool {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            started: AtomicUsize::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
            workers: workers.max(1),
        }
    }

    /// Starts one more worker when none is idle and the pool is not full; an error when none
    /// runs and none can be started.
    fn grow(&self) -> Result<(), Busy> {
        let started = self.started.load(Ordering::SeqCst);
        if self.idle.load(Ordering::SeqCst) > 0 || started >= self.workers {
            return Ok(());
        }
        let (rx, idle) = (Arc::clone(&self.rx), Arc::clone(&self.idle));
        let spawned = std::thread::Builder::new()
            .name("web-work".into())
            .spawn(move || loop {
                idle.fetch_add(1, Ordering::SeqCst);
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                idle.fetch_sub(1, Ordering::SeqCst);
                match job {
                    // A job that panics (a bug) loses its answer, not the worker.
                    Ok(job) => {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                    Err(_) => return,
                }
            });
        match spawned {
            Ok(_) => {
                self.started.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(e) if started == 0 => Err(Busy::NoThread(e.to_string())),
            Err(e) => {
                log::debug!("web: no further worker ({e}); going on with {started}");
                Ok(())
            }
        }
    }

    /// Runs `f` on a worker and waits for its answer without blocking the agent's thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        self.grow()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(Busy::Full),
            Err(TrySendError::Disconnected(_)) => return Err(Busy::Stopped),
        }
        rx.await.map_err(|_| Busy::Stopped)
    }

    /// Workers started so far.
    pub fn threads(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn web_pool_is_bounded_and_says_busy_instead_of_starting_threads() {
        let pool = Arc::new(Pool::new(2, 3));
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate_rx));
        let answers = block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let mut handles = Vec::new();
                    for i in 0..10 {
                        let (pool, gate) = (pool.clone(), gate.clone());
                        handles.push(tokio::task::spawn_local(async move {
                            pool.run(move || {
                                let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(5));
                                i
                            })
                            .await
                        }));
                        tokio::task::yield_now().await;
                        // Let the workers take their first jobs before the queue fills.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    for _ in 0..10 {
                        let _ = gate_tx.send(());
                    }
                    let mut out = Vec::new();
                    for h in handles {
                        out.push(h.await.unwrap());
                    }
                    out
                })
                .await
        });
        let done = answers.iter().filter(|a| a.is_ok()).count();
        let busy = answers.iter().filter(|a| **a == Err(Busy::Full)).count();
        // Two running and three waiting; the other five are told "busy" at once.
        assert_eq!((done, busy), (5, 5), "{answers:?}");
        assert_eq!(pool.threads(), 2);
        // The same workers serve the next jobs: no new thread.
        let v = block_on(pool.run(|| 42));
        assert_eq!(v, Ok(42));
        assert_eq!(pool.threads(), 2);
        assert!(Busy::Full.to_string().contains("try again"));
    }

    #[test]
    fn web_pool_a_job_that_panics_is_an_error_not_a_hang() {
        let pool = Pool::new(1, 1);
        let r: Result<(), Busy> = block_on(pool.run(|| panic!("in a job")));
        assert_eq!(r, Err(Busy::Stopped));
        assert_eq!(block_on(pool.run(|| 7)), Ok(7), "the worker goes on");
    }
}
