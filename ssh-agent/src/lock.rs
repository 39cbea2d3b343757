//! Lock and unlock (ssh-add -x / -X): while locked the agent lists nothing and signs
//! nothing. The passphrase is kept only as a digest; wrong guesses are slowed down.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::agent::{lock_or_recover, Agent};
use crate::error::AgentError;

fn passphrase_hash(passphrase: &str) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(Sha256::digest(passphrase.as_bytes()).into())
}

impl Agent {
    pub(crate) async fn lock(&self, passphrase: String) -> Result<(), AgentError> {
        let passphrase = Zeroizing::new(passphrase);
        let hash = passphrase_hash(&passphrase);
        {
            let mut locked = lock_or_recover(&self.locked);
            if locked.is_some() {
                return Err(AgentError::BadRequest("the agent is already locked".into()));
            }
            *locked = Some(hash);
        }
        lock_or_recover(&self.auth_cache).clear();
        info!("agent locked");
        if let Some(upstream) = &self.upstream {
            if let Err(e) = upstream.lock(passphrase.to_string()).await {
                warn!("locking: {e}");
            }
        }
        Ok(())
    }

    pub(crate) async fn unlock(&self, passphrase: String) -> Result<(), AgentError> {
        let passphrase = Zeroizing::new(passphrase);
        let hash = passphrase_hash(&passphrase);
        let matched = {
            let mut locked = lock_or_recover(&self.locked);
            match locked.as_ref() {
                None => return Err(AgentError::BadRequest("the agent is not locked".into())),
                Some(want) if want.as_slice() == hash.as_slice() => {
                    *locked = None;
                    true
                }
                Some(_) => false,
            }
        };
        if !matched {
            // Slow down guessing, as ssh-agent does.
            let failures = {
                let mut n = lock_or_recover(&self.failed_unlocks);
                *n = n.saturating_add(1);
                *n
            };
            tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(10)))).await;
            return Err(AgentError::BadRequest(
                "wrong passphrase to unlock the agent".into(),
            ));
        }
        *lock_or_recover(&self.failed_unlocks) = 0;
        info!("agent unlocked");
        if let Some(upstream) = &self.upstream {
            if let Err(e) = upstream.unlock(passphrase.to_string()).await {
                warn!("unlocking: {e}");
            }
        }
        Ok(())
    }
}
