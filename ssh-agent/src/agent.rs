//! Request dispatch: what each agent message does with the key store, tpmd, the user
//! (askpass), PKCS#11 helpers and the upstream agent. No lock is held across an await, so
//! one slow client (a confirm prompt, a tpmd restart) never holds up the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ssh_agent_lib::proto::{Request, Response};
use ssh_agent_lib::ssh_encoding::Decode;
use ssh_key::public::KeyData;
use tpmd_api::dbus::{ByteBuf, Bytes};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::add_request::{ADD_IDENTITY, ADD_ID_CONSTRAINED};
use crate::config::{NonTpmKeys, Settings};
use crate::destination::{self, Bind};
use crate::error::AgentError;
use crate::keys::{Backing, Held, KeyStore};
use crate::lock::LockState;
use crate::pkcs11::Providers;
use crate::sign::{self, Signed};
use crate::socket::Peer;
use crate::tpmd::{Tpmd, TpmdError};
use crate::upstream::{Upstream, UpstreamLink};
use crate::wire;

/// Add, remove, remove all, PKCS#11 add and remove, lock, unlock, add constrained and
/// PKCS#11 add constrained: what `--fixed-keys` refuses.
const CHANGES_KEYS: [u8; 9] = [17, 18, 19, 20, 21, 22, 23, 25, 26];

/// Protocol 1 requests (list, sign, add, remove, remove all of RSA1 keys), long gone.
const SSH1_REQUESTS: [u8; 5] = [1, 3, 7, 8, 9];

/// Key or certificate blobs with their comments, as listed.
type Identities = Vec<(Vec<u8>, String)>;

/// What goes back to the client.
pub enum Reply {
    Proto(Response),
    Signature(Signed),
    Identities(Identities),
    /// The upstream agent's answer, passed on unchanged.
    Raw(Vec<u8>),
}

/// Per-connection state.
pub struct Session {
    pub peer: Peer,
    /// The session-bind@openssh.com messages this connection accepted: the hosts it came
    /// through, the last one being where it is used.
    pub binds: Vec<Bind>,
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
    pub(crate) non_tpm_keys: NonTpmKeys,
    pub(crate) default_lifetime: Option<Duration>,
    pub(crate) providers: Providers,
    /// `--fixed-keys`: the key set is the configured files; no client changes it.
    pub(crate) fixed_keys: bool,
}

