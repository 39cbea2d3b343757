//! Getting a key into the TPM: from its saved context when there is one (owned
//! strategy), else from its key file, importing it first if it came as a duplicate;
//! under a persistent parent or the owner hierarchy's standard ECC primary.

use std::sync::Arc;

use tpmd_api::OWNER_HIERARCHY_HANDLE;
use tpmd_tpm2::srk;
use tpmd_tpm2::wire::{handle, ops};
use tracing::{debug, warn};

use super::*;

impl ResourceManager {
    /// The handle of `blob`'s key, loading it if needed.
    pub(super) fn ensure_loaded(&mut self, blob: &Arc<KeyBlob>) -> TpmResult<u32> {
        let entry = self
            .cache
            .use_or_insert_with(blob.id, || Entry::new(Source::Blob(blob.clone())));
        if let Residence::Main(handle) | Residence::Own(_, handle) = entry.residence {
            self.counters.hits += 1;
            return Ok(handle);
        }
        self.cache.trim(|e| !e.is_loaded());
        let handle = match self.strategy {
            Strategy::Owned { .. } => self.load_owned(blob.id)?,
            Strategy::KernelRm { .. } => self.load_on_own_link(blob)?,
        };
        Ok(handle)
    }

    /// Owned strategy: loads the key `id` (already in the cache) on the main connection.
    fn load_owned(&mut self, id: KeyId) -> TpmResult<u32> {
        let parent_pin = match self.cache.get(&id).map(|e| &e.source) {
            Some(Source::Blob(blob)) if blob.parent == OWNER_HIERARCHY_HANDLE => {
                Some(OWNER_PRIMARY_ID)
            }
            _ => None,
        };
        let pinned: Vec<KeyId> = [Some(id), parent_pin].into_iter().flatten().collect();
        self.make_room(&pinned)?;
        let saved = self.cache.get(&id).and_then(|e| e.saved.clone());
        if let Some(context) = saved {
            let loaded = self.with_free_slot(&pinned, |rm| {
                rm.execute(&ops::context_load(&context), &Authorization::None)
            });
            match loaded {
                Ok(response) => {
                    let handle = parse(ops::returned_handle(&response))?;
                    self.counters.context_loads += 1;
                    return Ok(self.placed_on_main(id, handle));
                }
                Err(e @ TpmError::Unavailable(_)) => return Err(e),
                Err(e) => {
                    debug!(error = %e, "saved context no longer loads (TPM reset); loading the key file");
                    self.counters.resets_recovered += 1;
                    if let Some(entry) = self.cache.get_mut(&id) {
                        entry.saved = None;
                    }
                }
            }
        }
        let handle = match self.cache.get(&id).map(|e| &e.source) {
            Some(Source::Blob(blob)) => {
                let blob = blob.clone();
                self.load_blob_on_main(&blob, &pinned)?
            }
            Some(Source::OwnerPrimary) => {
                let (handle, name) = self.create_owner_primary(At::Main, &pinned)?;
                if let Some(entry) = self.cache.get_mut(&id) {
                    entry.name = name;
                }
                handle
            }
            None => {
                return Err(TpmError::Stack {
                    command: "Load",
                    detail: "key vanished from the cache".into(),
                })
            }
        };
        self.counters.loads += 1;
        Ok(self.placed_on_main(id, handle))
    }

    fn load_blob_on_main(&mut self, blob: &Arc<KeyBlob>, pinned: &[KeyId]) -> TpmResult<u32> {
        let (parent, _, temporary) = self.parent_on_main(blob.parent)?;
        let private = self.loadable_private(At::Main, blob, parent)?;
        let loaded = self.with_free_slot(pinned, |rm| {
            rm.execute(
                &ops::load(parent, &private, &blob.public_bytes),
                &Authorization::Password(&[]),
            )
        });
        if temporary {
            self.flush_on_main(parent);
        }
        let response = loaded.map_err(|e| explain_load_failure(e, blob.parent))?;
        parse(ops::returned_handle(&response))
    }

    /// Records that `id` is loaded on the main connection at `handle`. A new object
    /// cannot take the handle of a live one: if another cached key claims it, the TPM
    /// lost our objects behind our back (a reset), and the other handles are stale.
    fn placed_on_main(&mut self, id: KeyId, handle: u32) -> u32 {
        let aliased = self.cache.least_recent(|other, e| {
            *other != id && matches!(e.residence, Residence::Main(h) if h == handle)
        });
        if aliased.is_some() {
            warn!("the TPM handed out a handle we held: it was reset; reloading our other keys");
            self.lost_loaded_objects(Some(id));
        }
        if let Some(entry) = self.cache.get_mut(&id) {
            entry.residence = Residence::Main(handle);
        }
        handle
    }

