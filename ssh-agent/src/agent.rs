//! Request dispatch: what each agent message does with the key store, tpmd, the user
//! (askpass) and the upstream agent. No lock is held across an await, so one slow
//! client (a confirm prompt, a tpmd restart) never holds up the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Identity, KeyConstraint, RemoveIdentity, Request,
    Response, SignRequest,
};
use ssh_agent_lib::ssh_encoding::Encode;
use ssh_key::public::KeyData;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::error::AgentError;
use crate::keys::{KeyStore, TpmKey};
use crate::lock::LockState;
use crate::sign::{self, Signed};
use crate::socket::Peer;
use crate::tpmd::{Tpmd, TpmdError};
use crate::upstream::{Upstream, UpstreamLink};

/// What goes back to the client.
pub enum Reply {
    Proto(Response),
    Signature(Signed),
    /// Key or certificate blobs with their comments (see `cert.rs`).
    Identities(Vec<(Vec<u8>, String)>),
}

fn key_blob(key: &KeyData) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    key.encode(&mut out).ok()?;
    Some(out)
}

/// Per-connection state.
pub struct Session {
    pub peer: Peer,
    /// How many session-bind@openssh.com messages this connection accepted.
    pub binds: usize,
    /// The last bind was for user authentication: as in OpenSSH, nothing may be bound
    /// after it.
    pub bound_for_auth: bool,
    /// Set by a bind with is_forwarding: the connection comes from another host through
    /// `ssh -A`, the fingerprint of whose host key this is.
    pub forwarded_to: Option<String>,
    /// This connection's own connection to the upstream agent, if there is one.
    pub upstream: Option<UpstreamLink>,
}

impl Session {
    /// The peer, and the forwarding it arrived through, for logs and prompts.
    pub fn describe(&self) -> String {
        match &self.forwarded_to {
            Some(host) => format!(
                "{} (forwarded: a client on host {host}, through ssh -A)",
                self.peer.describe()
            ),
            None => self.peer.describe(),
        }
    }

    /// Refuses what a forwarded connection may not do: change the agent's keys or their
    /// auth values from a host the user is logged in to, and whose root can use the
    /// forwarded socket.
    pub fn refuse_if_forwarded(&self, what: &'static str) -> Result<(), AgentError> {
        match &self.forwarded_to {
            Some(_) => Err(AgentError::Forwarded(what)),
            None => Ok(()),
        }
    }
}

pub(crate) struct CachedAuth {
    value: Zeroizing<Vec<u8>>,
    /// None: given with --set-auth, kept until the key is removed or the agent locked.
    until: Option<Instant>,
}

pub struct Agent {
    pub(crate) store: Mutex<KeyStore>,
    /// SHA-256 of the lock passphrase while locked.
    pub(crate) locked: Mutex<LockState>,
    pub(crate) auth_cache: Mutex<HashMap<KeyData, CachedAuth>>,
    pub(crate) auth_cache_time: Duration,
    pub(crate) tpmd: Tpmd,
    pub(crate) upstream: Option<Upstream>,
    pub(crate) save_wrapped: Option<std::path::PathBuf>,
}

