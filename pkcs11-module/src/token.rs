//! The one slot and token: identity from the TPM, flags from the keys.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tpmd_api::DEFAULT_SRK_HANDLE;

use crate::module::{lock, Module};

/// The TPM family behind the token: what it can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Tpm2,
    Tpm12,
}

/// Label, serial and maker of the token, read once from tpmd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// None while tpmd cannot be asked.
    pub family: Option<Family>,
    pub label: String,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub firmware: (u8, u8),
}

impl TokenIdentity {
    /// What the token shows while tpmd cannot be asked.
    fn unknown() -> TokenIdentity {
        TokenIdentity {
            family: None,
            label: "tpmd".into(),
            serial: "0".into(),
            manufacturer: "tpmd".into(),
            model: "TPM".into(),
            firmware: (0, 0),
        }
    }
}

/// The first two numbers of a firmware version string such as "1.59" or "20191023.0".
fn version_pair(s: &str) -> (u8, u8) {
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().unwrap_or(0).min(255) as u8);
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

impl Module {
    /// The family of the TPM behind the token; a TPM 2.0's until tpmd can be asked.
    pub fn family(&self) -> Family {
        self.identity().family.unwrap_or_default()
    }

    /// The token's identity: the serial is a hash of the storage root key, which is
    /// unique to the TPM (and changes when the TPM is cleared, as the keys do).
    pub fn identity(&self) -> TokenIdentity {
        if let Some(id) = lock(&self.identity).as_ref() {
            return id.clone();
        }
        // One attempt, no waiting: applications ask for token info often, and a machine
        // without tpmd must not make each ask hang. Only a success is cached.
        let grace = Duration::ZERO;
        let info = self
            .daemon
            .call_within(grace, |p| async move { p.get_info().await });
        let srk = self.daemon.call_within(grace, |p| async move {
            p.parent_public(DEFAULT_SRK_HANDLE).await
        });
        let (Ok(info), Ok(srk)) = (info, srk) else {
            return TokenIdentity::unknown();
        };
        let manufacturer = info.manufacturer.clone().unwrap_or_default();
        let vendor = info.vendor_string.clone().unwrap_or_default();
        let family = info.family.clone().unwrap_or_else(|| "2.0".into());
        let digest = Sha256::digest(&srk);
        let id = TokenIdentity {
            family: Some(if family == "1.2" {
                Family::Tpm12
            } else {
                Family::Tpm2
            }),
            label: format!("tpmd {} TPM {family}", manufacturer.trim()).replace("  ", " "),
            serial: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
            manufacturer: if manufacturer.trim().is_empty() {
                "tpmd".into()
            } else {
                manufacturer.trim().to_string()
            },
            model: if vendor.trim().is_empty() {
                format!("TPM {family}")
            } else {
                vendor.trim().to_string()
            },
            firmware: version_pair(info.firmware_version.as_deref().unwrap_or("")),
        };
        *lock(&self.identity) = Some(id.clone());
        id
    }
}

/// Copies `s` into a blank-padded fixed field, cutting at a character boundary.
pub fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_and_versions() {
        assert_eq!(&pad::<6>("abc"), b"abc   ");
        assert_eq!(&pad::<3>("abcdef"), b"abc");
        assert_eq!(&pad::<2>("é"), b"\xc3\xa9");
        assert_eq!(&pad::<3>("aé"), b"a\xc3\xa9");
        assert_eq!(&pad::<2>("aé"), b"a ");
        assert_eq!(version_pair("1.59"), (1, 59));
        assert_eq!(version_pair(""), (0, 0));
    }
}