    /// Kernel RM strategy: opens a connection for the key and loads it there alone.
    fn load_on_own_link(&mut self, blob: &Arc<KeyBlob>) -> TpmResult<u32> {
        self.make_room_for_link(blob.id);
        let mut link = Link::open(&self.transport, &self.counter)?;
        let (parent, temporary) = match blob.parent {
            OWNER_HIERARCHY_HANDLE => {
                let template = owner_primary_template()?;
                let response = link.execute(
                    &ops::create_primary(handle::OWNER, &template),
                    &Authorization::Password(&[]),
                    None,
                    &mut self.counters,
                )?;
                (parse(ops::returned_handle(&response))?, true)
            }
            parent => {
                self.check_parent(parent)?;
                (parent, false)
            }
        };
        let imported = self.cache.get(&blob.id).and_then(|e| e.imported.clone());
        let private = match (&blob.private, imported) {
            (_, Some(private)) => private,
            (super::super::blob::KeyPrivate::Loadable(private), None) => private.clone(),
            (super::super::blob::KeyPrivate::Importable { .. }, None) => {
                let response = link
                    .execute(
                        &import_command(parent, blob),
                        &Authorization::Password(&[]),
                        None,
                        &mut self.counters,
                    )
                    .map_err(|e| explain_load_failure(e.into(), blob.parent))?;
                let private = parse(ops::parse_import(&response))?;
                if let Some(entry) = self.cache.get_mut(&blob.id) {
                    entry.imported = Some(private.clone());
                }
                private
            }
        };
        let loaded = link.execute(
            &ops::load(parent, &private, &blob.public_bytes),
            &Authorization::Password(&[]),
            None,
            &mut self.counters,
        );
        if temporary {
            let _ = link.tpm().execute(&ops::flush_context(parent), &[]);
        }
        let response = loaded.map_err(|e| explain_load_failure(e.into(), blob.parent))?;
        let handle = parse(ops::returned_handle(&response))?;
        self.counters.loads += 1;
        if let Some(entry) = self.cache.get_mut(&blob.id) {
            entry.residence = Residence::Own(link, handle);
        }
        Ok(handle)
    }

    /// Checks that a persistent parent exists (and reads its name once).
    fn check_parent(&mut self, parent: u32) -> TpmResult<()> {
        if parent == tpmd_api::backup::BACKUP_PARENT {
            return Err(TpmError::BadKeyFile(
                "this is an offline backup of a key, not a key for a TPM: wrap it for this TPM with `tpm-keyctl restore --backup-key BACKUP.key FILE`".into(),
            ));
        }
        if handle::is_persistent(parent) {
            self.parent_info(parent).map(|_| ())
        } else {
            Err(TpmError::Unsupported(format!(
                "parent {parent:#010x} is neither a persistent key nor the owner hierarchy"
            )))
        }
    }

    /// A parent on the main connection: its handle, its name, and whether it is a
    /// temporary object the caller must flush.
    pub(super) fn parent_on_main(&mut self, parent: u32) -> TpmResult<(u32, Vec<u8>, bool)> {
        if parent != OWNER_HIERARCHY_HANDLE {
            self.check_parent(parent)?;
            let name = self.parent_info(parent)?.name;
            return Ok((parent, name, false));
        }
        match self.strategy {
            Strategy::Owned { .. } => {
                self.cache
                    .use_or_insert_with(OWNER_PRIMARY_ID, || Entry::new(Source::OwnerPrimary));
                let handle = match self.cache.get(&OWNER_PRIMARY_ID).map(|e| &e.residence) {
                    Some(Residence::Main(handle)) => {
                        self.counters.hits += 1;
                        *handle
                    }
                    _ => self.load_owned(OWNER_PRIMARY_ID)?,
                };
                let name = self
                    .cache
                    .get(&OWNER_PRIMARY_ID)
                    .map(|e| e.name.clone())
                    .unwrap_or_default();
                Ok((handle, name, false))
            }
            Strategy::KernelRm { .. } => {
                let (handle, name) = self.create_owner_primary(At::Main, &[])?;
                Ok((handle, name, true))
            }
        }
    }

    /// Creates the owner hierarchy's standard ECC primary; its handle and name.
    fn create_owner_primary(&mut self, at: At, pinned: &[KeyId]) -> TpmResult<(u32, Vec<u8>)> {
        let template = owner_primary_template()?;
        let command = ops::create_primary(handle::OWNER, &template);
        let response = self.with_free_slot(pinned, |rm| {
            rm.execute_at(at, &command, &Authorization::Password(&[]))
        })?;
        let handle = parse(ops::returned_handle(&response))?;
        let public = parse(ops::parse_create_primary(&response))?;
        let name = TpmPublic::from_tpm2b(&public)
            .and_then(|p| p.name())
            .map_err(|e| TpmError::Stack {
                command: "CreatePrimary",
                detail: e.to_string(),
            })?;
        Ok((handle, name))
    }

    /// The key's loadable private part, importing it under `parent` on the first use of
    /// an importable key file.
    fn loadable_private(&mut self, at: At, blob: &KeyBlob, parent: u32) -> TpmResult<Vec<u8>> {
        if let super::super::blob::KeyPrivate::Loadable(private) = &blob.private {
            return Ok(private.clone());
        }
        if let Some(private) = self.cache.get(&blob.id).and_then(|e| e.imported.clone()) {
            return Ok(private);
        }
        let response = self
            .execute_at(
                at,
                &import_command(parent, blob),
                &Authorization::Password(&[]),
            )
            .map_err(|e| explain_load_failure(e, blob.parent))?;
        let private = parse(ops::parse_import(&response))?;
        if let Some(entry) = self.cache.get_mut(&blob.id) {
            entry.imported = Some(private.clone());
        }
        Ok(private)
    }

    /// Flushes a temporary object on the main connection.
    pub(super) fn flush_on_main(&mut self, handle: u32) {
        if let Err(e) = self.execute(&ops::flush_context(handle), &Authorization::None) {
            debug!(error = %e, "FlushContext({handle:#x})");
        }
    }
}

/// The TPMT_PUBLIC of the owner hierarchy's standard ECC P-256 primary.
fn owner_primary_template() -> TpmResult<Vec<u8>> {
    srk::ecc_owner_primary_template()
        .and_then(|t| srk::template_bytes(&t))
        .map_err(|e| TpmError::Stack {
            command: "CreatePrimary",
            detail: e.to_string(),
        })
}
