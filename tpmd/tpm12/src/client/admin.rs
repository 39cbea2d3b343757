//! Queries and platform operations: version, slots, flags, NV, DA state, PCRs,
//! TakeOwnership with a well-known SRK and making the SRK public key readable.

use rand::rngs::OsRng;

use super::error::ClientError;
use super::session::Tpm12;
use crate::codec::consts::{alg, auth_usage, cap, et, key_usage, rt, NV_INDEX_LOCK};
use crate::codec::ops::capability::{self as capa, DaInfo, PermanentFlags, VersionInfo};
use crate::codec::ops::{owner, pcr_nv, session};
use crate::codec::rc;
use crate::codec::{AuthSecret, Command, Key12, KeyParms, PubKey, TpmRc, WellKnown};
use crate::keys::bind::oaep_tcpa_encrypt;
use crate::keys::public::to_rsa;

/// What `tpm-keyctl doctor` needs to know about NV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvState {
    pub indices: Vec<u32>,
    /// TPM_PERMANENT_FLAGS.nvLocked: TPM_NV_INDEX_LOCK has been defined, so NV access
    /// control is enforced.
    pub locked: bool,
}

impl Tpm12 {
    fn capability(&mut self, cmd: &Command) -> Result<Vec<u8>, ClientError> {
        let resp = self.run(cmd)?;
        Ok(capa::parse_capability(resp.params())?)
    }

    /// TPM_CAP_VERSION_VAL. On libtpms (vendor "IBM": swtpm) it also makes the client try
    /// the SHA-1-of-zeros well-known convention first, the one `swtpm_setup` writes, so a
    /// client does not spend a dictionary-attack strike on the TSS convention each start.
    pub fn version_info(&mut self) -> Result<VersionInfo, ClientError> {
        let resp = self.capability(&capa::get_version())?;
        let info = capa::parse_version_info(&resp)?;
        if info.vendor() == "IBM" {
            self.prefer_well_known(WellKnown::Sha1OfZeros);
        }
        Ok(info)
    }

    pub fn property(&mut self, prop: u32) -> Result<u32, ClientError> {
        let resp = self.capability(&capa::get_property(prop))?;
        Ok(capa::parse_u32(&resp)?)
    }

    /// How many 2048-bit keys the TPM can hold loaded at once (TPM_CAP_PROP_MAX_KEYS).
    pub fn max_key_slots(&mut self) -> Result<u32, ClientError> {
        self.property(cap::PROP_MAX_KEYS)
    }

    /// How many more keys fit now (TPM_CAP_PROP_KEYS).
    pub fn free_key_slots(&mut self) -> Result<u32, ClientError> {
        self.property(cap::PROP_KEYS)
    }

    pub fn loaded_keys(&mut self) -> Result<Vec<u32>, ClientError> {
        let resp = self.capability(&capa::get_key_handles())?;
        Ok(capa::parse_key_handles(&resp)?)
    }

    /// Flushes every loaded key and every auth session but this client's own: what a
    /// previous owner of the TPM left there when it was killed. A TPM 1.2 keeps both until
    /// it restarts, and it has only a few slots of each. Only for a client that has the
    /// TPM to itself, as tpmd has /dev/tpm0. Returns (keys, sessions) flushed.
    pub fn flush_left_behind(&mut self) -> Result<(usize, usize), ClientError> {
        let own = self.oiap_handle();
        let mut flushed = (0, 0);
        for (resource_type, command, count) in [
            (
                rt::KEY,
                session::flush_key as fn(u32) -> Command,
                &mut flushed.0,
            ),
            (rt::AUTH, session::flush_auth, &mut flushed.1),
        ] {
            let resp = self.capability(&capa::get_handles(resource_type))?;
            for handle in capa::parse_key_handles(&resp)? {
                // One that cannot be flushed (gone meanwhile) is no reason to stop.
                if Some(handle) != own && self.run(&command(handle)).is_ok() {
                    *count += 1;
                }
            }
        }
        Ok(flushed)
    }

    /// Whether the TPM has an owner (TPM_CAP_PROP_OWNER).
    pub fn has_owner(&mut self) -> Result<bool, ClientError> {
        let resp = self.capability(&capa::get_property(cap::PROP_OWNER))?;
        Ok(capa::parse_bool(&resp)?)
    }

    pub fn permanent_flags(&mut self) -> Result<PermanentFlags, ClientError> {
        let resp = self.capability(&capa::get_permanent_flags())?;
        Ok(capa::parse_permanent_flags(&resp)?)
    }

