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

use std::any::Any;
use std::sync::{Arc, Condvar, Mutex};

/// Threads doing the page's blocking work.
pub const WORKERS: usize = 2;
/// Jobs waiting for a thread; one more is refused as busy.
pub const QUEUE: usize = 4;

/// A job and where its answer goes (one type for every job, so the pool's code exists once).
type Answer = Box<dyn Any + Send>;
type Job = (
    Box<dyn FnOnce() -> Answer + Send>,
    tokio::sync::oneshot::Sender<Answer>,
);

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
            Busy::Full => write!(f, "busy: try again"),
            Busy::NoThread(e) => write!(f, "busy (no thread: {e}): try again"),
            Busy::Stopped => write!(f, "the work stopped"),
        }
    }
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Workers started, and those waiting for a job.
    started: usize,
    idle: usize,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
}

pub struct Pool {
    inner: Arc<Inner>,
    workers: usize,
    queue: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new(WORKERS, QUEUE)
    }
}

fn work(inner: Arc<Inner>) {
    loop {
        let job = {
            let Ok(mut q) = inner.queue.lock() else {
                return;
            };
            q.idle += 1;
            loop {
                if !q.jobs.is_empty() {
                    let job = q.jobs.remove(0);
                    q.idle -= 1;
                    break job;
                }
                q = match inner.ready.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
        };
        let (f, answer) = job;
        // A job that panics (a bug) loses its answer, not the worker.
        if let Ok(v) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let _ = answer.send(v);
        }
    }
}

impl Pool {
    pub fn new(workers: usize, queue: usize) -> Pool {
        Pool {
            inner: Arc::default(),
            workers: workers.max(1),
            queue,
        }
    }

    /// Queues a job, starting one more worker when none is idle and the pool is not full.
    fn submit(&self, job: Job) -> Result<(), Busy> {
        let mut q = self.inner.queue.lock().map_err(|_| Busy::Stopped)?;
        let waiting = q.jobs.len();
        if q.idle <= waiting && q.started < self.workers {
            let inner = Arc::clone(&self.inner);
            match std::thread::Builder::new().spawn(move || work(inner)) {
                Ok(_) => q.started += 1,
                Err(e) if q.started == 0 => return Err(Busy::NoThread(e.to_string())),
                // Going on with the workers there are.
                Err(_) => {}
            }
        }
        // Jobs an idle worker takes at once, plus QUEUE more waiting.
        if waiting >= q.idle + self.queue {
            return Err(Busy::Full);
        }
        q.jobs.push(job);
        drop(q);
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Runs `f` on a worker and waits for its answer without blocking the agent's thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit((Box::new(move || Box::new(f()) as Answer), tx))?;
        let v = rx.await.map_err(|_| Busy::Stopped)?;
        v.downcast::<T>().map(|b| *b).map_err(|_| Busy::Stopped)
    }

    /// Workers started so far.
    pub fn threads(&self) -> usize {
        self.inner.queue.lock().map_or(0, |q| q.started)
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
