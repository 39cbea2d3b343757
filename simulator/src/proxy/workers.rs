//! Threads that serve one client connection after another. Clients of a swtpm socket
//! connect anew for every command or burst (swtpm serves one client at a time; libtss2's
//! swtpm TCTI connects per command), so a thread per connection would cost more than a
//! simulated command; an idle worker
//! takes the next connection instead, and a new thread starts only when none is idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::{lock, Shared};

type Job = Box<dyn FnOnce(&Shared) + Send>;

#[derive(Debug)]
pub(super) struct Workers {
    /// Workers that will take the next job. A job claims one before it is queued, so
    /// every queued job has a worker: a long-lived connection never waits behind another.
    idle: Arc<AtomicUsize>,
    queue: Mutex<Option<Sender<Job>>>,
    jobs: Arc<Mutex<Receiver<Job>>>,
}

impl Workers {
    pub(super) fn new() -> Workers {
        let (queue, jobs) = mpsc::channel();
        Workers {
            idle: Arc::new(AtomicUsize::new(0)),
            queue: Mutex::new(Some(queue)),
            jobs: Arc::new(Mutex::new(jobs)),
        }
    }

    /// Runs `job` on an idle worker, or on a new one.
    pub(super) fn run(shared: &Arc<Shared>, job: impl FnOnce(&Shared) + Send + 'static) {
        let workers = &shared.workers;
        let claimed = workers
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if claimed {
            if let Some(queue) = lock(&workers.queue).as_ref() {
                // Fails only while stopping: the job is dropped with its connection.
                let _ = queue.send(Box::new(job));
            }
            return;
        }
        let idle = Arc::clone(&workers.idle);
        let jobs = Arc::clone(&workers.jobs);
        shared.spawn(move |shared| {
            job(&shared);
            loop {
                idle.fetch_add(1, Ordering::SeqCst);
                let next = lock(&jobs).recv();
                match next {
                    Ok(job) => job(&shared),
                    Err(_) => break,
                }
            }
        });
    }

    /// Lets idle workers end; busy ones end after their connection.
    pub(super) fn close(&self) {
        lock(&self.queue).take();
    }
}
