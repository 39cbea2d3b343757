//! `ssh-add -s PROVIDER` / `ssh-add -e PROVIDER`: keys of a PKCS#11 provider (a smart
//! card, a YubiKey's PIV applet, softhsm), served as ssh-agent serves them. As in
//! ssh-agent, the provider is loaded only if its real path matches the allowlist (`-P`,
//! by default `/usr/lib*/*,/usr/local/lib*/*`), never for a connection forwarded from
//! another host (CVE-2023-38408), and in a helper process of its own (this binary run
//! with `--pkcs11-helper`), so a provider that crashes or misbehaves takes only its helper
//! down, never the agent or its other keys.

mod helper;
mod protocol;
mod providers;
mod token;

pub use helper::run as run_helper;
pub use providers::{Providers, DEFAULT_ALLOWLIST};
