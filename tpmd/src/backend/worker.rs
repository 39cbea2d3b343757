//! The TPM thread. ESAPI contexts are not thread-safe, and a TPM executes one command at
//! a time anyway, so one thread owns the resource manager and takes jobs from a single
//! FIFO queue: callers are served in arrival order and nobody holds the TPM across an
//! await.

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;
use tracing::{error, info};

use super::{Backend, TpmError, TpmResult};

type Job = Box<dyn FnOnce(&mut dyn Backend) + Send>;

/// A cloneable handle to the TPM thread.
#[derive(Clone)]
pub struct TpmWorker {
    queue: mpsc::Sender<Job>,
}

impl TpmWorker {
    /// Opens the TPM with `open` on a new thread, which then owns it; fails if it cannot
    /// be opened.
    pub fn start(
        open: impl FnOnce() -> TpmResult<Box<dyn Backend>> + Send + 'static,
    ) -> TpmResult<TpmWorker> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let (opened_tx, opened_rx) = mpsc::channel();
        thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                let mut backend = match open() {
                    Ok(backend) => {
                        let _ = opened_tx.send(Ok(()));
                        backend
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                for job in jobs {
                    job(backend.as_mut());
                }
                info!("TPM thread stopping; flushing loaded keys");
                backend.flush_all();
            })
            .map_err(|e| TpmError::Unavailable(format!("cannot start the TPM thread: {e}")))?;
        opened_rx.recv().map_err(|_| {
            TpmError::Unavailable("the TPM thread died while opening the TPM".into())
        })??;
        Ok(TpmWorker { queue })
    }

    /// Runs `job` on the TPM thread and waits for its result without blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
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
        self.queue
            .send(job)
            .map_err(|_| TpmError::Unavailable("the TPM thread has stopped".into()))?;
        rx.await.unwrap_or_else(|_| {
            error!("a TPM job ended without an answer");
            Err(TpmError::Unavailable("the TPM thread has stopped".into()))
        })
    }
}
