//! Authorizing commands: the salted HMAC session where something is secret, a
//! password session where nothing is.

use super::*;

impl ResourceManager {
    pub(super) fn drop_session(&mut self) {
        if let (Some(session), Some(ctx)) = (self.session.take(), self.ctx.as_mut()) {
            ctx.clear_sessions();
            let handle = tss_esapi::handles::SessionHandle::from(session);
            if ctx.flush_context(handle.into()).is_err() {
                let mut handle = ObjectHandle::from(handle);
                let _ = ctx.tr_close(&mut handle);
            }
        }
    }

    /// The shared session, salted to the SRK when there is one.
    pub(super) fn session(&mut self) -> TpmResult<AuthSession> {
        if let Some(session) = self.session {
            return Ok(session);
        }
        let salt = match self.persistent_handle(srk::SRK_HANDLE) {
            Ok(h) => Some(h),
            Err(TpmError::NoParent { .. }) => {
                warn!("no SRK: the authorization session is not salted");
                None
            }
            Err(e) => return Err(e),
        };
        let session = session::start(self.context()?, salt)?;
        self.session = Some(session);
        Ok(session)
    }

    /// Sets the object's auth value and the session for the next command: the salted
    /// HMAC session when an auth value or a secret parameter is involved, else a password
    /// session, since then nothing on the TPM bus needs protecting (and ESYS's HMAC
    /// session bookkeeping costs more than the TPM's own work on a fast TPM).
    pub(super) fn prepare_auth(
        &mut self,
        object: ObjectHandle,
        auth: &[u8],
        set_auth: bool,
        crypt: Crypt,
    ) -> TpmResult<()> {
        let plain = auth.is_empty() && crypt == Crypt::Nothing;
        if set_auth {
            let value = Auth::try_from(auth.to_vec()).map_err(|_| {
                TpmError::InvalidArgument(
                    "the auth value is longer than the TPM allows (64 bytes)".into(),
                )
            })?;
            self.context()?
                .tr_set_auth(object, value)
                .tpm("TR_SetAuth")?;
        }
        if plain {
            self.context()?
                .set_sessions((Some(AuthSession::Password), None, None));
            return Ok(());
        }
        let session = self.session()?;
        let ctx = self.context()?;
        session::set_crypt(ctx, session, crypt)?;
        ctx.set_sessions((Some(session), None, None));
        Ok(())
    }
}
