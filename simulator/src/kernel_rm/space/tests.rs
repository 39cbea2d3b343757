//! The space logic against a small in-memory TPM. This checks the kernel's algorithm
//! step by step, including paths swtpm cannot reach (a TPM with more than 3 object
//! slots, a full context page); tests/kernel_rm.rs runs the same model against swtpm.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const CC_CREATE_PRIMARY: u32 = 0x131;
const CC_SIGN: u32 = 0x15D;
const CC_START_AUTH_SESSION: u32 = 0x176;
const RC_INTEGRITY_P1: u32 = 0x15F;
const RC_OBJECT_MEMORY: u32 = 0x902;

fn table() -> CommandTable {
    CommandTable::from_attributes([
        0x1200_0000 | CC_CREATE_PRIMARY,
        0x0200_0000 | CC_SIGN,
        0x1400_0000 | CC_START_AUTH_SESSION,
        wire::CC_FLUSH_CONTEXT,
        0x0200_0000 | wire::CC_CONTEXT_SAVE,
        0x1000_0000 | wire::CC_CONTEXT_LOAD,
        wire::CC_GET_CAPABILITY,
    ])
}

/// Just enough of a TPM: objects and sessions by handle, contexts that remember which
/// object they hold and which power cycle made them.
struct FakeTpm {
    object_slots: usize,
    context_size: usize,
    boot: u32,
    next_object: u32,
    next_session: u32,
    objects: BTreeMap<u32, u32>,
    loaded_sessions: BTreeSet<u32>,
    saved_sessions: BTreeSet<u32>,
    log: Vec<u32>,
}

impl FakeTpm {
    fn new(object_slots: usize) -> FakeTpm {
        FakeTpm {
            object_slots,
            context_size: 64,
            boot: 0,
            next_object: 0,
            next_session: 0,
            objects: BTreeMap::new(),
            loaded_sessions: BTreeSet::new(),
            saved_sessions: BTreeSet::new(),
            log: Vec::new(),
        }
    }

    fn ok(body: &[u8]) -> Vec<u8> {
        wire::frame(wire::ST_NO_SESSIONS, 0, body)
    }

    fn new_object(&mut self, id: u32) -> Vec<u8> {
        if self.objects.len() >= self.object_slots {
            return wire::error_response(RC_OBJECT_MEMORY);
        }
        let handle = (0x8000_0000..).find(|h| !self.objects.contains_key(h));
        let handle = handle.unwrap_or_default();
        self.objects.insert(handle, id);
        Self::ok(&handle.to_be_bytes())
    }

    fn context(&self, kind: u8, value: u32) -> Vec<u8> {
        let mut blob = vec![kind];
        blob.extend_from_slice(&value.to_be_bytes());
        blob.extend_from_slice(&self.boot.to_be_bytes());
        blob.resize(self.context_size, 0);
        blob
    }

    fn handle_of(command: &[u8]) -> u32 {
        wire::read_u32(command, wire::HEADER_SIZE).unwrap_or_default()
    }

    fn count(&self, cc: u32) -> usize {
        self.log.iter().filter(|&&c| c == cc).count()
    }
}

