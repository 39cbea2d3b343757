//! What GetInfo reports about the TPM itself.

use tpmd_api::dbus::Info;
use tpmd_tpm2::wire::ops::{self, pt, CapabilityData};

use super::error::{TpmError, TpmResult};
use super::ops::KEY_TYPES;
use super::resource_manager::{Authorization, ResourceManager};
use crate::backend::DaState;

/// Four characters packed in a u32, as TPM vendor properties are.
fn ascii(value: u32) -> String {
    value
        .to_be_bytes()
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect::<String>()
        .trim()
        .to_string()
}

/// `count` consecutive TPM properties from `first`, as (tag, value).
pub fn properties(rm: &mut ResourceManager, first: u32, count: u32) -> TpmResult<Vec<(u32, u32)>> {
    let response = rm.execute(
        &ops::get_capability(ops::CAP_TPM_PROPERTIES, first, count),
        &Authorization::None,
    )?;
    match ops::parse_capability(&response) {
        Ok((_, CapabilityData::Properties(list))) => Ok(list),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(TpmError::from(tpmd_tpm2::tpm::TpmCallError::from(e))),
    }
}

fn property(list: &[(u32, u32)], tag: u32) -> Option<u32> {
    list.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
}

fn algorithms(rm: &mut ResourceManager) -> Vec<String> {
    let response = rm.execute(
        &ops::get_capability(ops::CAP_ALGS, 0, 64),
        &Authorization::None,
    );
    match response.map(|r| ops::parse_capability(&r)) {
        Ok(Ok((_, CapabilityData::Algorithms(list)))) => list
            .into_iter()
            .map(|(alg, _)| tpmd_api::marshal::alg_name(alg).to_lowercase())
            .collect(),
        _ => Vec::new(),
    }
}

pub fn info(rm: &mut ResourceManager) -> TpmResult<Info> {
    let srk_present = rm.persistent_public(tpmd_tpm2::srk::SRK_HANDLE).is_ok();
    let fixed = properties(rm, pt::MANUFACTURER, 8)?;
    let variable = properties(rm, pt::PERMANENT, 1)?;
    let vendor: String = (0..4)
        .filter_map(|i| property(&fixed, pt::VENDOR_STRING_1 + i))
        .map(ascii)
        .collect();
    let firmware = match (
        property(&fixed, pt::FIRMWARE_VERSION_1),
        property(&fixed, pt::FIRMWARE_VERSION_2),
    ) {
        (Some(a), Some(b)) => Some(format!(
            "{}.{}.{}.{}",
            a >> 16,
            a & 0xFFFF,
            b >> 16,
            b & 0xFFFF
        )),
        _ => None,
    };
    let algorithms = algorithms(rm);
    let key_types = KEY_TYPES
        .iter()
        .filter(|t| {
            let needed = if t.starts_with("rsa") { "rsa" } else { "ecc" };
            algorithms.iter().any(|a| a == needed)
        })
        .map(|t| t.to_string())
        .collect();
    Ok(Info {
        family: Some("2.0".into()),
        manufacturer: property(&fixed, pt::MANUFACTURER).map(ascii),
        vendor_string: Some(vendor),
        firmware_version: firmware,
        algorithms: Some(algorithms),
        key_types: Some(key_types),
        srk_present: Some(srk_present),
        srk_handle: Some(tpmd_tpm2::srk::SRK_HANDLE),
        lockout: property(&variable, pt::PERMANENT).map(|p| p & ops::PERMANENT_IN_LOCKOUT != 0),
        owned: None,
        nv_locked: None,
        transport: Some(rm.transport().to_string()),
        resource_manager: Some(rm.describe()),
        counters: Some(rm.counters()),
        ..Info::default()
    })
}

/// The TPM's dictionary-attack state, in one TPM2_GetCapability: TPM_PT_PERMANENT
/// (inLockout) through TPM_PT_LOCKOUT_RECOVERY.
pub fn da_state(rm: &mut ResourceManager) -> TpmResult<DaState> {
    let list = properties(rm, pt::PERMANENT, pt::LOCKOUT_RECOVERY + 1 - pt::PERMANENT)?;
    let missing = |what: &str| TpmError::Stack {
        command: "GetCapability",
        detail: format!("the TPM did not report {what}"),
    };
    let failed_tries =
        property(&list, pt::LOCKOUT_COUNTER).ok_or_else(|| missing("TPM_PT_LOCKOUT_COUNTER"))?;
    let max_tries =
        property(&list, pt::MAX_AUTH_FAIL).ok_or_else(|| missing("TPM_PT_MAX_AUTH_FAIL"))?;
    let in_lockout = property(&list, pt::PERMANENT)
        .map(|p| p & ops::PERMANENT_IN_LOCKOUT != 0)
        .unwrap_or(failed_tries >= max_tries);
    Ok(DaState {
        failed_tries,
        max_tries,
        recovery_time: property(&list, pt::LOCKOUT_INTERVAL),
        lockout_recovery: property(&list, pt::LOCKOUT_RECOVERY),
        in_lockout,
        lockout_ends_in: None,
    })
}
