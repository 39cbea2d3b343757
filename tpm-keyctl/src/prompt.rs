//! Secrets typed at the terminal.

use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

pub fn secret(prompt: &str) -> CliResult<Zeroizing<Vec<u8>>> {
    rpassword::prompt_password(prompt)
        .map(|s| Zeroizing::new(s.into_bytes()))
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot read from the terminal ({e}); use --passphrase-file or --auth-file"
            ))
        })
}

/// Asks twice and insists they match.
pub fn new_secret(prompt: &str) -> CliResult<Zeroizing<Vec<u8>>> {
    let first = secret(prompt)?;
    let second = secret("Again: ")?;
    if *first != *second {
        return Err(CliError::Usage(
            "the two entries differ; nothing was written".into(),
        ));
    }
    Ok(first)
}
