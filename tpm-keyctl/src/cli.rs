//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tpm-keyctl",
    version,
    about = "Put your private keys into the TPM and use them through tpmd",
    after_help = "Examples:\n  tpm-keyctl wrap ~/.ssh/id_rsa          writes ~/.ssh/id_rsa.tpm, usable only with this TPM\n  tpm-keyctl generate -t ecc-p256 -o ~/.ssh/id_ecdsa.tpm\n  tpm-keyctl pubkey --ssh ~/.ssh/id_rsa.tpm\n  tpm-keyctl sign -k key.tpm -i message.txt -o message.sig\n  tpm-keyctl srk status\n  tpm-keyctl doctor\n  tpm-keyctl --json info"
)]
pub struct Args {
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// Talk to a tpmd on your session bus (`tpmd --user`) instead of the system bus.
    #[arg(long, global = true)]
    pub user: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the TPM: family, vendor, algorithms, SRK, resource manager counters.
    Info,
    /// Check the TPM device, tpmd, the SRK, lockout, (TPM 1.2) NV lock and your key files; print fixes.
    Doctor(DoctorArgs),
    /// Clear the TPM's dictionary-attack lockout (as root).
    #[command(
        after_help = "Examples:\n  tpm-keyctl reset-lockout --auth-file lockout.pw   TPM 2.0 whose lockout hierarchy has an auth value\n  tpm-keyctl reset-lockout                          TPM 2.0 without one; TPM 1.2 (well-known owner secret)"
    )]
    ResetLockout(ResetLockoutArgs),
    /// Lock NV so that writing it needs authorization (TPM 1.2; as root).
    LockNv,
    /// Show resource manager counters (cache hits, loads, evictions, retries).
    Stats,
    /// Inspect or create the storage root key at 0x81000001.
    #[command(subcommand)]
    Srk(SrkCommand),
    /// Wrap an existing private key (PEM or OpenSSH) into a TPM key file.
    #[command(
        after_help = "Examples:\n  tpm-keyctl wrap ~/.ssh/id_rsa                 writes ~/.ssh/id_rsa.tpm (0600)\n  tpm-keyctl wrap -a key.pem -o key.tpm         protect the TPM key with an auth value\n  tpm-keyctl wrap --parent-pub srk.pub key.pem  wrap for another machine, offline\n  tpm-keyctl wrap --pcr sha256:0,2,4,7 key.pem  usable only while those PCRs hold today's values\n  tpm-keyctl wrap --signed-policy owner.pub key.pem   usable with PCR values the owner signs"
    )]
    Wrap(WrapArgs),
    /// Make a new key inside the TPM.
    Generate(GenerateArgs),
    /// Print a TPM key's public key (PEM, or OpenSSH with --ssh).
    Pubkey(PubkeyArgs),
    /// Sign a file (or stdin) with a TPM key.
    Sign(SignArgs),
    /// Change a TPM key's auth value (the key file is rewritten; the key stays the same).
    Passwd(PasswdArgs),
    /// Wrap a key from its offline backup for this TPM (after a TPM clear or a new machine).
    Restore(RestoreArgs),
    /// Show PCR values, as lines a --pcr-values file takes.
    #[command(
        after_help = "Examples:\n  tpm-keyctl pcr                      every PCR of the sha256 bank (sha1 on a TPM 1.2)\n  tpm-keyctl pcr sha256:0,2,4,7 > values.txt"
    )]
    Pcr(PcrArgs),
    /// Signed policies for keys bound with --signed-policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, clap::Args)]
pub struct PcrArgs {
    /// PCRs to show, like sha256:0,2,4,7 or sha256:0-23 (banks joined by +).
    pub selection: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Sign a policy for PCR values, authorizing them for the owner's keys.
    #[command(
        after_help = "Examples:\n  tpm-keyctl policy sign --pcr sha256:0,2,4,7 --values new-kernel.txt --with owner.pem --name \"kernel 6.12\"\n  tpm-keyctl policy sign --pcr sha256:16 --with owner.tpm -o /etc/tpmd/policies/laptop.policy\n\nWithout -o the policy goes into ~/.config/tpmd/policies/, used for your keys; put it into\n/etc/tpmd/policies/ for every user of the machine."
    )]
    Sign(PolicySignArgs),
}

