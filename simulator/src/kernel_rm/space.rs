//! One open of `/dev/tpmrm0`: the kernel's `struct tpm_space` and what
//! drivers/char/tpm/tpm2-space.c does with it around each command. The TPM is reached
//! through [`Transmit`], so this file does no I/O of its own.
//!
//! Every step below sends the same TPM commands, in the same order, as the kernel, and
//! reacts to the same response codes; comments name the kernel function each step
//! follows.

use nix::errno::Errno;

use super::commands::CommandTable;
use super::wire;

/// Object and session slots per space (`ARRAY_SIZE(space->context_tbl)`).
pub const SLOTS: usize = 3;
/// The kernel keeps all saved objects of a space in one page, and all its sessions in
/// another (`PAGE_SIZE` on x86-64 and 4K-page arm64).
pub const BACKING_BYTES: usize = 4096;

/// Sends one command to the TPM and returns its response. An `Err` is a failure of the
/// transport to the TPM (the kernel's "system error").
pub trait Transmit {
    fn transmit(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>>;
}

/// One entry of the kernel's `context_tbl`: 0, ~0 (saved) or a physical handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Slot {
    #[default]
    Empty,
    Saved,
    Loaded(u32),
}

/// The per-connection state: which slots hold objects, their saved contexts, and the
/// sessions the connection started.
#[derive(Debug, Clone, Default)]
pub struct Space {
    objects: [Slot; SLOTS],
    /// Saved contexts of the `Saved` slots, in slot order (the kernel's `context_buf`).
    object_contexts: Vec<Vec<u8>>,
    /// Session handles; 0 is a free entry (the kernel's `session_tbl`).
    sessions: [u32; SLOTS],
    /// Saved contexts of the sessions, in table order (the kernel's `session_buf`).
    session_contexts: Vec<Vec<u8>>,
}

/// What `write()` on `/dev/tpmrm0` would return instead of queueing a response.
pub type WriteError = Errno;

impl Space {
    /// The virtual handle of object slot `slot`: 0x80FFFFFF downwards.
    pub fn virtual_handle(slot: usize) -> u32 {
        wire::HT_TRANSIENT | (0x00FF_FFFF - slot as u32)
    }

    /// Virtual handles of the objects this space holds.
    pub fn object_handles(&self) -> Vec<u32> {
        (0..SLOTS)
            .filter(|&i| self.objects[i] != Slot::Empty)
            .map(Self::virtual_handle)
            .collect()
    }

    /// Session handles this space holds (sessions keep their TPM handle).
    pub fn session_handles(&self) -> Vec<u32> {
        self.sessions.iter().copied().filter(|&h| h != 0).collect()
    }

    /// One command through the space (`tpm_dev_transmit` with a space): load the
    /// space, map the command, send it, map the response, save the space.
    pub fn transact(
        &mut self,
        table: &CommandTable,
        tpm: &mut dyn Transmit,
        command: &[u8],
    ) -> Result<Vec<u8>, WriteError> {
        // tpm_find_and_validate_cc
        let cc = match wire::code(command) {
            Some(cc) if !table.is_empty() => cc,
            _ => return Err(Errno::EINVAL),
        };
        let Some(attrs) = table.find(cc) else {
            // The kernel answers this one itself, as a response, not a write error.
            return Ok(wire::unsupported_command_response());
        };
        let handles = wire::cc_attr_handles(attrs);
        if command.len() < wire::HEADER_SIZE + 4 * handles {
            return Err(Errno::EINVAL);
        }

        // tpm2_prepare_space works on a copy; the space changes only on success.
        let mut work = self.clone();
        if let Err(errno) = work.load(tpm) {
            work.flush(tpm);
            return Err(errno);
        }
        let mut command = command.to_vec();
        if let Err(errno) = work.map_command(&mut command, handles) {
            work.flush(tpm);
            return Err(errno);
        }
        let response = match tpm.transmit(&command) {
            Ok(response) if response.len() >= wire::HEADER_SIZE => response,
            _ => {
                work.flush(tpm);
                return Err(Errno::EIO);
            }
        };
        let response = work.commit(tpm, attrs, cc, response)?;
        *self = work;
        Ok(response)
    }

    /// The space is closed (`tpm2_del_space`): its sessions are flushed; its objects,
    /// already flushed after the last command, are forgotten.
    pub fn close(&mut self, tpm: &mut dyn Transmit) {
        self.flush_sessions(tpm);
        *self = Space::default();
    }

    /// `tpm2_load_context`: the loaded handle, ENOENT when the TPM no longer knows the
    /// context (TPM_RC_HANDLE, TPM_RC_REFERENCE_H0), EFAULT on any other failure.
    fn load_context(tpm: &mut dyn Transmit, context: &[u8]) -> Result<u32, WriteError> {
        let response = tpm
            .transmit(&wire::context_load(context))
            .map_err(|_| Errno::EFAULT)?;
        let rc = wire::code(&response).ok_or(Errno::EFAULT)?;
        if wire::rc_value(rc) == wire::RC_HANDLE || rc == wire::RC_REFERENCE_H0 {
            return Err(Errno::ENOENT);
        }
        if rc != wire::RC_SUCCESS {
            return Err(Errno::EFAULT);
        }
        wire::response_handle(&response).ok_or(Errno::EFAULT)
    }

