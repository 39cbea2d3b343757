//! tpm2-pkcs11 (Debian libtpm2-pkcs11-1), the peer tpmd is compared with: a token and
//! one key made by tpm2_ptool on the benchmark's simulator, used through the same
//! transport as tpmd's (swtpm's TCP protocol, or the model's mssim listener, which
//! stands for an open `/dev/tpm0` or `/dev/tpmrm0`). tpm2-pkcs11 keys always have an
//! auth value, derived from the user PIN.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tpmd_simulator::Simulator;

use super::kind::Kind;
use super::model::Model;
use crate::bus::PrivateBus;

pub const MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";
pub const PIN: &str = "1234";
/// The key's CKA_LABEL.
pub const LABEL: &str = "k1";

pub struct Tpm2Pkcs11 {
    pub store: PathBuf,
    /// What the module and its users take: the benchmark's own transport.
    pub tcti: String,
}

impl Tpm2Pkcs11 {
    /// Makes the token (PIN [`PIN`]) and a key of `kind` in `dir`, keyed to the SRK at
    /// 0x81000001 as tpmd's keys are. tpm2_ptool needs a resource manager while it
    /// works (it leaves objects loaded): the kernel model on `/dev/tpmrm0`, else
    /// tpm2-abrmd for the time of the setup only.
    pub fn create(
        model: &Model,
        sim: &Simulator,
        bus: &PrivateBus,
        dir: &Path,
        kind: Kind,
    ) -> Result<Tpm2Pkcs11, String> {
        if !Path::new(MODULE).exists() {
            return Err(format!(
                "{MODULE} missing: apt-get install libtpm2-pkcs11-1"
            ));
        }
        let tcti = model.tcti(sim);
        let abrmd = if model.kernel_rm {
            None
        } else {
            Some(Abrmd::start(sim, bus)?)
        };
        let setup_tcti = abrmd.as_ref().map_or(tcti.as_str(), |a| a.tcti.as_str());
        let store = dir.join("tpm2-pkcs11");
        std::fs::create_dir_all(&store).map_err(|e| e.to_string())?;
        let store_arg = format!("--path={}", store.display());
        let algorithm = format!("--algorithm={}", kind.ptool_type);
        let userpin = format!("--userpin={PIN}");
        let key_label = format!("--key-label={LABEL}");
        let steps: [&[&str]; 3] = [
            &["init", "--primary-handle=0x81000001"],
            &[
                "addtoken",
                "--pid=1",
                "--label=bench",
                &userpin,
                "--sopin=5678",
            ],
            &["addkey", "--label=bench", &userpin, &algorithm, &key_label],
        ];
        for step in steps {
            let out = Command::new("tpm2_ptool")
                .args(step)
                .arg(&store_arg)
                .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
                .env("TPM2TOOLS_TCTI", setup_tcti)
                .env("TPM2_PKCS11_TCTI", setup_tcti)
                .output()
                .map_err(|e| format!("tpm2_ptool (apt-get install tpm2-pkcs11-tools): {e}"))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                return Err(format!(
                    "tpm2_ptool {} failed: {}",
                    step[0],
                    err.lines().last().unwrap_or("")
                ));
            }
        }
        Ok(Tpm2Pkcs11 { store, tcti })
    }

    /// The TCTI the token's TPM is reached through.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// The environment the module reads (its users pass it on).
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TPM2_PKCS11_STORE", self.store.display().to_string()),
            ("TPM2_PKCS11_TCTI", self.tcti.clone()),
            ("TSS2_LOG", "all+NONE".into()),
        ]
    }

    /// Points this process's environment at the token, for loading the module here.
    pub fn set_vars(&self) {
        for (k, v) in self.vars() {
            std::env::set_var(k, v);
        }
    }
}

/// tpm2-abrmd on the private bus in front of the simulator, stopped on drop.
struct Abrmd {
    child: Child,
    tcti: String,
}

impl Drop for Abrmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Abrmd {
    fn start(sim: &Simulator, bus: &PrivateBus) -> Result<Abrmd, String> {
        const NAME: &str = "com.intel.tss2.TabrmdBench";
        let child = Command::new("tpm2-abrmd")
            .args(["--session", "--allow-root", "--flush-all"])
            .arg(format!("--dbus-name={NAME}"))
            .arg(format!("--tcti={}", sim.tcp_transport()))
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("tpm2-abrmd (apt-get install tpm2-abrmd): {e}"))?;
        let abrmd = Abrmd {
            child,
            tcti: format!("tabrmd:bus_type=session,bus_name={NAME}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = Command::new("tpm2_getcap")
                .args(["properties-fixed", "-T", &abrmd.tcti])
                .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                return Ok(abrmd);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("tpm2-abrmd did not come up".into())
    }
}
