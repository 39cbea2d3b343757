//! The server side of the D-Bus authentication handshake (SASL EXTERNAL) on tpmd's
//! socket. tpmd does it itself rather than leave it to zbus so that a client sending
//! garbage meets fixed bounds (line length, number of lines, time) and a clear refusal.
//!
//! The client claims a uid; it must be the uid the kernel reports for the socket's peer.
//! That check is only politeness (the caller's identity is the kernel's answer in any
//! case, see `service::caller`), but it is what the protocol asks of a server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The whole handshake, from the first byte to BEGIN.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longer than any line a D-Bus client sends during authentication.
const MAX_LINE: usize = 512;
/// A client that has not authenticated after this many lines never will.
const MAX_LINES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the client closed the connection during authentication")]
    Closed,
    #[error("the first byte is not the NUL a D-Bus client sends")]
    NoNul,
    #[error("a line longer than {MAX_LINE} bytes")]
    LongLine,
    #[error("more than {MAX_LINES} lines without authenticating")]
    TooManyLines,
    #[error("not a D-Bus authentication line")]
    NotText,
    #[error("no authentication within {0:?}")]
    Timeout(Duration),
}

/// What to do after one line from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this line (without its CRLF) and read the next.
    Reply(String),
    /// Authenticated: the D-Bus messages start after this line.
    Begin,
}

#[derive(Debug, PartialEq, Eq)]
/// What the server waits for next.
enum State {
    Auth,
    Data,
    Begin,
}

/// The protocol, without I/O.
pub struct Sasl {
    peer_uid: u32,
    guid: String,
    state: State,
}

impl Sasl {
    pub fn new(peer_uid: u32, guid: &str) -> Sasl {
        Sasl {
            peer_uid,
            guid: guid.to_string(),
            state: State::Auth,
        }
    }

    fn rejected(&mut self) -> Step {
        self.state = State::Auth;
        Step::Reply("REJECTED EXTERNAL".into())
    }

    /// EXTERNAL's identity: the hex-encoded decimal uid, or nothing (the peer's own).
    fn check_identity(&mut self, hex: Option<&str>) -> Step {
        let claimed = match hex {
            None | Some("") => Some(self.peer_uid),
            Some(hex) => decode_hex(hex)
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| text.parse::<u32>().ok()),
        };
        if claimed == Some(self.peer_uid) {
            self.state = State::Begin;
            Step::Reply(format!("OK {}", self.guid))
        } else {
            self.rejected()
        }
    }

    pub fn line(&mut self, line: &str) -> Step {
        let mut words = line.split(' ');
        let command = words.next().unwrap_or("");
        let argument = words.next();
        match (&self.state, command) {
            (_, "CANCEL") | (State::Auth, "ERROR") => self.rejected(),
            (State::Auth, "AUTH") => match argument {
                Some("EXTERNAL") => match words.next() {
                    Some(hex) => self.check_identity(Some(hex)),
                    None => {
                        self.state = State::Data;
                        Step::Reply("DATA".into())
                    }
                },
                _ => self.rejected(),
            },
            (State::Data, "DATA") => self.check_identity(argument),
            (State::Data, "ERROR") => self.rejected(),
            // The API passes no file descriptors; agreeing only spares the client a warning.
            (State::Begin, "NEGOTIATE_UNIX_FD") => Step::Reply("AGREE_UNIX_FD".into()),
            (State::Begin, "BEGIN") => Step::Begin,
            _ => Step::Reply("ERROR \"unexpected command\"".into()),
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One CRLF-terminated line, read a byte at a time: the bytes after BEGIN belong to
/// zbus, so nothing past the line may be consumed.
async fn read_line(stream: &mut UnixStream) -> Result<String, HandshakeError> {
    let mut line = Vec::with_capacity(64);
    loop {
        let byte = match stream.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(HandshakeError::Closed)
            }
            Err(e) => return Err(e.into()),
        };
        if byte == b'\n' && line.last() == Some(&b'\r') {
            line.pop();
            return String::from_utf8(line).map_err(|_| HandshakeError::NotText);
        }
        if line.len() >= MAX_LINE {
            return Err(HandshakeError::LongLine);
        }
        line.push(byte);
    }
}

