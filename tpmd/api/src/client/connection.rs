//! How a client reaches tpmd. tpmd serves the same object on its own unix socket, peer
//! to peer (no bus daemon in between, so each call costs one hop instead of two), and on
//! the bus. A client takes the socket when it is there and completes the D-Bus
//! handshake, and the bus otherwise, so a tpmd without a socket (an older one, or one
//! run with `--socket none`) is still found.
//!
//! `TPMD_SOCKET` names the socket (`none` or empty: use the bus only); `TPMD_BUS_ADDRESS`
//! names a private bus, and then only a socket named by `TPMD_SOCKET` goes with it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zbus::proxy::CacheProperties;

use crate::dbus::{Daemon1Proxy, ADDRESS_ENV, BUS_NAME, OBJECT_PATH};

/// Environment variable naming tpmd's socket, or `none` for the bus only.
pub const SOCKET_ENV: &str = "TPMD_SOCKET";
/// The value of `TPMD_SOCKET` (and of tpmd's `--socket`) that turns the socket off.
pub const SOCKET_OFF: &str = "none";
/// The system tpmd's socket (systemd's `RuntimeDirectory=tpmd`).
pub const SYSTEM_SOCKET: &str = "/run/tpmd/tpmd.sock";

/// A tpmd that accepts the connection but does not finish the handshake in this time is
/// treated as absent (a stopped or wedged process), and the bus is tried instead.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket a tpmd serves by default: the system one, or with `user`,
/// `$XDG_RUNTIME_DIR/tpmd/tpmd.sock` (none without a runtime directory).
pub fn default_socket(user: bool) -> Option<PathBuf> {
    if !user {
        return Some(PathBuf::from(SYSTEM_SOCKET));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(|dir| PathBuf::from(dir).join("tpmd").join("tpmd.sock"))
}

/// Which tpmd a client looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The system tpmd (system bus).
    System,
    /// A `tpmd --user` (session bus).
    User,
    /// The system tpmd if it is there, else a `tpmd --user`: what a library loaded into
    /// any application (the PKCS#11 module) does.
    SystemThenUser,
}

impl Scope {
    pub fn user(user: bool) -> Scope {
        if user {
            Scope::User
        } else {
            Scope::System
        }
    }
}

/// What `TPMD_SOCKET` says.
enum SocketSetting {
    Default,
    Off,
    Path(PathBuf),
}

fn socket_setting() -> SocketSetting {
    match std::env::var_os(SOCKET_ENV) {
        None => SocketSetting::Default,
        Some(v) if v.is_empty() || v == SOCKET_OFF => SocketSetting::Off,
        Some(v) => SocketSetting::Path(PathBuf::from(v)),
    }
}

#[derive(Debug)]
enum Bus {
    Address(String),
    System,
    Session,
}

/// One place tpmd may be: its socket, if any, then its bus.
#[derive(Debug)]
struct Endpoint {
    socket: Option<PathBuf>,
    bus: Bus,
}

fn endpoints(scope: Scope) -> Vec<Endpoint> {
    let setting = socket_setting();
    if let Ok(address) = std::env::var(ADDRESS_ENV) {
        // A private bus (tests): the default sockets belong to other tpmds.
        let socket = match setting {
            SocketSetting::Path(path) => Some(path),
            SocketSetting::Default | SocketSetting::Off => None,
        };
        return vec![Endpoint {
            socket,
            bus: Bus::Address(address),
        }];
    }
    let socket = |user: bool| match &setting {
        SocketSetting::Default => default_socket(user),
        SocketSetting::Off => None,
        SocketSetting::Path(path) => Some(path.clone()),
    };
    let system = || Endpoint {
        socket: socket(false),
        bus: Bus::System,
    };
    let user = |socket| Endpoint {
        socket,
        bus: Bus::Session,
    };
    match scope {
        Scope::System => vec![system()],
        Scope::User => vec![user(socket(true))],
        Scope::SystemThenUser => {
            // A socket named in the environment is one tpmd: tried once, first.
            let user_socket = match setting {
                SocketSetting::Path(_) => None,
                _ => socket(true),
            };
            vec![system(), user(user_socket)]
        }
    }
}

/// Connects to tpmd for `scope`: its socket if it answers, else its bus. With several
/// candidates (`SystemThenUser`), a bus counts only if tpmd is on it; when none has
/// tpmd, the first bus connection (or its error) is returned, as with one candidate.
pub async fn connect(scope: Scope) -> zbus::Result<Daemon1Proxy<'static>> {
    let endpoints = endpoints(scope);
    let several = endpoints.len() > 1;
    let mut first_bus = None;
    for endpoint in &endpoints {
        if let Some(path) = &endpoint.socket {
            if let Ok(proxy) = connect_socket(path).await {
                return Ok(proxy);
            }
        }
        let bus = connect_bus(&endpoint.bus).await;
        if !several {
            return bus;
        }
        if let Ok(proxy) = &bus {
            if bus_has_tpmd(proxy).await.unwrap_or(false) {
                return bus;
            }
        }
        first_bus.get_or_insert(bus);
    }
    first_bus.unwrap_or_else(|| Err(zbus::Error::Failure("no place to look for tpmd".into())))
}

