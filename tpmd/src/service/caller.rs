//! Who is calling. On the bus, the bus daemon's account of the sender
//! (`GetConnectionUnixUser`); on tpmd's own socket, the kernel's (SO_PEERCRED, taken when
//! the client connected). Every check that looks at the caller's uid gets it from here,
//! so it gives the same answer whichever way the call came.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tpmd_api::DaemonError;
use zbus::message::Header;
use zbus::Connection;

/// Unique bus names are never reused while the bus runs, so a caller's uid is asked of
/// the bus once per connection rather than once per call. Clones share the cache.
#[derive(Default, Clone)]
pub struct CallerCache {
    inner: Arc<BusCallers>,
}

#[derive(Default)]
struct BusCallers {
    uids: Mutex<HashMap<String, u32>>,
    bus: tokio::sync::OnceCell<zbus::fdo::DBusProxy<'static>>,
}

const MAX_REMEMBERED_CALLERS: usize = 4096;

impl CallerCache {
    /// The uid of whoever sent the message with `header` on `conn`.
    pub async fn uid(&self, conn: &Connection, header: &Header<'_>) -> Result<u32, DaemonError> {
        if conn.is_bus() {
            self.bus_uid(conn, header).await
        } else {
            peer_uid(conn).await
        }
    }

    async fn bus_uid(&self, conn: &Connection, header: &Header<'_>) -> Result<u32, DaemonError> {
        let sender = header
            .sender()
            .ok_or_else(|| DaemonError::InvalidArgument("message without a sender".into()))?;
        let callers = &self.inner;
        if let Some(uid) = callers
            .uids
            .lock()
            .ok()
            .and_then(|m| m.get(sender.as_str()).copied())
        {
            return Ok(uid);
        }
        let bus = callers
            .bus
            .get_or_try_init(|| async {
                zbus::fdo::DBusProxy::builder(conn)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await
            })
            .await?;
        let uid = bus
            .get_connection_unix_user(sender.clone().into())
            .await
            .map_err(|e| {
                DaemonError::InvalidArgument(format!("cannot identify the caller: {e}"))
            })?;
        if let Ok(mut uids) = callers.uids.lock() {
            if uids.len() >= MAX_REMEMBERED_CALLERS {
                uids.clear();
            }
            uids.insert(sender.to_string(), uid);
        }
        Ok(uid)
    }
}

/// The uid the kernel reported for the peer of a connection on tpmd's socket.
async fn peer_uid(conn: &Connection) -> Result<u32, DaemonError> {
    conn.peer_creds()
        .await
        .ok()
        .and_then(|creds| creds.unix_user_id())
        .ok_or_else(|| {
            DaemonError::InvalidArgument(
                "cannot identify the caller: its connection carries no peer credentials".into(),
            )
        })
}
