//! `doctor`: checks what tpmd needs from the machine and the TPM, and the user's key
//! files, and for each problem prints the command that fixes it. Works without tpmd
//! running, to tell why it is not.

mod backups;
mod key_files;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tpmd_api::dbus::Info;

use super::Tpmd;
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Finding {
    status: Status,
    check: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            status: Status::Ok,
            check,
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        status: Status,
        check: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status,
            check,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

const DEVICES: [&str; 2] = ["/dev/tpmrm0", "/dev/tpm0"];
const UDEV_FIX: &str =
    "install udev/60-tpmd.rules into /etc/udev/rules.d/, then `udevadm trigger --subsystem-match=tpm --subsystem-match=tpmrm`";

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

fn device_finding(path: &Path) -> Finding {
    let check = "device";
    let meta = match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_char_device() => meta,
        Ok(_) => {
            return Finding::problem(
                Status::Fail,
                check,
                format!("{} is not a character device", path.display()),
                "check the kernel's TPM driver (`dmesg | grep -i tpm`)",
            )
        }
        Err(e) => {
            return Finding::problem(
                Status::Fail,
                check,
                format!("{}: {e}", path.display()),
                UDEV_FIX,
            )
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    let group = group_name(meta.gid());
    let detail = format!("{} mode {mode:04o} group {group}", path.display());
    if mode & 0o006 != 0 {
        Finding::problem(
            Status::Warn,
            check,
            format!("{detail}: every local user can talk to the TPM directly"),
            UDEV_FIX,
        )
    } else if group != "tss" || mode & 0o060 != 0o060 {
        Finding::problem(
            Status::Warn,
            check,
            format!("{detail}: tpmd runs as a member of group tss and needs it to be rw"),
            UDEV_FIX,
        )
    } else {
        Finding::ok(check, detail)
    }
}

fn machine_findings() -> Vec<Finding> {
    let present: Vec<&Path> = DEVICES
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .collect();
    let mut findings: Vec<Finding> = present.iter().map(|p| device_finding(p)).collect();
    if present.is_empty() {
        findings.push(Finding::problem(
            Status::Warn,
            "device",
            "no /dev/tpmrm0 or /dev/tpm0 on this machine",
            "enable the TPM in the firmware setup, or run on the simulator: `tpmd --user --simulator`",
        ));
    }
    for (process, stop) in [
        ("tcsd", "sudo systemctl disable --now trousers"),
        ("tpm2-abrmd", "sudo systemctl disable --now tpm2-abrmd"),
    ] {
        if running(process) {
            findings.push(Finding::problem(
                Status::Warn,
                "resource manager",
                format!("{process} is running and competes with tpmd for the TPM"),
                stop,
            ));
        }
    }
    findings
}

/// Whether a process of that name runs, from /proc.
fn running(name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
    })
}

fn tpm_findings(info: &Info) -> Vec<Finding> {
    let tpm12 = info.family.as_deref() == Some("1.2");
    let transport = info.transport.clone().unwrap_or_default();
    let mut findings = vec![Finding::ok(
        "resource manager",
        format!(
            "tpmd serves TPM {} on {transport} and shares it between all clients{}",
            info.family.as_deref().unwrap_or("?"),
            info.resource_manager
                .as_deref()
                .map(|rm| format!(": {rm}"))
                .unwrap_or_default()
        ),
    )];
    if let Some(device) = transport_device_advice(&transport) {
        findings.push(device);
    }
    let srk = if tpm12 {
        match info.owned {
            Some(true) => Finding::ok("SRK", "ownership taken; the SRK exists"),
            _ => Finding::problem(
                Status::Fail,
                "SRK",
                "ownership of this TPM 1.2 is not taken, so it has no SRK",
                "sudo tpm-keyctl srk create",
            ),
        }
    } else {
        match info.srk_present {
            Some(true) => Finding::ok(
                "SRK",
                format!("present at {:#010x}", info.srk_handle.unwrap_or(0)),
            ),
            _ => Finding::problem(
                Status::Fail,
                "SRK",
                format!(
                    "no storage root key at {:#010x}",
                    info.srk_handle.unwrap_or(0x8100_0001)
                ),
                "sudo tpm-keyctl srk create",
            ),
        }
    };
    findings.push(srk);
    findings.push(match info.lockout {
        Some(true) => Finding::problem(
            Status::Fail,
            "lockout",
            format!(
                "the TPM is in dictionary-attack lockout ({}; wrong auth values and unorderly resets both count)",
                match (info.da_failed_tries, info.da_max_tries, info.lockout_ends_in) {
                    (Some(n), Some(m), Some(s)) =>
                        format!("{n} of {m} failed tries; it recovers in at most {s} s"),
                    (Some(n), Some(m), None) => format!("{n} of {m} failed tries"),
                    _ => "the TPM gives no counts".to_string(),
                }
            ),
            "wait for it to recover, or: sudo tpm-keyctl reset-lockout (with --auth-file FILE if the TPM 2.0 lockout hierarchy has an auth value)",
        ),
        Some(false) => Finding::ok("lockout", "not in dictionary-attack lockout"),
        None => Finding::problem(
            Status::Warn,
            "lockout",
            "the TPM does not report its lockout state",
            "none needed unless wrong-auth errors mention lockout",
        ),
    });
    if tpm12 {
        findings.push(match info.nv_locked {
            Some(true) => Finding::ok("NV lock", "TPM_NV_INDEX_LOCK is defined"),
            _ => Finding::problem(
                Status::Warn,
                "NV lock",
                "NV is not locked (TPM_NV_INDEX_LOCK undefined): anyone can write NV and wear it out",
                "sudo tpm-keyctl lock-nv",
            ),
        });
    }
    findings
}