/// A peer-to-peer connection to tpmd's socket at `path`.
pub async fn connect_socket(path: &Path) -> zbus::Result<Daemon1Proxy<'static>> {
    let handshake = async {
        let stream = tokio::net::UnixStream::connect(path).await?.into_std()?;
        zbus::connection::Builder::unix_stream(stream)
            .p2p()
            .build()
            .await
    };
    let connection = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            zbus::Error::Failure(format!(
                "{}: tpmd accepted the connection but did not answer",
                path.display()
            ))
        })??;
    proxy_on(&connection).await
}

async fn connect_bus(bus: &Bus) -> zbus::Result<Daemon1Proxy<'static>> {
    let connection = match bus {
        Bus::Address(address) => {
            zbus::connection::Builder::address(address.as_str())
                .build()
                .await?
        }
        Bus::System => zbus::Connection::system().await?,
        Bus::Session => zbus::Connection::session().await?,
    };
    proxy_on(&connection).await
}

async fn proxy_on(connection: &zbus::Connection) -> zbus::Result<Daemon1Proxy<'static>> {
    Daemon1Proxy::builder(connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

/// Whether `proxy` talks to tpmd's socket rather than through a bus.
pub fn is_peer_to_peer(proxy: &Daemon1Proxy<'_>) -> bool {
    !proxy.inner().connection().is_bus()
}

async fn bus_has_tpmd(proxy: &Daemon1Proxy<'_>) -> zbus::Result<bool> {
    let dbus = zbus::fdo::DBusProxy::new(proxy.inner().connection()).await?;
    let name = zbus::names::BusName::try_from(BUS_NAME)?;
    Ok(dbus.name_has_owner(name).await?)
}

async fn socket_answers(path: &Path) -> bool {
    tokio::net::UnixStream::connect(path).await.is_ok()
}

/// Whether tpmd is there to answer on `proxy`'s connection, for clients that wait for a
/// restarting tpmd: `Ok(true)` yes; `Ok(false)` the bus is up but tpmd is not (yet) on
/// it; an error means this connection is of no more use and the client should connect
/// again: the socket connection closed (tpmd stopped), the bus connection broke, or a
/// client on the bus sees tpmd's socket answer again (tpmd restarted), so connecting
/// again takes the faster way back.
pub async fn tpmd_present(proxy: &Daemon1Proxy<'_>, scope: Scope) -> zbus::Result<bool> {
    let connection = proxy.inner().connection();
    if !connection.is_bus() {
        if connection.is_closed() {
            return Err(zbus::Error::Failure(
                "the connection to tpmd's socket is closed".into(),
            ));
        }
        let peer = zbus::fdo::PeerProxy::builder(connection)
            .destination(BUS_NAME)
            .path(OBJECT_PATH)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        peer.ping().await?;
        return Ok(true);
    }
    for endpoint in endpoints(scope) {
        if let Some(path) = &endpoint.socket {
            if socket_answers(path).await {
                return Err(zbus::Error::Failure(format!(
                    "tpmd answers on {} again: connect there",
                    path.display()
                )));
            }
        }
    }
    bus_has_tpmd(proxy).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment is process-wide: these cases run in one test, one after another.
    #[test]
    fn endpoints_follow_the_environment() {
        let vars = [SOCKET_ENV, ADDRESS_ENV, "XDG_RUNTIME_DIR"];
        let saved: Vec<_> = vars.iter().map(std::env::var_os).collect();
        for v in vars {
            std::env::remove_var(v);
        }
        std::env::set_var("XDG_RUNTIME_DIR", "/run/user/1000");

        let plan = |scope| {
            endpoints(scope)
                .into_iter()
                .map(|e| (e.socket, format!("{:?}", e.bus)))
                .collect::<Vec<_>>()
        };
        let sock = |p: &str| Some(PathBuf::from(p));
        assert_eq!(
            plan(Scope::System),
            [(sock(SYSTEM_SOCKET), "System".to_string())]
        );
        assert_eq!(
            plan(Scope::User),
            [(sock("/run/user/1000/tpmd/tpmd.sock"), "Session".to_string())]
        );
        assert_eq!(
            plan(Scope::SystemThenUser),
            [
                (sock(SYSTEM_SOCKET), "System".to_string()),
                (sock("/run/user/1000/tpmd/tpmd.sock"), "Session".to_string())
            ]
        );

        std::env::set_var(SOCKET_ENV, "/tmp/t.sock");
        assert_eq!(
            plan(Scope::SystemThenUser),
            [
                (sock("/tmp/t.sock"), "System".to_string()),
                (None, "Session".to_string())
            ]
        );
        std::env::set_var(SOCKET_ENV, SOCKET_OFF);
        assert_eq!(plan(Scope::User), [(None, "Session".to_string())]);

        // A private bus goes with an explicit socket only.
        std::env::set_var(ADDRESS_ENV, "unix:path=/tmp/bus");
        std::env::remove_var(SOCKET_ENV);
        let private = "Address(\"unix:path=/tmp/bus\")".to_string();
        assert_eq!(plan(Scope::System), [(None, private.clone())]);
        std::env::set_var(SOCKET_ENV, "/tmp/t.sock");
        assert_eq!(
            plan(Scope::SystemThenUser),
            [(sock("/tmp/t.sock"), private)]
        );

        std::env::remove_var("XDG_RUNTIME_DIR");
        assert_eq!(default_socket(true), None);

        for (v, value) in vars.iter().zip(saved) {
            match value {
                Some(value) => std::env::set_var(v, value),
                None => std::env::remove_var(v),
            }
        }
    }
}
