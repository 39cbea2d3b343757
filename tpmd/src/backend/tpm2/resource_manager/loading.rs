//! Getting a key into the TPM: from its saved context when there is one, else from its
//! blob (importing it first if it came as a duplicate).

use super::*;

impl ResourceManager {
    /// The key's handle, loading it from saved context or blob if needed.
    pub(super) fn ensure_loaded(
        &mut self,
        id: KeyId,
        source: impl FnOnce() -> Source,
    ) -> TpmResult<KeyHandle> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.cache.entry(id).or_insert_with(|| Entry {
            source: source(),
            handle: None,
            saved: None,
            last_used: tick,
            auth_on_handle: Zeroizing::new(Vec::new()),
        });
        entry.last_used = tick;
        if let Some(handle) = entry.handle {
            self.counters.hits += 1;
            return Ok(handle);
        }
        self.check_loaded_objects_survive()?;
        let saved = self.cache.get(&id).and_then(|e| e.saved.clone());
        self.trim_cache();
        if let Some(saved) = saved {
            match self.with_free_slot(&[id], "ContextLoad", |ctx| ctx.context_load(saved.clone())) {
                Ok(object) => {
                    self.counters.context_loads += 1;
                    return Ok(self.mark_loaded(id, KeyHandle::from(object)));
                }
                Err(e) => {
                    debug!(error = %e, "saved context no longer loads; reloading from the blob");
                    self.counters.resets_recovered += 1;
                    if let Some(entry) = self.cache.get_mut(&id) {
                        entry.saved = None;
                    }
                }
            }
        }
        let handle = self.load_from_source(id)?;
        self.counters.loads += 1;
        Ok(self.mark_loaded(id, handle))
    }

    pub(super) fn mark_loaded(&mut self, id: KeyId, handle: KeyHandle) -> KeyHandle {
        if let Some(entry) = self.cache.get_mut(&id) {
            entry.handle = Some(handle);
            entry.auth_on_handle = Zeroizing::new(Vec::new());
        }
        self.loaded.push(id);
        handle
    }

    pub(super) fn load_from_source(&mut self, id: KeyId) -> TpmResult<KeyHandle> {
        let blob = match self.cache.get(&id).map(|e| &e.source) {
            Some(Source::Blob(blob)) => blob.clone(),
            Some(Source::OwnerPrimary) => return self.create_owner_primary(),
            None => {
                return Err(TpmError::Stack {
                    command: "Load",
                    detail: "key vanished from the cache".into(),
                })
            }
        };
        let (parent, parent_id) = self.parent_handle(blob.parent)?;
        let private = match &blob.private {
            KeyPrivate::Loadable(private) => private.clone(),
            KeyPrivate::Importable { .. } => {
                let pinned: Vec<KeyId> = [Some(id), parent_id].into_iter().flatten().collect();
                let private = self.import_with(parent, &pinned, &blob)?;
                if let Some(Entry {
                    source: Source::Blob(cached),
                    ..
                }) = self.cache.get_mut(&id)
                {
                    cached.private = KeyPrivate::Loadable(private.clone());
                }
                private
            }
        };
        self.prepare_auth(parent.into(), &[], false, Crypt::Nothing)?;
        let pinned: Vec<KeyId> = [Some(id), parent_id].into_iter().flatten().collect();
        let public = blob.public.clone();
        let object = self
            .with_free_slot(&pinned, "Load", |ctx| {
                ctx.load(parent, private.clone(), public.clone())
                    .map(ObjectHandle::from)
            })
            .map_err(|e| Self::explain_load_failure(e, blob.parent))?;
        Ok(KeyHandle::from(object))
    }

    pub(super) fn explain_load_failure(error: TpmError, parent: u32) -> TpmError {
        match error.response_code() {
            Some(rc) if rc.is_wrong_parent() => TpmError::WrongTpm { code: rc.0 },
            _ if matches!(error, TpmError::NoParent { .. }) => {
                TpmError::NoParent { handle: parent }
            }
            _ => error,
        }
    }

    /// TPM2_Import of a duplicate under `parent`.
    pub(super) fn import_with(
        &mut self,
        parent: KeyHandle,
        pinned: &[KeyId],
        blob: &KeyBlob,
    ) -> TpmResult<Private> {
        let KeyPrivate::Importable { duplicate, seed } = &blob.private else {
            return Err(TpmError::InvalidArgument(
                "this key file is already imported".into(),
            ));
        };
        self.prepare_auth(parent.into(), &[], false, Crypt::Nothing)?;
        let public = blob.public.clone();
        self.with_free_slot(pinned, "Import", |ctx| {
            ctx.import(
                parent.into(),
                None,
                public.clone(),
                duplicate.clone(),
                seed.clone(),
                tss_esapi::structures::SymmetricDefinitionObject::Null,
            )
        })
        .map_err(|e| match e.response_code() {
            Some(rc) if rc.is_wrong_parent() => TpmError::WrongTpm { code: rc.0 },
            _ => e,
        })
    }

    pub(super) fn create_owner_primary(&mut self) -> TpmResult<KeyHandle> {
        let template = srk::ecc_owner_primary_template().map_err(|e| TpmError::Stack {
            command: "CreatePrimary",
            detail: e.to_string(),
        })?;
        self.prepare_auth(ObjectHandle::Owner, &[], false, Crypt::Nothing)?;
        let object = self.with_free_slot(&[OWNER_PRIMARY_ID], "CreatePrimary", |ctx| {
            ctx.create_primary(Hierarchy::Owner, template.clone(), None, None, None, None)
                .map(|r| ObjectHandle::from(r.key_handle))
        })?;
        Ok(KeyHandle::from(object))
    }
}
