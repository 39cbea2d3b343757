//! The headless way to give a TPM key's auth value (PIN): `tpmd-ssh-agent --set-auth
//! KEYFILE` reads it from stdin and hands it to the running agent in the
//! `set-auth@tpmd.org` extension message, which the agent keeps until the key is
//! removed, the agent is locked or it stops.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use ssh_agent_lib::agent::Session;
use ssh_agent_lib::client::Client;
use ssh_agent_lib::proto::extension::MessageExtension;
use ssh_agent_lib::proto::{Extension, ProtoError};
use ssh_agent_lib::ssh_encoding::{self, CheckedSum, Decode, Encode, Reader, Writer};
use ssh_key::public::KeyData;
use zeroize::Zeroizing;

/// The message: the key's public key and its auth value.
pub struct SetAuth {
    pub key: KeyData,
    pub auth: Zeroizing<Vec<u8>>,
}

impl MessageExtension for SetAuth {
    const NAME: &'static str = "set-auth@tpmd.org";
}

impl Decode for SetAuth {
    type Error = ProtoError;

    fn decode(reader: &mut impl Reader) -> Result<Self, ProtoError> {
        let key = reader.read_prefixed(KeyData::decode)?;
        let auth = Zeroizing::new(Vec::<u8>::decode(reader)?);
        Ok(SetAuth { key, auth })
    }
}

impl Encode for SetAuth {
    fn encoded_len(&self) -> ssh_encoding::Result<usize> {
        [self.key.encoded_len_prefixed()?, self.auth.encoded_len()?].checked_sum()
    }

    fn encode(&self, writer: &mut impl Writer) -> ssh_encoding::Result<()> {
        self.key.encode_prefixed(writer)?;
        self.auth.as_slice().encode(writer)
    }
}

/// The agent socket to talk to: -a, else SSH_AUTH_SOCK, else the default.
fn socket(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    crate::config::default_socket_path().map_err(|e| e.to_string())
}

/// `--set-auth KEYFILE`: the one-shot client.
pub fn run(key_file: &Path, given_socket: Option<&Path>) -> Result<(), String> {
    let bytes =
        std::fs::read(key_file).map_err(|e| format!("cannot read {}: {e}", key_file.display()))?;
    let key = tpmd_api::client::key_file_public(&bytes)
        .map_err(|e| format!("{} is not a TPM key file: {e}", key_file.display()))?
        .to_ssh_public_key("")
        .map_err(|e| format!("{}: {e}", key_file.display()))?
        .key_data()
        .clone();
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the auth value from stdin: {e}"))?;
    let auth = Zeroizing::new(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec());
    let message = Extension::new_message(SetAuth { key, auth })
        .map_err(|e| format!("cannot encode the request: {e}"))?;
    let socket = socket(given_socket)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| format!("cannot connect to the agent at {}: {e}", socket.display()))?;
        Client::new(stream)
            .extension(message)
            .await
            .map(|_| ())
            .map_err(|_| {
                format!(
                    "the agent at {} refused the auth value; is it tpmd-ssh-agent, unlocked, serving {}, and not reached through agent forwarding (ssh -A refuses it)?",
                    socket.display(),
                    key_file.display()
                )
            })
    })
}
