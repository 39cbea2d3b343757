//! trousers, the TPM 1.2 stack tpmd replaces, as an interop peer: its daemon tcsd pointed
//! at a 1.2 simulator over TCP, tpm-tools on top, and a small C client
//! (`tests/interop/trousers-create-key.c`) that makes a key the way trousers-based tools
//! do. Needs root (tcsd insists on its config being root:tss) and the trousers,
//! tpm-tools and libtspi-dev packages.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Tcsd {
    child: Child,
    port: u16,
    dir: TempDir,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn chown_tss(path: &Path, mode: u32) -> std::io::Result<()> {
    let group = nix::unistd::Group::from_name("tss")
        .map_err(std::io::Error::other)?
        .ok_or_else(|| std::io::Error::other("no group tss: install trousers"))?;
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(group.gid))
        .map_err(std::io::Error::other)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

impl Tcsd {
    /// Starts tcsd in the foreground on a free port, talking to swtpm on `tpm_port`.
    pub fn start(tpm_port: u16) -> std::io::Result<Tcsd> {
        let dir = tempfile::Builder::new().prefix("tpmd-tcsd-").tempdir()?;
        // tcsd drops to user tss and keeps its key store in this directory.
        chown_tss(dir.path(), 0o770)?;
        let port = free_port()?;
        let config = dir.path().join("tcsd.conf");
        std::fs::write(
            &config,
            format!(
                "port = {port}\nsystem_ps_file = {}\n",
                dir.path().join("system.data").display()
            ),
        )?;
        chown_tss(&config, 0o640)?;
        let log = std::fs::File::create(dir.path().join("tcsd.log"))?;
        let child = Command::new("/usr/sbin/tcsd")
            .args(["-f", "-e", "-c"])
            .arg(&config)
            .env("TCSD_TCP_DEVICE_HOSTNAME", "127.0.0.1")
            .env("TCSD_TCP_DEVICE_PORT", tpm_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let tcsd = Tcsd { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "tcsd did not listen on {port}: {}",
                    tcsd.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(tcsd)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tcsd.log")).unwrap_or_default()
    }

    /// Runs a trousers client (tpm-tools, or our C helper) against this tcsd.
    pub fn client(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("TSS_TCSD_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run a trousers client: {e}"))
    }

    /// Builds `tests/interop/trousers-create-key.c` into this tcsd's directory.
    pub fn build_create_key(&self) -> PathBuf {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/trousers-create-key.c");
        let binary = self.dir.path().join("trousers-create-key");
        let out = Command::new("gcc")
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .arg("-ltspi")
            .output()
            .unwrap_or_else(|e| panic!("gcc: {e}"));
        assert!(
            out.status.success(),
            "building {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        binary
    }

    /// Stops tcsd, which must not hold the simulator while tpmd uses it.
    pub fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Tcsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
