//! Policy sessions: started, satisfied and used within one request on the connection
//! that holds the key, so that on /dev/tpmrm0 the kernel swaps them with the key's
//! connection and nothing outlives the request. Verification tickets of signed policies
//! are kept until a TPM reset, so that a hot signature with a signed policy needs no
//! LoadExternal or VerifySignature.

use std::collections::HashMap;

use tpmd_tpm2::session::HmacSession;
use tpmd_tpm2::wire::ops;
use tracing::debug;

use super::*;

/// A started policy session and the connection it lives on.
pub struct PolicySession {
    at: At,
    key: KeyId,
    session: HmacSession,
}

impl PolicySession {
    pub fn handle(&self) -> u32 {
        self.session.handle
    }

    /// TPM2_PolicyAuthValue ran: the key's auth value enters the command's HMAC.
    pub fn auth_value_needed(&mut self) {
        self.session.set_auth_value_needed();
    }

    /// TPM2_PolicyRestart ran: the session is as new.
    pub fn restarted(&mut self) {
        self.session.reset_policy();
    }
}

/// What a TPMT_TK_VERIFIED ticket vouches for: the signer's name, the approved policy
/// and the policyRef.
pub type TicketKey = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Tickets are few (one per signed policy in use); a bound keeps a stream of bad
/// policies from growing the map.
const MAX_TICKETS: usize = 256;

#[derive(Default)]
pub struct Tickets {
    map: HashMap<TicketKey, Vec<u8>>,
}

impl Tickets {
    pub fn get(&self, key: &TicketKey) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    pub fn insert(&mut self, key: TicketKey, ticket: Vec<u8>) {
        if self.map.len() >= MAX_TICKETS {
            self.map.clear();
        }
        self.map.insert(key, ticket);
    }

    pub fn remove(&mut self, key: &TicketKey) {
        self.map.remove(key);
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

impl ResourceManager {
    /// Runs the command `build` makes for `blob`'s key, authorized by a policy session
    /// that `satisfy` takes through the key's policy. The session is salted to the SRK
    /// when `salted` (an auth value or parameters travel encrypted), ends with the
    /// command, and is flushed if anything fails. Recovers once, like
    /// [`with_key`](Self::with_key).
    pub fn with_policy_key(
        &mut self,
        blob: &Arc<KeyBlob>,
        auth: &[u8],
        crypt: Crypt,
        salted: bool,
        satisfy: &mut dyn FnMut(&mut ResourceManager, &mut PolicySession) -> TpmResult<()>,
        build: impl Fn(u32) -> Command,
    ) -> TpmResult<Response> {
        self.recovering(Some(blob.id), |rm| {
            let handle = rm.ensure_loaded(blob)?;
            let at = At::Key(blob.id);
            let mut session = rm.start_policy_session(at, blob.id, salted)?;
            let result = satisfy(rm, &mut session).and_then(|()| {
                let names = [blob.name.as_slice()];
                rm.execute_in_policy(&mut session, &build(handle), &names, auth, crypt)
            });
            if result.is_err() {
                rm.flush_at(at, session.handle());
            }
            result
        })
    }

    fn start_policy_session(
        &mut self,
        at: At,
        key: KeyId,
        salted: bool,
    ) -> TpmResult<PolicySession> {
        let salt = if salted { self.salt_key() } else { None };
        let (command, pending) = HmacSession::start_policy(salt.as_ref().map(|(h, p)| (*h, p)))?;
        // A salted start names the SRK, which needs a transient slot for a moment.
        let response = self.with_free_slot(&[key], |rm| {
            rm.execute_at(at, &command, &Authorization::None)
        })?;
        let session = HmacSession::started(pending, &response)?;
        Ok(PolicySession { at, key, session })
    }

    /// A policy command (no authorization) on the session's connection.
    pub fn policy_command(
        &mut self,
        session: &PolicySession,
        command: &Command,
    ) -> TpmResult<Response> {
        self.execute_at(session.at, command, &Authorization::None)
    }

    /// TPM2_LoadExternal of a public key on the session's connection: its handle and
    /// name. The caller flushes it with [`flush_for`](Self::flush_for).
    pub fn load_external(
        &mut self,
        session: &PolicySession,
        public: &[u8],
    ) -> TpmResult<(u32, Vec<u8>)> {
        let command = ops::load_external_public(public);
        let response = self.with_free_slot(&[session.key], |rm| {
            rm.execute_at(session.at, &command, &Authorization::None)
        })?;
        parse(ops::parse_load_external(&response))
    }

    /// Flushes a temporary object or session on the session's connection.
    pub fn flush_for(&mut self, session: &PolicySession, handle: u32) {
        self.flush_at(session.at, handle);
    }

    fn flush_at(&mut self, at: At, handle: u32) {
        if let Err(e) = self.execute_at(at, &ops::flush_context(handle), &Authorization::None) {
            debug!(error = %e, "FlushContext({handle:#x})");
        }
    }

    fn execute_in_policy(
        &mut self,
        session: &mut PolicySession,
        command: &Command,
        names: &[&[u8]],
        auth: &[u8],
        crypt: Crypt,
    ) -> TpmResult<Response> {
        if session.at == At::Main && self.main.is_none() {
            self.main()?;
        }
        let ResourceManager {
            main,
            cache,
            counters,
            ..
        } = self;
        let link = match session.at {
            At::Main => main.as_mut(),
            At::Key(id) => match cache.get_mut(&id).map(|e| &mut e.residence) {
                Some(Residence::Own(link, _)) => Some(link),
                _ => main.as_mut(),
            },
        }
        .ok_or_else(|| TpmError::Unavailable("no TPM connection".into()))?;
        Ok(link.execute_in_session(command, &mut session.session, names, auth, crypt, counters)?)
    }

    /// The verification tickets of signed policies, kept until a TPM reset.
    pub fn tickets(&mut self) -> &mut Tickets {
        &mut self.tickets
    }
}