    /// `tpm2_save_context`: the context, ENOENT when the handle is gone
    /// (TPM_RC_REFERENCE_H0), ENOMEM when it does not fit in the page after `used`
    /// bytes, EFAULT on any other failure.
    fn save_context(
        tpm: &mut dyn Transmit,
        handle: u32,
        used: usize,
    ) -> Result<Vec<u8>, WriteError> {
        let response = tpm
            .transmit(&wire::context_save(handle))
            .map_err(|_| Errno::EFAULT)?;
        match wire::code(&response) {
            Some(wire::RC_REFERENCE_H0) => return Err(Errno::ENOENT),
            Some(wire::RC_SUCCESS) => {}
            _ => return Err(Errno::EFAULT),
        }
        let context = wire::saved_context(&response).ok_or(Errno::EFAULT)?;
        if used + context.len() > BACKING_BYTES {
            return Err(Errno::ENOMEM);
        }
        Ok(context.to_vec())
    }

    /// `tpm2_flush_context`: the kernel ignores the outcome.
    fn flush_handle(tpm: &mut dyn Transmit, handle: u32) {
        let _ = tpm.transmit(&wire::flush_context(handle));
    }

    fn flush_sessions(&self, tpm: &mut dyn Transmit) {
        for &handle in self.sessions.iter().filter(|&&h| h != 0) {
            Self::flush_handle(tpm, handle);
        }
    }

    /// `tpm2_flush_space`: flushes the loaded objects and every session.
    fn flush(&self, tpm: &mut dyn Transmit) {
        for slot in self.objects {
            if let Slot::Loaded(handle) = slot {
                Self::flush_handle(tpm, handle);
            }
        }
        self.flush_sessions(tpm);
    }

    /// `tpm2_load_space`: every saved object, then every session, back into the TPM.
    fn load(&mut self, tpm: &mut dyn Transmit) -> Result<(), WriteError> {
        let mut next = 0;
        for i in 0..SLOTS {
            match self.objects[i] {
                Slot::Empty => continue,
                Slot::Loaded(_) => return Err(Errno::EFAULT),
                Slot::Saved => {}
            }
            let context = self.object_contexts.get(next).ok_or(Errno::EFAULT)?;
            match Self::load_context(tpm, context) {
                Ok(handle) => {
                    self.objects[i] = Slot::Loaded(handle);
                    next += 1;
                }
                // Unlike a session, an object that does not load fails the command:
                // the space keeps it, so every later command fails the same way.
                Err(errno) => {
                    if errno == Errno::ENOENT {
                        self.objects[i] = Slot::Empty;
                    }
                    return Err(errno);
                }
            }
        }
        // The kernel reads session contexts one after another and moves on only after a
        // successful load, so after a forgotten session the next one is read from the
        // same place. Kept as the kernel does it.
        let mut next = 0;
        for i in 0..SLOTS {
            let handle = self.sessions[i];
            if handle == 0 {
                continue;
            }
            let Some(context) = self.session_contexts.get(next) else {
                self.flush(tpm);
                return Err(Errno::EFAULT);
            };
            match Self::load_context(tpm, context) {
                Err(Errno::ENOENT) => self.sessions[i] = 0,
                Err(errno) => {
                    self.flush(tpm);
                    return Err(errno);
                }
                Ok(loaded) => {
                    next += 1;
                    if loaded != handle {
                        self.flush(tpm);
                        return Err(Errno::EFAULT);
                    }
                }
            }
        }
        Ok(())
    }

    /// `tpm2_map_command`: virtual to physical in the handle area. Only transient
    /// handles are virtual; sessions and persistent handles pass unchanged.
    fn map_command(&self, command: &mut [u8], handles: usize) -> Result<(), WriteError> {
        for n in 0..handles {
            let at = wire::HEADER_SIZE + 4 * n;
            let handle = wire::read_u32(command, at).ok_or(Errno::EINVAL)?;
            if handle & wire::HT_MASK != wire::HT_TRANSIENT {
                continue;
            }
            let slot = (0x00FF_FFFF - (handle & 0x00FF_FFFF)) as usize;
            let Some(Slot::Loaded(physical)) = self.objects.get(slot) else {
                return Err(Errno::EINVAL);
            };
            wire::write_u32(command, at, *physical).ok_or(Errno::EINVAL)?;
        }
        Ok(())
    }

