//! Chunked uploads: begin, chunk, finish, abort, and the collection of idle uploads.

use super::*;

pub(super) fn upload_view(state: &State, head: &UploadHead, p: &UploadProgress) -> UploadView {
    UploadView {
        upload_id: head.upload_id,
        vault_id: head.vault_id,
        kind: head.kind,
        size: head.size,
        chunk_bytes: head.chunk_bytes,
        chunk_count: chunk_count(head.size, head.chunk_bytes),
        next_index: p.next_index,
        received_bytes: p.received,
        replaces: head.replaces,
        expires_at: p.last_activity.saturating_add(idle_ns(state)),
    }
}

pub(super) fn idle_ns(state: &State) -> u64 {
    state
        .config()
        .durations
        .upload_idle_secs
        .saturating_mul(NANOS_PER_SEC)
}

pub(super) fn storage_limit(state: &State, vault: &VaultRecord) -> u64 {
    state.config().pricing.tier(vault.plan.tier).storage_bytes
}

pub(super) fn head(state: &State, upload_id: UploadId) -> Option<UploadHead> {
    state.uploads.head(upload_id)
}

pub(super) fn progress(state: &State, upload_id: UploadId) -> UploadProgress {
    state
        .uploads
        .progress(upload_id)
        .unwrap_or_else(|| panic!("BUG: upload {upload_id} has no progress record"))
}

pub(super) fn meta(state: &State, upload_id: UploadId) -> Vec<u8> {
    state.uploads.meta(upload_id)
}

pub(super) fn upload_idem_hash(caller: &Principal, vault_id: VaultId, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"livault-begin-upload");
    h.update([caller.as_slice().len() as u8]);
    h.update(caller.as_slice());
    h.update(vault_id.to_be_bytes());
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Loads an open upload for its owner: `NotFound` if unknown, `NotAuthorized` for anyone
/// else, `UploadExpired` if idle past the limit (the collector removes it).
pub(super) fn load_upload(
    state: &State,
    caller: &Principal,
    upload_id: UploadId,
    now: u64,
) -> VaultResult<(UploadHead, UploadProgress)> {
    let head = head(state, upload_id).ok_or(VaultError::NotFound)?;
    if head.owner != *caller {
        return Err(VaultError::NotAuthorized);
    }
    let p = progress(state, upload_id);
    if now >= p.last_activity.saturating_add(idle_ns(state)) {
        return Err(VaultError::UploadExpired);
    }
    Ok((head, p))
}

/// Removes an open upload's records and pages. Reservation bookkeeping is the caller's.
pub(super) fn drop_upload(state: &mut State, head: &UploadHead) {
    let p = progress(state, head.upload_id);
    free_blob(state, head.blob_id);
    drop_upload_records_keep_blob(state, head, &p);
}

pub(super) fn open_uploads_in(state: &State, vault_id: VaultId) -> Vec<UploadId> {
    state.uploads.open_in(vault_id).collect()
}

