//! A model of the Linux kernel's TPM 2.0 resource manager (`/dev/tpmrm0`,
//! drivers/char/tpm/tpm2-space.c), run by [`crate::proxy::Proxy`] in front of swtpm.
//!
//! Each client connection is one open of `/dev/tpmrm0`: one [`Space`]. Around every
//! command, under one lock for the whole TPM (the kernel's chip lock):
//!
//! 1. every saved object of the space, then every session, is loaded (ContextLoad);
//! 2. transient handles in the command's handle area are mapped from virtual to
//!    physical. How many handles a command has comes from the TPM's own list
//!    (GetCapability(TPM_CAP_COMMANDS), read once when the proxy starts); ContextSave
//!    and FlushContext count as having one. Session handles are not virtual and are not
//!    touched, in the handle area or the authorization area;
//! 3. the command is sent;
//! 4. a handle the response returns becomes a virtual one: objects take the first free
//!    of three slots, 0x80FFFFFF, 0x80FFFFFE, 0x80FFFFFD; sessions take one of three
//!    session entries. GetCapability(TPM_CAP_HANDLES) lists the space's own objects
//!    only, by virtual handle;
//! 5. every object is saved and flushed (ContextSave, FlushContext), every session is
//!    saved (ContextSave). An object or session the command ended (FlushContext, a
//!    session without continueSession) is noticed by its ContextSave failing with
//!    TPM_RC_REFERENCE_H0, and forgotten.
//!
//! So a command on a space with N objects and S sessions reaches the TPM as N + S
//! ContextLoads, the command, N + S ContextSaves and N FlushContexts. Closing the
//! connection flushes its sessions.
//!
//! # Where the kernel fails the `write()`
//!
//! Real `/dev/tpmrm0` refuses some commands by failing `write()` with an errno; no
//! response is queued and the file stays open. Over a socket the model answers instead
//! with a header-only response whose code is [`wire::KERNEL_WRITE_ERROR`]` | errno`
//! (0x000BF000 | errno: layer 0x0B is the kernel's resource-manager layer, and bits 12
//! to 15 are never set in a code from a TPM or from the kernel's own made-up response).
//! The connection stays open, as the file would. [`wire::write_errno`] decodes it.
//!
//! | errno | when |
//! |---|---|
//! | ENOMEM (0x000BF00C) | a 4th object or session in the space (the new one is flushed first); saved contexts over the 4096-byte page |
//! | EINVAL (0x000BF016) | a virtual handle the space does not hold; a command shorter than its header or handle area |
//! | EFAULT (0x000BF00E) | ContextLoad or ContextSave of the space failed with a TPM error, e.g. TPM_RC_INTEGRITY after a reset |
//! | ENOENT (0x000BF002) | an object's context is unknown to the TPM (TPM_RC_HANDLE, TPM_RC_REFERENCE_H0) |
//! | EIO (0x000BF005) | swtpm could not be reached |
//! | E2BIG (0x000BF007) | a command over 4096 bytes (the connection is then closed: the stream cannot be resynchronised) |
//!
//! A command code the TPM does not list is answered, as the kernel does, with the
//! response code 0x000B0143 (TPM_RC_COMMAND_CODE in the kernel's layer).
//!
//! # Consequences worth knowing, all from tpm2-space.c
//!
//! - The 4th object of a space fails with ENOMEM only on a TPM with more than 3
//!   transient slots. swtpm (libtpms) has 3, as do many discrete TPMs: there the TPM
//!   itself answers TPM_RC_OBJECT_MEMORY first, since the space's 3 objects are loaded
//!   when the command runs. Likewise a persistent parent (the SRK) takes a slot while a
//!   command uses it, so on a 3-slot TPM a Load under 0x81000001 fails with
//!   TPM_RC_OBJECT_MEMORY once the space holds 2 objects.
//! - After a TPM reset (Startup(CLEAR) without a preceding Shutdown(STATE), as after
//!   hibernation), an object's ContextLoad fails with TPM_RC_INTEGRITY. The kernel
//!   does not forget the object: every later command on that space fails with EFAULT
//!   until the file is closed. Only sessions that fail to load with TPM_RC_HANDLE or
//!   TPM_RC_REFERENCE_H0 are forgotten, and the command goes on; but a saved session's
//!   ContextLoad after a reset fails with TPM_RC_INTEGRITY too (libtpms), so a space
//!   that holds only a session is stuck the same way. The cure is to reopen.
//! - libtpms' saved contexts are larger than most hardware's (about 1.5 KB for an
//!   RSA-2048 key, 0.6 KB for ECC P-256), so three RSA keys do not fit in the kernel's
//!   page: on swtpm the third RSA object of a space fails with ENOMEM.
//!
//! The kernel's resend of a command answered with TPM_RC_RETRY or TPM_RC_TESTING
//! (`tpm_transmit`, common to `/dev/tpm0` and `/dev/tpmrm0`) is done by the proxy for
//! every command, so it is modelled too; libtpms does answer an ECDSA signature with
//! TPM_RC_RETRY now and then.
//!
//! Not modelled: the HMAC-session encryption of the kernel's own commands
//! (CONFIG_TCG_TPM2_HMAC), which adds a FlushContext of its null-hierarchy key per
//! command on kernels that enable it.

mod commands;
mod space;
pub mod wire;

pub use commands::CommandTable;
pub use space::{Space, Transmit, WriteError, BACKING_BYTES, SLOTS};
