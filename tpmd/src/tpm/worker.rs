//! The TPM thread. ESAPI contexts are not thread-safe, and a TPM executes one command at
//! a time anyway, so one thread owns the resource manager and takes jobs from a single
//! FIFO queue: callers are served in arrival order and nobody holds the TPM across an
//! await.

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;
use tracing::{error, info};

use super::error::{TpmError, TpmResult};
use super::resource_manager::ResourceManager;
use tpmd_tpm2::transport::Transport;

type Job = Box<dyn FnOnce(&mut ResourceManager) + Send>;

/// A cloneable handle to the TPM thread.
#[derive(Clone)]
pub struct TpmWorker {
    queue: mpsc::Sender<Job>,
}

impl TpmWorker {
    /// Opens the TPM on a new thread; fails if it cannot be opened.
    pub fn start(transport: Transport, budget: usize) -> TpmResult<TpmWorker> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let (opened_tx, opened_rx) = mpsc::channel();
        thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                let mut rm = match ResourceManager::open(transport, budget) {
                    Ok(rm) => {
                        let _ = opened_tx.send(Ok(()));
                        rm
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                for job in jobs {
                    job(&mut rm);
                }
                info!("TPM thread stopping; flushing loaded keys");
                rm.flush_all();
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
        job: impl FnOnce(&mut ResourceManager) -> TpmResult<T> + Send + 'static,
    ) -> TpmResult<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |rm| {
            rm.count_request();
            let result = job(rm);
            if result.is_err() {
                rm.count_failure();
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
