//! The TPM thread. ESAPI contexts are not thread-safe, and a TPM executes one command at
//! a time anyway, so one thread owns the backend and runs one job at a time; nobody holds
//! the TPM across an await.
//!
//! A short job (a signature, a decryption) that is the only request in flight runs on the
//! caller's thread instead (see [`TpmWorker::run_short`]): the hand-off to the TPM thread
//! and back is two thread wake-ups, a tenth of a hot ECDSA signature on swtpm. Whenever
//! two requests overlap, both go through the queues.
//!
//! Jobs wait in one queue per caller uid, and the thread serves those queues round robin:
//! one job of each uid with work in turn. However much one uid queues, another uid's job
//! waits for at most one job of every other uid with work, plus the one running. Each
//! uid's queue has a bound, past which [`TpmWorker::run`] answers [`TpmError::Busy`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, error, info};

use super::{Backend, TpmError, TpmResult};

type Job = Box<dyn FnOnce(&mut dyn Backend) + Send>;

/// How many jobs one uid may have waiting, unless configured otherwise. Large enough for a
/// busy client (1000 signatures in flight), small enough that one uid's backlog stays a
/// few megabytes of key files.
pub const DEFAULT_QUEUE_PER_UID: usize = 1024;

/// How long the thread waits for the next job before it tells the backend it is idle
/// ([`Backend::idle`]): longer than the gap between one client's back-to-back requests,
/// short enough that another program waiting for a swtpm tpmd holds hardly notices.
const IDLE_AFTER: Duration = Duration::from_millis(5);

struct Waiting {
    job: Job,
    /// How many jobs the thread had started when this one was queued.
    queued_at: u64,
}

#[derive(Default)]
struct Queues {
    by_uid: HashMap<u32, VecDeque<Waiting>>,
    /// The uids with waiting jobs, in the order they get their next turn.
    turns: VecDeque<u32>,
    /// Jobs started since the thread began: the clock that waiting is measured in.
    started: u64,
    stopping: bool,
}

impl Queues {
    fn waiting(&self) -> usize {
        self.by_uid.values().map(VecDeque::len).sum()
    }

    /// The next job in round-robin order: the front uid's oldest job, after which that uid
    /// goes to the back of the line if it has more.
    fn next(&mut self) -> Option<(u32, Waiting)> {
        let uid = self.turns.pop_front()?;
        let queue = self.by_uid.get_mut(&uid)?;
        let waiting = queue.pop_front()?;
        if queue.is_empty() {
            self.by_uid.remove(&uid);
        } else {
            self.turns.push_back(uid);
        }
        Some((uid, waiting))
    }
}

struct Shared {
    queues: Mutex<Queues>,
    work: Condvar,
    per_uid: usize,
    /// The TPM, once the thread has opened it; whoever runs a job holds this lock.
    backend: Mutex<Option<Box<dyn Backend>>>,
    /// Requests between their start and their answer, queued or not.
    in_flight: AtomicUsize,
    /// The thread's idle timer runs: it will call [`Backend::idle`] once no job has run
    /// for [`IDLE_AFTER`]. A job run on another thread that finds it stopped starts it.
    idle_timer: AtomicBool,
    /// When the last job ended, in nanoseconds since `epoch`.
    last_job: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic anywhere ends tpmd (see crate::crash), so a poisoned lock is never seen
        // by a live process; taking the inner value keeps this free of unwraps.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backend(&self) -> MutexGuard<'_, Option<Box<dyn Backend>>> {
        self.backend.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn job_ended(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.last_job.store(now, Ordering::SeqCst);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_nanos(self.last_job.load(Ordering::SeqCst));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn stop(&self) {
        self.lock().stopping = true;
        self.work.notify_all();
    }
}

/// Stops the thread once the last [`TpmWorker`] clone is gone, after the jobs already
/// queued.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A cloneable handle to the TPM thread.
#[derive(Clone)]
pub struct TpmWorker {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

impl TpmWorker {
    /// Opens the TPM with `open` on a new thread, which then owns it; fails if it cannot
    /// be opened. Each uid may queue `per_uid` jobs.
    pub fn start(
        open: impl FnOnce() -> TpmResult<Box<dyn Backend>> + Send + 'static,
        per_uid: usize,
    ) -> TpmResult<TpmWorker> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            work: Condvar::new(),
            per_uid: per_uid.max(1),
            backend: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            // Opening the TPM sent commands too: what it holds is released like a job's.
            idle_timer: AtomicBool::new(true),
            last_job: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let (opened_tx, opened_rx) = mpsc::channel();
        let thread_shared = shared.clone();
        thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                match open() {
                    Ok(backend) => {
                        *thread_shared.backend() = Some(backend);
                        thread_shared.job_ended();
                        let _ = opened_tx.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                serve(&thread_shared);
                info!("TPM thread stopping; flushing loaded keys");
                if let Some(backend) = thread_shared.backend().as_mut() {
                    backend.flush_all();
                }
            })
            .map_err(|e| TpmError::Unavailable(format!("cannot start the TPM thread: {e}")))?;
        opened_rx.recv().map_err(|_| {
            TpmError::Unavailable("the TPM thread died while opening the TPM".into())
        })??;
        Ok(TpmWorker {
            _stop: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }

    /// Runs `job` on the TPM thread in `uid`'s queue and waits for its result without
    /// blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        uid: u32,
        job: impl FnOnce(&mut dyn Backend) -> TpmResult<T> + Send + 'static,
    ) -> TpmResult<T> {
        let _in_flight = InFlight::enter(&self.shared);
        self.queued(uid, job).await
    }

