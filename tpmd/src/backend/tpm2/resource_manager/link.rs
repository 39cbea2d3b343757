//! One connection to the TPM and the HMAC session that lives in it. On /dev/tpmrm0 a
//! session belongs to the connection that started it, like an object, so each
//! connection keeps its own.

use std::thread::sleep;
use std::time::Duration;

use tpmd_api::public::TpmPublic;
use tpmd_tpm2::session::{Crypt, HmacSession, SessionError};
use tpmd_tpm2::tpm::{Tpm, TpmCallError};
use tpmd_tpm2::transport::{CommandCounter, Transport};
use tpmd_tpm2::wire::{ops, AuthCommand, Command, Response};
use tracing::debug;

use super::super::error::{TpmError, TpmResult};
use crate::backend::counters::RmCounters;

const RETRY_LIMIT: u32 = 8;

/// How a command is authorized.
pub enum Authorization<'a> {
    /// The command has no handle that needs authorization.
    None,
    /// A password session: for an empty auth value when nothing secret travels, which
    /// spares the TPM an HMAC.
    Password(&'a [u8]),
    /// The link's salted HMAC session, for an entity with this auth value; `names` are
    /// those of every handle in the command, `crypt` what travels encrypted.
    Hmac {
        names: &'a [&'a [u8]],
        auth: &'a [u8],
        crypt: Crypt,
    },
}

impl<'a> Authorization<'a> {
    /// The cheapest authorization that keeps `auth` and the `crypt` parameters off the
    /// bus in clear.
    pub fn for_entity(names: &'a [&'a [u8]], auth: &'a [u8], crypt: Crypt) -> Self {
        if auth.is_empty() && crypt == Crypt::Nothing {
            Authorization::Password(&[])
        } else {
            Authorization::Hmac { names, auth, crypt }
        }
    }
}

/// Runs `attempt` again while the TPM asks to (TPM_RC_RETRY, YIELDED, TESTING), up to
/// [`RETRY_LIMIT`] times, backing off from 1 ms to 200 ms; each attempt authorizes
/// afresh.
fn retrying<T>(
    code: u32,
    counters: &mut RmCounters,
    mut attempt: impl FnMut() -> Result<T, TpmCallError>,
) -> Result<T, TpmCallError> {
    let mut delay = Duration::from_millis(1);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match attempt() {
            Err(e)
                if attempts < RETRY_LIMIT
                    && e.response_code().is_some_and(|rc| rc.is_retryable()) =>
            {
                counters.retries += 1;
                debug!(command = code, attempt = attempts, "TPM asked to retry");
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

pub struct Link {
    tpm: Tpm,
    session: Option<HmacSession>,
}

impl Link {
    /// A swtpm connection is held between commands: the TPM thread releases it when idle
    /// ([`Link::release`]), and tpmd never talks to one swtpm through two links.
    pub fn open(transport: &Transport, counter: &CommandCounter) -> TpmResult<Link> {
        let tpm = Tpm::open(transport, Some(counter.clone()))
            .map_err(|e| TpmError::Unavailable(e.to_string()))?
            .hold_between_commands();
        Ok(Link { tpm, session: None })
    }

    /// Lets other programs reach a swtpm this link holds; objects and sessions stay.
    pub fn release(&mut self) {
        self.tpm.release();
    }

    pub fn tpm(&mut self) -> &mut Tpm {
        &mut self.tpm
    }

    pub fn has_session(&self) -> bool {
        self.session.is_some()
    }

    /// Forgets the session without telling the TPM (after a reset it is gone anyway).
    pub fn forget_session(&mut self) {
        self.session = None;
    }

    /// Ends the session in the TPM.
    pub fn end_session(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = self.tpm.execute(&ops::flush_context(session.handle), &[]);
        }
    }

    /// Runs `command`, retrying while the TPM asks to (TPM_RC_RETRY, YIELDED, TESTING),
    /// with a fresh authorization for every attempt. `salt` is the key a new session is
    /// salted to.
    pub fn execute(
        &mut self,
        command: &Command,
        authorization: &Authorization<'_>,
        salt: Option<(u32, &TpmPublic)>,
        counters: &mut RmCounters,
    ) -> Result<Response, TpmCallError> {
        retrying(command.code, counters, || {
            self.execute_once(command, authorization, salt)
        })
    }

    /// Runs `command` authorized by `session`, a session the caller started on this link
    /// (a policy session, which ends with the command), for an entity with `auth` whose
    /// handles have `names`; retried like [`execute`](Self::execute).
    pub fn execute_in_session(
        &mut self,
        command: &Command,
        session: &mut HmacSession,
        names: &[&[u8]],
        auth: &[u8],
        crypt: Crypt,
        counters: &mut RmCounters,
    ) -> Result<Response, TpmCallError> {
        retrying(command.code, counters, || {
            let mut encrypted = command.clone();
            let (auth_command, call) = session.authorize(&mut encrypted, names, auth, crypt)?;
            let mut response = self.tpm.execute(&encrypted, &[auth_command])?;
            session.verify(call, &mut response)?;
            Ok(response)
        })
    }

    fn execute_once(
        &mut self,
        command: &Command,
        authorization: &Authorization<'_>,
        salt: Option<(u32, &TpmPublic)>,
    ) -> Result<Response, TpmCallError> {
        match authorization {
            Authorization::None => self.tpm.execute(command, &[]),
            Authorization::Password(password) => self
                .tpm
                .execute(command, &[AuthCommand::password(password)]),
            Authorization::Hmac { names, auth, crypt } => {
                self.ensure_session(salt)?;
                let Some(session) = self.session.as_mut() else {
                    return Err(SessionError::NotStarted.into());
                };
                // Parameter encryption works in place: encrypt a copy.
                let mut command = command.clone();
                let (auth_command, call) = session.authorize(&mut command, names, auth, *crypt)?;
                let mut response = self.tpm.execute(&command, &[auth_command])?;
                if let Err(e) = session.verify(call, &mut response) {
                    // Out of step with the TPM: start afresh next time.
                    self.session = None;
                    return Err(e.into());
                }
                Ok(response)
            }
        }
    }

    fn ensure_session(&mut self, salt: Option<(u32, &TpmPublic)>) -> Result<(), TpmCallError> {
        if self.session.is_some() {
            return Ok(());
        }
        let (command, pending) = HmacSession::start(salt)?;
        let response = self.tpm.execute(&command, &[])?;
        self.session = Some(HmacSession::started(pending, &response)?);
        Ok(())
    }
}
