//! The in-process resource manager: the one owner of our TPM connections.
//!
//! Keys are cached by the digest of their key file. How a cached key stays ready
//! depends on the transport ([`Strategy`]):
//!
//! - **Owned** (`/dev/tpm0`, a simulator): tpmd is the only program whose objects stay
//!   in the TPM between commands, so a hot signature is exactly one TPM command. At most
//!   `budget` keys stay loaded: the TPM's transient slots minus a reserve left free for
//!   the machine's other TPM users (the kernel's own resource manager swaps their
//!   objects in for each of their commands). The least recently used key is evicted with
//!   its context saved once, so its return costs a ContextLoad rather than a Load.
//! - **Kernel RM** (`/dev/tpmrm0`): before each command the kernel loads every object of
//!   the connection, and afterwards saves and flushes them all. So each cached key gets
//!   a connection of its own, holding it alone (and, for keys with an auth value, its
//!   own salted session): a hot signature costs the kernel's minimum, 4 TPM commands
//!   (6 with a session), whatever the number of keys.
//!
//! Anything that invalidates what we hold (a TPM reset, a restarted simulator, a
//! connection the kernel gave up) is recovered from the key files, which are always
//! enough.

mod link;
mod loading;
mod policy_session;
mod recovery;
mod slots;

use std::collections::HashMap;
use std::sync::Arc;

use tpmd_api::dbus::Counters;
use tpmd_api::public::TpmPublic;
use tpmd_tpm2::session::Crypt;
use tpmd_tpm2::srk::SRK_HANDLE;
use tpmd_tpm2::transport::{CommandCounter, Transport};
use tpmd_tpm2::wire::{cc, ops, Command, Response};
use tracing::{info, warn};

pub use link::Authorization;
use link::Link;
pub use policy_session::{PolicySession, TicketKey, Tickets};

use super::blob::{KeyBlob, KeyId};
use super::error::{TpmError, TpmResult};
use crate::backend::cache::KeyCache;
use crate::backend::counters::RmCounters;

/// Pseudo key id of the ECC P-256 primary under the owner hierarchy (parent 0x40000001).
const OWNER_PRIMARY_ID: KeyId = [0xFF; 32];
const DEFAULT_MAX_CACHED: usize = 4096;
/// Kernel RM: connections (one per cached key) and sessions (one per connection of a
/// key with an auth value; each holds one of the TPM's active-session slots, which the
/// whole machine shares).
const DEFAULT_KERNEL_LINKS: usize = 32;
const DEFAULT_KERNEL_SESSIONS: usize = 4;
/// Owned: transient slots left free for the machine's other TPM users.
pub const DEFAULT_RESERVE: usize = 2;

/// How the resource manager keeps keys ready; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Owned {
        reserve: usize,
        max_loaded: Option<usize>,
    },
    KernelRm {
        max_links: usize,
        max_sessions: usize,
    },
}

impl Strategy {
    /// The strategy for a transport: kernel RM for /dev/tpmrm0 and its model; owned for
    /// the rest, with the default reserve on a device and none on a simulator (which
    /// serves one client at a time, so nobody else can use its slots).
    pub fn for_transport(
        transport: &Transport,
        max_loaded: Option<usize>,
        reserve: Option<usize>,
    ) -> Strategy {
        if transport.is_kernel_rm() {
            return Strategy::KernelRm {
                max_links: max_loaded.unwrap_or(DEFAULT_KERNEL_LINKS).max(1),
                max_sessions: DEFAULT_KERNEL_SESSIONS,
            };
        }
        let default_reserve = match transport {
            Transport::Device(_) => DEFAULT_RESERVE,
            _ => 0,
        };
        Strategy::Owned {
            reserve: reserve.unwrap_or(default_reserve),
            max_loaded,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Strategy::Owned { reserve, .. } => {
                format!("keys stay loaded in the TPM, {reserve} slot(s) left free for others")
            }
            Strategy::KernelRm { max_links, .. } => {
                format!("one kernel resource manager connection per cached key (up to {max_links})")
            }
        }
    }
}

#[derive(Debug)]
enum Source {
    Blob(Arc<KeyBlob>),
    OwnerPrimary,
}

/// Where a cached key is loaded, if anywhere.
enum Residence {
    Unloaded,
    /// On the shared connection (owned strategy), at this handle.
    Main(u32),
    /// On its own connection (kernel RM strategy), at this handle.
    Own(Link, u32),
}