impl Transmit for FakeTpm {
    fn transmit(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>> {
        let cc = wire::code(command).unwrap_or_default();
        self.log.push(cc);
        let handle = Self::handle_of(command);
        let response = match cc {
            CC_CREATE_PRIMARY => {
                self.next_object += 1;
                self.new_object(self.next_object)
            }
            CC_SIGN if self.objects.contains_key(&handle) => Self::ok(&[]),
            CC_SIGN => wire::error_response(wire::RC_HANDLE | 0x100),
            CC_START_AUTH_SESSION => {
                let handle = wire::HT_HMAC_SESSION | self.next_session;
                self.next_session += 1;
                self.loaded_sessions.insert(handle);
                Self::ok(&handle.to_be_bytes())
            }
            wire::CC_FLUSH_CONTEXT => {
                let known = self.objects.remove(&handle).is_some()
                    | self.loaded_sessions.remove(&handle)
                    | self.saved_sessions.remove(&handle);
                if known {
                    Self::ok(&[])
                } else {
                    wire::error_response(wire::RC_HANDLE | 0x40)
                }
            }
            wire::CC_CONTEXT_SAVE => {
                if let Some(&id) = self.objects.get(&handle) {
                    Self::ok(&self.context(b'o', id))
                } else if self.loaded_sessions.remove(&handle) {
                    self.saved_sessions.insert(handle);
                    Self::ok(&self.context(b's', handle))
                } else {
                    wire::error_response(wire::RC_REFERENCE_H0)
                }
            }
            wire::CC_CONTEXT_LOAD => {
                let blob = &command[wire::HEADER_SIZE..];
                let value = wire::read_u32(blob, 1).unwrap_or_default();
                let boot = wire::read_u32(blob, 5).unwrap_or_default();
                match blob.first() {
                    Some(b'o') if boot == self.boot => self.new_object(value),
                    Some(b'o') => wire::error_response(RC_INTEGRITY_P1),
                    Some(b's') if boot == self.boot && self.saved_sessions.remove(&value) => {
                        self.loaded_sessions.insert(value);
                        Self::ok(&value.to_be_bytes())
                    }
                    _ => wire::error_response(wire::RC_HANDLE | 0x40),
                }
            }
            wire::CC_GET_CAPABILITY => {
                let mut body = vec![0];
                body.extend_from_slice(&wire::CAP_HANDLES.to_be_bytes());
                body.extend_from_slice(&(self.objects.len() as u32).to_be_bytes());
                for handle in self.objects.keys() {
                    body.extend_from_slice(&handle.to_be_bytes());
                }
                Self::ok(&body)
            }
            _ => wire::error_response(wire::RC_COMMAND_CODE),
        };
        Ok(response)
    }
}

fn create_primary() -> Vec<u8> {
    wire::frame(
        wire::ST_SESSIONS,
        CC_CREATE_PRIMARY,
        &0x4000_0001u32.to_be_bytes(),
    )
}

fn sign(handle: u32) -> Vec<u8> {
    wire::frame(wire::ST_SESSIONS, CC_SIGN, &handle.to_be_bytes())
}

fn start_session() -> Vec<u8> {
    let mut body = 0x4000_0007u32.to_be_bytes().to_vec();
    body.extend_from_slice(&0x4000_0007u32.to_be_bytes());
    wire::frame(wire::ST_NO_SESSIONS, CC_START_AUTH_SESSION, &body)
}

fn rc(response: &[u8]) -> u32 {
    wire::code(response).unwrap_or(u32::MAX)
}

fn new_object(space: &mut Space, tpm: &mut FakeTpm) -> u32 {
    let response = space.transact(&table(), tpm, &create_primary());
    let response = response.unwrap_or_default();
    assert_eq!(rc(&response), 0);
    wire::response_handle(&response).unwrap_or_default()
}

#[test]
fn objects_get_virtual_handles_from_0x80ffffff_down_in_each_space() {
    let mut tpm = FakeTpm::new(3);
    let (mut a, mut b) = (Space::default(), Space::default());
    for expected in [0x80FF_FFFF, 0x80FF_FFFE, 0x80FF_FFFD] {
        assert_eq!(new_object(&mut a, &mut tpm), expected);
        assert_eq!(new_object(&mut b, &mut tpm), expected);
    }
    // Between commands nothing of either space occupies the TPM.
    assert!(tpm.objects.is_empty());
    for handle in a.object_handles() {
        assert_eq!(
            rc(&a
                .transact(&table(), &mut tpm, &sign(handle))
                .unwrap_or_default()),
            0
        );
    }
    // A freed slot is the first one handed out again.
    let flush = wire::flush_context(0x80FF_FFFE);
    assert_eq!(
        rc(&a.transact(&table(), &mut tpm, &flush).unwrap_or_default()),
        0
    );
    assert_eq!(a.object_handles(), vec![0x80FF_FFFF, 0x80FF_FFFD]);
    assert_eq!(new_object(&mut a, &mut tpm), 0x80FF_FFFE);
}

#[test]
fn a_command_costs_a_load_a_save_and_a_flush_per_object() {
    let mut tpm = FakeTpm::new(3);
    let mut space = Space::default();
    for _ in 0..3 {
        new_object(&mut space, &mut tpm);
    }
    tpm.log.clear();
    let response = space.transact(&table(), &mut tpm, &sign(0x80FF_FFFE));
    assert_eq!(rc(&response.unwrap_or_default()), 0);
    let (load, save, flush) = (
        wire::CC_CONTEXT_LOAD,
        wire::CC_CONTEXT_SAVE,
        wire::CC_FLUSH_CONTEXT,
    );
    assert_eq!(
        tpm.log,
        vec![load, load, load, CC_SIGN, save, flush, save, flush, save, flush]
    );
}

#[test]
fn a_fourth_object_fails_the_write_with_enomem_on_a_roomy_tpm() {
    let mut tpm = FakeTpm::new(8);
    let mut space = Space::default();
    for _ in 0..3 {
        new_object(&mut space, &mut tpm);
    }
    tpm.log.clear();
    let result = space.transact(&table(), &mut tpm, &create_primary());
    assert_eq!(result, Err(Errno::ENOMEM));
    // The new object is flushed first, then the three loaded ones.
    assert_eq!(tpm.count(wire::CC_FLUSH_CONTEXT), 4);
    assert_eq!(tpm.count(wire::CC_CONTEXT_SAVE), 0);
    assert!(tpm.objects.is_empty());
    // The space is as it was: its three objects still sign.
    assert_eq!(space.object_handles().len(), 3);
    let response = space.transact(&table(), &mut tpm, &sign(0x80FF_FFFD));
    assert_eq!(rc(&response.unwrap_or_default()), 0);
}

#[test]
fn on_a_three_slot_tpm_the_fourth_object_is_refused_by_the_tpm_itself() {
    let mut tpm = FakeTpm::new(3);
    let mut space = Space::default();
    for _ in 0..3 {
        new_object(&mut space, &mut tpm);
    }
    let response = space.transact(&table(), &mut tpm, &create_primary());
    assert_eq!(rc(&response.unwrap_or_default()), RC_OBJECT_MEMORY);
    assert_eq!(space.object_handles().len(), 3);
}

#[test]
fn an_unknown_virtual_handle_fails_the_write_before_the_tpm_sees_the_command() {
    let mut tpm = FakeTpm::new(3);
    let mut space = Space::default();
    new_object(&mut space, &mut tpm);
    tpm.log.clear();
    let result = space.transact(&table(), &mut tpm, &sign(0x80FF_FFFE));
    assert_eq!(result, Err(Errno::EINVAL));
    assert_eq!(tpm.count(CC_SIGN), 0);
    // Persistent and session handles pass unmapped: the TPM answers for them.
    let response = space.transact(&table(), &mut tpm, &sign(0x8100_0001));
    assert_eq!(rc(&response.unwrap_or_default()), wire::RC_HANDLE | 0x100);
}

#[test]
fn get_capability_lists_only_the_space_s_own_objects() {
    let mut tpm = FakeTpm::new(3);
    let (mut a, mut b) = (Space::default(), Space::default());
    new_object(&mut a, &mut tpm);
    new_object(&mut b, &mut tpm);
    new_object(&mut b, &mut tpm);
    // Someone outside the spaces (a /dev/tpm0 user) holds an object too.
    tpm.new_object(99);
    let query = wire::get_capability(wire::CAP_HANDLES, wire::HT_TRANSIENT, 16);
    let response = b.transact(&table(), &mut tpm, &query).unwrap_or_default();
    assert_eq!(wire::size(&response), Some(response.len() as u32));
    assert_eq!(
        wire::capability_words(&response, wire::CAP_HANDLES),
        Some((false, vec![0x80FF_FFFF, 0x80FF_FFFE]))
    );
}

#[test]
fn sessions_are_saved_not_flushed_and_forgotten_once_ended() {
    let mut tpm = FakeTpm::new(3);
    let mut space = Space::default();
    let response = space.transact(&table(), &mut tpm, &start_session());
    let session = wire::response_handle(&response.unwrap_or_default()).unwrap_or_default();
    assert_eq!(space.session_handles(), vec![session]);
    assert!(tpm.saved_sessions.contains(&session));
    new_object(&mut space, &mut tpm);
    tpm.log.clear();
    let response = space.transact(&table(), &mut tpm, &sign(0x80FF_FFFF));
    assert_eq!(rc(&response.unwrap_or_default()), 0);
    assert_eq!(tpm.count(wire::CC_CONTEXT_LOAD), 2);
    assert_eq!(tpm.count(wire::CC_CONTEXT_SAVE), 2);
    assert_eq!(tpm.count(wire::CC_FLUSH_CONTEXT), 1);
    // The client ends the session: the kernel learns it from the failed ContextSave.
    let flush = wire::flush_context(session);
    assert_eq!(
        rc(&space
            .transact(&table(), &mut tpm, &flush)
            .unwrap_or_default()),
        0
    );
    assert!(space.session_handles().is_empty());
    assert_eq!(space.object_handles(), vec![0x80FF_FFFF]);
}

#[test]
fn closing_a_space_flushes_its_sessions() {
    let mut tpm = FakeTpm::new(3);
    let mut space = Space::default();
    space
        .transact(&table(), &mut tpm, &start_session())
        .unwrap_or_default();
    new_object(&mut space, &mut tpm);
    space.close(&mut tpm);
    assert!(tpm.saved_sessions.is_empty() && tpm.loaded_sessions.is_empty());
    assert!(space.object_handles().is_empty());
}

#[test]
fn after_a_reset_a_space_with_objects_fails_every_write_and_sessions_are_dropped() {
    let mut tpm = FakeTpm::new(3);
    let mut with_object = Space::default();
    new_object(&mut with_object, &mut tpm);
    let mut with_session = Space::default();
    with_session
        .transact(&table(), &mut tpm, &start_session())
        .unwrap_or_default();
    tpm.boot += 1;
    tpm.saved_sessions.clear();
    for _ in 0..2 {
        let result = with_object.transact(&table(), &mut tpm, &sign(0x80FF_FFFF));
        assert_eq!(result, Err(Errno::EFAULT));
        assert_eq!(with_object.object_handles(), vec![0x80FF_FFFF]);
    }
    // A session that does not load is forgotten and the command goes on.
    let query = wire::get_capability(wire::CAP_HANDLES, wire::HT_TRANSIENT, 16);
    let response = with_session.transact(&table(), &mut tpm, &query);
    assert_eq!(rc(&response.unwrap_or_default()), 0);
    assert!(with_session.session_handles().is_empty());
}

#[test]
fn contexts_that_overflow_the_page_fail_the_write_with_enomem() {
    let mut tpm = FakeTpm::new(3);
    tpm.context_size = 1600;
    let mut space = Space::default();
    new_object(&mut space, &mut tpm);
    new_object(&mut space, &mut tpm);
    let result = space.transact(&table(), &mut tpm, &create_primary());
    assert_eq!(result, Err(Errno::ENOMEM));
    assert_eq!(space.object_handles().len(), 2);
    assert!(tpm.objects.is_empty());
}

#[test]
fn unknown_and_malformed_commands() {
    let mut tpm = FakeTpm::new(3);
    let mut space = Space::default();
    let unknown = wire::frame(wire::ST_NO_SESSIONS, 0x2000_FFFF, &[]);
    let response = space.transact(&table(), &mut tpm, &unknown);
    assert_eq!(rc(&response.unwrap_or_default()), 0x000B_0143);
    let short_sign = wire::frame(wire::ST_SESSIONS, CC_SIGN, &[]);
    assert_eq!(
        space.transact(&table(), &mut tpm, &short_sign),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.transact(&CommandTable::default(), &mut tpm, &sign(0x80FF_FFFF)),
        Err(Errno::EINVAL)
    );
    assert!(tpm.log.is_empty());
}