/// Authenticates the client on `stream` whose kernel-reported uid is `peer_uid`, within
/// `timeout`. Returns once the client sent BEGIN; the stream then carries D-Bus messages.
pub async fn authenticate(
    stream: &mut UnixStream,
    peer_uid: u32,
    guid: &str,
    timeout: Duration,
) -> Result<(), HandshakeError> {
    let exchange = async {
        match stream.read_u8().await {
            Ok(0) => {}
            Ok(_) => return Err(HandshakeError::NoNul),
            Err(_) => return Err(HandshakeError::Closed),
        }
        let mut sasl = Sasl::new(peer_uid, guid);
        for _ in 0..MAX_LINES {
            let line = read_line(stream).await?;
            match sasl.line(&line) {
                Step::Begin => return Ok(()),
                Step::Reply(reply) => {
                    stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
                }
            }
        }
        Err(HandshakeError::TooManyLines)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "0123456789abcdef0123456789abcdef";

    fn reply(s: &str) -> Step {
        Step::Reply(s.to_string())
    }

    #[test]
    fn external_with_the_peers_uid_is_accepted() {
        let mut sasl = Sasl::new(1000, GUID);
        // "1000" in hex, as zbus, libdbus and sd-bus send it.
        assert_eq!(
            sasl.line("AUTH EXTERNAL 31303030"),
            reply(&format!("OK {GUID}"))
        );
        assert_eq!(sasl.line("NEGOTIATE_UNIX_FD"), reply("AGREE_UNIX_FD"));
        assert_eq!(sasl.line("BEGIN"), Step::Begin);
    }

    #[test]
    fn external_with_the_identity_in_a_data_line() {
        let mut sasl = Sasl::new(0, GUID);
        assert_eq!(sasl.line("AUTH EXTERNAL"), reply("DATA"));
        assert_eq!(sasl.line("DATA"), reply(&format!("OK {GUID}")));
        assert_eq!(sasl.line("BEGIN"), Step::Begin);
        let mut sasl = Sasl::new(0, GUID);
        assert_eq!(sasl.line("AUTH EXTERNAL"), reply("DATA"));
        assert_eq!(sasl.line("DATA 30"), reply(&format!("OK {GUID}")));
    }

    #[test]
    fn another_uid_or_mechanism_is_rejected() {
        let mut sasl = Sasl::new(1000, GUID);
        // Claims uid 0.
        assert_eq!(sasl.line("AUTH EXTERNAL 30"), reply("REJECTED EXTERNAL"));
        assert_eq!(sasl.line("BEGIN"), reply("ERROR \"unexpected command\""));
        assert_eq!(sasl.line("AUTH ANONYMOUS"), reply("REJECTED EXTERNAL"));
        assert_eq!(sasl.line("AUTH"), reply("REJECTED EXTERNAL"));
        assert_eq!(sasl.line("AUTH EXTERNAL zz"), reply("REJECTED EXTERNAL"));
        assert_eq!(sasl.line("AUTH EXTERNAL 3"), reply("REJECTED EXTERNAL"));
        assert_eq!(sasl.line(""), reply("ERROR \"unexpected command\""));
        // CANCEL after OK goes back to the start.
        assert_eq!(
            sasl.line("AUTH EXTERNAL 31303030"),
            reply(&format!("OK {GUID}"))
        );
        assert_eq!(sasl.line("CANCEL"), reply("REJECTED EXTERNAL"));
        assert_eq!(sasl.line("BEGIN"), reply("ERROR \"unexpected command\""));
    }

    async fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    #[tokio::test]
    async fn garbage_ends_the_handshake_with_a_reason() {
        for (input, expected) in [
            (&b"\x01AUTH\r\n"[..], "NUL"),
            (&b"\0\n"[..], "longer"),
            (&b"\0\xff\xfe\r\n"[..], "not a D-Bus"),
            (&b"\0AUTH"[..], "closed"),
            (&b""[..], "closed"),
        ] {
            let (mut server, mut client) = pair().await;
            let mut data = input.to_vec();
            if expected == "longer" {
                data.extend(std::iter::repeat_n(b'A', 2 * MAX_LINE));
            }
            client.write_all(&data).await.unwrap();
            client.shutdown().await.unwrap();
            let error = authenticate(&mut server, 0, GUID, HANDSHAKE_TIMEOUT)
                .await
                .unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{input:?}: {error} (expected {expected})"
            );
        }
        let (mut server, mut client) = pair().await;
        let mut lines = b"\0".to_vec();
        for _ in 0..=MAX_LINES {
            lines.extend_from_slice(b"AUTH ANONYMOUS\r\n");
        }
        client.write_all(&lines).await.unwrap();
        let error = authenticate(&mut server, 0, GUID, HANDSHAKE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(error, HandshakeError::TooManyLines), "{error}");
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (mut server, _client) = pair().await;
        let error = authenticate(&mut server, 0, GUID, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(matches!(error, HandshakeError::Timeout(_)), "{error}");
    }

    #[tokio::test]
    async fn bytes_after_begin_are_left_for_the_d_bus_stream() {
        let (mut server, mut client) = pair().await;
        client
            .write_all(b"\0AUTH EXTERNAL 30\r\nBEGIN\r\nlMESSAGE")
            .await
            .unwrap();
        authenticate(&mut server, 0, GUID, HANDSHAKE_TIMEOUT)
            .await
            .unwrap();
        let mut rest = [0u8; 8];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"lMESSAGE");
        let expected = format!("OK {GUID}\r\n");
        let mut reply = vec![0u8; expected.len()];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, expected.as_bytes());
    }
}
