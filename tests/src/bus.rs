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

/// A system bus's default policy: anyone may connect, nobody may own a name or call a
/// method unless a policy file allows it. tpmd runs as root in the tests instead of as
/// the `tpmd` account, so root may own tpmd's name; everything else comes from the
/// project's own policy file, included unchanged.
const SYSTEM_LIKE_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=SOCKET</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <policy user="root">
    <allow own="org.tpmd.Daemon1"/>
  </policy>
  <include>POLICY</include>
  <limit name="max_replies_per_connection">128</limit>
</busconfig>
"#;

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

    /// A bus with a system bus's rules and the project's D-Bus policy file
    /// (systemd/org.tpmd.Daemon1.conf), on a socket every local user can reach.
    pub fn start_system_like() -> std::io::Result<PrivateBus> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("tpmd-sysbus-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../systemd/org.tpmd.Daemon1.conf")
            .canonicalize()?;
        let config = SYSTEM_LIKE_CONFIG
            .replace("SOCKET", &dir.path().join("bus").display().to_string())
            .replace("POLICY", &policy.display().to_string());
        let config_path = dir.path().join("system.conf");
        std::fs::write(&config_path, config)?;
        let mut command = Command::new("dbus-daemon");
        command.arg(format!("--config-file={}", config_path.display()));
        Self::spawn(dir, command)
    }

    fn spawn(dir: TempDir, mut command: Command) -> std::io::Result<PrivateBus> {
        let socket = dir.path().join("bus");
        let mut child = command
            .arg(format!("--address=unix:path={}", socket.display()))
            .arg("--nofork")
            .arg("--nopidfile")
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
