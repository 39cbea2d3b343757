//! One operation at a time per uid, for the expensive ones (an RSA Generate can take the
//! TPM for seconds): a uid's further calls wait here, outside the TPM queue, so that its
//! backlog of key generations never holds more than one place in the round robin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backend::TpmError;

pub struct OneAtATime {
    what: &'static str,
    uids: Mutex<HashMap<u32, Arc<Semaphore>>>,
    /// How many calls of one uid may wait (the running one included).
    max_waiting: usize,
}

/// A uid's turn; the next waiting call of that uid goes when it is dropped.
pub struct Turn<'a> {
    gate: &'a OneAtATime,
    uid: u32,
    permit: Option<OwnedSemaphorePermit>,
}

impl OneAtATime {
    pub fn new(what: &'static str, max_waiting: usize) -> OneAtATime {
        OneAtATime {
            what,
            uids: Mutex::default(),
            max_waiting: max_waiting.max(1),
        }
    }

    fn uids(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Semaphore>>> {
        self.uids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `uid`'s turn; `Busy` if too many of its calls are waiting already.
    pub async fn enter(&self, uid: u32) -> Result<Turn<'_>, TpmError> {
        let semaphore = {
            let mut uids = self.uids();
            let semaphore = uids
                .entry(uid)
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone();
            // The map's reference and ours are not callers.
            let callers = Arc::strong_count(&semaphore) - 2;
            if callers >= self.max_waiting {
                return Err(TpmError::Busy(format!(
                    "tpmd is busy: {callers} {} of yours (uid {uid}) are running or waiting; they run one at a time, retry when some have finished",
                    self.what
                )));
            }
            semaphore
        };
        let permit = semaphore
            .acquire_owned()
            .await
            .map_err(|_| TpmError::Unavailable("tpmd is stopping".into()))?;
        Ok(Turn {
            gate: self,
            uid,
            permit: Some(permit),
        })
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut uids = self.gate.uids();
        if uids
            .get(&self.uid)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            uids.remove(&self.uid);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_uid_waits_for_itself_not_for_others() {
        let gate = OneAtATime::new("key generations", 2);
        let first = gate.enter(1000).await.unwrap();
        // Another uid goes at once.
        let other = gate.enter(1001).await.unwrap();
        drop(other);
        // The same uid waits for its first call to finish...
        let second = gate.enter(1000);
        tokio::pin!(second);
        assert!(futures_poll_once(second.as_mut()).await.is_none());
        // ...and a third is refused while two are running or waiting.
        let third = gate.enter(1000).await;
        assert!(matches!(third, Err(TpmError::Busy(_))), "{:?}", third.err());
        drop(first);
        let second = second.await.unwrap();
        drop(second);
        assert!(gate.uids().is_empty());
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        tokio::time::timeout(std::time::Duration::from_millis(20), f)
            .await
            .ok()
    }
}
