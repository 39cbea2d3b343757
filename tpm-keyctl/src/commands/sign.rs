//! `sign`: hash here, sign in the TPM, write the signature as openssl expects it
//! (raw for RSA, DER for ECDSA).

use std::io::{Read, Write};

use sha2::Digest;
use tpmd_api::client::{key_file_public, key_needs_auth, with_user_policies};
use tpmd_api::dbus::{scheme, Bytes};
use tpmd_api::public::KeyParams;

use super::Tpmd;
use crate::cli::{Hash, Scheme, SignArgs};
use crate::error::{CliError, CliResult};
use crate::{files, prompt};

fn digest(hash: Hash, data: &[u8]) -> (Vec<u8>, &'static str) {
    match hash {
        Hash::Sha1 => (sha1::Sha1::digest(data).to_vec(), "sha1"),
        Hash::Sha256 => (sha2::Sha256::digest(data).to_vec(), "sha256"),
        Hash::Sha384 => (sha2::Sha384::digest(data).to_vec(), "sha384"),
        Hash::Sha512 => (sha2::Sha512::digest(data).to_vec(), "sha512"),
    }
}

/// r || s to the DER SEQUENCE openssl and most verifiers want.
fn ecdsa_der(raw: &[u8]) -> CliResult<Vec<u8>> {
    let bad = |e: p256::ecdsa::Error| {
        CliError::Daemon(format!("tpmd returned a bad ECDSA signature: {e}"))
    };
    match raw.len() {
        64 => Ok(p256::ecdsa::Signature::from_slice(raw)
            .map_err(bad)?
            .to_der()
            .as_bytes()
            .to_vec()),
        96 => Ok(p384::ecdsa::Signature::from_slice(raw)
            .map_err(bad)?
            .to_der()
            .as_bytes()
            .to_vec()),
        n => Err(CliError::Daemon(format!(
            "tpmd returned an ECDSA signature of {n} bytes"
        ))),
    }
}

pub async fn run(tpmd: &Tpmd, args: &SignArgs) -> CliResult<()> {
    let key_bytes = files::read(&args.key)?;
    let public = key_file_public(&key_bytes).map_err(|e| CliError::file(&args.key, e))?;
    let is_ec = matches!(public.key, KeyParams::Ecc { .. });
    let chosen = args
        .scheme
        .unwrap_or(if is_ec { Scheme::Ecdsa } else { Scheme::Pkcs1 });
    let scheme_name = match chosen {
        Scheme::Pkcs1 => scheme::RSA_PKCS1,
        Scheme::Pss => scheme::RSA_PSS,
        Scheme::Ecdsa => scheme::ECDSA,
    };
    let data = match &args.input {
        Some(path) => files::read(path)?,
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
            buf
        }
    };
    let (digest, hash_name) = digest(args.hash, &data);
    let needs_auth = key_needs_auth(&key_bytes).map_err(|e| CliError::file(&args.key, e))?;
    let auth = match (&args.auth_file, needs_auth) {
        (Some(path), _) => files::read_secret(path)?,
        (None, false) => zeroize::Zeroizing::new(Vec::new()),
        (None, true) => prompt::secret(&format!("Auth value for {}: ", args.key.display()))?,
    };
    let signature = tpmd
        .check(
            tpmd.proxy
                .sign(
                    Bytes::new(&with_user_policies(&key_bytes)),
                    Bytes::new(&auth),
                    scheme_name,
                    hash_name,
                    Bytes::new(&digest),
                )
                .await,
        )?
        .into_vec();
    let signature = if chosen == Scheme::Ecdsa {
        ecdsa_der(&signature)?
    } else {
        signature
    };
    match &args.output {
        Some(path) => files::write_atomic(path, &signature, 0o644, true),
        None => std::io::stdout()
            .write_all(&signature)
            .map_err(|e| CliError::Usage(format!("cannot write the signature: {e}"))),
    }
}
