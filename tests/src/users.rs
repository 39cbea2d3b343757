//! Real local users for the multi-user tests: made with useradd (the tests run as root),
//! removed with userdel when dropped, and commands run as them through setpriv.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// A 0700 directory the user owns, for its key files.
    pub dir: PathBuf,
}

impl TestUser {
    /// Creates a system user named after `tag` and this process (so parallel tests do not
    /// collide), with its directory under `parent`.
    pub fn create(tag: &str, parent: &Path) -> Result<TestUser, String> {
        let name = format!("tpmdt{}{tag}", std::process::id() % 100_000);
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .args(["--user-group", &name])
            .status()
            .map_err(|e| format!("useradd: {e} (the multi-user tests need root)"))?;
        if !status.success() {
            return Err(format!(
                "useradd {name} failed ({status}); the multi-user tests need root"
            ));
        }
        let user = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .ok_or_else(|| format!("{name} was not created"))?;
        let dir = parent.join(&name);
        let made = TestUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            dir,
        };
        std::fs::create_dir_all(&made.dir).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&made.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        chown(&made.dir, Some(made.uid), Some(made.gid)).map_err(|e| e.to_string())?;
        Ok(made)
    }

    /// Writes a file in the user's directory, owned by the user, mode 0600.
    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        chown(&path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// `program` run as this user: its uid and group only, no supplementary groups.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(program)
            .env_remove("HOME")
            .current_dir(&self.dir);
        cmd
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