    /// [`run`](Self::run) for a job of a few TPM commands (a signature or a decryption,
    /// with at most a key load and a session start before it). It still passes the one
    /// queue: under the queue's lock it is admitted only when no job waits, and counted
    /// as started like a queued job. When it is also the only request in flight and the
    /// TPM is free, the caller's thread serves it instead of the TPM thread, and is
    /// blocked for that long: nothing else was waiting for the TPM anyway, and a request
    /// that comes meanwhile is read when it ends.
    pub async fn run_short<T: Send + 'static>(
        &self,
        uid: u32,
        job: impl FnOnce(&mut dyn Backend) -> TpmResult<T> + Send + 'static,
    ) -> TpmResult<T> {
        let _in_flight = InFlight::enter(&self.shared);
        // Lets the other requests that are ready be read first, so that they count.
        tokio::task::yield_now().await;
        if self.shared.in_flight.load(Ordering::SeqCst) != 1 {
            return self.queued(uid, job).await;
        }
        match self.run_here(job) {
            Ok(result) => result,
            Err(job) => self.queued(uid, job).await,
        }
    }

    /// Runs `job` on this thread if the queues are empty and the TPM is free; else hands
    /// it back.
    fn run_here<T, F>(&self, job: F) -> Result<TpmResult<T>, F>
    where
        F: FnOnce(&mut dyn Backend) -> TpmResult<T>,
    {
        let mut slot = match self.shared.backend.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(job),
        };
        let Some(backend) = slot.as_mut() else {
            return Err(job);
        };
        {
            let mut queues = self.shared.lock();
            if queues.stopping || !queues.turns.is_empty() {
                return Err(job);
            }
            queues.started += 1;
        }
        backend.count_request();
        let result = job(backend.as_mut());
        if result.is_err() {
            backend.count_failure();
        }
        drop(slot);
        self.shared.job_ended();
        if !self.shared.idle_timer.swap(true, Ordering::SeqCst) {
            // Under the queue lock, which the thread holds from its check to its wait.
            let _queues = self.shared.lock();
            self.shared.work.notify_one();
        }
        Ok(result)
    }

    async fn queued<T: Send + 'static>(
        &self,
        uid: u32,
        job: impl FnOnce(&mut dyn Backend) -> TpmResult<T> + Send + 'static,
    ) -> TpmResult<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            backend.count_request();
            let result = job(backend);
            if result.is_err() {
                backend.count_failure();
            }
            let _ = tx.send(result);
        });
        self.submit(uid, job)?;
        rx.await.unwrap_or_else(|_| {
            error!("a TPM job ended without an answer");
            Err(TpmError::Unavailable("the TPM thread has stopped".into()))
        })
    }

    fn submit(&self, uid: u32, job: Job) -> TpmResult<()> {
        let mut queues = self.shared.lock();
        if queues.stopping {
            return Err(TpmError::Unavailable("the TPM thread has stopped".into()));
        }
        let queued_at = queues.started;
        let queue = queues.by_uid.entry(uid).or_default();
        if queue.len() >= self.shared.per_uid {
            return Err(TpmError::Busy(format!(
                "tpmd is busy: {} requests of yours (uid {uid}) are already waiting for the TPM; retry when some have finished",
                queue.len()
            )));
        }
        let first = queue.is_empty();
        queue.push_back(Waiting { job, queued_at });
        if first {
            queues.turns.push_back(uid);
        }
        drop(queues);
        self.shared.work.notify_one();
        Ok(())
    }
}

/// A request between its start and its answer (see [`TpmWorker::run_short`]).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&shared.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The thread's loop: round robin over the uids with work until told to stop and empty.
fn serve(shared: &Shared) {
    loop {
        let mut queues = shared.lock();
        let (uid, waiting, seq, others) = loop {
            if let Some((uid, waiting)) = queues.next() {
                let seq = queues.started;
                queues.started += 1;
                let others = queues.turns.iter().filter(|u| **u != uid).count();
                break (uid, waiting, seq, others);
            }
            if queues.stopping {
                return;
            }
            if shared.idle_timer.load(Ordering::SeqCst) {
                let wait = IDLE_AFTER.saturating_sub(shared.idle_for());
                let (guard, _) = shared
                    .work
                    .wait_timeout(queues, wait.max(Duration::from_millis(1)))
                    .unwrap_or_else(|p| p.into_inner());
                queues = guard;
                if queues.turns.is_empty() && shared.idle_for() >= IDLE_AFTER {
                    shared.idle_timer.store(false, Ordering::SeqCst);
                    drop(queues);
                    if let Some(backend) = shared.backend().as_mut() {
                        backend.idle();
                    }
                    queues = shared.lock();
                }
                continue;
            }
            queues = shared.work.wait(queues).unwrap_or_else(|p| p.into_inner());
        };
        shared.idle_timer.store(true, Ordering::SeqCst);
        let backlog = queues.waiting();
        drop(queues);
        crate::crash::debug_trigger(crate::crash::Place::TpmThread);
        // What the fairness test counts: jobs started between this one's queueing and its
        // start (`waited`), against the uids that had work meanwhile.
        debug!(
            uid,
            seq,
            waited = seq - waiting.queued_at,
            other_uids_waiting = others,
            backlog,
            "TPM job"
        );
        if let Some(backend) = shared.backend().as_mut() {
            (waiting.job)(backend.as_mut());
        }
        shared.job_ended();
    }
}

#[cfg(test)]
mod tests;
