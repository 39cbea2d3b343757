//! Crash-only: a panic anywhere in tpmd, on the TPM thread or in a D-Bus task, ends the
//! whole process with [`PANIC_EXIT_CODE`] after logging where and why. Otherwise a panic
//! on the TPM thread would leave a daemon that answers every call with "the TPM thread
//! has stopped", and one in a D-Bus task would be swallowed by the runtime; a process
//! that keeps running but can no longer serve is worse than one systemd restarts.

use std::panic::PanicHookInfo;

/// The exit status after a panic (EX_SOFTWARE, "internal software error").
pub const PANIC_EXIT_CODE: i32 = 70;

/// Installs the panic policy; call once, as soon as logging is set up (`to_journald`:
/// whether logs go to the journal rather than stderr).
pub fn install(to_journald: bool) {
    std::panic::set_hook(Box::new(move |info| {
        let message = describe(info);
        if to_journald {
            tracing::error!("{message}; exiting so that systemd restarts tpmd");
        }
        eprintln!("tpmd: {message}; exiting so that systemd restarts tpmd");
        std::process::exit(PANIC_EXIT_CODE);
    }));
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    let reason = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    match info.location() {
        Some(at) => format!(
            "panic on thread {name} at {}:{}: {reason}",
            at.file(),
            at.line()
        ),
        None => format!("panic on thread {name}: {reason}"),
    }
}

/// Where a test may ask tpmd to panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The TPM thread, before it runs a job.
    TpmThread,
    /// A D-Bus method task (GetCounters).
    DbusTask,
}

/// Debug builds only: panics at `place` when `TPMD_DEBUG_PANIC` names it (`tpm-thread`,
/// `dbus-task`), so the tests can prove the policy above on the real binary. Release
/// builds compile this to nothing.
#[cfg(debug_assertions)]
pub fn debug_trigger(place: Place) {
    static ASKED: std::sync::OnceLock<Option<Place>> = std::sync::OnceLock::new();
    let asked = ASKED.get_or_init(|| match std::env::var("TPMD_DEBUG_PANIC").as_deref() {
        Ok("tpm-thread") => Some(Place::TpmThread),
        Ok("dbus-task") => Some(Place::DbusTask),
        _ => None,
    });
    if *asked == Some(place) {
        panic!("TPMD_DEBUG_PANIC asked for a panic here ({place:?})");
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn debug_trigger(_place: Place) {}
