//! Moving command bytes to a TPM 1.2 and response bytes back: a swtpm TCP data port or
//! a character device (`/dev/tpm0`). std only.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::codec::frame::MAX_RESPONSE;

/// A TPM 1.2 key generation can take a minute on real hardware.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the TPM 1.2 is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A swtpm data port (`swtpm socket --server type=tcp,port=P`).
    Tcp { host: String, port: u16 },
    /// A character device such as `/dev/tpm0`.
    Device(PathBuf),
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp { host, port } => write!(f, "swtpm:host={host},port={port}"),
            Transport::Device(path) => write!(f, "device:{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to the TPM simulator at {target}: {source}; is swtpm running?")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the TPM device {path}: {source}; check that it exists and that tpmd's group may read and write it (and that no other program, e.g. tcsd, holds /dev/tpm0)")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("TPM I/O on {target} failed: {source}")]
    Io {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the TPM at {target} sent a response of {size} bytes, which no TPM 1.2 command produces"
    )]
    BadSize { target: String, size: usize },
}

impl Transport {
    pub fn tcp(port: u16) -> Transport {
        Transport::Tcp {
            host: "127.0.0.1".into(),
            port,
        }
    }

    pub fn open(&self) -> Result<Connection, TransportError> {
        let target = self.to_string();
        let channel = match self {
            Transport::Tcp { host, port } => {
                let connect_err = |source| TransportError::Connect {
                    target: target.clone(),
                    source,
                };
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(connect_err)?
                    .next()
                    .ok_or_else(|| connect_err(io::Error::from(io::ErrorKind::NotFound)))?;
                let stream =
                    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(connect_err)?;
                stream
                    .set_read_timeout(Some(IO_TIMEOUT))
                    .and_then(|_| stream.set_write_timeout(Some(IO_TIMEOUT)))
                    .and_then(|_| stream.set_nodelay(true))
                    .map_err(connect_err)?;
                Channel::Tcp(stream)
            }
            Transport::Device(path) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|source| TransportError::Open {
                        path: path.clone(),
                        source,
                    })?;
                Channel::Device(file)
            }
        };
        Ok(Connection { target, channel })
    }
}

#[derive(Debug)]
enum Channel {
    Tcp(TcpStream),
    Device(File),
}

/// An open connection to a TPM 1.2.
#[derive(Debug)]
pub struct Connection {
    target: String,
    channel: Channel,
}

impl Connection {
    /// Sends one command and returns the whole response.
    pub fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let target = &self.target;
        let io_err = |source| TransportError::Io {
            target: target.clone(),
            source,
        };
        match &mut self.channel {
            Channel::Tcp(stream) => {
                stream.write_all(command).map_err(io_err)?;
                let mut header = [0u8; 10];
                stream.read_exact(&mut header).map_err(io_err)?;
                let size =
                    u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
                if !(10..=MAX_RESPONSE).contains(&size) {
                    return Err(TransportError::BadSize {
                        target: target.clone(),
                        size,
                    });
                }
                let mut response = header.to_vec();
                response.resize(size, 0);
                stream.read_exact(&mut response[10..]).map_err(io_err)?;
                Ok(response)
            }
            Channel::Device(file) => {
                // The TPM driver takes the command in one write and returns the whole
                // response to one read.
                file.write_all(command).map_err(io_err)?;
                let mut response = vec![0u8; MAX_RESPONSE];
                let n = file.read(&mut response).map_err(io_err)?;
                response.truncate(n);
                Ok(response)
            }
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }
}
