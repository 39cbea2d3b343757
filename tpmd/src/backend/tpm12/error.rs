//! The one place TPM 1.2 client errors become backend errors.

use tpmd_tpm12::client::ClientError;
use tpmd_tpm12::codec::rc;

use crate::backend::TpmError;

/// What the user can do about a dictionary-attack lockout on a TPM 1.2.
const LOCKOUT_ADVICE: &str = "wait until the TPM lets auth attempts through again, or reset it with `tpm_resetdalock` (owner password)";

/// Converts a client error from `command`. `lockout` is the note appended to wrong-auth
/// messages (computed only when needed, as it costs a TPM command).
pub fn convert(
    command: &'static str,
    e: ClientError,
    lockout: impl FnOnce() -> String,
) -> TpmError {
    match e {
        ClientError::Transport(t) => TpmError::Unavailable(t.to_string()),
        ClientError::Tpm(code) => match code.0 {
            // These commands are authorized by the SRK or owner secret, not a key's.
            rc::AUTHFAIL
                if matches!(
                    command,
                    "LoadKey2" | "CreateWrapKey" | "GetPubKey" | "TakeOwnership"
                ) =>
            {
                TpmError::Command {
                    command,
                    code: code.0,
                    detail: format!(
                        "the TPM refused the SRK or owner secret{}: the SRK has a password that tpmd was not given; start tpmd with --srk-auth-file FILE (or take ownership again with the well-known SRK, `tpm_takeownership -z`)",
                        lockout()
                    ),
                }
            }
            rc::AUTHFAIL | rc::AUTH2FAIL => TpmError::AuthFailed { lockout: lockout() },
            rc::DEFEND_LOCK_RUNNING => TpmError::Lockout {
                advice: LOCKOUT_ADVICE,
            },
            rc::NOSRK => TpmError::NoParent {
                handle: tpmd_tpm12::codec::consts::kh::SRK,
            },
            // LoadKey2 cannot decrypt the blob: it was wrapped for another SRK.
            rc::DECRYPT_ERROR | rc::BAD_DATASIZE if command == "LoadKey2" => {
                TpmError::WrongTpm { code: code.0 }
            }
            _ => TpmError::Command {
                command,
                code: code.0,
                detail: format!("{}: {}", code.name(), code.explain()),
            },
        },
        ClientError::WellKnownFailed { what, tried } => TpmError::Command {
            command,
            code: rc::AUTHFAIL,
            detail: if what == "SRK" {
                format!("the SRK has a password (tried {tried}); start tpmd with --srk-auth-file FILE holding it")
            } else {
                format!("the {what} secret is not a well-known one (tried {tried}); tpmd needs a TPM 1.2 owned with the well-known owner secret")
            },
        },
        ClientError::Key(k) => TpmError::InvalidArgument(k.to_string()),
        ClientError::Codec(_) | ClientError::BadResponseHmac | ClientError::Invalid(_) => {
            TpmError::Stack {
                command,
                detail: e.to_string(),
            }
        }
    }
}
