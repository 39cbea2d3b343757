//! A TCP proxy between the client and swtpm that damages responses on request.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Pass,
    /// Flip the byte at this offset of the next response.
    FlipByte(usize),
    /// Flip the byte this many bytes before the end of the next response.
    FlipFromEnd(usize),
    /// Keep only this many bytes of the next response (size field adjusted).
    Truncate(usize),
}

pub struct Proxy {
    port: u16,
    mode: Arc<Mutex<Mode>>,
}

impl Proxy {
    pub fn start(tpm_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let shared = mode.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(tpm) = TcpStream::connect(("127.0.0.1", tpm_port)) else {
                    return;
                };
                serve(client, tpm, &shared);
            }
        });
        Proxy { port, mode }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 10];
    stream.read_exact(&mut header).ok()?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let mut msg = header.to_vec();
    msg.resize(size.max(10), 0);
    stream.read_exact(&mut msg[10..]).ok()?;
    Some(msg)
}

fn serve(mut client: TcpStream, mut tpm: TcpStream, mode: &Mutex<Mode>) {
    while let Some(cmd) = read_message(&mut client) {
        if tpm.write_all(&cmd).is_err() {
            return;
        }
        let Some(mut resp) = read_message(&mut tpm) else {
            return;
        };
        let m = std::mem::replace(&mut *mode.lock().unwrap(), Mode::Pass);
        // Only damage responses to authorized commands (the ones with HMACs).
        let authorized = cmd[1] == 0xC2;
        match (m, authorized) {
            (Mode::FlipByte(i), true) if i < resp.len() => resp[i] ^= 0x01,
            (Mode::FlipFromEnd(i), true) if i <= resp.len() => {
                let at = resp.len() - i;
                resp[at] ^= 0x01;
            }
            (Mode::Truncate(n), true) if n < resp.len() => {
                resp.truncate(n);
                let size = (n as u32).to_be_bytes();
                resp[2..6].copy_from_slice(&size);
            }
            (Mode::Pass, _) => {}
            (other, _) => *mode.lock().unwrap() = other,
        }
        if client.write_all(&resp).is_err() {
            return;
        }
    }
}