/// `encrypted_meta` is at most [`MAX_META_BYTES`].
pub(super) fn validate_meta(meta: &[u8]) -> VaultResult<()> {
    if meta.len() > MAX_META_BYTES {
        return Err(VaultError::invalid(
            "encrypted_meta",
            format!("at most {MAX_META_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Named recipients: 1..=[`MAX_RECIPIENTS`] distinct member ids of current heirs.
pub(super) fn validate_recipients(
    state: &State,
    vault_id: VaultId,
    recipients: Option<&[u32]>,
) -> VaultResult<()> {
    let Some(recipients) = recipients else {
        return Ok(());
    };
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(VaultError::invalid(
            "recipients",
            format!("1..={MAX_RECIPIENTS} heir member ids (omit for every heir)"),
        ));
    }
    for (i, id) in recipients.iter().enumerate() {
        if recipients[..i].contains(id) {
            return Err(VaultError::invalid("recipients", "duplicate member id"));
        }
        match state.members.get(vault_id, *id) {
            Some(m) if m.role == MemberRole::Heir => {}
            _ => {
                return Err(VaultError::invalid(
                    "recipients",
                    format!("{id} is not an heir of this vault"),
                ))
            }
        }
    }
    Ok(())
}

pub(super) fn chunk_count(size: u64, chunk_bytes: u32) -> u32 {
    size.div_ceil(u64::from(chunk_bytes)) as u32
}

/// `begin_upload`: validates, reserves quota, opens a session.
pub fn begin_upload(
    state: &mut State,
    rt: &impl Runtime,
    args: BeginUploadArgs,
) -> VaultResult<UploadView> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault =
        vault_core::load_owned(state, &caller, args.vault_id, lifecycle::content_writable)?;
    let idem = match &args.idempotency_key {
        Some(key) => {
            validation::text(
                "idempotency_key",
                key,
                validation::MAX_IDEMPOTENCY_KEY_CHARS,
            )?;
            Some(upload_idem_hash(&caller, args.vault_id, key))
        }
        None => None,
    };
    if let Some(hash) = idem {
        if let Some(upload_id) = state.idempotency.lookup(&hash) {
            if let Some(h) = head(state, upload_id) {
                let p = progress(state, upload_id);
                return Ok(upload_view(state, &h, &p));
            }
        }
    }
    if args.size == 0 {
        return Err(VaultError::invalid(
            "size",
            "must be at least 1 byte (ciphertext is never empty)",
        ));
    }
    if args.sha256.len() != 32 {
        return Err(VaultError::invalid("sha256", "must be 32 bytes"));
    }
    validate_meta(&args.encrypted_meta)?;
    validate_recipients(state, args.vault_id, args.recipients.as_deref())?;
    if let Some(item_id) = args.replaces {
        if !state.content_items.contains(args.vault_id, item_id) {
            return Err(VaultError::NotFound);
        }
    }
    let open = open_uploads_in(state, args.vault_id);
    if open.len() as u64 >= MAX_OPEN_UPLOADS_PER_VAULT {
        return Err(VaultError::PlanLimit {
            resource: "open_uploads".into(),
            limit: MAX_OPEN_UPLOADS_PER_VAULT,
        });
    }
    let config = state.config();
    let chunk_bytes = config.limits.max_chunk_bytes;
    let max_items = u64::from(config.limits.max_items_per_vault);
    if args.replaces.is_none() {
        let pending_new = open
            .iter()
            .filter(|id| head(state, **id).is_some_and(|h| h.replaces.is_none()))
            .count() as u64;
        if u64::from(vault.item_count) + pending_new >= max_items {
            return Err(VaultError::PlanLimit {
                resource: "items".into(),
                limit: max_items,
            });
        }
    }
    let limit = storage_limit(state, &vault);
    let used = vault
        .storage_committed_bytes
        .saturating_add(vault.storage_reserved_bytes);
    let available = limit.saturating_sub(used);
    if args.size > available {
        return Err(VaultError::QuotaExceeded {
            requested: args.size,
            available,
        });
    }
    if u64::from(chunk_count(args.size, chunk_bytes)) > crate::storage::chunk_index::MAX_CHUNKS {
        return Err(VaultError::invalid(
            "size",
            format!(
                "needs more than {} chunks of {chunk_bytes} bytes",
                crate::storage::chunk_index::MAX_CHUNKS
            ),
        ));
    }
    vault_core::check_capacity(state, rt.stable_memory_bytes(), args.size)?;

    // Everything checked: write.
    let (upload_id, blob_id) = state.header.next_upload_ids();
    let head = UploadHead {
        upload_id,
        vault_id: args.vault_id,
        owner: caller,
        kind: args.kind,
        size: args.size,
        sha256: args.sha256.into_vec(),
        recipients: args.recipients,
        replaces: args.replaces,
        blob_id,
        chunk_bytes,
        created_at: now,
        idempotency_hash: idem,
    };
    let p = UploadProgress {
        next_index: 0,
        received: 0,
        hash: HashState::new(),
        last_activity: now,
    };
    state
        .uploads
        .insert(&head, &p, args.encrypted_meta.into_vec());
    if let Some(hash) = idem {
        state.idempotency.bind_upload(hash, upload_id);
    }
    vault.storage_reserved_bytes += args.size;
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::UploadBegun,
        format!(
            "upload={upload_id} kind={:?} size={} replaces={:?}",
            head.kind, head.size, head.replaces
        ),
    );
    state.save_vault(&mut vault);
    Ok(upload_view(state, &head, &p))
}

/// `upload_chunk`: chunk `index` of an open upload, in order. Repeating the last accepted
/// chunk with identical bytes is accepted and changes nothing.
pub fn upload_chunk(
    state: &mut State,
    rt: &impl Runtime,
    upload_id: UploadId,
    index: u32,
    bytes: &[u8],
) -> VaultResult<UploadView> {
    let caller = rt.caller();
    let now = rt.now();
    let (head, mut p) = load_upload(state, &caller, upload_id, now)?;
    let mut vault =
        vault_core::load_owned(state, &caller, head.vault_id, lifecycle::content_writable)?;
    if bytes.is_empty() {
        return Err(VaultError::invalid(
            "bytes",
            "a chunk carries at least 1 byte",
        ));
    }
    if bytes.len() > head.chunk_bytes as usize {
        return Err(VaultError::invalid(
            "bytes",
            format!("a chunk carries at most {} bytes", head.chunk_bytes),
        ));
    }
    if index != p.next_index {
        // A retry of the last accepted chunk with the same bytes is a no-op.
        if p.next_index > 0 && index == p.next_index - 1 {
            if let Some(loc) = state.content_chunks.get(head.blob_id, index) {
                if loc.len as usize == bytes.len() && pages::read(state, &loc) == bytes {
                    return Ok(upload_view(state, &head, &p));
                }
            }
        }
        return Err(VaultError::ChunkOutOfOrder {
            expected: p.next_index,
        });
    }
    let after = p.received + bytes.len() as u64;
    if after > head.size {
        return Err(VaultError::SizeMismatch {
            expected: head.size,
            actual: after,
        });
    }
    if after < head.size && bytes.len() != head.chunk_bytes as usize {
        return Err(VaultError::invalid(
            "bytes",
            format!(
                "every chunk but the last must carry exactly {} bytes",
                head.chunk_bytes
            ),
        ));
    }
    let loc = pages::allocate(state, bytes.len() as u64).map_err(|_| VaultError::PlanLimit {
        resource: "canister_stable_memory".into(),
        limit: 0,
    })?;
    pages::write(state, &loc, bytes);
    state.content_chunks.push(head.blob_id, index, &loc);
    p.hash.update(bytes);
    p.received = after;
    p.next_index += 1;
    let active_before = p.last_activity;
    p.last_activity = now;
    state.uploads.update_progress(upload_id, active_before, &p);
    vault_core::touch_owner(state, &mut vault, now, caller);
    state.save_vault(&mut vault);
    Ok(upload_view(state, &head, &p))
}

/// `finish_upload`: checks size and SHA-256, then commits: a new item, or the replaced item
/// takes the new payload (its id stays, `version` + 1) and the old payload is freed.
pub fn finish_upload(
    state: &mut State,
    rt: &impl Runtime,
    upload_id: UploadId,
) -> VaultResult<ItemView> {
    let caller = rt.caller();
    let now = rt.now();
    let (head, p) = load_upload(state, &caller, upload_id, now)?;
    let mut vault =
        vault_core::load_owned(state, &caller, head.vault_id, lifecycle::content_writable)?;
    if p.received != head.size {
        return Err(VaultError::SizeMismatch {
            expected: head.size,
            actual: p.received,
        });
    }
    if p.hash.finalize().as_slice() != head.sha256.as_slice() {
        return Err(VaultError::ChecksumMismatch);
    }
    let old = match head.replaces {
        Some(item_id) => Some(
            state
                .content_items
                .get(head.vault_id, item_id)
                .ok_or(VaultError::NotFound)?,
        ),
        None => None,
    };
    let max_items = state.config().limits.max_items_per_vault;
    if old.is_none() && vault.item_count >= max_items {
        return Err(VaultError::PlanLimit {
            resource: "items".into(),
            limit: u64::from(max_items),
        });
    }

    let encrypted_meta = meta(state, upload_id);
    drop_upload_records_keep_blob(state, &head, &p);
    let (item, action) = match old {
        Some(old) => {
            free_blob(state, old.blob_id);
            vault.storage_committed_bytes = vault.storage_committed_bytes.saturating_sub(old.size);
            (
                ItemRecord {
                    item_id: old.item_id,
                    vault_id: head.vault_id,
                    kind: head.kind,
                    size: head.size,
                    sha256: head.sha256.clone(),
                    encrypted_meta,
                    recipients: head.recipients.clone(),
                    blob_id: head.blob_id,
                    chunk_count: p.next_index,
                    chunk_bytes: head.chunk_bytes,
                    created_at: old.created_at,
                    updated_at: now,
                    version: old.version + 1,
                },
                AuditAction::ItemReplaced,
            )
        }
        None => {
            let item_id = state.header.next_id(IdKind::Item);
            vault.item_count += 1;
            (
                ItemRecord {
                    item_id,
                    vault_id: head.vault_id,
                    kind: head.kind,
                    size: head.size,
                    sha256: head.sha256.clone(),
                    encrypted_meta,
                    recipients: head.recipients.clone(),
                    blob_id: head.blob_id,
                    chunk_count: p.next_index,
                    chunk_bytes: head.chunk_bytes,
                    created_at: now,
                    updated_at: now,
                    version: 1,
                },
                AuditAction::ItemAdded,
            )
        }
    };
    vault.storage_reserved_bytes = vault.storage_reserved_bytes.saturating_sub(head.size);
    vault.storage_committed_bytes += head.size;
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        action,
        format!(
            "item={} upload={upload_id} kind={:?} size={} version={}",
            item.item_id, item.kind, item.size, item.version
        ),
    );
    vault_core::refresh_setup(state, &mut vault, now, caller);
    state.content_items.save(&item);
    state.save_vault(&mut vault);
    Ok(item_view(&item))
}

/// Removes an upload's records but keeps its chunks (they now belong to the item).
pub(super) fn drop_upload_records_keep_blob(
    state: &mut State,
    head: &UploadHead,
    p: &UploadProgress,
) {
    state.uploads.remove(head, p);
    if let Some(hash) = head.idempotency_hash {
        state.idempotency.release_upload(&hash);
    }
}

/// `abort_upload`: the owner drops an open upload; its reservation and pages are freed.
/// Allowed in every vault state (it only releases resources).
pub fn abort_upload(state: &mut State, rt: &impl Runtime, upload_id: UploadId) -> VaultResult<()> {
    let caller = rt.caller();
    let now = rt.now();
    let head = head(state, upload_id).ok_or(VaultError::NotFound)?;
    if head.owner != caller {
        return Err(VaultError::NotAuthorized);
    }
    let (mut vault, _) = access::load(state, head.vault_id, &caller, Need::Owner)?;
    drop_upload(state, &head);
    vault.storage_reserved_bytes = vault.storage_reserved_bytes.saturating_sub(head.size);
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::UploadAborted,
        format!("upload={upload_id}"),
    );
    state.save_vault(&mut vault);
    Ok(())
}

/// Collects uploads idle for `durations.upload_idle_secs` (oldest first, at most
/// `max_batch`): pages freed, reservation released, audit-logged. Returns how many were
/// collected; a backlog continues on the next call. Called by the scheduler.
pub fn collect_stale_uploads(state: &mut State, now: u64, max_batch: usize) -> usize {
    let cutoff = now.saturating_sub(idle_ns(state));
    let due: Vec<UploadId> = state
        .uploads
        .idle_since(cutoff)
        .filter(|(at, _)| at.saturating_add(idle_ns(state)) <= now)
        .take(max_batch)
        .map(|(_, id)| id)
        .collect();
    for upload_id in &due {
        let Some(head) = head(state, *upload_id) else {
            continue;
        };
        drop_upload(state, &head);
        if let Some(mut vault) = state.vaults.load(head.vault_id) {
            vault.storage_reserved_bytes = vault.storage_reserved_bytes.saturating_sub(head.size);
            audit::append(
                state,
                &mut vault,
                now,
                Principal::management_canister(),
                AuditAction::UploadExpired,
                format!("upload={upload_id}"),
            );
            state.save_vault(&mut vault);
        }
    }
    due.len()
}