pub(crate) fn lock_or_recover<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the agent down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Agent {
    pub fn new(settings: &Settings) -> Agent {
        Agent {
            store: Mutex::new(KeyStore::new(
                settings.key_dirs.clone(),
                settings.key_files.clone(),
            )),
            fixed_keys: settings.fixed_keys,
            locked: Mutex::new(LockState::default()),
            auth_cache: Mutex::new(HashMap::new()),
            auth_cache_time: settings.auth_cache,
            tpmd: Tpmd::new(settings.tpmd_wait, settings.session_bus),
            upstream: settings.upstream.clone().map(Upstream::new),
            save_wrapped: settings.save_wrapped.clone(),
            non_tpm_keys: settings.non_tpm_keys,
            default_lifetime: settings.default_lifetime,
            providers: Providers::new(settings.pkcs11_allowlist.clone()),
        }
    }

    /// The state of a new client connection.
    pub fn session(&self, peer: Peer) -> Session {
        Session {
            peer,
            binds: Vec::new(),
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

    fn unlocked(&self) -> Result<(), AgentError> {
        if self.is_locked() {
            Err(AgentError::Locked)
        } else {
            Ok(())
        }
    }

    /// Answers one request, given as its frame (the message without its length).
    pub async fn handle(&self, frame: &[u8], session: &mut Session) -> Result<Reply, AgentError> {
        let ok = || Ok(Reply::Proto(Response::Success));
        // Messages that may carry certificates are read here; the rest by ssh-agent-lib.
        match frame.first() {
            Some(&wire::SSH_AGENTC_SIGN_REQUEST) => return self.sign(frame, session).await,
            Some(&wire::SSH_AGENTC_REMOVE_IDENTITY) if !self.fixed_keys => {
                self.remove(frame, session).await?;
                return ok();
            }
            Some(&ADD_IDENTITY | &ADD_ID_CONSTRAINED) if !self.fixed_keys => {
                session.refuse_if_forwarded("add keys")?;
                self.unlocked()?;
                crate::add::add(self, frame, session).await?;
                return ok();
            }
            _ => {}
        }
        if SSH1_REQUESTS.contains(&frame[0]) {
            // ssh-add -D still sends protocol 1's remove-all first and ignores the answer.
            return Err(AgentError::Protocol1);
        }
        if self.fixed_keys && CHANGES_KEYS.contains(&frame[0]) {
            return Err(AgentError::FixedKeys);
        }
        let request = Request::decode(&mut &frame[..]).map_err(|e| {
            AgentError::BadRequest(format!(
                "malformed or unsupported request (type {}): {e}",
                frame.first().copied().unwrap_or_default()
            ))
        })?;
        match request {
            Request::RequestIdentities => Ok(Reply::Identities(self.identities(session).await)),
            Request::RemoveAllIdentities => {
                self.remove_all(session).await?;
                ok()
            }
            Request::Lock(passphrase) => {
                self.lock(passphrase, frame, session).await?;
                ok()
            }
            Request::Unlock(passphrase) => {
                self.unlock(passphrase, frame, session).await?;
                ok()
            }
            Request::Extension(extension) => self.extension(extension, session).await,
            Request::AddSmartcardKey(key) => {
                self.unlocked()?;
                self.add_smartcard(frame, key, Vec::new(), session).await?;
                ok()
            }
            Request::AddSmartcardKeyConstrained(request) => {
                self.unlocked()?;
                self.add_smartcard(frame, request.key, request.constraints, session)
                    .await?;
                ok()
            }
            Request::RemoveSmartcardKey(key) => {
                self.unlocked()?;
                self.remove_smartcard(frame, key, session).await?;
                ok()
            }
            Request::SignRequest(_)
            | Request::RemoveIdentity(_)
            | Request::AddIdentity(_)
            | Request::AddIdConstrained(_) => {
                Err(AgentError::BadRequest("unexpected message".into()))
            }
        }
    }

    async fn identities(&self, session: &mut Session) -> Identities {
        if self.is_locked() {
            return Vec::new();
        }
        let (ours, mut ids): (Vec<Vec<u8>>, Identities) = {
            let mut store = lock_or_recover(&self.store);
            store.rescan();
            store.purge_expired();
            let keys = store.keys();
            let ours = keys.iter().map(|k| k.key.blob.clone()).collect();
            let ids = keys
                .iter()
                .filter(|k| destination::listable(&k.rules, &session.binds))
                .map(|k| (k.key.blob.clone(), k.listed_comment()))
                .collect();
            (ours, ids)
        };
        if let Some(upstream) = session.upstream.as_mut() {
            match upstream.identities().await {
                Ok(theirs) => {
                    ids.extend(theirs.into_iter().filter(|(blob, _)| !ours.contains(blob)))
                }
                Err(e) => warn!("listing keys: {e}; serving this agent's keys only"),
            }
        }
        ids
    }

    pub(crate) fn find(&self, blob: &[u8]) -> Option<Held> {
        let mut store = lock_or_recover(&self.store);
        store.purge_expired();
        if let Some(key) = store.find(blob) {
            return Some(key.clone());
        }
        // A key file may have appeared since the last scan.
        store.rescan();
        store.find(blob).cloned()
    }

    async fn sign(&self, frame: &[u8], session: &mut Session) -> Result<Reply, AgentError> {
        self.unlocked()?;
        let request = wire::parse_sign(frame).map_err(AgentError::BadRequest)?;
        let Some(key) = self.find(&request.key.blob) else {
            let Some(upstream) = session.upstream.as_mut() else {
                return Err(AgentError::NoSuchKey);
            };
            let reply = upstream.call(frame).await?;
            if reply.first() != Some(&wire::SSH_AGENT_SIGN_RESPONSE) {
                return Err(AgentError::Upstream(
                    "refused to sign (a destination constraint, or no such key)".into(),
                ));
            }
            return Ok(Reply::Raw(reply));
        };
        destination::check_sign(&key.rules, &session.binds, &request.key, &request.data).map_err(
            |why| AgentError::Restricted {
                key: key.comment.clone(),
                why,
            },
        )?;
        if key.confirm {
            let fingerprint = key.key.public.fingerprint(ssh_key::HashAlg::Sha256);
            let prompt = format!(
                "Allow use of key {}?\nKey fingerprint {fingerprint}.\nRequested by {}",
                key.comment,
                session.describe()
            );
            if !crate::askpass::confirm(&prompt).await {
                return Err(AgentError::NotConfirmed(key.comment));
            }
        }
        debug!(
            "signing with {} and key \"{}\" ({}) for {}",
            sign::algorithm_name(&key.key.public, request.flags),
            key.comment,
            request.key.describe(),
            session.describe()
        );
        let signed = match &key.backing {
            Backing::Tpm {
                blob,
                needs_auth,
                takes_user_policies,
            } => {
                let blob = tpmd_api::client::to_send(blob, *takes_user_policies);
                self.sign_tpm(&key, &blob, *needs_auth, &request.data, request.flags)
                    .await?
            }
            Backing::Memory(memory) => memory.sign(&request.data, request.flags)?,
            Backing::Pkcs11 { provider } => {
                self.providers
                    .sign(provider, &key.key.public, &request.data, request.flags)
                    .await?
            }
        };
        Ok(Reply::Signature(signed))
    }

    async fn sign_tpm(
        &self,
        key: &Held,
        blob: &[u8],
        needs_auth: bool,
        data: &[u8],
        flags: u32,
    ) -> Result<Signed, AgentError> {
        let plan = sign::plan(&key.key.public, data, flags)?;
        let auth = self.auth_for(key, needs_auth).await?;
        let (auth_ref, plan_ref) = (auth.as_slice(), &plan);
        let result = self
            .tpmd
            .call("sign", move |proxy| async move {
                proxy
                    .sign(
                        Bytes::new(blob),
                        Bytes::new(auth_ref),
                        plan_ref.scheme,
                        plan_ref.hash,
                        Bytes::new(&plan_ref.digest),
                    )
                    .await
                    .map(ByteBuf::into_vec)
            })
            .await;
        let signature = match result {
            Ok(signature) => signature,
            Err(TpmdError::AuthFailed(message)) => {
                lock_or_recover(&self.auth_cache).remove(&key.key.public);
                return Err(AgentError::Tpmd(TpmdError::AuthFailed(format!(
                    "key \"{}\": {message}",
                    key.comment
                ))));
            }
            Err(e) => return Err(e.into()),
        };
        sign::finish(&plan, signature)
    }

    /// The key's auth value: empty, cached, or asked for through SSH_ASKPASS.
    async fn auth_for(
        &self,
        key: &Held,
        needs_auth: bool,
    ) -> Result<Zeroizing<Vec<u8>>, AgentError> {
        if !needs_auth {
            return Ok(Zeroizing::new(Vec::new()));
        }
        {
            let mut cache = lock_or_recover(&self.auth_cache);
            cache.retain(|_, c| c.until.is_none_or(|t| t > Instant::now()));
            if let Some(cached) = cache.get(&key.key.public) {
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
            &key.key.public,
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

    async fn remove(&self, frame: &[u8], session: &mut Session) -> Result<(), AgentError> {
        self.unlocked()?;
        let key = wire::parse_remove(frame).map_err(AgentError::BadRequest)?;
        let removed = lock_or_recover(&self.store).remove(&key.blob);
        if removed {
            info!("removed {}", key.describe());
            if key.cert.is_none() {
                lock_or_recover(&self.auth_cache).remove(&key.public);
            }
            return Ok(());
        }
        match session.upstream.as_mut() {
            Some(upstream) => upstream.request(frame, "does not hold the key").await,
            None => Err(AgentError::NoSuchKey),
        }
    }

    async fn remove_all(&self, session: &mut Session) -> Result<(), AgentError> {
        self.unlocked()?;
        lock_or_recover(&self.store).remove_all();
        lock_or_recover(&self.auth_cache).clear();
        self.providers.unload_all().await;
        info!("removed all keys");
        if let Some(upstream) = session.upstream.as_mut() {
            if let Err(e) = upstream.remove_all().await {
                warn!("removing all keys: {e}");
            }
        }
        Ok(())
    }

    pub(crate) fn store_added(&self, key: Held) {
        lock_or_recover(&self.store).add(key);
    }
}
