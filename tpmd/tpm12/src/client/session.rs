//! The connection, Startup when needed, and the one reused OIAP session.

use rand::rngs::OsRng;
use rand::RngCore;

use super::error::ClientError;
use super::transport::{CommandCounter, Connection, Transport};
use crate::codec::consts::startup;
use crate::codec::frame::{parse_response, Command, Response};
use crate::codec::ops::session;
use crate::codec::rc::{INVALID_AUTHHANDLE, INVALID_POSTINIT};
use crate::codec::{AuthSecret, Nonce, TpmRc, WellKnown};

/// What the client did, for tests and the daemon's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub commands: u64,
    pub oiap_opened: u64,
    pub osap_opened: u64,
    pub startups: u64,
    pub reconnects: u64,
    /// Well-known secret conventions tried that the TPM rejected.
    pub secret_retries: u64,
    /// Times the TPM was found to have lost our state (reconnect, Startup sent, or the
    /// OIAP session gone): key handles from before may be stale.
    pub epoch: u64,
}

#[derive(Debug)]
struct Oiap {
    handle: u32,
    nonce_even: Nonce,
}

/// A secret the TPM asks for (SRK or owner): the configured one, or the well-known
/// conventions tried in turn with the one that worked remembered.
#[derive(Debug, Clone, Default)]
pub struct SecretSlot {
    configured: Option<AuthSecret>,
    working: Option<AuthSecret>,
    /// The convention to try first. Every wrong guess counts towards the TPM's
    /// dictionary-attack lockout (libtpms locks out after five), so guess well.
    preferred: Option<WellKnown>,
}

impl SecretSlot {
    pub fn configured(secret: AuthSecret) -> SecretSlot {
        SecretSlot {
            configured: Some(secret),
            working: None,
            preferred: None,
        }
    }