struct Entry {
    source: Source,
    residence: Residence,
    /// An importable key file's private part once imported: loadable from then on.
    imported: Option<Vec<u8>>,
    /// Owned strategy: the context saved when the key was first evicted; it stays
    /// loadable until the TPM is reset, so it is saved once.
    saved: Option<Vec<u8>>,
    /// The key's name, which HMAC sessions bind.
    name: Vec<u8>,
}

impl Entry {
    fn new(source: Source) -> Entry {
        let name = match &source {
            Source::Blob(blob) => blob.name.clone(),
            Source::OwnerPrimary => Vec::new(),
        };
        Entry {
            source,
            residence: Residence::Unloaded,
            imported: None,
            saved: None,
            name,
        }
    }

    fn is_loaded(&self) -> bool {
        !matches!(self.residence, Residence::Unloaded)
    }

    fn has_own_session(&self) -> bool {
        matches!(&self.residence, Residence::Own(link, _) if link.has_session())
    }
}

/// A persistent parent's public area and name, read once.
#[derive(Debug, Clone)]
struct ParentInfo {
    public: TpmPublic,
    public_bytes: Vec<u8>,
    name: Vec<u8>,
}

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Main,
    Key(KeyId),
}

pub struct ResourceManager {
    transport: Transport,
    strategy: Strategy,
    counter: CommandCounter,
    /// Owned: the one connection. Kernel RM: the connection for commands that involve
    /// no cached key.
    main: Option<Link>,
    cache: KeyCache<KeyId, Entry>,
    parents: HashMap<u32, ParentInfo>,
    /// TPM2_TestParms answers, by TPMT_PUBLIC_PARMS.
    supported: HashMap<Vec<u8>, bool>,
    /// Owned: how many keys may be loaded at once.
    budget: usize,
    counters: RmCounters,
    tickets: Tickets,
}

