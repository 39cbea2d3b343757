//! `passwd`: a TPM key's auth value changed by the TPM (TPM2_ObjectChangeAuth). The key
//! file is replaced only once its new version is completely written, so an interruption
//! leaves the old file, which keeps working with the old value. (Any copy of the old file
//! does too: the TPM cannot revoke a blob it wrapped.)

use serde_json::json;
use tpmd_api::client::key_needs_auth;

use super::Tpmd;
use crate::cli::PasswdArgs;
use crate::error::{CliError, CliResult};
use crate::{files, output, prompt};

pub async fn run(tpmd: &Tpmd, args: &PasswdArgs, json_out: bool) -> CliResult<()> {
    let key = files::read(&args.key)?;
    let has_auth = key_needs_auth(&key).map_err(|e| CliError::file(&args.key, e))?;
    if !has_auth {
        return Err(CliError::file(
            &args.key,
            "has no auth value; a key made without one cannot get one (the TPM does not count wrong guesses for it): wrap the original key again with `tpm-keyctl wrap -a`",
        ));
    }
    let old = match &args.auth_file {
        Some(path) => files::read_secret(path)?,
        None => prompt::secret(&format!("Current auth value for {}: ", args.key.display()))?,
    };
    let new = match &args.new_auth_file {
        Some(path) => files::read_secret(path)?,
        None => prompt::new_secret("New auth value: ")?,
    };
    if new.is_empty() {
        return Err(CliError::Usage(
            "the new auth value is empty; a key with an auth value keeps one (to have a key without, wrap the original key again without -a)".into(),
        ));
    }
    let changed = tpmd.check(tpmd.proxy.change_auth(&key, &old, &new).await)?;
    files::write_atomic(&args.key, &changed, 0o600, true)?;
    output::print(json_out, &json!({"key": args.key, "changed": true}), |_| {
        format!(
            "changed the auth value of {}; copies of the old file still open with the old value, so delete them",
            args.key.display()
        )
    });
    Ok(())
}