    /// The defined NV indices and whether NV is locked.
    pub fn nv_state(&mut self) -> Result<NvState, ClientError> {
        let resp = self.capability(&capa::get_nv_list())?;
        let indices = capa::parse_nv_list(&resp)?;
        let flags = self.permanent_flags()?;
        Ok(NvState {
            locked: flags.nv_locked || indices.contains(&NV_INDEX_LOCK),
            indices,
        })
    }

    /// Defines TPM_NV_INDEX_LOCK so NV access control is enforced (the `doctor` fix for an
    /// NV left unlocked by the platform). Irreversible short of a TPM clear.
    pub fn lock_nv(&mut self) -> Result<(), ClientError> {
        self.run(&pcr_nv::nv_define_lock()).map(|_| ())
    }

    /// Dictionary-attack state as the TPM reports it for key authorization.
    pub fn da_info(&mut self) -> Result<DaInfo, ClientError> {
        let resp = self.capability(&capa::get_da_logic(et::KEYHANDLE))?;
        Ok(capa::parse_da_info(&resp)?)
    }

    pub fn pcr_read(&mut self, index: u32) -> Result<[u8; 20], ClientError> {
        let resp = self.run(&pcr_nv::pcr_read(index))?;
        Ok(pcr_nv::parse_pcr_value(resp.params())?)
    }

    pub fn extend(&mut self, index: u32, digest: &[u8; 20]) -> Result<[u8; 20], ClientError> {
        let resp = self.run(&pcr_nv::extend(index, digest))?;
        Ok(pcr_nv::parse_pcr_value(resp.params())?)
    }

    /// NV_ReadValue of an area readable without authorization.
    pub fn nv_read(&mut self, index: u32, offset: u32, size: u32) -> Result<Vec<u8>, ClientError> {
        let resp = self.run(&pcr_nv::nv_read_value(index, offset, size))?;
        Ok(pcr_nv::parse_nv_read_value(resp.params())?)
    }

    /// The endorsement key (readable before an owner is installed).
    pub fn read_pubek(&mut self) -> Result<PubKey, ClientError> {
        let nonce = Self::nonce();
        let resp = self.run(&owner::read_pubek(&nonce))?;
        Ok(owner::parse_read_pubek(resp.params(), &nonce)?)
    }

    /// TakeOwnership (`tpm_takeownership -z` with the given secrets; pass
    /// `WellKnown::Zeros.secret()` for both to get the TSS well-known convention), then
    /// makes the SRK public key readable (`tpm_restrictsrk -a`). Returns the SRK public.
    pub fn take_ownership(
        &mut self,
        owner_auth: &AuthSecret,
        srk_auth: &AuthSecret,
    ) -> Result<PubKey, ClientError> {
        if self.has_owner()? {
            return Err(ClientError::Tpm(TpmRc(rc::OWNER_SET)));
        }
        let ek = to_rsa(&self.read_pubek()?)?;
        let enc_owner = oaep_tcpa_encrypt(&mut OsRng, &ek, owner_auth.as_bytes())?;
        let enc_srk = oaep_tcpa_encrypt(&mut OsRng, &ek, srk_auth.as_bytes())?;
        let srk_params = Key12::template(
            key_usage::STORAGE,
            0,
            auth_usage::ALWAYS,
            KeyParms::rsa(2048, alg::ES_RSAESOAEP_SHA1_MGF1, alg::SS_NONE),
        );
        let cmd = owner::take_ownership(&enc_owner, &enc_srk, &srk_params);
        let resp = self.run_auth1(&cmd, owner_auth)?;
        let srk = owner::parse_take_ownership(resp.params())?;
        self.set_owner_secret(owner_auth.clone());
        self.set_srk_secret(srk_auth.clone());
        self.allow_srk_read(true)?;
        Ok(srk.pubkey())
    }

    /// TPM_ResetLockValue with the owner secret: ends a dictionary-attack lockout.
    pub fn reset_lockout(&mut self) -> Result<(), ClientError> {
        let cmd = owner::reset_lock_value();
        self.with_secret(true, |tpm, secret| tpm.run_auth1(&cmd, secret))
            .map(|_| ())
    }

    /// TPM_SetCapability(READSRKPUB): lets anyone read the SRK public key with GetPubKey.
    pub fn allow_srk_read(&mut self, allow: bool) -> Result<(), ClientError> {
        let cmd = owner::set_read_srk_pub(allow);
        self.with_secret(true, |tpm, secret| tpm.run_auth1(&cmd, secret))
            .map(|_| ())
    }

    /// TPM_GetRandom: up to `bytes` bytes from the TPM's generator (it may return fewer).
    pub fn get_random(&mut self, bytes: u32) -> Result<Vec<u8>, ClientError> {
        let resp = self.run(&session::get_random(bytes))?;
        Ok(session::parse_get_random(resp.params())?)
    }
}