impl ResourceManager {
    pub fn open(transport: Transport, strategy: Strategy) -> TpmResult<ResourceManager> {
        let counter = CommandCounter::default();
        let main = Link::open(&transport, &counter)?;
        let mut rm = ResourceManager {
            transport,
            strategy,
            counter,
            main: Some(main),
            cache: KeyCache::new(DEFAULT_MAX_CACHED),
            parents: HashMap::new(),
            supported: HashMap::new(),
            budget: 1,
            counters: RmCounters::default(),
            tickets: Tickets::default(),
        };
        rm.started()?;
        info!(transport = %rm.transport, strategy = %rm.strategy.describe(), budget = rm.budget, "TPM 2.0 resource manager ready");
        Ok(rm)
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The strategy and its current budget, in words.
    pub fn describe(&self) -> String {
        match self.strategy {
            Strategy::Owned { reserve, .. } => format!(
                "tpmd owns the TPM's object slots: up to {} key(s) stay loaded, {reserve} slot(s) left free for the machine's other TPM users; a hot signature is 1 TPM command",
                self.budget
            ),
            Strategy::KernelRm { max_links, .. } => format!(
                "the kernel's resource manager swaps every object of a connection around each command, so each cached key has a connection of its own (up to {max_links}); a hot signature is 4 TPM commands, 6 with an auth value"
            ),
        }
    }

    /// Every command tpmd sent, by code.
    pub fn command_counter(&self) -> &CommandCounter {
        &self.counter
    }

    pub fn counters(&self) -> Counters {
        let loaded = self.cache.count(Entry::is_loaded);
        let mut counters = self.counters.snapshot(self.cache.len(), loaded);
        counters.tpm_commands = Some(
            self.counter
                .snapshot()
                .into_iter()
                .map(|(code, n)| (cc::name(code), n))
                .collect(),
        );
        counters
    }

    pub fn count_request(&mut self) {
        self.counters.requests += 1;
    }

    pub fn count_failure(&mut self) {
        self.counters.failures += 1;
    }

    /// The main connection, reconnecting if it was dropped.
    fn main(&mut self) -> TpmResult<&mut Link> {
        if self.main.is_none() {
            info!(transport = %self.transport, "reconnecting to the TPM");
            self.main = Some(Link::open(&self.transport, &self.counter)?);
        }
        self.main
            .as_mut()
            .ok_or_else(|| TpmError::Unavailable("no TPM connection".into()))
    }

    /// Runs a command on the main connection.
    pub fn execute(
        &mut self,
        command: &Command,
        authorization: &Authorization<'_>,
    ) -> TpmResult<Response> {
        self.execute_at(At::Main, command, authorization)
    }

    fn execute_at(
        &mut self,
        at: At,
        command: &Command,
        authorization: &Authorization<'_>,
    ) -> TpmResult<Response> {
        let salt = if matches!(authorization, Authorization::Hmac { .. }) {
            self.salt_key()
        } else {
            None
        };
        let salt_ref = salt.as_ref().map(|(h, p)| (*h, p));
        if at == At::Main && self.main.is_none() {
            self.main()?;
        }
        let ResourceManager {
            main,
            cache,
            counters,
            ..
        } = self;
        let link = match at {
            At::Main => main.as_mut(),
            At::Key(id) => match cache.get_mut(&id).map(|e| &mut e.residence) {
                Some(Residence::Own(link, _)) => Some(link),
                _ => main.as_mut(),
            },
        }
        .ok_or_else(|| TpmError::Unavailable("no TPM connection".into()))?;
        Ok(link.execute(command, authorization, salt_ref, counters)?)
    }

    /// The SRK as the key sessions are salted to; `None` (unsalted) when there is none.
    fn salt_key(&mut self) -> Option<(u32, TpmPublic)> {
        match self.parent_info(SRK_HANDLE) {
            Ok(info) => Some((SRK_HANDLE, info.public)),
            Err(_) => {
                warn!("no SRK: the authorization session is not salted");
                None
            }
        }
    }

    /// A persistent key's public area and name, read once.
    fn parent_info(&mut self, handle: u32) -> TpmResult<ParentInfo> {
        if let Some(info) = self.parents.get(&handle) {
            return Ok(info.clone());
        }
        let response = match self.execute(&ops::read_public(handle), &Authorization::None) {
            Ok(r) => r,
            Err(e) if e.response_code().is_some_and(|rc| rc.is_handle()) => {
                return Err(TpmError::NoParent { handle })
            }
            Err(e) => return Err(e),
        };
        let (public_bytes, name) = ops::parse_read_public(&response)
            .map_err(|e| TpmError::from(tpmd_tpm2::tpm::TpmCallError::from(e)))?;
        let public = TpmPublic::from_tpm2b(&public_bytes).map_err(|e| TpmError::Stack {
            command: "ReadPublic",
            detail: e.to_string(),
        })?;
        let info = ParentInfo {
            public,
            public_bytes,
            name,
        };
        self.parents.insert(handle, info.clone());
        Ok(info)
    }

    /// Runs `op` on the main connection's TPM, with recovery (provisioning).
    pub fn with_main_tpm<T>(
        &mut self,
        mut op: impl FnMut(&mut tpmd_tpm2::tpm::Tpm) -> TpmResult<T>,
    ) -> TpmResult<T> {
        self.recovering(None, |rm| op(rm.main()?.tpm()))
    }

    /// A persistent key's name, read once.
    pub fn persistent_name(&mut self, handle: u32) -> TpmResult<Vec<u8>> {
        Ok(self.parent_info(handle)?.name)
    }

    /// Whether the TPM can hold keys with these parameters (TPM2_TestParms), asked once
    /// per parameter set.
    pub fn supports(&mut self, parms: &[u8]) -> TpmResult<bool> {
        if let Some(known) = self.supported.get(parms) {
            return Ok(*known);
        }
        let answer = match self.execute(&ops::test_parms(parms), &Authorization::None) {
            Ok(_) => true,
            Err(e) if e.response_code().is_some_and(|rc| rc.is_format_one()) => false,
            Err(e) => return Err(e),
        };
        self.supported.insert(parms.to_vec(), answer);
        Ok(answer)
    }

    /// A persistent key's TPM2B_PUBLIC.
    pub fn persistent_public(&mut self, handle: u32) -> TpmResult<Vec<u8>> {
        if handle >> 24 != 0x81 {
            return Err(TpmError::InvalidArgument(format!(
                "{handle:#010x} is not a persistent handle"
            )));
        }
        Ok(self.parent_info(handle)?.public_bytes)
    }

    /// Forget what was read of persistent keys (after creating or evicting one), and the
    /// session that may have been started unsalted for want of an SRK.
    pub fn forget_persistent(&mut self) {
        self.parents.clear();
        if let Some(main) = self.main.as_mut() {
            main.end_session();
        }
    }

    /// Runs `op` on the key in `blob` with its auth value: the command `build` makes for
    /// the key's handle, authorized as `crypt` and the auth value require. Recovers once
    /// from a lost connection or a TPM reset.
    pub fn with_key(
        &mut self,
        blob: &Arc<KeyBlob>,
        auth: &[u8],
        crypt: Crypt,
        build: impl Fn(u32) -> Command,
    ) -> TpmResult<Response> {
        self.with_key_and(blob, auth, crypt, None, build)
    }

    /// [`with_key`](Self::with_key) for a command that names a second handle after the
    /// key, whose name the session binds too: `(handle, name)`.
    pub fn with_key_and(
        &mut self,
        blob: &Arc<KeyBlob>,
        auth: &[u8],
        crypt: Crypt,
        second: Option<(u32, &[u8])>,
        build: impl Fn(u32) -> Command,
    ) -> TpmResult<Response> {
        self.recovering(Some(blob.id), |rm| {
            let handle = rm.ensure_loaded(blob)?;
            let mut names = vec![blob.name.as_slice()];
            names.extend(second.map(|(_, name)| name));
            let authorization = Authorization::for_entity(&names, auth, crypt);
            if matches!(authorization, Authorization::Hmac { .. }) {
                rm.make_room_for_session(blob.id);
            }
            // Starting a salted session needs a slot for the SRK for a moment.
            rm.with_free_slot(&[blob.id], |rm| {
                rm.execute_at(At::Key(blob.id), &build(handle), &authorization)
            })
        })
    }

    /// Runs the command `build` makes for the loaded parent `parent` (Import, Create),
    /// authorized with the parent's empty auth value and `crypt`, with recovery.
    pub fn with_parent(
        &mut self,
        parent: u32,
        crypt: Crypt,
        build: impl Fn(u32) -> Command,
    ) -> TpmResult<Response> {
        self.recovering(None, |rm| {
            let (handle, name, temporary) = rm.parent_on_main(parent)?;
            let names = [name.as_slice()];
            let authorization = Authorization::for_entity(&names, &[], crypt);
            // Create builds its object inside the TPM, so it needs a free slot too.
            let pinned = [OWNER_PRIMARY_ID];
            let result =
                rm.with_free_slot(&pinned, |rm| rm.execute(&build(handle), &authorization));
            if temporary {
                rm.flush_on_main(handle);
            }
            result
        })
    }

    /// The TPM2_Import of a key file's duplicate: its loadable TPM2B_PRIVATE.
    pub fn import(&mut self, blob: &KeyBlob) -> TpmResult<Vec<u8>> {
        self.with_parent(blob.parent, Crypt::Nothing, |parent| {
            import_command(parent, blob)
        })
        .and_then(|r| parse(ops::parse_import(&r)))
        .map_err(|e| explain_load_failure(e, blob.parent))
    }

    /// Lets other programs reach a swtpm the main connection holds between commands;
    /// loaded keys and the session stay in the TPM.
    pub fn release_connection(&mut self) {
        if let Some(main) = self.main.as_mut() {
            main.release();
        }
    }

    /// Flushes every object we loaded and ends our sessions, before exit.
    pub fn flush_all(&mut self) {
        for id in self.cache.ids() {
            self.evict(id, false);
        }
        if let Some(main) = self.main.as_mut() {
            main.end_session();
        }
    }
}

impl Drop for ResourceManager {
    fn drop(&mut self) {
        self.flush_all();
    }
}

/// TPM2_Import of `blob` under the loaded `parent`.
fn import_command(parent: u32, blob: &KeyBlob) -> Command {
    match &blob.private {
        super::blob::KeyPrivate::Importable { duplicate, seed } => {
            ops::import(parent, &blob.public_bytes, duplicate, seed)
        }
        // Already loadable: an Import would fail; callers check the kind first.
        super::blob::KeyPrivate::Loadable(private) => {
            ops::import(parent, &blob.public_bytes, private, &[0, 0])
        }
    }
}

/// A response parser's failure as a backend error.
fn parse<T>(result: Result<T, tpmd_tpm2::wire::WireError>) -> TpmResult<T> {
    result.map_err(|e| TpmError::from(tpmd_tpm2::tpm::TpmCallError::from(e)))
}

/// A failed Load or Import of a key file, in terms of what to do, from the parameter the
/// TPM names: the private part (Load's first parameter) or the duplicate and its seed
/// (Import's third and fourth) fail their checks under another parent; the public area
/// (the second of both) is a matter of the key itself.
fn explain_load_failure(error: TpmError, parent: u32) -> TpmError {
    let Some(rc) = error.response_code() else {
        return match error {
            TpmError::NoParent { .. } => TpmError::NoParent { handle: parent },
            other => other,
        };
    };
    match (error.command_name(), rc.parameter()) {
        (Some("Load"), Some(1)) | (Some("Import"), Some(3 | 4)) if rc.is_wrong_parent() => {
            TpmError::WrongTpm { code: rc.0 }
        }
        (Some("Load" | "Import"), Some(2)) => TpmError::BadKeyFile(format!(
            "the TPM refuses the key's public area ({rc}: {}); the key file is damaged or the key is of a kind this TPM cannot hold",
            if rc.is_unsupported() { "unsupported parameters" } else { "invalid" }
        )),
        _ => error,
    }
}
