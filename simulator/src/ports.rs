//! Loopback port pairs for swtpm (data port P, control port P+1), and a check that a
//! given process is the one listening on a port.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

use rand::Rng;

/// Ports this process has handed out and not yet released, so that two simulators
/// started at the same moment in one test binary never get the same pair.
static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn reserved() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    RESERVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Ports below this are left to system services.
const LOWEST: u16 = 16384;

/// The kernel's ephemeral port range, from which `connect()` and `bind(port 0)` take
/// their local ports.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut ports = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((ports.next()??, ports.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Where a pair may start: outside the ephemeral range. Inside it, every client
/// connection takes a local port and keeps it for a minute in TIME_WAIT after closing;
/// with a TPM client that connects anew for every command there are tens of thousands,
/// and a listener cannot bind any of those ports. `bind(port 0)` even hands out only
/// odd ports, whose even neighbour P+1 is just what `connect()` prefers.
fn candidates() -> Vec<std::ops::RangeInclusive<u16>> {
    let (low, high) = ephemeral_range();
    [
        (LOWEST, low.saturating_sub(2)),
        (high.saturating_add(1), u16::MAX - 1),
    ]
    .into_iter()
    .filter(|(first, last)| first < last)
    .map(|(first, last)| first..=last)
    .collect()
}

/// Finds a port P such that 127.0.0.1:P and 127.0.0.1:P+1 are both free right now,
/// outside the ephemeral port range, and reserves the pair in this process. The sockets
/// are closed again before returning, so another process can still take them; the
/// caller detects that by checking who listens (see [`listened_by`]) and retries.
pub(crate) fn pick_pair(attempts: u32) -> Option<u16> {
    let ranges = candidates();
    let total: u32 = ranges
        .iter()
        .map(|r| u32::from(r.end() - r.start()) + 1)
        .sum();
    if total == 0 {
        return None;
    }
    let mut rng = rand::thread_rng();
    for _ in 0..attempts {
        let mut index = rng.gen_range(0..total);
        let Some(port) = ranges.iter().find_map(|range| {
            let len = u32::from(range.end() - range.start()) + 1;
            if index < len {
                u16::try_from(index).ok().map(|i| range.start() + i)
            } else {
                index -= len;
                None
            }
        }) else {
            continue;
        };
        let ctrl = port + 1;
        let mut taken = reserved();
        if taken.contains(&port) || taken.contains(&ctrl) {
            continue;
        }
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p));
        let (Ok(_data), Ok(_ctrl)) = (free(port), free(ctrl)) else {
            continue;
        };
        taken.insert(port);
        taken.insert(ctrl);
        return Some(port);
    }
    None
}

/// Marks a pair chosen by the caller as in use, so auto-selection avoids it.
pub(crate) fn reserve_pair(port: u16) {
    let mut taken = reserved();
    taken.insert(port);
    if let Some(ctrl) = port.checked_add(1) {
        taken.insert(ctrl);
    }
}

pub(crate) fn release_pair(port: u16) {
    let mut taken = reserved();
    taken.remove(&port);
    if let Some(ctrl) = port.checked_add(1) {
        taken.remove(&ctrl);
    }
}

/// Socket inodes of TCP sockets listening on `port` (IPv4 or IPv6), from
/// /proc/net/tcp{,6}. `None` if /proc is not readable (not Linux, or no procfs).
fn listening_inodes(port: u16) -> Option<BTreeSet<u64>> {
    let mut inodes = BTreeSet::new();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let Some((_, port_hex)) = local.rsplit_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(port_hex, 16).ok() == Some(port) {
                if let Ok(inode) = inode.parse() {
                    inodes.insert(inode);
                }
            }
        }
    }
    readable.then_some(inodes)
}

/// Whether process `pid` holds a socket listening on `port`. `None` when that cannot
/// be told (no procfs); the caller then falls back to a plain connect.
pub(crate) fn listened_by(pid: u32, port: u16) -> Option<bool> {
    let inodes = listening_inodes(port)?;
    if inodes.is_empty() {
        return Some(false);
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let owned = fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|target| {
                let target = target.to_string_lossy().into_owned();
                target
                    .strip_prefix("socket:[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .is_some_and(|inode| inodes.contains(&inode))
    });
    Some(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_range();
        for _ in 0..20 {
            let Some(port) = pick_pair(64) else {
                panic!("no pair");
            };
            assert!(port >= LOWEST, "{port}");
            assert!(port + 1 < low || port > high, "{port} in {low}-{high}");
            release_pair(port);
        }
    }

    #[test]
    fn picked_pairs_are_distinct_until_released() {
        let a = pick_pair(64);
        let b = pick_pair(64);
        assert!(a.is_some() && b.is_some());
        assert_ne!(a, b);
        if let (Some(a), Some(b)) = (a, b) {
            assert_ne!(a + 1, b);
            assert_ne!(b + 1, a);
            release_pair(a);
            release_pair(b);
        }
    }

    #[test]
    fn this_process_listens_on_its_own_listener() {
        let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else {
            panic!("bind");
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("addr");
        };
        let me = std::process::id();
        if let Some(owned) = listened_by(me, addr.port()) {
            assert!(owned);
        }
        drop(listener);
        if let Some(owned) = listened_by(me, addr.port()) {
            assert!(!owned);
        }
    }
}
