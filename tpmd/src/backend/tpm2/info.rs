//! What GetInfo reports about the TPM itself.

use tpmd_api::dbus::Info;
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::structures::CapabilityData;
use tss_esapi::Context;

use super::error::TpmResult;
use super::ops::KEY_TYPES;
use super::resource_manager::ResourceManager;

/// TPMA_PERMANENT.inLockout.
const PERMANENT_IN_LOCKOUT: u32 = 1 << 9;

fn property(ctx: &mut Context, tag: PropertyTag) -> Option<u32> {
    ctx.execute_without_session(|ctx| ctx.get_tpm_property(tag))
        .ok()
        .flatten()
}

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

fn algorithms(ctx: &mut Context) -> Vec<String> {
    let caps =
        ctx.execute_without_session(|ctx| ctx.get_capability(CapabilityType::Algorithms, 0, 64));
    match caps {
        Ok((CapabilityData::Algorithms(list), _)) => list
            .iter()
            .map(|p| format!("{:?}", p.algorithm_identifier()).to_lowercase())
            .collect(),
        _ => Vec::new(),
    }
}

pub fn info(rm: &mut ResourceManager) -> TpmResult<Info> {
    let srk_present = rm.persistent_handle(tpmd_tpm2::srk::SRK_HANDLE).is_ok();
    let transport = rm.transport().to_string();
    let counters = rm.counters();
    let ctx = rm.context()?;
    let vendor: String = [
        PropertyTag::VendorString1,
        PropertyTag::VendorString2,
        PropertyTag::VendorString3,
        PropertyTag::VendorString4,
    ]
    .into_iter()
    .filter_map(|tag| property(ctx, tag))
    .map(ascii)
    .collect();
    let firmware = match (
        property(ctx, PropertyTag::FirmwareVersion1),
        property(ctx, PropertyTag::FirmwareVersion2),
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
    let algorithms = algorithms(ctx);
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
        manufacturer: property(ctx, PropertyTag::Manufacturer).map(ascii),
        vendor_string: Some(vendor),
        firmware_version: firmware,
        algorithms: Some(algorithms),
        key_types: Some(key_types),
        srk_present: Some(srk_present),
        srk_handle: Some(tpmd_tpm2::srk::SRK_HANDLE),
        lockout: property(ctx, PropertyTag::Permanent).map(|p| p & PERMANENT_IN_LOCKOUT != 0),
        owned: None,
        nv_locked: None,
        transport: Some(transport),
        counters: Some(counters),
    })
}

/// "(TPM dictionary-attack counter N of M)" for wrong-auth messages.
pub fn lockout_note(rm: &mut ResourceManager) -> String {
    let Ok(ctx) = rm.context() else {
        return String::new();
    };
    match (
        property(ctx, PropertyTag::LockoutCounter),
        property(ctx, PropertyTag::MaxAuthFail),
    ) {
        (Some(count), Some(max)) => format!(" (TPM dictionary-attack counter {count} of {max})"),
        _ => String::new(),
    }
}
