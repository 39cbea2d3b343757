//! Builds TPM-importable duplicates with tpmd-api so they can be checked with
//! tpm2-tools against a real TPM or swtpm.
//!
//! ```text
//! wrap_check wrap KEYFILE PARENT_TPM2B_PUBLIC OUTDIR [AUTH]
//!     writes OUTDIR/key.pub (TPM2B_PUBLIC), dup.bin (TPM2B_PRIVATE),
//!     seed.bin (TPM2B_ENCRYPTED_SECRET), key.spki.pem and importable.tss2.pem
//! wrap_check wrap-spki KEYFILE PARENT_SPKI_PEM OUTDIR [AUTH]
//!     the same, for the standard SRK template around a PEM public key
//! wrap_check loadable KEY_PUB KEY_PRIV OUT_PEM [auth]
//!     a loadable TSS2 key file around tpm2_import output, parent 0x81000001;
//!     emptyAuth is written unless the fourth argument is "auth"
//! wrap_check split TSS2_KEY_FILE OUTDIR
//!     writes the file's public, private and secret as key.pub, dup.bin, seed.bin
//! wrap_check show TSS2_KEY_FILE
//!     prints what the key file holds
//! ```
//!
//! Environment: TPMD_WRAP_PASSPHRASE for encrypted private keys.

use std::error::Error;
use std::fs;
use std::path::Path;

use tpmd_api::duplicate::wrap_for_parent;
use tpmd_api::keyfile::{KeyFileKind, TpmKeyFile};
use tpmd_api::privkey::read_private_key;
use tpmd_api::public::TpmPublic;
use tpmd_api::DEFAULT_SRK_HANDLE;

fn wrap(args: &[String], parent: TpmPublic) -> Result<(), Box<dyn Error>> {
    let [key_path, _, out_dir, rest @ ..] = args else {
        return Err("usage: wrap KEYFILE PARENT OUTDIR [AUTH]".into());
    };
    let auth = rest.first().map(String::as_bytes).unwrap_or_default();
    let passphrase = std::env::var("TPMD_WRAP_PASSPHRASE").ok();
    let read = read_private_key(
        &fs::read(key_path)?,
        passphrase.as_deref().map(str::as_bytes),
    )?;
    println!(
        "key: {} comment {:?}",
        read.key.describe(),
        read.comment.as_deref().unwrap_or("")
    );
    let file = wrap_for_parent(&read.key, auth, &parent, DEFAULT_SRK_HANDLE)?;
    let out = Path::new(out_dir);
    fs::create_dir_all(out)?;
    fs::write(out.join("key.pub"), &file.public)?;
    fs::write(out.join("dup.bin"), &file.private)?;
    fs::write(
        out.join("seed.bin"),
        file.secret.as_deref().unwrap_or_default(),
    )?;
    let public = file.public_area()?;
    fs::write(out.join("key.spki.pem"), public.to_spki_pem()?)?;
    fs::write(out.join("importable.tss2.pem"), file.to_pem())?;
    println!(
        "wrapped {} for parent {}: name {}",
        public.key_type_name(),
        parent.key_type_name(),
        hex(&public.name()?)
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("wrap") => {
            let parent_path = args.get(2).ok_or("missing parent public file")?;
            let parent = TpmPublic::from_tpm2b(&fs::read(parent_path)?)?;
            wrap(&args[1..], parent)
        }
        Some("wrap-spki") => {
            let parent_path = args.get(2).ok_or("missing parent PEM file")?;
            let parent = TpmPublic::standard_srk_from_spki_pem(&fs::read_to_string(parent_path)?)?;
            println!("parent name {}", hex(&parent.name()?));
            wrap(&args[1..], parent)
        }
        Some("loadable") => {
            let [_, public, private, out, rest @ ..] = args.as_slice() else {
                return Err("usage: loadable KEY_PUB KEY_PRIV OUT_PEM [auth]".into());
            };
            let file = TpmKeyFile {
                kind: KeyFileKind::Loadable,
                empty_auth: rest.first().map(String::as_str) != Some("auth"),
                parent: DEFAULT_SRK_HANDLE,
                public: fs::read(public)?,
                private: fs::read(private)?,
                secret: None,
                policy: Vec::new(),
                auth_policies: Vec::new(),
                description: None,
            };
            fs::write(out, file.to_pem())?;
            Ok(())
        }
        Some("split") => {
            let [_, path, out_dir] = args.as_slice() else {
                return Err("usage: split TSS2_KEY_FILE OUTDIR".into());
            };
            let file = TpmKeyFile::parse(&fs::read(path)?)?;
            let out = Path::new(out_dir);
            fs::create_dir_all(out)?;
            fs::write(out.join("key.pub"), &file.public)?;
            fs::write(out.join("dup.bin"), &file.private)?;
            if let Some(secret) = &file.secret {
                fs::write(out.join("seed.bin"), secret)?;
            }
            Ok(())
        }
        Some("show") => {
            let path = args.get(1).ok_or("missing key file")?;
            let file = TpmKeyFile::parse(&fs::read(path)?)?;
            let public = file.public_area()?;
            println!(
                "{:?} key {} parent 0x{:08x} emptyAuth {} policy {} name {}",
                file.kind,
                public.key_type_name(),
                file.parent,
                file.empty_auth,
                file.has_policy(),
                hex(&public.name()?)
            );
            print!("{}", public.to_spki_pem()?);
            Ok(())
        }
        _ => Err("usage: wrap_check wrap|wrap-spki|loadable|split|show ... (see source)".into()),
    }
}