/// Why tpmd uses the device it uses, and whether another would suit this machine better.
fn transport_device_advice(transport: &str) -> Option<Finding> {
    let device = transport.strip_prefix("device:")?;
    let rm_device = Path::new("/dev/tpmrm0").exists();
    Some(if device.contains("tpmrm") {
        Finding::ok(
            "device",
            "/dev/tpmrm0 (the default): the kernel shares the TPM with its other users (systemd-cryptenroll, clevis, tpm2-tools) at the cost of swapping tpmd's key in and out for every command",
        )
    } else if rm_device {
        Finding::problem(
            Status::Warn,
            "device",
            format!("{device} is exclusive: while tpmd holds it, every other TPM user must go through /dev/tpmrm0, and tpmd keeps slots free for them; signatures cost 1 TPM command instead of 4"),
            "keep it if tpmd is the TPM's main user and speed matters (real TPMs take tens of milliseconds per command); else set TPMD_TPM=/dev/tpmrm0 (or remove --tpm) in tpmd.service",
        )
    } else {
        Finding::ok(
            "device",
            format!("{device}: this kernel has no /dev/tpmrm0, so tpmd owns the TPM"),
        )
    })
}

/// `key_paths`: key files or directories to check besides ~/.ssh and the PKCS#11 store.
pub async fn run(user: bool, json_out: bool, key_paths: &[PathBuf]) -> CliResult<()> {
    let mut findings = machine_findings();
    let tpmd = match Tpmd::connect(user).await {
        Ok(tpmd) => Some(tpmd),
        Err(e) => {
            findings.push(not_running(e));
            None
        }
    };
    if let Some(tpmd) = tpmd {
        match tpmd.proxy.get_info().await {
            Ok(info) => findings.extend(tpm_findings(&info)),
            Err(e) => findings.push(not_running(CliError::from_daemon(e, user))),
        }
    }
    findings.extend(key_files::findings(key_paths));
    findings.extend(backups::findings(key_paths));
    output::print(json_out, &findings, |findings| {
        findings
            .iter()
            .map(|f| {
                let status = match f.status {
                    Status::Ok => "ok  ",
                    Status::Warn => "WARN",
                    Status::Fail => "FAIL",
                };
                match &f.fix {
                    Some(fix) => format!("{status}  {}: {}\n      fix: {fix}", f.check, f.detail),
                    None => format!("{status}  {}: {}", f.check, f.detail),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    if failed > 0 {
        return Err(CliError::Usage(format!(
            "{failed} check(s) failed; run the fix lines above"
        )));
    }
    Ok(())
}

fn not_running(error: CliError) -> Finding {
    let line = error.to_string();
    let fix = line
        .rsplit_once("; start it with ")
        .map(|(_, fix)| fix.to_string())
        .unwrap_or_else(|| "see the error above".into());
    Finding::problem(Status::Fail, "tpmd", line, fix)
}
