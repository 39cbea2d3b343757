//! Key operations: LoadKey2 under the SRK, Sign, UnBind, GetPubKey, FlushSpecific,
//! CreateWrapKey (OSAP on the parent), the SRK public key.

use super::error::ClientError;
use super::session::Tpm12;
use crate::codec::auth::{adip_encrypt, osap_shared_secret};
use crate::codec::consts::{et, kh};
use crate::codec::frame::parse_response;
use crate::codec::ops::{keys, owner, session};
use crate::codec::{AuthSecret, Key12, PubKey};

impl Tpm12 {
    /// Runs `cmd` in the OIAP session with `auth`, or unauthorized when `None`.
    pub fn run_maybe_auth1(
        &mut self,
        cmd: &crate::codec::Command,
        auth: Option<&AuthSecret>,
    ) -> Result<crate::codec::Response, ClientError> {
        match auth {
            Some(secret) => self.run_auth1(cmd, secret),
            None => self.run(cmd),
        }
    }

    /// Loads a TPM_KEY12 / TPM_KEY blob under the SRK; returns its handle.
    pub fn load_key(&mut self, blob: &[u8]) -> Result<u32, ClientError> {
        let cmd = keys::load_key2(kh::SRK, blob);
        let resp = self.with_secret(false, |tpm, srk| tpm.run_auth1(&cmd, srk))?;
        resp.handles()
            .first()
            .copied()
            .ok_or_else(|| ClientError::Invalid("LoadKey2 returned no handle".into()))
    }

    /// Signs with a loaded key. For a DER-scheme key `data` is a DigestInfo; for a
    /// SHA-1-scheme key a 20-byte digest. `auth` is `None` for a key whose
    /// authDataUsage is TPM_AUTH_NEVER.
    pub fn sign(
        &mut self,
        key: u32,
        auth: Option<&AuthSecret>,
        data: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let resp = self.run_maybe_auth1(&keys::sign(key, data), auth)?;
        Ok(keys::parse_sign(resp.params())?)
    }

    /// UnBind: decrypts data bound to the key (TPM_BOUND_DATA under OAEP "TCPA").
    pub fn unbind(
        &mut self,
        key: u32,
        auth: Option<&AuthSecret>,
        data: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let resp = self.run_maybe_auth1(&keys::unbind(key, data), auth)?;
        Ok(keys::parse_unbind(resp.params())?)
    }

    pub fn get_pub_key(
        &mut self,
        key: u32,
        auth: Option<&AuthSecret>,
    ) -> Result<PubKey, ClientError> {
        let resp = self.run_maybe_auth1(&keys::get_pub_key(key), auth)?;
        Ok(keys::parse_pub_key(resp.params())?)
    }

    /// SaveContext of a loaded key: a blob only this TPM can load again, until its next
    /// Startup(CLEAR). Cheaper to reload than LoadKey2 (no SRK decryption).
    pub fn save_key_context(&mut self, key: u32) -> Result<Vec<u8>, ClientError> {
        let resp = self.run(&keys::save_context(
            key,
            crate::codec::consts::rt::KEY,
            b"tpmd key context",
        ))?;
        Ok(keys::parse_save_context(resp.params())?)
    }

    /// LoadContext of a saved key context; returns the key's new handle.
    pub fn load_key_context(&mut self, context: &[u8]) -> Result<u32, ClientError> {
        let resp = self.run(&keys::load_context(0, false, context))?;
        resp.handles()
            .first()
            .copied()
            .ok_or_else(|| ClientError::Invalid("LoadContext returned no handle".into()))
    }

    pub fn flush_key(&mut self, key: u32) -> Result<(), ClientError> {
        self.run(&session::flush_key(key)).map(|_| ())
    }

    /// The SRK public key: GetPubKey with SRK auth if the TPM allows reading it
    /// (`tpm_restrictsrk -a`), else OwnerReadInternalPub with the owner secret.
    pub fn srk_public(&mut self) -> Result<PubKey, ClientError> {
        let cmd = keys::get_pub_key(kh::SRK);
        match self.with_secret(false, |tpm, srk| tpm.run_auth1(&cmd, srk)) {
            Ok(resp) => Ok(keys::parse_pub_key(resp.params())?),
            Err(e) if e.is_transport() => Err(e),
            Err(_) => self.owner_read_internal_pub(kh::SRK),
        }
    }

    /// OwnerReadInternalPub of the SRK or EK.
    pub fn owner_read_internal_pub(&mut self, handle: u32) -> Result<PubKey, ClientError> {
        let cmd = owner::owner_read_internal_pub(handle);
        let resp = self.with_secret(true, |tpm, secret| tpm.run_auth1(&cmd, secret))?;
        Ok(owner::parse_owner_read_internal_pub(resp.params())?)
    }

    /// CreateWrapKey under the SRK: the TPM generates the key. `usage_auth` becomes the
    /// key's auth value; `template` comes from [`crate::keys::wrap::generate_template`].
    pub fn create_wrap_key(
        &mut self,
        template: &Key12,
        usage_auth: &AuthSecret,
    ) -> Result<Key12, ClientError> {
        self.with_secret(false, |tpm, srk| {
            tpm.create_wrap_key_with(srk, template, usage_auth)
        })
    }

    fn create_wrap_key_with(
        &mut self,
        srk: &AuthSecret,
        template: &Key12,
        usage_auth: &AuthSecret,
    ) -> Result<Key12, ClientError> {
        let nonce_odd_osap = Self::nonce();
        let osap = session::osap(et::KEYHANDLE, kh::SRK, &nonce_odd_osap);
        let out = session::parse_osap(self.run(&osap)?.params())?;
        self.stats.osap_opened += 1;
        let shared = osap_shared_secret(srk, &out.nonce_even_osap, &nonce_odd_osap);
        let nonce_odd = Self::nonce();
        // The migration secret of a non-migratable key is replaced by the TPM; for a
        // migratable one nobody should hold it.
        let migration = AuthSecret::from_raw(Self::nonce());
        let enc_usage = adip_encrypt(&shared, &out.nonce_even, usage_auth);
        let enc_migration = adip_encrypt(&shared, &nonce_odd, &migration);
        let cmd = keys::create_wrap_key(kh::SRK, &enc_usage, &enc_migration, template);
        // continueAuthSession = false: the TPM closes the OSAP session after this command.
        let auth = cmd.authorize(&shared, out.handle, &out.nonce_even, nonce_odd, false);
        let bytes = self.transmit_raw(&cmd.encode(&[auth]))?;
        let resp = parse_response(&bytes, &cmd, 1)?;
        resp.verify(0, &shared, &nonce_odd)?;
        Ok(keys::parse_create_wrap_key(resp.params())?)
    }
}
