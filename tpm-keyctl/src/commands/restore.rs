//! `restore`: a key from its offline backup, wrapped for this TPM with the same auth
//! value. The backup is opened here, with the backup key's private half; the key's
//! plaintext stays in this process and is zeroized, and tpmd only imports the result.

use serde_json::json;
use tpmd_api::client::{wrap_and_import, WrapError};
use tpmd_api::keyfile::TpmKeyFile;
use tpmd_api::DEFAULT_SRK_HANDLE;
use zeroize::Zeroizing;

use super::wrap::{read_key, with_suffix};
use super::Tpmd;
use crate::cli::RestoreArgs;
use crate::error::{CliError, CliResult};
use crate::{files, output};

pub async fn run(tpmd: &Tpmd, args: &RestoreArgs, json_out: bool) -> CliResult<()> {
    let out = match &args.output {
        Some(path) => path.clone(),
        None => match args.backup.to_str().and_then(|s| s.strip_suffix(".backup")) {
            Some(stem) => stem.into(),
            None => with_suffix(&args.backup, ".tpm"),
        },
    };
    if out.exists() && !args.force {
        return Err(CliError::file(
            &out,
            "already exists; pass --force to overwrite it, or -o another file",
        ));
    }
    let backup = TpmKeyFile::parse(&files::read(&args.backup)?)
        .map_err(|e| CliError::file(&args.backup, e))?;
    let backup_key_data = Zeroizing::new(files::read(&args.backup_key)?);
    let backup_key = read_key(
        &args.backup_key,
        &backup_key_data,
        args.passphrase_file.as_deref(),
    )?;
    let (key, auth) = tpmd_api::backup::open_backup(&backup, &backup_key.key)
        .map_err(|e| CliError::file(&args.backup, e))?;
    drop(backup_key);
    let description = key.describe();
    let pem = wrap_and_import(&tpmd.proxy, &key, &auth, DEFAULT_SRK_HANDLE)
        .await
        .map_err(|e| match e {
            WrapError::Daemon(e) => CliError::from_daemon(e, tpmd.user),
            WrapError::Unwrappable(m) => CliError::file(&args.backup, m),
            other => CliError::Daemon(other.to_string()),
        })?;
    drop(key);
    files::write_atomic(&out, pem.as_bytes(), 0o600, args.force)?;
    output::print(
        json_out,
        &json!({"key": description, "output": out, "auth-value": !auth.is_empty()}),
        |_| {
            format!(
                "restored {description} key for this TPM into {}{}",
                out.display(),
                if auth.is_empty() {
                    ""
                } else {
                    " (with its auth value, as before)"
                }
            )
        },
    );
    Ok(())
}
