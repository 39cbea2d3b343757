//! Running swtpm's programs: finding them, the state directory, the log that collects
//! their output across runs, TPM 1.2 state set-up, and who holds a state's lock.

use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::SimulatorError;

pub(crate) const LOG_FILE: &str = "swtpm.log";
const LOG_MARKER: &str = "--- tpmd-simulator:";
/// What swtpm logs when another swtpm holds the state directory's lock.
const LOCK_TAKEN: &str = "Could not lock access to lockfile";
/// swtpm's lock file in the state directory.
const LOCK_FILE: &str = ".lock";

/// Finds `program` on PATH.
pub(crate) fn find_program(program: &'static str) -> Result<PathBuf, SimulatorError> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| {
            path.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or(SimulatorError::MissingProgram(program))
}

pub(crate) fn prepare_state_dir(dir: &Path) -> Result<(), SimulatorError> {
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(SimulatorError::StateDirNotDirectory(dir.to_path_buf())),
        Err(_) => {}
    }
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("/"),
    };
    if !parent.is_dir() {
        return Err(SimulatorError::StateDirParentMissing(dir.to_path_buf()));
    }
    DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|source| SimulatorError::StateDir {
            path: dir.to_path_buf(),
            source,
        })
}

pub(crate) fn open_log(path: &Path) -> Result<File, SimulatorError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| SimulatorError::Log {
            path: path.to_path_buf(),
            source,
        })
}

/// The last few lines the log got since the most recent start marker, on one line.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let since_start = text
        .rfind(LOG_MARKER)
        .and_then(|at| text[at..].split_once('\n'))
        .map_or(text.as_str(), |(_, rest)| rest);
    let lines: Vec<&str> = since_start
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(log is empty)".to_string()
    } else {
        tail
    }
}

pub(crate) fn log_command(
    log: &Path,
    program: &Path,
    args: &[&OsStr],
) -> Result<(Stdio, Stdio), SimulatorError> {
    let mut file = open_log(log)?;
    let line = std::iter::once(program.as_os_str())
        .chain(args.iter().copied())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    // Best effort: a failed marker write only makes error messages less precise.
    let _ = writeln!(file, "{LOG_MARKER} {line}");
    let err = file.try_clone().map_err(|source| SimulatorError::Log {
        path: log.to_path_buf(),
        source,
    })?;
    Ok((Stdio::from(file), Stdio::from(err)))
}

/// Creates a TPM 1.2's state: endorsement key always; owner and SRK with the well-known
/// secrets when `take_ownership` (otherwise the TPM is left unowned, as shipped).
pub(crate) fn setup_tpm12(
    dir: &Path,
    log: &Path,
    take_ownership: bool,
) -> Result<(), SimulatorError> {
    if dir.join("tpm-00.permall").exists() {
        return Ok(());
    }
    let program = find_program("swtpm_setup")?;
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--tpmstate"),
        dir.as_os_str(),
        OsStr::new("--createek"),
    ];
    if take_ownership {
        args.extend([
            OsStr::new("--take-ownership"),
            OsStr::new("--owner-well-known"),
            OsStr::new("--srk-well-known"),
        ]);
    }
    args.push(OsStr::new("--not-overwrite"));
    let (stdout, stderr) = log_command(log, &program, &args)?;
    let status = Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|source| SimulatorError::Spawn {
            program: "swtpm_setup",
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(SimulatorError::Setup {
            dir: dir.to_path_buf(),
            status,
            log_tail: log_tail(log),
        })
    }
}

/// Whether swtpm's last start failed because another swtpm holds the state's lock
/// (on a restart right after a crash: the old swtpm is still on its way out).
pub(crate) fn lock_taken(log: &Path) -> bool {
    log_tail(log).contains(LOCK_TAKEN)
}

/// The process holding the lock on the state directory `dir`, from /proc/locks.
pub(crate) fn lock_holder(dir: &Path) -> Option<u32> {
    let meta = dir.join(LOCK_FILE).metadata().ok()?;
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: POSIX  ADVISORY  WRITE 1234 00:2e:5678 0 EOF": pid, then major:minor:inode.
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (pid, id) = (fields.get(4)?, fields.get(5)?);
        let mut parts = id.split(':');
        let major = u64::from_str_radix(parts.next()?, 16).ok()?;
        let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
        let inode = parts.next()?.parse::<u64>().ok()?;
        let same_file = inode == meta.ino()
            && major == nix::sys::stat::major(meta.dev())
            && minor == nix::sys::stat::minor(meta.dev());
        same_file.then(|| pid.parse().ok()).flatten()
    })
}
