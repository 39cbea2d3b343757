//! `ssh-add -s PROVIDER` and `ssh-add -e PROVIDER`: passed to the upstream agent when
//! keys that are not for the TPM go there (`--non-tpm-keys upstream`), else loaded in a
//! helper process (see `pkcs11/`), with the same constraints as any other key.

use std::path::Path;
use std::sync::Arc;

use ssh_agent_lib::proto::{KeyConstraint, SmartcardKey};
use ssh_agent_lib::secrecy::ExposeSecret;
use tracing::info;

use crate::agent::{lock_or_recover, Agent, Session};
use crate::config::NonTpmKeys;
use crate::constraints::Limits;
use crate::error::AgentError;
use crate::keys::{Backing, Held};
use crate::wire::KeyBlob;

impl Agent {
    fn smartcards_go_upstream(&self, session: &Session) -> bool {
        self.non_tpm_keys == NonTpmKeys::Upstream && session.upstream.is_some()
    }

    pub(crate) async fn add_smartcard(
        &self,
        frame: &[u8],
        key: SmartcardKey,
        constraints: Vec<KeyConstraint>,
        session: &mut Session,
    ) -> Result<(), AgentError> {
        // CVE-2023-38408: a forwarded connection must not make the agent load libraries.
        session.refuse_if_forwarded("load PKCS#11 providers")?;
        if self.smartcards_go_upstream(session) {
            if let Some(upstream) = session.upstream.as_mut() {
                info!("passing PKCS#11 provider {} to the upstream agent", key.id);
                return upstream
                    .request(frame, "refused the PKCS#11 provider")
                    .await;
            }
        }
        let limits = Limits::read(&constraints, self.default_lifetime)?;
        let provider = self.providers.allowed(&key.id)?;
        let keys = self
            .providers
            .load(&provider, key.pin.expose_secret())
            .await?;
        let expires = limits.expires();
        let rules = Arc::new(limits.rules);
        let mut store = lock_or_recover(&self.store);
        for (public, label) in &keys {
            let Some(blob) = KeyBlob::from_key(public) else {
                continue;
            };
            info!(
                "added {} from PKCS#11 provider {}{}",
                blob.describe(),
                provider.display(),
                if limits.confirm {
                    ", confirm each use"
                } else {
                    ""
                }
            );
            store.add(Held {
                key: blob,
                comment: if label.is_empty() {
                    provider.to_string_lossy().into_owned()
                } else {
                    label.clone()
                },
                backing: Backing::Pkcs11 {
                    provider: provider.clone(),
                },
                confirm: limits.confirm,
                expires,
                rules: rules.clone(),
            });
        }
        Ok(())
    }

    pub(crate) async fn remove_smartcard(
        &self,
        frame: &[u8],
        key: SmartcardKey,
        session: &mut Session,
    ) -> Result<(), AgentError> {
        if self.smartcards_go_upstream(session) {
            if let Some(upstream) = session.upstream.as_mut() {
                return upstream
                    .request(frame, "does not hold that PKCS#11 provider")
                    .await;
            }
        }
        let provider =
            std::fs::canonicalize(&key.id).unwrap_or_else(|_| Path::new(&key.id).to_path_buf());
        let removed = lock_or_recover(&self.store).remove_provider(&provider);
        let unloaded = self.providers.unload(&provider).await;
        if removed == 0 && !unloaded {
            return Err(AgentError::Pkcs11(format!(
                "PKCS#11 provider {} was not added",
                provider.display()
            )));
        }
        info!(
            "removed PKCS#11 provider {} and its {removed} key(s)",
            provider.display()
        );
        Ok(())
    }
}
