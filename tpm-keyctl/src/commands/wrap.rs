//! `wrap`: a software private key becomes a TPM key file. The key is read and the
//! duplicate built here, in this process; tpmd only sees the wrapped duplicate.

use std::path::{Path, PathBuf};

use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::json;
use tpmd_api::client::{wrap_and_import_with_policy, WrapError};
use tpmd_api::duplicate::wrap_with_policy;
use tpmd_api::privkey::{read_private_key, KeyReadError, ReadKey};
use tpmd_api::TpmPublic;
use zeroize::Zeroizing;

use super::Tpmd;
use crate::cli::WrapArgs;
use crate::error::{CliError, CliResult};
use crate::{binding, files, output, prompt};

pub(crate) fn read_key(
    path: &Path,
    data: &[u8],
    passphrase_file: Option<&Path>,
) -> CliResult<ReadKey> {
    match read_private_key(data, None) {
        Err(KeyReadError::PassphraseRequired) => {}
        other => return other.map_err(|e| CliError::file(path, e)),
    }
    let passphrase = match passphrase_file {
        Some(file) => files::read_secret(file)?,
        None => prompt::secret(&format!("Passphrase for {}: ", path.display()))?,
    };
    read_private_key(data, Some(&passphrase)).map_err(|e| CliError::file(path, e))
}

/// The parent's public area from a file: TPM2B_PUBLIC, or a PEM public key of an SRK
/// made from the standard template.
pub fn read_parent_public(path: &Path) -> CliResult<TpmPublic> {
    let bytes = files::read(path)?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if text.contains("-----BEGIN PUBLIC KEY-----") {
            let key = rsa::RsaPublicKey::from_public_key_pem(text.trim())
                .map_err(|e| CliError::file(path, format!("not an RSA public key: {e}")))?;
            return Ok(TpmPublic::standard_srk_with_modulus(&key.n().to_bytes_be()));
        }
    }
    TpmPublic::from_tpm2b(&bytes).map_err(|e| {
        CliError::file(
            path,
            format!("not a TPM2B_PUBLIC (from `tpm-keyctl srk public`) or PEM public key: {e}"),
        )
    })
}

pub fn auth_value(ask: bool, file: Option<&Path>) -> CliResult<Zeroizing<Vec<u8>>> {
    match (ask, file) {
        (_, Some(file)) => files::read_secret(file),
        (true, None) => prompt::new_secret("Auth value for the TPM key: "),
        (false, None) => Ok(Zeroizing::new(Vec::new())),
    }
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

pub async fn run(tpmd: Option<&Tpmd>, args: &WrapArgs, json_out: bool) -> CliResult<()> {
    let data = Zeroizing::new(files::read(&args.key)?);
    let read = read_key(&args.key, &data, args.passphrase_file.as_deref())?;
    let auth = auth_value(args.ask_auth, args.auth_file.as_deref())?;
    let ssh_public = read
        .key
        .public_ssh()
        .map(|k| ssh_key::PublicKey::new(k, read.comment.clone().unwrap_or_default()));
    let description = read.key.describe();
    let backup = match &args.backup_to {
        Some(path) => {
            let public = String::from_utf8(files::read(path)?)
                .map_err(|_| CliError::file(path, "is not a PEM public key"))?;
            let backup = tpmd_api::backup::make_backup(&read.key, &auth, &public)
                .map_err(|e| CliError::file(path, e))?;
            Some(backup.to_pem())
        }
        None => None,
    };
    let policy = binding::key_policy(&args.bind, tpmd, !auth.is_empty()).await?;
    let (pem, imported) = match (&args.parent_pub, tpmd) {
        (Some(path), _) => {
            let parent = read_parent_public(path)?;
            let digest = match &policy {
                Some(policy) => Some(
                    policy
                        .digest()
                        .map_err(|e| CliError::Usage(e.to_string()))?,
                ),
                None => None,
            };
            let mut importable =
                wrap_with_policy(&read.key, &auth, digest.as_deref(), &parent, args.parent)
                    .map_err(|e| CliError::file(&args.key, e))?;
            if let Some(policy) = &policy {
                policy.write_into(&mut importable);
            }
            (importable.to_pem(), false)
        }
        (None, Some(tpmd)) => {
            let pem = wrap_and_import_with_policy(
                &tpmd.proxy,
                &read.key,
                &auth,
                args.parent,
                policy.as_ref(),
            )
            .await
            .map_err(|e| match e {
                WrapError::Daemon(e) => CliError::from_daemon(e, tpmd.user),
                WrapError::Unwrappable(m) => CliError::file(&args.key, m),
                other => CliError::Daemon(other.to_string()),
            })?;
            (pem, true)
        }
        (None, None) => return Err(CliError::Usage("no parent: give --parent-pub".into())),
    };
    drop(read);

    let out = match (&args.output, args.replace) {
        (Some(o), _) => o.clone(),
        (None, true) => args.key.clone(),
        (None, false) => with_suffix(&args.key, ".tpm"),
    };
    let backup_path = with_suffix(&out, ".backup");
    if backup.is_some() && backup_path.exists() && !(args.force || args.replace) {
        return Err(CliError::file(
            &backup_path,
            "already exists; pass --force to overwrite it",
        ));
    }
    files::write_atomic(&out, pem.as_bytes(), 0o600, args.force || args.replace)?;
    if let Some(backup) = &backup {
        files::write_atomic(
            &backup_path,
            backup.as_bytes(),
            0o600,
            args.force || args.replace,
        )?;
    }

    let pub_path = with_suffix(&args.key, ".pub");
    let mut wrote_pub = false;
    if !pub_path.exists() {
        if let Ok(Ok(line)) = ssh_public.as_ref().map(|k| k.to_openssh()) {
            files::write_atomic(&pub_path, format!("{line}\n").as_bytes(), 0o644, false)?;
            wrote_pub = true;
        }
    }
    let value = json!({
        "key": description, "output": out, "imported": imported,
        "public-key-written": wrote_pub.then_some(&pub_path),
        "backup": backup.is_some().then_some(&backup_path),
        "policy": policy.as_ref().map(binding::describe),
    });
    output::print(json_out, &value, |_| {
        let mut text = format!("wrapped {description} key into {}", out.display());
        if let Some(policy) = &policy {
            text.push_str(&format!("\nbound to {}", binding::describe(policy)));
        }
        if wrote_pub {
            text.push_str(&format!("\nwrote {}", pub_path.display()));
        }
        if backup.is_some() {
            text.push_str(&format!(
                "\nwrote the backup {} (opens only with the backup key's private half: keep that off this machine)",
                backup_path.display()
            ));
        }
        if imported {
            if !args.replace {
                text.push_str(&format!(
                    "\nnext: check it with `tpm-keyctl pubkey --ssh {}`, then remove the plaintext key {} once you no longer need it",
                    out.display(),
                    args.key.display()
                ));
            }
        } else {
            text.push_str("\nnext: copy it to the machine whose SRK you named; it is imported there on first use");
        }
        text
    });
    Ok(())
}
