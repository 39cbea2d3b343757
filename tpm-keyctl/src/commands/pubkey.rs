//! `pubkey`: read from the key file itself; no TPM needed.

use tpmd_api::client::key_file_public;

use crate::cli::PubkeyArgs;
use crate::error::{CliError, CliResult};
use crate::files;

pub fn run(args: &PubkeyArgs) -> CliResult<()> {
    let public =
        key_file_public(&files::read(&args.key)?).map_err(|e| CliError::file(&args.key, e))?;
    let text = if args.ssh {
        let comment = args
            .key
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        public
            .to_ssh_public_key(&comment)
            .map_err(|e| CliError::file(&args.key, e))?
            .to_openssh()
            .map_err(|e| CliError::file(&args.key, e))?
    } else {
        public
            .to_spki_pem()
            .map_err(|e| CliError::file(&args.key, e))?
    };
    println!("{}", text.trim_end());
    Ok(())
}
