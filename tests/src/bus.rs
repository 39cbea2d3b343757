//! A private D-Bus daemon on a socket in a temp directory: tests never touch the
//! machine's buses.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

/// A bus configuration that admits every uid and lets anyone own and call anything.
const OPEN_BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <!-- Required; the address given on dbus-daemon's command line replaces it. -->
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

pub struct PrivateBus {
    child: Child,
    address: String,
    _dir: TempDir,
}

impl PrivateBus {
    pub fn start() -> std::io::Result<PrivateBus> {
        let dir = tempfile::Builder::new().prefix("tpmd-bus-").tempdir()?;
        let mut command = Command::new("dbus-daemon");
        command.arg("--session");
        Self::spawn(dir, command)
    }

    /// A bus every local user may connect to and call on, like the system bus (a
    /// session bus admits only its owner): for tests that call tpmd as other users.
    pub fn start_for_all_users() -> std::io::Result<PrivateBus> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("tpmd-bus-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, OPEN_BUS_CONFIG)?;
        let mut command = Command::new("dbus-daemon");
        command.arg(format!("--config-file={}", config.display()));
        Self::spawn(dir, command)
    }

    fn spawn(dir: TempDir, mut command: Command) -> std::io::Result<PrivateBus> {
        let socket = dir.path().join("bus");
        let mut child = command
            .arg("--nofork")
            .arg("--nopidfile")
            .arg(format!("--address=unix:path={}", socket.display()))
            .arg("--print-address=1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line.trim().to_string();
        if address.is_empty() {
            let _ = child.kill();
            return Err(std::io::Error::other("dbus-daemon printed no address"));
        }
        Ok(PrivateBus {
            child,
            address,
            _dir: dir,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub async fn connect(&self) -> zbus::Result<zbus::Connection> {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
