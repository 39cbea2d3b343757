//! What GetInfo reports about a TPM 1.2.

use tpmd_api::dbus::Info;
use tpmd_tpm12::codec::consts::kh;

use super::error::convert;
use super::ops::KEY_TYPES;
use super::resource_manager::ResourceManager;
use crate::backend::{DaState, TpmError, TpmResult};

pub fn info(rm: &mut ResourceManager, transport: String) -> TpmResult<Info> {
    let tpm = rm.tpm();
    let version = tpm
        .version_info()
        .map_err(|e| convert("GetCapability", e, String::new))?;
    // The rest is best effort: a TPM 1.2 without an owner refuses some queries.
    let owned = tpm.has_owner().ok();
    let nv_locked = tpm.nv_state().ok().map(|nv| nv.locked);
    let lockout = tpm.da_info().ok().map(|da| da.active);
    let counters = rm.counters();
    Ok(Info {
        family: Some("1.2".into()),
        manufacturer: Some(version.vendor()),
        vendor_string: Some(version.describe()),
        firmware_version: Some(format!("{}.{}", version.version[2], version.version[3])),
        algorithms: Some(vec!["rsa".into(), "sha1".into()]),
        key_types: Some(KEY_TYPES.iter().map(|t| t.to_string()).collect()),
        srk_present: owned,
        srk_handle: Some(kh::SRK),
        lockout,
        owned,
        nv_locked,
        transport: Some(transport),
        resource_manager: None,
        counters: Some(counters),
        ..Info::default()
    })
}

/// The TPM 1.2's dictionary-attack state from TPM_CAP_DA_LOGIC. A TPM that answers with
/// TPM_DA_INFO_LIMITED reports no counts: then tpmd cannot budget and says so.
pub fn da_state(rm: &mut ResourceManager) -> TpmResult<DaState> {
    let da = rm
        .tpm()
        .da_info()
        .map_err(|e| convert("GetCapability", e, String::new))?;
    match (da.current_count, da.threshold) {
        (Some(failed), Some(max)) => Ok(DaState {
            failed_tries: u32::from(failed),
            max_tries: u32::from(max),
            recovery_time: None,
            lockout_recovery: None,
            in_lockout: da.active,
            lockout_ends_in: da.active.then_some(da.action_depend_value).flatten(),
        }),
        _ => Err(TpmError::Unsupported(
            "this TPM 1.2 reports no dictionary-attack counts (TPM_DA_INFO_LIMITED)".into(),
        )),
    }
}