    /// `tpm2_commit_space`: map the response, then save (and flush) the space.
    fn commit(
        &mut self,
        tpm: &mut dyn Transmit,
        attrs: u32,
        cc: u32,
        mut response: Vec<u8>,
    ) -> Result<Vec<u8>, WriteError> {
        let mapped = self
            .map_response_handle(tpm, attrs, &mut response)
            .and_then(|()| self.map_response_body(cc, &mut response))
            .and_then(|()| self.save(tpm));
        if let Err(errno) = mapped {
            self.flush(tpm);
            return Err(errno);
        }
        Ok(response)
    }

    /// `tpm2_map_response_header`: a new object gets the first free slot and its
    /// virtual handle; a new session gets a session entry. With no room, the new
    /// object or session is flushed and the write fails with ENOMEM.
    fn map_response_handle(
        &mut self,
        tpm: &mut dyn Transmit,
        attrs: u32,
        response: &mut [u8],
    ) -> Result<(), WriteError> {
        if wire::code(response) != Some(wire::RC_SUCCESS) || !wire::cc_attr_returns_handle(attrs) {
            return Ok(());
        }
        let physical = wire::response_handle(response).ok_or(Errno::EFAULT)?;
        match physical & wire::HT_MASK {
            wire::HT_TRANSIENT => {
                let Some(slot) = self.objects.iter().position(|s| *s == Slot::Empty) else {
                    Self::flush_handle(tpm, physical);
                    return Err(Errno::ENOMEM);
                };
                self.objects[slot] = Slot::Loaded(physical);
                wire::write_u32(response, wire::HEADER_SIZE, Self::virtual_handle(slot))
                    .ok_or(Errno::EFAULT)?;
            }
            wire::HT_HMAC_SESSION | wire::HT_POLICY_SESSION => {
                let Some(entry) = self.sessions.iter().position(|&h| h == 0) else {
                    Self::flush_handle(tpm, physical);
                    return Err(Errno::ENOMEM);
                };
                self.sessions[entry] = physical;
            }
            _ => {}
        }
        Ok(())
    }

    /// `tpm2_map_response_body`: GetCapability(TPM_CAP_HANDLES) lists this space's
    /// objects under their virtual handles and drops every other transient handle.
    fn map_response_body(&self, cc: u32, response: &mut Vec<u8>) -> Result<(), WriteError> {
        if cc != wire::CC_GET_CAPABILITY || wire::code(response) != Some(wire::RC_SUCCESS) {
            return Ok(());
        }
        let data = wire::HEADER_SIZE;
        if response.len() < data + 9 {
            return Err(Errno::EFAULT);
        }
        if wire::read_u32(response, data + 1) != Some(wire::CAP_HANDLES) {
            return Ok(());
        }
        let count = wire::read_u32(response, data + 5).ok_or(Errno::EFAULT)? as usize;
        if response.len() != data + 9 + 4 * count {
            return Err(Errno::EFAULT);
        }
        let mut kept = Vec::with_capacity(count);
        for n in 0..count {
            let handle = wire::read_u32(response, data + 9 + 4 * n).ok_or(Errno::EFAULT)?;
            if handle & wire::HT_MASK != wire::HT_TRANSIENT {
                kept.push(handle);
            } else if let Some(slot) = self.objects.iter().position(|s| *s == Slot::Loaded(handle))
            {
                kept.push(Self::virtual_handle(slot));
            }
        }
        response.truncate(data + 9);
        for handle in &kept {
            response.extend_from_slice(&handle.to_be_bytes());
        }
        wire::write_u32(response, data + 5, kept.len() as u32).ok_or(Errno::EFAULT)?;
        let total = response.len() as u32;
        wire::write_u32(response, 2, total).ok_or(Errno::EFAULT)?;
        Ok(())
    }

    /// `tpm2_save_space`: every loaded object is saved and flushed; every session is
    /// saved (a saved session keeps its handle). An object or session the command
    /// ended is found gone (TPM_RC_REFERENCE_H0 on ContextSave) and forgotten.
    fn save(&mut self, tpm: &mut dyn Transmit) -> Result<(), WriteError> {
        let mut contexts = Vec::new();
        let mut used = 0;
        for i in 0..SLOTS {
            let Slot::Loaded(handle) = self.objects[i] else {
                continue;
            };
            match Self::save_context(tpm, handle, used) {
                Err(Errno::ENOENT) => {
                    self.objects[i] = Slot::Empty;
                    continue;
                }
                Err(errno) => return Err(errno),
                Ok(context) => {
                    used += context.len();
                    contexts.push(context);
                }
            }
            Self::flush_handle(tpm, handle);
            self.objects[i] = Slot::Saved;
        }
        self.object_contexts = contexts;

        let mut contexts = Vec::new();
        let mut used = 0;
        for i in 0..SLOTS {
            let handle = self.sessions[i];
            if handle == 0 {
                continue;
            }
            match Self::save_context(tpm, handle, used) {
                Err(Errno::ENOENT) => self.sessions[i] = 0,
                Err(errno) => {
                    self.flush(tpm);
                    return Err(errno);
                }
                Ok(context) => {
                    used += context.len();
                    contexts.push(context);
                }
            }
        }
        self.session_contexts = contexts;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