    pub(crate) fn candidates(&self) -> Vec<AuthSecret> {
        if let Some(c) = &self.configured {
            return vec![c.clone()];
        }
        let mut out: Vec<AuthSecret> = self.working.iter().cloned().collect();
        for wk in self.preferred.into_iter().chain(WellKnown::ALL) {
            let s = wk.secret();
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    pub(crate) fn remember(&mut self, secret: &AuthSecret) {
        if self.configured.is_none() {
            self.working = Some(secret.clone());
        }
    }

    pub(crate) fn prefer(&mut self, convention: WellKnown) {
        self.preferred = Some(convention);
    }

    /// Which well-known convention worked, if one did.
    pub fn well_known(&self) -> Option<WellKnown> {
        let working = self.working.as_ref()?;
        WellKnown::ALL
            .into_iter()
            .find(|wk| &wk.secret() == working)
    }
}

/// A TPM 1.2 client.
#[derive(Debug)]
pub struct Tpm12 {
    transport: Transport,
    counter: CommandCounter,
    conn: Option<Connection>,
    /// Keep a swtpm connection between commands (see [`Tpm12::hold_connection`]).
    hold: bool,
    oiap: Option<Oiap>,
    pub(crate) srk: SecretSlot,
    pub(crate) owner: SecretSlot,
    pub(crate) stats: Stats,
}

impl Tpm12 {
    /// Connects; SRK and owner secrets default to the well-known conventions.
    pub fn connect(transport: Transport) -> Result<Tpm12, ClientError> {
        Self::connect_counted(transport, CommandCounter::default())
    }

    /// Connects, counting every command sent in `counter`.
    pub fn connect_counted(
        transport: Transport,
        counter: CommandCounter,
    ) -> Result<Tpm12, ClientError> {
        let conn = Connection::open(&transport, Some(counter.clone()))?;
        Ok(Tpm12 {
            transport,
            counter,
            conn: Some(conn),
            hold: false,
            oiap: None,
            srk: SecretSlot::default(),
            owner: SecretSlot::default(),
            stats: Stats::default(),
        })
    }

    /// Use this SRK secret instead of trying the well-known ones.
    pub fn set_srk_secret(&mut self, secret: AuthSecret) {
        self.srk = SecretSlot::configured(secret);
    }

    /// Use this owner secret instead of trying the well-known ones.
    pub fn set_owner_secret(&mut self, secret: AuthSecret) {
        self.owner = SecretSlot::configured(secret);
    }

    /// Which well-known convention to try first for the SRK and owner secrets (see
    /// [`Tpm12::version_info`] for the default).
    pub fn prefer_well_known(&mut self, convention: WellKnown) {
        self.srk.prefer(convention);
        self.owner.prefer(convention);
    }

    /// Which well-known SRK convention the TPM accepted (after a key load).
    pub fn srk_well_known(&self) -> Option<WellKnown> {
        self.srk.well_known()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Keeps a swtpm connection open from one command to the next instead of connecting
    /// for each (see `Connection::hold_between_commands`); the caller must
    /// [`release_connection`](Self::release_connection) when idle.
    pub fn hold_connection(&mut self) {
        self.hold = true;
        self.conn = self.conn.take().map(Connection::hold_between_commands);
    }

    /// Lets other programs reach a swtpm this client holds; sessions and loaded keys
    /// stay in the TPM.
    pub fn release_connection(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.release();
        }
    }

    /// Closes the connection (e.g. so another program can use a swtpm, which serves one
    /// client at a time); the next command reconnects.
    pub fn disconnect(&mut self) {
        self.conn = None;
        self.oiap = None;
    }

    /// The handle of this client's OIAP session, if one is open.
    pub(crate) fn oiap_handle(&self) -> Option<u32> {
        self.oiap.as_ref().map(|s| s.handle)
    }

    /// Changes whenever the TPM may have lost loaded keys (see [`Stats::epoch`]).
    pub fn epoch(&self) -> u64 {
        self.stats.epoch
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Every command sent so far, by ordinal.
    pub fn command_counter(&self) -> &CommandCounter {
        &self.counter
    }

    pub(crate) fn nonce() -> Nonce {
        let mut n = [0u8; 20];
        OsRng.fill_bytes(&mut n);
        n
    }

    /// Sends raw bytes, reconnecting once if the connection broke (swtpm restarted).
    pub fn transmit_raw(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.stats.commands += 1;
        if let Some(conn) = self.conn.as_mut() {
            match conn.transmit(bytes) {
                Ok(r) => return Ok(r),
                // A broken connection is replaced below.
                Err(_broken) => {}
            }
        }
        // Whatever the TPM held for us may be gone with the connection.
        self.conn = None;
        self.oiap = None;
        self.stats.reconnects += 1;
        self.stats.epoch += 1;
        let mut conn = Connection::open(&self.transport, Some(self.counter.clone()))?;
        if self.hold {
            conn = conn.hold_between_commands();
        }
        let response = conn.transmit(bytes)?;
        self.conn = Some(conn);
        Ok(response)
    }

    /// Sends a command, sending TPM_Startup(CLEAR) first if the TPM was just initialised.
    fn transmit(&mut self, bytes: &[u8], ordinal: u32) -> Result<Vec<u8>, ClientError> {
        let response = self.transmit_raw(bytes)?;
        if response_rc(&response) == Some(INVALID_POSTINIT)
            && ordinal != session::startup(0).ordinal
        {
            self.startup()?;
            return self.transmit_raw(bytes);
        }
        Ok(response)
    }

    /// TPM_Startup(CLEAR); "already started" counts as success.
    pub fn startup(&mut self) -> Result<(), ClientError> {
        self.stats.startups += 1;
        self.stats.epoch += 1;
        self.oiap = None;
        let cmd = session::startup(startup::CLEAR);
        let bytes = self.transmit_raw(&cmd.encode(&[]))?;
        match parse_response(&bytes, &cmd, 0) {
            Ok(_) => Ok(()),
            Err(crate::codec::ResponseError::Tpm(TpmRc(INVALID_POSTINIT))) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs a command without authorization.
    pub fn run(&mut self, cmd: &Command) -> Result<Response, ClientError> {
        let bytes = self.transmit(&cmd.encode(&[]), cmd.ordinal)?;
        Ok(parse_response(&bytes, cmd, 0)?)
    }

    fn open_oiap(&mut self) -> Result<(), ClientError> {
        let cmd = session::oiap();
        let resp = self.run(&cmd)?;
        let out = session::parse_oiap(resp.params())?;
        self.stats.oiap_opened += 1;
        self.oiap = Some(Oiap {
            handle: out.handle,
            nonce_even: out.nonce_even,
        });
        Ok(())
    }

    /// Drops the OIAP session (after an error the TPM has usually closed it already).
    fn drop_oiap(&mut self) {
        if let Some(s) = self.oiap.take() {
            // Best effort: the session may already be gone.
            let cmd = session::flush_auth(s.handle);
            let _ = self.transmit_raw(&cmd.encode(&[]));
        }
    }

    /// Runs a command authorized by `secret` in the shared OIAP session, opened on first
    /// use and kept open (continueAuthSession) across commands. A session the TPM lost
    /// (reset, eviction) is reopened once.
    pub fn run_auth1(
        &mut self,
        cmd: &Command,
        secret: &AuthSecret,
    ) -> Result<Response, ClientError> {
        let reused = self.oiap.is_some();
        match self.run_auth1_once(cmd, secret) {
            Err(ClientError::Tpm(TpmRc(INVALID_AUTHHANDLE))) if reused => {
                // Our session vanished: the TPM was reset (or evicted it).
                self.stats.epoch += 1;
                self.run_auth1_once(cmd, secret)
            }
            other => other,
        }
    }

    fn run_auth1_once(
        &mut self,
        cmd: &Command,
        secret: &AuthSecret,
    ) -> Result<Response, ClientError> {
        if self.oiap.is_none() {
            self.open_oiap()?;
        }
        let (handle, nonce_even) = match &self.oiap {
            Some(s) => (s.handle, s.nonce_even),
            None => return Err(ClientError::Invalid("no OIAP session".into())),
        };
        let nonce_odd = Self::nonce();
        let auth = cmd.authorize(secret, handle, &nonce_even, nonce_odd, true);
        let bytes = match self.transmit(&cmd.encode(&[auth]), cmd.ordinal) {
            Ok(b) => b,
            Err(e) => {
                self.oiap = None;
                return Err(e);
            }
        };
        let resp = match parse_response(&bytes, cmd, 1) {
            Ok(r) => r,
            Err(e) => {
                // The TPM ends a session when a command fails.
                self.oiap = None;
                return Err(e.into());
            }
        };
        if let Err(e) = resp.verify(0, secret, &nonce_odd) {
            self.drop_oiap();
            return Err(e.into());
        }
        match (&mut self.oiap, resp.auths.first()) {
            (Some(s), Some(a)) if a.continue_session => s.nonce_even = a.nonce_even,
            _ => self.oiap = None,
        }
        Ok(resp)
    }

    /// Runs `f` with each candidate of a secret slot until one is not refused with
    /// TPM_AUTHFAIL; remembers the one that worked.
    pub(crate) fn with_secret<T>(
        &mut self,
        owner: bool,
        mut f: impl FnMut(&mut Tpm12, &AuthSecret) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let slot = if owner { &self.owner } else { &self.srk };
        let configured = slot.configured.is_some();
        let candidates = slot.candidates();
        let mut last = None;
        for secret in &candidates {
            match f(self, secret) {
                Ok(v) => {
                    // Owner and SRK are normally set up with the same convention: what
                    // worked for one is the best first guess for the other.
                    let convention = WellKnown::ALL.into_iter().find(|wk| &wk.secret() == secret);
                    let (this, other) = if owner {
                        (&mut self.owner, &mut self.srk)
                    } else {
                        (&mut self.srk, &mut self.owner)
                    };
                    this.remember(secret);
                    if let Some(convention) = convention {
                        if other.working.is_none() {
                            other.prefer(convention);
                        }
                    }
                    return Ok(v);
                }
                // Only a refusal means a wrong guess: a response that fails its HMAC was
                // accepted by the TPM (and may be forged), so guessing on is wrong.
                Err(e) if e.is_auth_failure() => {
                    self.stats.secret_retries += 1;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        let what = if owner { "owner" } else { "SRK" };
        match last {
            Some(e) if configured => Err(e),
            _ => Err(ClientError::WellKnownFailed {
                what,
                tried:
                    "the well-known secret in both conventions (20 zero bytes, and SHA-1 of them)",
            }),
        }
    }
}

/// A TPM 1.2 keeps an auth session until it is flushed or the TPM restarts, whoever
/// opened it and whether or not that program is still there: a client that left its
/// OIAP session open at every exit would fill the TPM's few session slots
/// (TPM_RESOURCES) after some restarts.
impl Drop for Tpm12 {
    fn drop(&mut self) {
        self.drop_oiap();
    }
}

fn response_rc(bytes: &[u8]) -> Option<u32> {
    bytes
        .get(6..10)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_candidates_follow_preference_and_memory() {
        let zeros = WellKnown::Zeros.secret();
        let sha1 = WellKnown::Sha1OfZeros.secret();
        let mut slot = SecretSlot::default();
        assert_eq!(slot.candidates(), vec![zeros.clone(), sha1.clone()]);
        slot.prefer(WellKnown::Sha1OfZeros);
        assert_eq!(slot.candidates(), vec![sha1.clone(), zeros.clone()]);
        slot.remember(&zeros);
        assert_eq!(slot.candidates(), vec![zeros.clone(), sha1]);
        assert_eq!(slot.well_known(), Some(WellKnown::Zeros));
        let configured = SecretSlot::configured(AuthSecret::from_password(b"pw"));
        assert_eq!(
            configured.candidates(),
            vec![AuthSecret::from_password(b"pw")]
        );
    }
}