pub(crate) fn lock_or_recover<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the agent down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Agent {
    pub fn new(settings: &Settings) -> Agent {
        Agent {
            store: Mutex::new(KeyStore::new(settings.key_dirs.clone())),
            locked: Mutex::new(LockState::default()),
            auth_cache: Mutex::new(HashMap::new()),
            auth_cache_time: settings.auth_cache,
            tpmd: Tpmd::new(settings.tpmd_wait, settings.session_bus),
            upstream: settings.upstream.clone().map(Upstream::new),
            save_wrapped: settings.save_wrapped.clone(),
        }
    }

    /// The state of a new client connection.
    pub fn session(&self, peer: Peer) -> Session {
        Session {
            peer,
            binds: 0,
            bound_for_auth: false,
            forwarded_to: None,
            upstream: self.upstream.as_ref().map(Upstream::link),
        }
    }

    pub fn rescan(&self) {
        let mut store = lock_or_recover(&self.store);
        store.rescan();
        store.purge_expired();
    }

    pub(crate) fn is_locked(&self) -> bool {
        lock_or_recover(&self.locked).is_locked()
    }

    pub async fn handle(
        &self,
        request: Request,
        session: &mut Session,
    ) -> Result<Reply, AgentError> {
        let ok = || Ok(Reply::Proto(Response::Success));
        match request {
            Request::RequestIdentities => Ok(Reply::Identities(self.identities(session).await)),
            Request::SignRequest(request) => self.sign(request, session).await,
            Request::AddIdentity(identity) => {
                session.refuse_if_forwarded("add keys")?;
                self.add(identity, Vec::new(), session).await?;
                ok()
            }
            Request::AddIdConstrained(AddIdentityConstrained {
                identity,
                constraints,
            }) => {
                session.refuse_if_forwarded("add keys")?;
                self.add(identity, constraints, session).await?;
                ok()
            }
            Request::RemoveIdentity(identity) => {
                self.remove(identity, session).await?;
                ok()
            }
            Request::RemoveAllIdentities => {
                self.remove_all(session).await?;
                ok()
            }
            Request::Lock(passphrase) => {
                self.lock(passphrase, session).await?;
                ok()
            }
            Request::Unlock(passphrase) => {
                self.unlock(passphrase, session).await?;
                ok()
            }
            Request::Extension(extension) => self.extension(extension, session).await,
            Request::AddSmartcardKey(_)
            | Request::AddSmartcardKeyConstrained(_)
            | Request::RemoveSmartcardKey(_) => Err(AgentError::Unsupported(
                "PKCS#11 providers (ssh-add -s) are not supported; wrap the key into the TPM with tpm-keyctl instead".into(),
            )),
        }
    }

    async fn identities(&self, session: &mut Session) -> Vec<(Vec<u8>, String)> {
        if self.is_locked() {
            return Vec::new();
        }
        let (ours, mut ids): (Vec<KeyData>, Vec<(Vec<u8>, String)>) = {
            let mut store = lock_or_recover(&self.store);
            store.rescan();
            store.purge_expired();
            let keys = store.keys();
            let ours = keys.iter().map(|k| k.public.clone()).collect();
            let ids = keys
                .iter()
                .flat_map(|k| {
                    key_blob(&k.public)
                        .into_iter()
                        .chain(k.cert.clone())
                        .map(|blob| (blob, k.comment.clone()))
                })
                .collect();
            (ours, ids)
        };
        if let Some(upstream) = session.upstream.as_mut() {
            match upstream.identities().await {
                Ok(theirs) => {
                    for Identity { pubkey, comment } in theirs {
                        if ours.contains(&pubkey) {
                            continue;
                        }
                        if let Some(blob) = key_blob(&pubkey) {
                            ids.push((blob, comment));
                        }
                    }
                }
                Err(e) => warn!("listing keys: {e}; serving the TPM keys only"),
            }
        }
        ids
    }

    pub(crate) fn find(&self, public: &KeyData) -> Option<TpmKey> {
        let mut store = lock_or_recover(&self.store);
        store.purge_expired();
        if let Some(key) = store.find(public) {
            return Some(key.clone());
        }
        // A key file may have appeared since the last scan.
        store.rescan();
        store.find(public).cloned()
    }

    async fn sign(&self, request: SignRequest, session: &mut Session) -> Result<Reply, AgentError> {
        if self.is_locked() {
            return Err(AgentError::Locked);
        }
        let Some(key) = self.find(&request.pubkey) else {
            let Some(upstream) = session.upstream.as_mut() else {
                return Err(AgentError::NoSuchKey);
            };
            let signature = upstream.sign(request).await?;
            return Ok(Reply::Signature(Signed::Ssh(signature)));
        };
        if key.confirm {
            let fingerprint = key.public.fingerprint(ssh_key::HashAlg::Sha256);
            let prompt = format!(
                "Allow use of key {}?\nKey fingerprint {fingerprint}.\nRequested by {}",
                key.comment,
                session.describe()
            );
            if !crate::askpass::confirm(&prompt).await {
                return Err(AgentError::NotConfirmed(key.comment));
            }
        }
        let plan = sign::plan(&key.public, &request.data, request.flags)?;
        debug!(
            "signing with {} and key \"{}\" for {}",
            plan.algorithm,
            key.comment,
            session.describe()
        );
        let auth = self.auth_for(&key).await?;
        let (blob, auth_ref, plan_ref) = (key.blob.as_slice(), auth.as_slice(), &plan);
        let result = self
            .tpmd
            .call("sign", move |proxy| async move {
                proxy
                    .sign(
                        blob,
                        auth_ref,
                        plan_ref.scheme,
                        plan_ref.hash,
                        &plan_ref.digest,
                    )
                    .await
            })
            .await;
        let signature = match result {
            Ok(signature) => signature,
            Err(TpmdError::AuthFailed(message)) => {
                lock_or_recover(&self.auth_cache).remove(&key.public);
                return Err(AgentError::Tpmd(TpmdError::AuthFailed(format!(
                    "key \"{}\": {message}",
                    key.comment
                ))));
            }
            Err(e) => return Err(e.into()),
        };
        sign::finish(&plan, signature).map(Reply::Signature)
    }

    /// The key's auth value: empty, cached, or asked for through SSH_ASKPASS.
    async fn auth_for(&self, key: &TpmKey) -> Result<Zeroizing<Vec<u8>>, AgentError> {
        if !key.needs_auth {
            return Ok(Zeroizing::new(Vec::new()));
        }
        {
            let mut cache = lock_or_recover(&self.auth_cache);
            cache.retain(|_, c| c.until.is_none_or(|t| t > Instant::now()));
            if let Some(cached) = cache.get(&key.public) {
                return Ok(cached.value.clone());
            }
        }
        let prompt = format!("Enter the PIN (auth value) of TPM key {}:", key.comment);
        let Some(value) = crate::askpass::ask_secret(&prompt).await else {
            return Err(AgentError::Unsupported(format!(
                "key \"{}\" needs its auth value (PIN) and none was given; set SSH_ASKPASS in the agent's environment",
                key.comment
            )));
        };
        self.remember_auth(
            &key.public,
            value.clone(),
            Some(Instant::now() + self.auth_cache_time),
        );
        Ok(value)
    }

    pub(crate) fn remember_auth(
        &self,
        public: &KeyData,
        value: Zeroizing<Vec<u8>>,
        until: Option<Instant>,
    ) {
        lock_or_recover(&self.auth_cache).insert(public.clone(), CachedAuth { value, until });
    }

    async fn add(
        &self,
        identity: AddIdentity,
        constraints: Vec<KeyConstraint>,
        session: &mut Session,
    ) -> Result<(), AgentError> {
        if self.is_locked() {
            return Err(AgentError::Locked);
        }
        crate::add::add(self, identity, constraints, session.upstream.as_mut()).await
    }

    async fn remove(
        &self,
        identity: RemoveIdentity,
        session: &mut Session,
    ) -> Result<(), AgentError> {
        if self.is_locked() {
            return Err(AgentError::Locked);
        }
        let removed = lock_or_recover(&self.store).remove(&identity.pubkey);
        if removed {
            info!(
                "removed key {}",
                identity.pubkey.fingerprint(ssh_key::HashAlg::Sha256)
            );
            lock_or_recover(&self.auth_cache).remove(&identity.pubkey);
            return Ok(());
        }
        match session.upstream.as_mut() {
            Some(upstream) => upstream.remove(identity).await,
            None => Err(AgentError::NoSuchKey),
        }
    }

    async fn remove_all(&self, session: &mut Session) -> Result<(), AgentError> {
        if self.is_locked() {
            return Err(AgentError::Locked);
        }
        lock_or_recover(&self.store).remove_all();
        lock_or_recover(&self.auth_cache).clear();
        info!("removed all keys");
        if let Some(upstream) = session.upstream.as_mut() {
            if let Err(e) = upstream.remove_all().await {
                warn!("removing all keys: {e}");
            }
        }
        Ok(())
    }
}

impl Agent {
    pub(crate) fn store_added(&self, key: TpmKey) {
        lock_or_recover(&self.store).add(key);
    }
}
