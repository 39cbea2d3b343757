//! `generate`: a new key made inside the TPM.

use serde_json::json;
use tpmd_api::client::{key_file_public, tpm12_pcr_info, with_policy_fields, WrapError};
use tpmd_api::dbus::GenerateOptions;
use tpmd_api::marshal::TPMA_OBJECT_USER_WITH_AUTH;

use super::wrap::auth_value;
use super::Tpmd;
use crate::cli::GenerateArgs;
use crate::error::{CliError, CliResult};
use crate::{binding, files, output};

pub async fn run(tpmd: &Tpmd, args: &GenerateArgs, json_out: bool) -> CliResult<()> {
    if !args.force && args.output.exists() {
        return Err(CliError::file(
            &args.output,
            "already exists; pass --force to overwrite it",
        ));
    }
    let auth = auth_value(args.ask_auth, args.auth_file.as_deref())?;
    let policy = binding::key_policy(&args.bind, Some(tpmd), !auth.is_empty()).await?;
    // A TPM 1.2 binds the key itself (TPM_PCR_INFO_LONG); a 2.0 takes the policy's
    // digest, and the file carries the statements.
    let on_tpm12 = match &policy {
        Some(_) => tpmd.check(tpmd.proxy.get_info().await)?.family.as_deref() == Some("1.2"),
        None => false,
    };
    let mut options = GenerateOptions {
        parent: Some(args.parent),
        ..GenerateOptions::default()
    };
    if let Some(policy) = &policy {
        let bound = if on_tpm12 {
            tpm12_pcr_info(policy).map(|info| options.pcr_info = Some(info))
        } else {
            policy
                .digest()
                .map(|digest| options.policy_digest = Some(digest))
                .map_err(|e| WrapError::Unwrappable(e.to_string()))
        };
        bound.map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let mut pem = tpmd.check(
        tpmd.proxy
            .generate(args.key_type.api_name(), &auth, options)
            .await,
    )?;
    if let (Some(policy), false) = (&policy, on_tpm12) {
        pem = with_policy_fields(&pem, policy)
            .map_err(|e| CliError::Daemon(e.to_string()))?
            .into_bytes();
    }
    let public = key_file_public(&pem)
        .map_err(|e| CliError::Daemon(format!("tpmd returned a bad key file: {e}")))?;
    // With userWithAuth the auth value alone authorizes the key, whatever its policy: such
    // a key would not be bound at all. Refuse it rather than write it.
    if policy.is_some() && !on_tpm12 && public.has_attributes(TPMA_OBJECT_USER_WITH_AUTH) {
        return Err(CliError::Daemon(
            "tpmd made the key with userWithAuth, so its auth value alone would use it whatever the PCRs hold; nothing was written: this tpmd is older than tpm-keyctl, update it (or wrap a software key with --pcr)".into(),
        ));
    }
    files::write_atomic(&args.output, &pem, 0o600, args.force)?;
    let comment = args.comment.clone().unwrap_or_default();
    let pub_line = public
        .to_ssh_public_key(&comment)
        .ok()
        .and_then(|k| k.to_openssh().ok());
    let mut pub_path = args.output.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = std::path::PathBuf::from(pub_path);
    if let Some(line) = &pub_line {
        files::write_atomic(&pub_path, format!("{line}\n").as_bytes(), 0o644, args.force)?;
    }
    output::print(
        json_out,
        &json!({
            "output": args.output, "type": args.key_type.api_name(), "public-key": pub_line,
            "policy": policy.as_ref().map(binding::describe),
        }),
        |_| {
            let mut text = format!(
                "generated a {} key in {}\nwrote {}",
                args.key_type.api_name(),
                args.output.display(),
                pub_path.display()
            );
            if let Some(policy) = &policy {
                text.push_str(&format!("\nbound to {}", binding::describe(policy)));
            }
            text
        },
    );
    Ok(())
}
