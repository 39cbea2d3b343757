//! An authenticated connection on tpmd's socket as a zbus transport. Two things differ
//! from zbus's own unix transport: the peer's credentials are the ones the kernel gave
//! at accept, and a message whose header announces more than [`MAX_MESSAGE`] bytes ends
//! the connection before zbus sets memory aside for it (D-Bus allows 128 MiB, and no
//! request to tpmd comes near a megabyte). File descriptors are never received.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};
use zbus::export::async_trait::async_trait;
use zbus::fdo::ConnectionCredentials;

/// The largest message tpmd accepts on its socket: far above any key file, digest or
/// ciphertext the API carries.
pub const MAX_MESSAGE: u64 = 1 << 20;

/// The D-Bus fixed header: endianness, type, flags, version, body length, serial,
/// length of the header-field array.
const FIXED_HEADER: usize = 16;

/// What the kernel said about the peer when it connected.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<u32>,
}

impl Peer {
    fn credentials(&self) -> ConnectionCredentials {
        let credentials = ConnectionCredentials::default().set_unix_user_id(self.uid);
        match self.pid {
            Some(pid) => credentials.set_process_id(pid),
            None => credentials,
        }
    }
}

#[derive(Debug)]
pub struct PeerStream {
    stream: UnixStream,
    peer: Peer,
}

impl PeerStream {
    pub fn new(stream: UnixStream, peer: Peer) -> PeerStream {
        PeerStream { stream, peer }
    }
}

impl Socket for PeerStream {
    type ReadHalf = Reader;
    type WriteHalf = Writer;

    fn split(self) -> Split<Reader, Writer> {
        let (read, write) = self.stream.into_split();
        Split::new(
            Reader {
                read,
                frame: Frame::default(),
                peer: self.peer,
            },
            Writer {
                write,
                peer: self.peer,
            },
        )
    }
}

#[derive(Debug)]
pub struct Reader {
    read: OwnedReadHalf,
    frame: Frame,
    peer: Peer,
}

#[async_trait]
impl ReadHalf for Reader {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        let want = self.frame.readable(buffer.len());
        let Some(buffer) = buffer.get_mut(..want) else {
            return Ok((0, vec![]));
        };
        let read = self.read.read(buffer).await?;
        self.frame.consumed(&buffer[..read])?;
        Ok((read, vec![]))
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(self.peer.credentials())
    }
}

#[derive(Debug)]
pub struct Writer {
    write: OwnedWriteHalf,
    peer: Peer,
}

#[async_trait]
impl WriteHalf for Writer {
    async fn sendmsg(&mut self, buffer: &[u8], _fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        self.write.write(buffer).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.write.shutdown().await
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(self.peer.credentials())
    }
}

/// Follows the framing of the byte stream: the fixed header of each message, then as
/// many bytes as that header announces. Reads never cross a message boundary, so the
/// length is known (and refused if too large) when the header's last byte arrives.
#[derive(Debug, Default)]
struct Frame {
    header: [u8; FIXED_HEADER],
    header_len: usize,
    /// Bytes of the current message after its fixed header still to come.
    remaining: u64,
}

impl Frame {
    /// How much of a `capacity`-byte buffer the next read may fill.
    fn readable(&self, capacity: usize) -> usize {
        let limit = if self.remaining > 0 {
            usize::try_from(self.remaining).unwrap_or(usize::MAX)
        } else {
            FIXED_HEADER - self.header_len
        };
        capacity.min(limit)
    }

    fn consumed(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.remaining > 0 {
            self.remaining -= bytes.len() as u64;
            return Ok(());
        }
        let end = self.header_len + bytes.len();
        self.header[self.header_len..end].copy_from_slice(bytes);
        self.header_len = end;
        if self.header_len == FIXED_HEADER {
            self.header_len = 0;
            self.remaining = message_length(&self.header)? - FIXED_HEADER as u64;
        }
        Ok(())
    }
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// The whole length of the message whose fixed header is `header`.
fn message_length(header: &[u8; FIXED_HEADER]) -> io::Result<u64> {
    let field = |at: usize| {
        let bytes = [header[at], header[at + 1], header[at + 2], header[at + 3]];
        match header[0] {
            b'l' => Ok(u32::from_le_bytes(bytes)),
            b'B' => Ok(u32::from_be_bytes(bytes)),
            other => Err(invalid(format!(
                "not a D-Bus message (endianness byte {other:#04x})"
            ))),
        }
    };
    let body = u64::from(field(4)?);
    let fields = u64::from(field(12)?);
    let header_len = (FIXED_HEADER as u64 + fields).next_multiple_of(8);
    let total = header_len + body;
    if total > MAX_MESSAGE {
        return Err(invalid(format!(
            "a message of {total} bytes; tpmd accepts at most {MAX_MESSAGE}"
        )));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(endian: u8, body: u32, fields: u32) -> [u8; FIXED_HEADER] {
        let mut h = [0u8; FIXED_HEADER];
        h[0] = endian;
        h[1] = 1;
        h[3] = 1;
        let (b, f) = if endian == b'l' {
            (body.to_le_bytes(), fields.to_le_bytes())
        } else {
            (body.to_be_bytes(), fields.to_be_bytes())
        };
        h[4..8].copy_from_slice(&b);
        h[12..16].copy_from_slice(&f);
        h
    }

    #[test]
    fn lengths_of_both_byte_orders() {
        // 16 + 61 = 77 bytes of header, padded to 80, then 7 of body.
        assert_eq!(message_length(&header(b'l', 7, 61)).unwrap(), 87);
        assert_eq!(message_length(&header(b'B', 7, 61)).unwrap(), 87);
        assert_eq!(message_length(&header(b'l', 0, 48)).unwrap(), 64);
    }

    #[test]
    fn a_huge_or_foreign_message_is_refused() {
        let error = message_length(&header(b'l', 128 << 20, 8)).unwrap_err();
        assert!(error.to_string().contains("at most"), "{error}");
        let error = message_length(&header(b'l', u32::MAX, u32::MAX)).unwrap_err();
        assert!(error.to_string().contains("at most"), "{error}");
        let error = message_length(&header(b'X', 1, 8)).unwrap_err();
        assert!(error.to_string().contains("not a D-Bus message"), "{error}");
    }

    #[test]
    fn reads_stop_at_message_boundaries() {
        let mut frame = Frame::default();
        let first = header(b'l', 8, 40); // 56 + 8 = 64 bytes
        assert_eq!(frame.readable(1024), 16);
        frame.consumed(&first[..10]).unwrap();
        assert_eq!(frame.readable(1024), 6);
        frame.consumed(&first[10..]).unwrap();
        assert_eq!(frame.readable(1024), 48);
        assert_eq!(frame.readable(20), 20);
        frame.consumed(&[0; 20]).unwrap();
        frame.consumed(&[0; 28]).unwrap();
        // The next message starts with its header again.
        assert_eq!(frame.readable(1024), 16);
        let huge = header(b'l', 64 << 20, 8);
        frame.consumed(&huge[..15]).unwrap();
        assert!(frame.consumed(&huge[15..]).is_err());
    }
}