#[derive(Debug, clap::Args)]
pub struct PolicySignArgs {
    /// The PCRs the policy covers, like sha256:0,2,4,7.
    #[arg(long, value_name = "SELECTION")]
    pub pcr: String,
    /// Their values (sha256:7=HEX lines, tpm2_pcrread output) [default: the current ones].
    #[arg(long, value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// The owner's private key: PEM (RSA or P-256) or a TPM key file (signed through tpmd).
    #[arg(long, value_name = "OWNER")]
    pub with: PathBuf,
    /// A name for people, such as the kernel the values are for.
    #[arg(long)]
    pub name: Option<String>,
    /// The policyRef the keys were bound with (--policy-ref of wrap or generate).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub policy_ref: String,
    /// Where to write the policy [default: ~/.config/tpmd/policies/NAME.policy].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// The owner TPM key's auth value, from this file (else prompted if it has one).
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
    /// The passphrase of an encrypted owner PEM key, from this file.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// How a new key is bound to the machine's state (TPM 2.0).
#[derive(Debug, Default, clap::Args)]
pub struct BindArgs {
    /// Bind the key to the values of these PCRs, like sha256:0,2,4,7: the current ones,
    /// or those of --pcr-values.
    #[arg(long, value_name = "SELECTION")]
    pub pcr: Option<String>,
    /// The PCR values to bind to (sha256:7=HEX lines as `tpm-keyctl pcr` prints, or
    /// tpm2_pcrread output).
    #[arg(long, value_name = "FILE", requires = "pcr")]
    pub pcr_values: Option<PathBuf>,
    /// Bind the key to policies signed by this owner instead (a PEM public key, RSA or
    /// P-256, or a TPM key file); the owner signs them with `tpm-keyctl policy sign`.
    #[arg(long, value_name = "OWNER.pub")]
    pub signed_policy: Option<PathBuf>,
    /// With --signed-policy and --pcr: sign the first policy, for those PCR values, with
    /// this owner private key (PEM or TPM key file) and keep it in the key file.
    #[arg(long, value_name = "OWNER", requires = "signed_policy")]
    pub with: Option<PathBuf>,
    /// A reference the owner's signed policies must name (keeps policies for one group
    /// of keys away from another) [default: none].
    #[arg(long, value_name = "TEXT", requires = "signed_policy")]
    pub policy_ref: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// The TPM key file; rewritten in place once the new one is complete.
    pub key: PathBuf,
    /// Read the current auth value from this file instead of prompting.
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
    /// Read the new auth value from this file instead of prompting (twice).
    #[arg(long)]
    pub new_auth_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// More key files or directories to check, besides ~/.ssh and ~/.local/share/tpmd/keys.
    pub keys: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ResetLockoutArgs {
    /// Read the TPM 2.0 lockout auth value from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SrkCommand {
    /// Whether the SRK exists.
    Status,
    /// Create the SRK from the TCG standard RSA-2048 template (can take tens of seconds).
    Create,
    /// Write the SRK's public area (TPM2B_PUBLIC), for wrapping keys for this machine elsewhere.
    Public {
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    /// The private key: PKCS#1, PKCS#8 (encrypted too), SEC1 or OpenSSH format.
    pub key: PathBuf,
    /// Where to write the TPM key file [default: KEY.tpm].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Replace KEY itself with the TPM key file (the original is gone afterwards).
    #[arg(long, conflicts_with = "output")]
    pub replace: bool,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// Protect the TPM key with an auth value (prompted twice).
    #[arg(short = 'a', long = "auth")]
    pub ask_auth: bool,
    /// Read the auth value from this file instead of prompting.
    #[arg(long, conflicts_with = "ask_auth")]
    pub auth_file: Option<PathBuf>,
    /// Read the passphrase of an encrypted private key from this file.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Wrap offline for another machine whose SRK public is in this file (TPM2B_PUBLIC as
    /// written by `tpm-keyctl srk public` or `tpm2_readpublic -o`, or a PEM public key).
    #[arg(long)]
    pub parent_pub: Option<PathBuf>,
    /// The parent key's persistent handle.
    #[arg(long, default_value = "0x81000001", value_parser = parse_handle)]
    pub parent: u32,
    /// Also write OUTPUT.backup: the key wrapped for this offline backup key (a PEM public
    /// key, RSA-2048 or ECC P-256, whose private half is kept off this machine), which
    /// `tpm-keyctl restore` opens for a new TPM.
    #[arg(long, value_name = "BACKUP.pub")]
    pub backup_to: Option<PathBuf>,
    #[command(flatten)]
    pub bind: BindArgs,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup (KEY.tpm.backup from `wrap --backup-to`).
    pub backup: PathBuf,
    /// The backup key's private half (PEM or OpenSSH; prompted for its passphrase).
    #[arg(long, value_name = "BACKUP.key")]
    pub backup_key: PathBuf,
    /// Where to write the TPM key file [default: the backup's name without .backup].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// Read the backup key's passphrase from this file instead of prompting.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyType {
    Rsa2048,
    Rsa3072,
    EccP256,
    EccP384,
}

impl KeyType {
    pub fn api_name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::EccP256 => "ecc-p256",
            KeyType::EccP384 => "ecc-p384",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Key type.
    #[arg(short = 't', long = "type", value_enum, default_value = "rsa2048")]
    pub key_type: KeyType,
    /// Where to write the TPM key file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// Protect the key with an auth value (prompted twice).
    #[arg(short = 'a', long = "auth")]
    pub ask_auth: bool,
    /// Read the auth value from this file instead of prompting.
    #[arg(long, conflicts_with = "ask_auth")]
    pub auth_file: Option<PathBuf>,
    /// Comment for the OpenSSH public key written beside it.
    #[arg(short = 'C', long)]
    pub comment: Option<String>,
    /// The parent: 0x81000001 (the SRK) or 0x40000001 (the owner hierarchy's ECC primary).
    #[arg(long, default_value = "0x81000001", value_parser = parse_handle)]
    pub parent: u32,
    #[command(flatten)]
    pub bind: BindArgs,
}

#[derive(Debug, clap::Args)]
pub struct PubkeyArgs {
    /// The TPM key file.
    pub key: PathBuf,
    /// OpenSSH format instead of PEM.
    #[arg(long)]
    pub ssh: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 (RSA keys' default).
    Pkcs1,
    /// RSASSA-PSS.
    Pss,
    /// ECDSA (EC keys' default); written as DER, as openssl expects.
    Ecdsa,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The TPM key file.
    #[arg(short, long)]
    pub key: PathBuf,
    /// The file to sign [default: stdin].
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Where to write the signature [default: stdout].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash: Hash,
    /// Signature scheme [default: pkcs1 for RSA, ecdsa for EC].
    #[arg(long, value_enum)]
    pub scheme: Option<Scheme>,
    /// Read the key's auth value from this file (else prompted if the key has one).
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
}

fn parse_handle(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a handle; write it like 0x81000001"))
}
