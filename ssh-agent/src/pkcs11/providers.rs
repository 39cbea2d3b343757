//! The agent's side: which providers may be loaded, one helper process per loaded
//! provider, and requests to it one at a time. Removing a provider ends its helper.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ssh_agent_lib::ssh_encoding::Decode;
use ssh_key::public::KeyData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use super::protocol;
use crate::error::AgentError;
use crate::sign::Signed;
use crate::wire::KeyBlob;

/// ssh-agent's default for `-P`: providers installed in the system's library directories.
pub const DEFAULT_ALLOWLIST: &str = "/usr/lib*/*,/usr/local/lib*/*";

/// A PIN entry or a slow token may take a while; a helper that never answers is ended.
const TIMEOUT: Duration = Duration::from_secs(60);

struct Helper {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

fn fail(provider: &Path, why: impl std::fmt::Display) -> AgentError {
    AgentError::Pkcs11(format!("PKCS#11 provider {}: {why}", provider.display()))
}

impl Helper {
    fn start(provider: &Path) -> Result<Helper, AgentError> {
        let exe = std::env::current_exe()
            .map_err(|e| fail(provider, format!("cannot find my own binary: {e}")))?;
        let mut child = Command::new(exe)
            .arg("--pkcs11-helper")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(provider, format!("cannot start the helper process: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(fail(provider, "the helper process has no pipes"));
        };
        Ok(Helper {
            _child: child,
            stdin,
            stdout,
        })
    }

    async fn exchange(&mut self, provider: &Path, body: &[u8]) -> Result<Vec<u8>, AgentError> {
        let io = |e: std::io::Error| fail(provider, format!("the helper process failed ({e})"));
        let work = async {
            let framed = crate::wire::frame(body)
                .ok_or_else(|| std::io::Error::other("message too long"))?;
            self.stdin.write_all(&framed).await?;
            let mut header = [0u8; 4];
            self.stdout.read_exact(&mut header).await?;
            let len = u32::from_be_bytes(header) as usize;
            if len == 0 || len > crate::connection::MAX_MESSAGE {
                return Err(std::io::Error::other(format!("a reply of {len} bytes")));
            }
            let mut reply = vec![0u8; len];
            self.stdout.read_exact(&mut reply).await?;
            Ok(reply)
        };
        let reply = tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| fail(provider, "the helper process did not answer"))?
            .map_err(io)?;
        if reply.first() == Some(&protocol::FAILURE) {
            let why = protocol::strings(&reply[1..], 1)
                .map(|(parts, _)| String::from_utf8_lossy(&parts[0]).into_owned())
                .unwrap_or_else(|_| "failed".into());
            return Err(fail(provider, why));
        }
        Ok(reply)
    }
}

pub struct Providers {
    allowlist: String,
    helpers: Mutex<HashMap<PathBuf, Arc<Mutex<Helper>>>>,
}

fn parse_keys(provider: &Path, reply: &[u8]) -> Result<Vec<(KeyData, String)>, AgentError> {
    let bad = |e: &dyn std::fmt::Display| {
        fail(provider, format!("the helper's answer is malformed: {e}"))
    };
    let Some((&protocol::KEYS, mut reader)) = reply.split_first() else {
        return Err(bad(&"not a key list"));
    };
    let count = u32::decode(&mut reader).map_err(|e| bad(&e))?;
    let mut keys = Vec::new();
    for _ in 0..count {
        let blob = Vec::<u8>::decode(&mut reader).map_err(|e| bad(&e))?;
        let label = String::decode(&mut reader).map_err(|e| bad(&e))?;
        keys.push((KeyBlob::parse(blob).map_err(|e| bad(&e))?.public, label));
    }
    Ok(keys)
}

impl Providers {
    pub fn new(allowlist: String) -> Providers {
        Providers {
            allowlist,
            helpers: Mutex::new(HashMap::new()),
        }
    }

    /// The provider's real path, if the allowlist (`-P`) admits it.
    pub fn allowed(&self, provider: &str) -> Result<PathBuf, AgentError> {
        let path = std::fs::canonicalize(provider)
            .map_err(|e| AgentError::Pkcs11(format!("PKCS#11 provider {provider}: {e}")))?;
        let text = path.to_string_lossy();
        if !crate::pattern::list_match(&text, &self.allowlist) {
            return Err(AgentError::Pkcs11(format!(
                "PKCS#11 provider {text} is not allowed: it does not match \"{}\" (start the agent with -P to allow it)",
                self.allowlist
            )));
        }
        Ok(path)
    }

    /// Loads `provider` in a new helper and returns its keys with their labels.
    pub async fn load(
        &self,
        provider: &Path,
        pin: &str,
    ) -> Result<Vec<(KeyData, String)>, AgentError> {
        if self.helpers.lock().await.contains_key(provider) {
            return Err(fail(
                provider,
                "already added; remove it first (ssh-add -e)",
            ));
        }
        let mut helper = Helper::start(provider)?;
        let path = provider.to_string_lossy();
        let request = protocol::message(protocol::LOAD, &[path.as_bytes(), pin.as_bytes()], None)
            .ok_or_else(|| fail(provider, "cannot encode the request"))?;
        let reply = helper.exchange(provider, &request).await?;
        let keys = parse_keys(provider, &reply)?;
        self.helpers
            .lock()
            .await
            .insert(provider.to_path_buf(), Arc::new(Mutex::new(helper)));
        Ok(keys)
    }

    pub async fn sign(
        &self,
        provider: &Path,
        public: &KeyData,
        data: &[u8],
        flags: u32,
    ) -> Result<Signed, AgentError> {
        let helper = self
            .helpers
            .lock()
            .await
            .get(provider)
            .cloned()
            .ok_or_else(|| fail(provider, "not loaded"))?;
        let blob =
            KeyBlob::from_key(public).ok_or_else(|| fail(provider, "cannot encode the key"))?;
        let request = protocol::message(protocol::SIGN, &[&blob.blob, data], Some(flags))
            .ok_or_else(|| fail(provider, "cannot encode the request"))?;
        let reply = helper.lock().await.exchange(provider, &request).await?;
        let (parts, _) = match reply.split_first() {
            Some((&protocol::SIGNATURE, rest)) => {
                protocol::strings(rest, 1).map_err(|e| fail(provider, e))?
            }
            _ => return Err(fail(provider, "the helper did not answer with a signature")),
        };
        Ok(Signed::Encoded(
            parts.into_iter().next().unwrap_or_default(),
        ))
    }

    /// Ends the provider's helper; false if it was not loaded.
    pub async fn unload(&self, provider: &Path) -> bool {
        self.helpers.lock().await.remove(provider).is_some()
    }

    pub async fn unload_all(&self) {
        self.helpers.lock().await.clear();
    }
}
