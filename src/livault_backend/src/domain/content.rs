//! Encrypted content (SPEC §8): chunked uploads with a resumable SHA-256, committed items,
//! quotas, deletion and replacement, download tickets with a daily allowance.
//!
//! Payload bytes never enter a BTreeMap: each chunk is written once into raw pages
//! (`storage::pages`) under the upload's blob id, and `finish_upload` only writes metadata
//! (the item record references the same blob id). The whole-payload SHA-256 is advanced chunk
//! by chunk (`compress256` over 64-byte blocks; the chaining value, the partial block and the
//! length live in the upload's progress record), so finishing costs the same for 1 byte and
//! for 250 MiB.
//!
//! Decisions (see also the `.did` comments):
//! - An empty payload is refused (`InvalidInput { field = "size" }`): client-side ciphertext
//!   always carries at least a nonce and a tag, so an empty payload is a client bug.
//! - Every chunk but the last has exactly `chunk_bytes` (the configured maximum at
//!   `begin_upload`), so chunk counts are bounded and downloads mirror uploads chunk for chunk.
//! - Quota counts payload bytes (not metadata, not page rounding): committed + open
//!   reservations ≤ the tier's storage. A replacing upload reserves its full size until it
//!   commits, when the old item's bytes are released.
//! - Failed calls change nothing; an upload whose `finish_upload` failed stays open (and keeps
//!   its reservation) until aborted or collected.
//! - Uploads are audit-logged at begin / finish / abort / collection, not per chunk.
//! - Downloads: the daily allowance is per principal (across vaults) per UTC day; owners are
//!   unlimited. A ticket is bound to the principal that requested it; an expired ticket is
//!   refused with `TokenExpired`.

use candid::Principal;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use super::access::{self, Access, Need};
use super::audit::{self, AuditAction};
use super::error::{VaultError, VaultResult};
use super::lifecycle;
use super::records::{
    HashState, ItemRecord, MemberRole, TicketRecord, UploadEntry, UploadHead, UploadProgress,
    VaultRecord,
};
use super::types::{
    BeginUploadArgs, DownloadTicket, ItemId, ItemView, Page, PageArgs, TicketId,
    UpdateItemMetaArgs, UploadId, UploadView, VaultId, VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC,
};
use super::validation;
use super::vaults;
use crate::runtime::Runtime;
use crate::storage::pages::{self, ChunkLoc};
use crate::storage::State;

/// Largest `encrypted_meta`.
pub const MAX_META_BYTES: usize = 4096;
/// Most recipients one item may name.
pub const MAX_RECIPIENTS: usize = 64;
/// Most uploads open at once in one vault.
pub const MAX_OPEN_UPLOADS_PER_VAULT: u64 = 8;

const TAG_HEAD: u8 = 0;
const TAG_PROGRESS: u8 = 1;
const TAG_BY_IDLE: u8 = 2;
const TAG_BY_VAULT: u8 = 3;
const TAG_META: u8 = 4;

// ------------------------------------------------------------------ resumable SHA-256

impl HashState {
    /// The SHA-256 initial state.
    pub fn new() -> Self {
        HashState {
            h: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            tail: Vec::new(),
            len: 0,
        }
    }

    /// Absorbs `data`: full 64-byte blocks are compressed straight from `data`; fewer than
    /// 64 leftover bytes stay in `tail`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < 64 {
                return;
            }
            sha2::compress256(&mut self.h, &[*GenericArray::from_slice(&self.tail)]);
            self.tail.clear();
        }
        let full = data.len() - data.len() % 64;
        for block in data[..full].chunks_exact(64) {
            sha2::compress256(
                &mut self.h,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        self.tail.extend_from_slice(&data[full..]);
    }

    /// The digest of everything absorbed (the state itself is left as it is).
    pub fn finalize(&self) -> [u8; 32] {
        let mut h = self.h;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&(self.len * 8).to_be_bytes());
        for block in last.chunks_exact(64) {
            sha2::compress256(
                &mut h,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

impl Default for HashState {
    fn default() -> Self {
        Self::new()
    }
}

// ------------------------------------------------------------------ helpers

fn item_view(item: &ItemRecord) -> ItemView {
    ItemView {
        item_id: item.item_id,
        vault_id: item.vault_id,
        kind: item.kind,
        size: item.size,
        sha256: serde_bytes::ByteBuf::from(item.sha256.clone()),
        encrypted_meta: serde_bytes::ByteBuf::from(item.encrypted_meta.clone()),
        recipients: item.recipients.clone(),
        chunk_count: item.chunk_count,
        chunk_bytes: item.chunk_bytes,
        created_at: item.created_at,
        updated_at: item.updated_at,
        version: item.version,
    }
}

fn chunk_count(size: u64, chunk_bytes: u32) -> u32 {
    size.div_ceil(u64::from(chunk_bytes)) as u32
}

fn upload_view(state: &State, head: &UploadHead, p: &UploadProgress) -> UploadView {
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

fn idle_ns(state: &State) -> u64 {
    state
        .config()
        .durations
        .upload_idle_secs
        .saturating_mul(NANOS_PER_SEC)
}

fn storage_limit(state: &State, vault: &VaultRecord) -> u64 {
    state.config().pricing.tier(vault.plan.tier).storage_bytes
}

fn head(state: &State, upload_id: UploadId) -> Option<UploadHead> {
    match state.uploads.get(&(TAG_HEAD, upload_id, 0)) {
        Some(UploadEntry::Head(h)) => Some(h),
        _ => None,
    }
}

fn progress(state: &State, upload_id: UploadId) -> UploadProgress {
    match state.uploads.get(&(TAG_PROGRESS, upload_id, 0)) {
        Some(UploadEntry::Progress(p)) => p,
        _ => panic!("BUG: upload {upload_id} has no progress record"),
    }
}

fn meta(state: &State, upload_id: UploadId) -> Vec<u8> {
    match state.uploads.get(&(TAG_META, upload_id, 0)) {
        Some(UploadEntry::Meta(m)) => m,
        _ => Vec::new(),
    }
}

fn upload_idem_hash(caller: &Principal, vault_id: VaultId, key: &str) -> [u8; 32] {
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
fn load_upload(
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

/// Frees every chunk of a blob (bounded by its chunk count).
fn free_blob(state: &mut State, blob_id: u64) {
    for loc in state.content_chunks.remove_blob(blob_id) {
        pages::free(state, &loc);
    }
}

/// Removes an open upload's records and pages. Reservation bookkeeping is the caller's.
fn drop_upload(state: &mut State, head: &UploadHead) {
    let p = progress(state, head.upload_id);
    free_blob(state, head.blob_id);
    drop_upload_records_keep_blob(state, head, &p);
}

fn open_uploads_in(state: &State, vault_id: VaultId) -> Vec<UploadId> {
    state
        .uploads
        .keys_range((TAG_BY_VAULT, vault_id, 0)..=(TAG_BY_VAULT, vault_id, u64::MAX))
        .map(|(_, _, id)| id)
        .collect()
}

/// `encrypted_meta` is at most [`MAX_META_BYTES`].
fn validate_meta(meta: &[u8]) -> VaultResult<()> {
    if meta.len() > MAX_META_BYTES {
        return Err(VaultError::invalid(
            "encrypted_meta",
            format!("at most {MAX_META_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Named recipients: 1..=[`MAX_RECIPIENTS`] distinct member ids of current heirs.
fn validate_recipients(
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
        match state.members.get(&(vault_id, *id)) {
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

// ------------------------------------------------------------------ uploads

/// `begin_upload`: validates, reserves quota, opens a session.
pub fn begin_upload(
    state: &mut State,
    rt: &impl Runtime,
    args: BeginUploadArgs,
) -> VaultResult<UploadView> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault =
        super::vaults::load_owned(state, &caller, args.vault_id, lifecycle::content_writable)?;
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
        if let Some(upload_id) = state.idempotency.get(&hash) {
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
        if !state.content_items.contains_key(&(args.vault_id, item_id)) {
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
    super::vaults::check_capacity(state, rt, args.size)?;

    // Everything checked: write.
    let mut header = state.header.get().clone();
    let upload_id = header.next_upload_id.max(1);
    let blob_id = header.next_blob_id.max(1);
    header.next_upload_id = upload_id + 1;
    header.next_blob_id = blob_id + 1;
    state.header.set(header);
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
        .insert((TAG_HEAD, upload_id, 0), UploadEntry::Head(head.clone()));
    state.uploads.insert(
        (TAG_PROGRESS, upload_id, 0),
        UploadEntry::Progress(p.clone()),
    );
    state.uploads.insert(
        (TAG_META, upload_id, 0),
        UploadEntry::Meta(args.encrypted_meta.into_vec()),
    );
    state
        .uploads
        .insert((TAG_BY_IDLE, now, upload_id), UploadEntry::Index);
    state
        .uploads
        .insert((TAG_BY_VAULT, args.vault_id, upload_id), UploadEntry::Index);
    if let Some(hash) = idem {
        state.idempotency.insert(hash, upload_id);
    }
    let before = super::metrics::storage_of(&vault);
    vault.storage_reserved_bytes += args.size;
    super::metrics::storage_changed(state, before, &vault);
    super::vaults::touch_owner(state, &mut vault, now, caller);
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
    state.vaults.insert(vault.id, vault);
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
        super::vaults::load_owned(state, &caller, head.vault_id, lifecycle::content_writable)?;
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
    if p.last_activity != now {
        state
            .uploads
            .remove(&(TAG_BY_IDLE, p.last_activity, upload_id));
        state
            .uploads
            .insert((TAG_BY_IDLE, now, upload_id), UploadEntry::Index);
        p.last_activity = now;
    }
    state.uploads.insert(
        (TAG_PROGRESS, upload_id, 0),
        UploadEntry::Progress(p.clone()),
    );
    super::vaults::touch_owner(state, &mut vault, now, caller);
    state.vaults.insert(vault.id, vault);
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
        super::vaults::load_owned(state, &caller, head.vault_id, lifecycle::content_writable)?;
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
                .get(&(head.vault_id, item_id))
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

    let storage_before = super::metrics::storage_of(&vault);
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
            let mut header = state.header.get().clone();
            let item_id = header.next_item_id.max(1);
            header.next_item_id = item_id + 1;
            state.header.set(header);
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
    super::vaults::touch_owner(state, &mut vault, now, caller);
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
    vaults::refresh_setup(state, &mut vault, now, caller);
    super::metrics::storage_changed(state, storage_before, &vault);
    state
        .content_items
        .insert((item.vault_id, item.item_id), item.clone());
    state.vaults.insert(vault.id, vault);
    Ok(item_view(&item))
}

/// Removes an upload's records but keeps its chunks (they now belong to the item).
fn drop_upload_records_keep_blob(state: &mut State, head: &UploadHead, p: &UploadProgress) {
    let id = head.upload_id;
    state.uploads.remove(&(TAG_HEAD, id, 0));
    state.uploads.remove(&(TAG_PROGRESS, id, 0));
    state.uploads.remove(&(TAG_META, id, 0));
    state.uploads.remove(&(TAG_BY_IDLE, p.last_activity, id));
    state.uploads.remove(&(TAG_BY_VAULT, head.vault_id, id));
    if let Some(hash) = head.idempotency_hash {
        state.idempotency.remove(&hash);
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
    let before = super::metrics::storage_of(&vault);
    vault.storage_reserved_bytes = vault.storage_reserved_bytes.saturating_sub(head.size);
    super::metrics::storage_changed(state, before, &vault);
    super::vaults::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::UploadAborted,
        format!("upload={upload_id}"),
    );
    state.vaults.insert(vault.id, vault);
    Ok(())
}

/// Collects uploads idle for `durations.upload_idle_secs` (oldest first, at most
/// `max_batch`): pages freed, reservation released, audit-logged. Returns how many were
/// collected; a backlog continues on the next call. Called by the scheduler.
pub fn collect_stale_uploads(state: &mut State, now: u64, max_batch: usize) -> usize {
    let cutoff = now.saturating_sub(idle_ns(state));
    let due: Vec<UploadId> = state
        .uploads
        .keys_range((TAG_BY_IDLE, 0, 0)..=(TAG_BY_IDLE, cutoff, u64::MAX))
        .filter(|(_, at, _)| at.saturating_add(idle_ns(state)) <= now)
        .take(max_batch)
        .map(|(_, _, id)| id)
        .collect();
    for upload_id in &due {
        let Some(head) = head(state, *upload_id) else {
            continue;
        };
        drop_upload(state, &head);
        if let Some(mut vault) = state.vaults.get(&head.vault_id) {
            let before = super::metrics::storage_of(&vault);
            vault.storage_reserved_bytes = vault.storage_reserved_bytes.saturating_sub(head.size);
            super::metrics::storage_changed(state, before, &vault);
            audit::append(
                state,
                &mut vault,
                now,
                Principal::management_canister(),
                AuditAction::UploadExpired,
                format!("upload={upload_id}"),
            );
            state.vaults.insert(vault.id, vault);
        }
    }
    due.len()
}

/// Removes download tickets past their expiry and download counters of past days (at most
/// `max_batch` of each). Returns how many entries were removed. Called by the scheduler.
pub fn collect_expired_tickets(state: &mut State, now: u64, max_batch: usize) -> usize {
    // Ticket ids grow with time and every ticket lives equally long, so expired tickets are
    // (nearly) a prefix; stop at the first live one.
    // The header keeps where the collected prefix ends, so a run never rescans it.
    let mut header = state.header.get().clone();
    let mut live = None;
    let expired: Vec<u64> = state
        .download_tickets
        .range_from(header.tickets_collected_below)
        .take(max_batch)
        .take_while(|(id, t)| {
            let gone = t.expires_at <= now;
            if !gone {
                live = Some(*id);
            }
            gone
        })
        .map(|(id, _)| id)
        .collect();
    for id in &expired {
        state.download_tickets.remove(id);
    }
    let below = live.unwrap_or_else(|| expired.last().map_or(0, |id| id + 1));
    if below > header.tickets_collected_below {
        header.tickets_collected_below = below;
        state.header.set(header);
    }
    let today = now / NANOS_PER_DAY;
    let old: Vec<(Principal, u64)> = state
        .download_counters
        .keys()
        .filter(|(_, day)| *day < today)
        .take(max_batch)
        .collect();
    for key in &old {
        state.download_counters.remove(key);
    }
    expired.len() + old.len()
}

// ------------------------------------------------------------------ items

/// `delete_item`: the owner removes an item and frees its space.
pub fn delete_item(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    item_id: ItemId,
) -> VaultResult<()> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault =
        super::vaults::load_owned(state, &caller, vault_id, lifecycle::content_writable)?;
    let item = state
        .content_items
        .get(&(vault_id, item_id))
        .ok_or(VaultError::NotFound)?;
    free_blob(state, item.blob_id);
    state.content_items.remove(&(vault_id, item_id));
    vault.item_count = vault.item_count.saturating_sub(1);
    let before = super::metrics::storage_of(&vault);
    vault.storage_committed_bytes = vault.storage_committed_bytes.saturating_sub(item.size);
    super::metrics::storage_changed(state, before, &vault);
    super::vaults::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::ItemDeleted,
        format!("item={item_id} size={}", item.size),
    );
    vaults::refresh_setup(state, &mut vault, now, caller);
    state.vaults.insert(vault.id, vault);
    Ok(())
}

/// `update_item_meta`: the owner replaces an item's `encrypted_meta` and recipients (e.g.
/// data keys re-wrapped when heirs change) without re-uploading the payload. `recipients`
/// replaces the old list (`None` = every heir). The payload, its SHA-256 and `version` stay;
/// `updated_at` moves.
pub fn update_item_meta(
    state: &mut State,
    rt: &impl Runtime,
    args: UpdateItemMetaArgs,
) -> VaultResult<ItemView> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault =
        super::vaults::load_owned(state, &caller, args.vault_id, lifecycle::content_writable)?;
    validate_meta(&args.encrypted_meta)?;
    validate_recipients(state, args.vault_id, args.recipients.as_deref())?;
    let mut item = state
        .content_items
        .get(&(args.vault_id, args.item_id))
        .ok_or(VaultError::NotFound)?;
    item.encrypted_meta = args.encrypted_meta.into_vec();
    item.recipients = args.recipients;
    item.updated_at = now;
    super::vaults::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::ItemMetaUpdated,
        format!(
            "item={} meta_bytes={} recipients={}",
            item.item_id,
            item.encrypted_meta.len(),
            item.recipients.as_ref().map_or(-1, |r| r.len() as i64)
        ),
    );
    state
        .content_items
        .insert((item.vault_id, item.item_id), item.clone());
    state.vaults.insert(vault.id, vault);
    Ok(item_view(&item))
}

/// Whether item `item` is addressed to heir `member_id`.
fn addressed_to(item: &ItemRecord, member_id: u32) -> bool {
    item.recipients
        .as_ref()
        .is_none_or(|r| r.contains(&member_id))
}

/// What the caller may read of a vault's content: `None` = everything (owner), `Some(id)` =
/// items addressed to heir `id`. Witnesses, outsiders and heirs before unlock: `NotAuthorized`.
fn reader(vault: &VaultRecord, access: Access) -> VaultResult<Option<u32>> {
    match access {
        Access::Owner => Ok(None),
        Access::Member {
            member_id,
            role: MemberRole::Heir,
        } if vault.status == VaultStatus::Unlockable => Ok(Some(member_id)),
        _ => Err(VaultError::NotAuthorized),
    }
}

/// `list_items`: metadata (never payload) by ascending item id. The owner sees every item;
/// heirs, once the vault is `Unlockable`, the items addressed to them.
pub fn list_items(
    state: &State,
    rt: &impl Runtime,
    vault_id: VaultId,
    args: PageArgs,
) -> VaultResult<Page<ItemView>> {
    let (vault, access) = access::load(state, vault_id, &rt.caller(), Need::OwnerOrMember)?;
    let heir = reader(&vault, access)?;
    let limit = validation::page_limit(args.limit)?;
    let from = args.start_after.map_or(0, |c| c.saturating_add(1));
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for entry in state
        .content_items
        .range((vault_id, from)..=(vault_id, u64::MAX))
    {
        let (key, item) = entry.into_pair();
        if items.len() == limit {
            more = true;
            break;
        }
        last = Some(key.1);
        if heir.is_none_or(|m| addressed_to(&item, m)) {
            items.push(item_view(&item));
        }
    }
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}

// ------------------------------------------------------------------ downloads

/// `request_download`: checks the caller's right to the item, counts the download against
/// the daily allowance (owners unlimited) and returns a ticket.
pub fn request_download(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    item_id: ItemId,
) -> VaultResult<DownloadTicket> {
    let caller = rt.caller();
    let now = rt.now();
    let (mut vault, access) = access::load(state, vault_id, &caller, Need::OwnerOrMember)?;
    let heir = reader(&vault, access)?;
    let item = state
        .content_items
        .get(&(vault_id, item_id))
        .ok_or(VaultError::NotFound)?;
    if let Some(member_id) = heir {
        if !addressed_to(&item, member_id) {
            return Err(VaultError::NotAuthorized);
        }
    }
    let per_day = state.config().limits.downloads_per_day;
    let ticket_secs = state.config().durations.download_ticket_secs;
    let day = now / NANOS_PER_DAY;
    let counted = heir.is_some();
    let used = state.download_counters.get(&(caller, day)).unwrap_or(0);
    if counted && used >= per_day {
        return Err(VaultError::DownloadLimitReached {
            resets_at: (day + 1) * NANOS_PER_DAY,
        });
    }
    let expires_at = now.saturating_add(ticket_secs.saturating_mul(NANOS_PER_SEC));
    let mut header = state.header.get().clone();
    let ticket_id = header.next_ticket_id.max(1);
    header.next_ticket_id = ticket_id + 1;
    state.header.set(header);
    if counted {
        state.download_counters.insert((caller, day), used + 1);
    }
    state.download_tickets.insert(
        ticket_id,
        TicketRecord {
            ticket_id,
            vault_id,
            item_id,
            blob_id: item.blob_id,
            holder: caller,
            expires_at,
            chunk_count: item.chunk_count,
        },
    );
    if access == Access::Owner {
        super::vaults::touch_owner(state, &mut vault, now, caller);
    }
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::DownloadRequested,
        format!("item={item_id} ticket={ticket_id}"),
    );
    state.vaults.insert(vault.id, vault);
    Ok(DownloadTicket {
        ticket_id,
        vault_id,
        item_id,
        size: item.size,
        chunk_count: item.chunk_count,
        chunk_bytes: item.chunk_bytes,
        sha256: serde_bytes::ByteBuf::from(item.sha256),
        expires_at,
    })
}

/// Where chunk `index` of a ticket's item is, after checking the ticket: only its holder,
/// before expiry (`TokenExpired`), while the holder still may read (heirs: vault still
/// `Unlockable`), and while the item still has that payload (`NotFound` after delete/replace).
pub fn download_chunk_loc(
    state: &State,
    caller: &Principal,
    now: u64,
    ticket_id: TicketId,
    index: u32,
) -> VaultResult<ChunkLoc> {
    let ticket = state
        .download_tickets
        .get(&ticket_id)
        .ok_or(VaultError::NotFound)?;
    if ticket.holder != *caller {
        return Err(VaultError::NotAuthorized);
    }
    if now >= ticket.expires_at {
        return Err(VaultError::TokenExpired);
    }
    let (vault, access) = access::load(state, ticket.vault_id, caller, Need::OwnerOrMember)?;
    reader(&vault, access)?;
    if index >= ticket.chunk_count {
        return Err(VaultError::invalid("index", "past the last chunk"));
    }
    state
        .content_chunks
        .get(ticket.blob_id, index)
        .ok_or(VaultError::NotFound)
}

/// `get_download_chunk` for native callers: the chunk's bytes.
pub fn get_download_chunk(
    state: &State,
    rt: &impl Runtime,
    ticket_id: TicketId,
    index: u32,
) -> VaultResult<Vec<u8>> {
    let loc = download_chunk_loc(state, &rt.caller(), rt.now(), ticket_id, index)?;
    Ok(pages::read(state, &loc))
}

// ------------------------------------------------------------------ purge

/// Frees all content of a vault (items, open uploads) without touching the vault record.
pub fn free_vault_content(state: &mut State, vault_id: VaultId) {
    for upload_id in open_uploads_in(state, vault_id) {
        if let Some(head) = head(state, upload_id) {
            drop_upload(state, &head);
        }
    }
    let items: Vec<ItemRecord> = state
        .content_items
        .range((vault_id, 0)..=(vault_id, u64::MAX))
        .map(|e| e.into_pair().1)
        .collect();
    for item in items {
        free_blob(state, item.blob_id);
        state.content_items.remove(&(vault_id, item.item_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::config::{Config, InitArgs, Limits};
    use crate::domain::records::MemberRecord;
    use crate::domain::types::{CreateVaultArgs, ItemKind, PlanSelection, Tier};
    use crate::runtime::testing::MockRuntime;
    use ic_stable_structures::DefaultMemoryImpl;

    const CHUNK: u32 = 1024;
    const T0: u64 = 1_767_225_600_000_000_000;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }
    const OWNER: u8 = 1;
    const HEIR1: u8 = 2;
    const HEIR2: u8 = 3;
    const WITNESS: u8 = 4;
    const STRANGER: u8 = 5;

    struct Env {
        s: State,
        rt: MockRuntime,
        vault: VaultId,
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
            .collect()
    }

    fn sha(b: &[u8]) -> serde_bytes::ByteBuf {
        serde_bytes::ByteBuf::from(Sha256::digest(b).to_vec())
    }

    /// A Basic vault (5 MiB) in NeedSetup with two heirs and a witness, 1 KiB chunks (every
    /// tier capped at 64 MiB, what 65 536 chunks of 1 KiB hold).
    fn env() -> Env {
        let mut s = State::open(DefaultMemoryImpl::default());
        let mut pricing = crate::domain::config::Pricing::default();
        for t in &mut pricing.tiers {
            t.storage_bytes = t.storage_bytes.min(64 << 20);
        }
        let init = InitArgs {
            limits: Some(Limits {
                max_chunk_bytes: CHUNK,
                ..Default::default()
            }),
            pricing: Some(pricing),
            ..Default::default()
        };
        s.set_config(Config::from_init(init, p(9)).unwrap());
        s.stamp_layout();
        let rt = MockRuntime::new(T0, p(OWNER));
        let v = vaults::create_vault(
            &mut s,
            &rt,
            CreateVaultArgs {
                name: "v".into(),
                plan: PlanSelection {
                    tier: Tier::Basic,
                    heir_slots: 2,
                    witness_slot: true,
                },
                owner_age: 40,
                idempotency_key: None,
            },
        )
        .unwrap();
        vaults::confirm_creation_payment(&mut s, v.id, T0, p(9)).unwrap();
        for (member_id, who, role) in [
            (1, HEIR1, MemberRole::Heir),
            (2, HEIR2, MemberRole::Heir),
            (3, WITNESS, MemberRole::Witness),
        ] {
            s.members.insert(
                (v.id, member_id),
                MemberRecord {
                    vault_id: v.id,
                    member_id,
                    principal: p(who),
                    role,
                    name: "m".into(),
                    share_index: member_id as u8,
                    joined_at: T0,
                    relation: Default::default(),
                    email_hint: None,
                    can_trigger_unlock: true,
                    count_as_approver: true,
                    invite_id: u64::from(member_id),
                },
            );
            s.vaults_by_member.insert((p(who), v.id), member_id);
        }
        Env { s, rt, vault: v.id }
    }

    impl Env {
        fn as_(&self, who: u8) -> &MockRuntime {
            self.rt.as_caller(p(who))
        }
        fn begin(&mut self, size: u64, sha: serde_bytes::ByteBuf) -> VaultResult<UploadView> {
            self.begin_with(size, sha, None, None)
        }
        fn begin_with(
            &mut self,
            size: u64,
            sha: serde_bytes::ByteBuf,
            recipients: Option<Vec<u32>>,
            replaces: Option<ItemId>,
        ) -> VaultResult<UploadView> {
            self.rt.as_caller(p(OWNER));
            begin_upload(
                &mut self.s,
                &self.rt,
                BeginUploadArgs {
                    vault_id: self.vault,
                    kind: ItemKind::File,
                    size,
                    sha256: sha,
                    encrypted_meta: serde_bytes::ByteBuf::from(vec![7; 100]),
                    recipients,
                    replaces,
                    idempotency_key: None,
                },
            )
        }
        fn chunk(&mut self, up: UploadId, i: u32, b: &[u8]) -> VaultResult<UploadView> {
            self.rt.as_caller(p(OWNER));
            upload_chunk(&mut self.s, &self.rt, up, i, b)
        }
        fn finish(&mut self, up: UploadId) -> VaultResult<ItemView> {
            self.rt.as_caller(p(OWNER));
            finish_upload(&mut self.s, &self.rt, up)
        }
        /// A whole upload; returns the item.
        fn put(&mut self, payload: &[u8], recipients: Option<Vec<u32>>) -> ItemView {
            let up = self
                .begin_with(payload.len() as u64, sha(payload), recipients, None)
                .unwrap();
            for (i, c) in payload.chunks(CHUNK as usize).enumerate() {
                self.chunk(up.upload_id, i as u32, c).unwrap();
            }
            self.finish(up.upload_id).unwrap()
        }
        fn download(&mut self, who: u8, item: ItemId) -> VaultResult<Vec<u8>> {
            self.rt.as_caller(p(who));
            let t = request_download(&mut self.s, &self.rt, self.vault, item)?;
            let mut out = Vec::new();
            for i in 0..t.chunk_count {
                out.extend(get_download_chunk(&self.s, &self.rt, t.ticket_id, i)?);
            }
            assert_eq!(out.len() as u64, t.size);
            assert_eq!(sha(&out), t.sha256);
            Ok(out)
        }
        fn vault(&self) -> VaultRecord {
            self.s.vaults.get(&self.vault).unwrap()
        }
        fn set_status(&mut self, status: VaultStatus) {
            let mut v = self.vault();
            v.status = status;
            self.s.vaults.insert(v.id, v);
        }
        /// Everything observable about content, to check that refused calls change nothing.
        fn snapshot(&self) -> String {
            let v = self.vault();
            let uploads: Vec<_> = self.s.uploads.iter().map(|e| e.into_pair()).collect();
            let chunks: Vec<_> = self.s.content_chunks.iter().collect();
            let items: Vec<_> = self.s.content_items.iter().map(|e| e.into_pair()).collect();
            let free: Vec<_> = self.s.content_free.iter().map(|e| e.into_pair()).collect();
            format!(
                "{} {} {} {} {:?} {:?} {:?} {:?} {:?}",
                v.item_count,
                v.storage_committed_bytes,
                v.storage_reserved_bytes,
                v.audit_next_seq,
                uploads,
                chunks,
                items,
                free,
                self.s.header.get()
            )
        }
    }

    #[test]
    fn resumable_hash_equals_sha256_for_any_split() {
        let payload = data(1000, 3);
        for len in [0usize, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000] {
            for split in [1usize, 7, 63, 64, 65, 200] {
                let mut h = HashState::new();
                for piece in payload[..len].chunks(split) {
                    h.update(piece);
                }
                let want: [u8; 32] = Sha256::digest(&payload[..len]).into();
                assert_eq!(h.finalize(), want, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn uploads_of_various_sizes_download_identical() {
        let mut e = env();
        let c = CHUNK as usize;
        for (len, seed) in [(1, 1), (c, 2), (c * 10 + c / 2, 3), (2 * c - 1, 4)] {
            let payload = data(len, seed);
            let item = e.put(&payload, None);
            assert_eq!(item.size, len as u64);
            assert_eq!(item.chunk_count as usize, len.div_ceil(c));
            assert_eq!(e.download(OWNER, item.item_id).unwrap(), payload);
        }
        let v = e.vault();
        assert_eq!(v.item_count, 4);
        assert_eq!(v.storage_reserved_bytes, 0);
        assert_eq!(
            v.storage_committed_bytes,
            (1 + c + c * 10 + c / 2 + 2 * c - 1) as u64
        );
        let page = list_items(&e.s, e.as_(OWNER), e.vault, PageArgs::default()).unwrap();
        assert_eq!(page.items.len(), 4);
        assert_eq!(page.items[0].encrypted_meta.as_slice(), &[7; 100][..]);
    }

    #[test]
    fn empty_payload_is_refused() {
        let mut e = env();
        let before = e.snapshot();
        assert!(matches!(
            e.begin(0, sha(b"")),
            Err(VaultError::InvalidInput { ref field, .. }) if field == "size"
        ));
        assert_eq!(e.snapshot(), before);
    }

    #[test]
    fn bad_chunks_and_bad_finishes_change_nothing() {
        let mut e = env();
        let c = CHUNK as usize;
        let payload = data(3 * c, 5);
        let up = e
            .begin(payload.len() as u64, sha(&payload))
            .unwrap()
            .upload_id;
        e.chunk(up, 0, &payload[..c]).unwrap();
        let before = e.snapshot();
        // Out of order (skip ahead, and go back two).
        assert_eq!(
            e.chunk(up, 2, &payload[2 * c..]),
            Err(VaultError::ChunkOutOfOrder { expected: 1 })
        );
        // Repeat of the last chunk with different bytes.
        assert_eq!(
            e.chunk(up, 0, &payload[c..2 * c]),
            Err(VaultError::ChunkOutOfOrder { expected: 1 })
        );
        // Over the maximum.
        assert!(matches!(
            e.chunk(up, 1, &data(c + 1, 0)),
            Err(VaultError::InvalidInput { .. })
        ));
        // A short chunk that is not the last.
        assert!(matches!(
            e.chunk(up, 1, &payload[c..c + 10]),
            Err(VaultError::InvalidInput { .. })
        ));
        // Someone else's upload.
        e.rt.as_caller(p(STRANGER));
        assert_eq!(
            upload_chunk(&mut e.s, &e.rt, up, 1, &payload[c..2 * c]),
            Err(VaultError::NotAuthorized)
        );
        assert_eq!(
            finish_upload(&mut e.s, &e.rt, up),
            Err(VaultError::NotAuthorized)
        );
        assert_eq!(
            abort_upload(&mut e.s, &e.rt, up),
            Err(VaultError::NotAuthorized)
        );
        // Too early to finish.
        assert_eq!(
            e.finish(up),
            Err(VaultError::SizeMismatch {
                expected: 3 * c as u64,
                actual: c as u64
            })
        );
        assert_eq!(e.snapshot(), before);
        // A repeat with identical bytes is accepted and changes nothing.
        assert_eq!(e.chunk(up, 0, &payload[..c]).unwrap().next_index, 1);
        assert_eq!(e.snapshot(), before);
        e.chunk(up, 1, &payload[c..2 * c]).unwrap();
        e.chunk(up, 2, &payload[2 * c..]).unwrap();
        assert_eq!(e.finish(up).unwrap().size, 3 * c as u64);

        // Wrong SHA-256: refused, nothing committed, the reservation stays until abort.
        let up = e.begin(10, sha(b"other")).unwrap().upload_id;
        e.chunk(up, 0, &data(10, 1)).unwrap();
        let before = e.snapshot();
        assert_eq!(e.finish(up), Err(VaultError::ChecksumMismatch));
        assert_eq!(e.snapshot(), before);
        // More bytes than announced.
        let up2 = e.begin(c as u64 + 5, sha(b"x")).unwrap().upload_id;
        e.chunk(up2, 0, &data(c, 1)).unwrap();
        let before = e.snapshot();
        assert_eq!(
            e.chunk(up2, 1, &data(6, 1)),
            Err(VaultError::SizeMismatch {
                expected: c as u64 + 5,
                actual: c as u64 + 6
            })
        );
        assert_eq!(e.snapshot(), before);
        let committed = e.vault().storage_committed_bytes;
        e.rt.as_caller(p(OWNER));
        abort_upload(&mut e.s, &e.rt, up).unwrap();
        abort_upload(&mut e.s, &e.rt, up2).unwrap();
        let v = e.vault();
        assert_eq!(v.storage_reserved_bytes, 0);
        assert_eq!(v.storage_committed_bytes, committed);
        assert_eq!(v.item_count, 1);
        assert_eq!(e.finish(up), Err(VaultError::NotFound));
    }

    #[test]
    fn quota_counts_committed_and_open_reservations() {
        let mut e = env();
        let limit = 5 * 1024 * 1024;
        let a = e.begin(3 * 1024 * 1024, sha(b"a")).unwrap();
        let before = e.snapshot();
        assert_eq!(
            e.begin(3 * 1024 * 1024, sha(b"b")),
            Err(VaultError::QuotaExceeded {
                requested: 3 * 1024 * 1024,
                available: limit - 3 * 1024 * 1024
            })
        );
        assert_eq!(
            e.begin(limit + 1, sha(b"b")),
            Err(VaultError::QuotaExceeded {
                requested: limit + 1,
                available: limit - 3 * 1024 * 1024
            })
        );
        assert_eq!(e.snapshot(), before);
        assert!(e.begin(2 * 1024 * 1024, sha(b"b")).is_ok());
        assert!(matches!(
            e.begin(1, sha(b"c")),
            Err(VaultError::QuotaExceeded { available: 0, .. })
        ));
        e.rt.as_caller(p(OWNER));
        abort_upload(&mut e.s, &e.rt, a.upload_id).unwrap();
        assert!(e.begin(1, sha(b"c")).is_ok());
    }

    #[test]
    fn item_and_open_upload_limits() {
        let mut e = env();
        let mut config = e.s.config().clone();
        config.limits.max_items_per_vault = 2;
        e.s.set_config(config);
        e.put(b"one", None);
        e.begin(1, sha(b"x")).unwrap();
        assert_eq!(
            e.begin(1, sha(b"y")),
            Err(VaultError::PlanLimit {
                resource: "items".into(),
                limit: 2
            })
        );
    }

    #[test]
    fn delete_and_replace_free_space_and_pages() {
        let mut e = env();
        let c = CHUNK as usize;
        let old = data(4 * c, 1);
        let item = e.put(&old, None);
        assert_eq!(e.vault().status, VaultStatus::NeedSetup);
        let hwm = e.s.header.get().content_pages_hwm;
        // Replace: same id, new payload, old pages freed.
        let new = data(2 * c + 3, 2);
        let up = e
            .begin_with(new.len() as u64, sha(&new), None, Some(item.item_id))
            .unwrap();
        for (i, ch) in new.chunks(c).enumerate() {
            e.chunk(up.upload_id, i as u32, ch).unwrap();
        }
        let replaced = e.finish(up.upload_id).unwrap();
        assert_eq!(replaced.item_id, item.item_id);
        assert_eq!(replaced.version, 2);
        assert_eq!(e.download(OWNER, item.item_id).unwrap(), new);
        let v = e.vault();
        assert_eq!(
            (v.item_count, v.storage_committed_bytes),
            (1, new.len() as u64)
        );
        assert_eq!(v.storage_reserved_bytes, 0);
        assert_eq!(e.s.header.get().content_free_pages, 4);
        // Pages are reused before the high-water mark grows.
        e.put(&data(4 * c, 3), None);
        assert_eq!(e.s.header.get().content_free_pages, 0);
        assert_eq!(e.s.header.get().content_pages_hwm, hwm + 3);
        // Delete.
        e.rt.as_caller(p(OWNER));
        delete_item(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
        let v = e.vault();
        assert_eq!((v.item_count, v.storage_committed_bytes), (1, 4 * c as u64));
        assert_eq!(e.s.header.get().content_free_pages, 3);
        assert_eq!(
            delete_item(&mut e.s, &e.rt, e.vault, item.item_id),
            Err(VaultError::NotFound)
        );
    }

    #[test]
    fn a_ticket_for_a_replaced_item_stops_working() {
        let mut e = env();
        let item = e.put(b"first", None);
        e.rt.as_caller(p(OWNER));
        let t = request_download(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
        e.rt.as_caller(p(OWNER));
        delete_item(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
        assert_eq!(
            get_download_chunk(&e.s, &e.rt, t.ticket_id, 0),
            Err(VaultError::NotFound)
        );
    }

    #[test]
    fn stale_uploads_are_collected_and_release_their_reservation() {
        let mut e = env();
        let up = e.begin(2 * CHUNK as u64, sha(b"x")).unwrap().upload_id;
        e.chunk(up, 0, &data(CHUNK as usize, 1)).unwrap();
        let fresh = e.begin(5, sha(b"y")).unwrap().upload_id;
        assert_eq!(e.vault().storage_reserved_bytes, 2 * CHUNK as u64 + 5);
        let day = 86_400 * NANOS_PER_SEC;
        e.rt.advance(day / 2);
        e.chunk(fresh, 0, b"abcde").unwrap();
        e.rt.advance(day / 2);
        // The first upload is idle for 24 h: refused, then collected; the other one stays.
        assert_eq!(
            e.chunk(up, 1, &data(CHUNK as usize, 1)),
            Err(VaultError::UploadExpired)
        );
        assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 1);
        assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 0);
        assert_eq!(e.vault().storage_reserved_bytes, 5);
        assert_eq!(e.s.header.get().content_free_pages, 1);
        assert_eq!(e.finish(up), Err(VaultError::NotFound));
        assert!(e.finish(fresh).is_err()); // wrong hash, but still open
        e.rt.advance(day);
        assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 1);
        assert_eq!(e.vault().storage_reserved_bytes, 0);
        assert!(e.s.uploads.is_empty());
    }

    #[test]
    fn an_upload_survives_reopening_the_memory() {
        let memory = DefaultMemoryImpl::default();
        let mut e = env();
        // Rebuild the env over a memory we keep.
        let mut s = State::open(memory.clone());
        s.set_config(e.s.config().clone());
        std::mem::swap(&mut e.s, &mut s);
        drop(s);
        let rt = MockRuntime::new(T0, p(OWNER));
        let v = vaults::create_vault(
            &mut e.s,
            &rt,
            CreateVaultArgs {
                name: "w".into(),
                plan: PlanSelection {
                    tier: Tier::Basic,
                    heir_slots: 1,
                    witness_slot: false,
                },
                owner_age: 30,
                idempotency_key: None,
            },
        )
        .unwrap();
        vaults::confirm_creation_payment(&mut e.s, v.id, T0, p(9)).unwrap();
        e.vault = v.id;
        let payload = data(5 * CHUNK as usize + 17, 9);
        let up = e
            .begin(payload.len() as u64, sha(&payload))
            .unwrap()
            .upload_id;
        for i in 0..3 {
            let c = CHUNK as usize;
            e.chunk(up, i, &payload[i as usize * c..(i as usize + 1) * c])
                .unwrap();
        }
        let mut reopened = State::open(memory);
        reopened.migrate().unwrap();
        std::mem::swap(&mut e.s, &mut reopened);
        drop(reopened);
        let c = CHUNK as usize;
        assert_eq!(
            e.chunk(up, 5, &payload[5 * c..]),
            Err(VaultError::ChunkOutOfOrder { expected: 3 })
        );
        for i in 3..6usize {
            e.chunk(
                up,
                i as u32,
                &payload[i * c..((i + 1) * c).min(payload.len())],
            )
            .unwrap();
        }
        let item = e.finish(up).unwrap();
        assert_eq!(e.download(OWNER, item.item_id).unwrap(), payload);
    }

    #[test]
    fn heirs_read_only_their_items_after_unlock_within_the_daily_allowance() {
        let mut e = env();
        let for_all = e.put(b"to everyone", None);
        let for_heir1 = e.put(b"to heir 1", Some(vec![1]));
        let for_heir2 = e.put(b"to heir 2", Some(vec![2]));
        // Recipients must be heirs of this vault.
        assert!(matches!(
            e.begin_with(1, sha(b"x"), Some(vec![3]), None),
            Err(VaultError::InvalidInput { .. })
        ));
        assert!(matches!(
            e.begin_with(1, sha(b"x"), Some(vec![1, 1]), None),
            Err(VaultError::InvalidInput { .. })
        ));
        // Before unlock: heirs, witness, strangers refused.
        for who in [HEIR1, WITNESS, STRANGER] {
            e.rt.as_caller(p(who));
            assert_eq!(
                request_download(&mut e.s, &e.rt, e.vault, for_all.item_id),
                Err(VaultError::NotAuthorized)
            );
            assert_eq!(
                list_items(&e.s, &e.rt, e.vault, PageArgs::default()),
                Err(VaultError::NotAuthorized)
            );
        }
        e.set_status(VaultStatus::Unlockable);
        // Content is frozen.
        assert_eq!(
            e.begin(1, sha(b"x")),
            Err(VaultError::InvalidState {
                current: VaultStatus::Unlockable
            })
        );
        let ids = |e: &Env, who| -> Vec<ItemId> {
            list_items(&e.s, e.as_(who), e.vault, PageArgs::default())
                .unwrap()
                .items
                .iter()
                .map(|i| i.item_id)
                .collect()
        };
        assert_eq!(ids(&e, HEIR1), vec![for_all.item_id, for_heir1.item_id]);
        assert_eq!(ids(&e, HEIR2), vec![for_all.item_id, for_heir2.item_id]);
        assert_eq!(ids(&e, OWNER).len(), 3);
        e.rt.as_caller(p(WITNESS));
        assert_eq!(
            request_download(&mut e.s, &e.rt, e.vault, for_all.item_id),
            Err(VaultError::NotAuthorized)
        );
        assert_eq!(
            e.download(HEIR1, for_heir2.item_id),
            Err(VaultError::NotAuthorized)
        );
        assert_eq!(e.download(HEIR1, for_all.item_id).unwrap(), b"to everyone");
        assert_eq!(e.download(HEIR1, for_heir1.item_id).unwrap(), b"to heir 1");
        e.rt.as_caller(p(HEIR1));
        let t3 = request_download(&mut e.s, &e.rt, e.vault, for_all.item_id).unwrap();
        let day = (e.rt.now() / NANOS_PER_DAY + 1) * NANOS_PER_DAY;
        let before = e.snapshot();
        assert_eq!(
            request_download(&mut e.s, &e.rt, e.vault, for_all.item_id),
            Err(VaultError::DownloadLimitReached { resets_at: day })
        );
        assert_eq!(e.snapshot(), before);
        // Another heir and the owner are not affected.
        assert!(e.download(HEIR2, for_heir2.item_id).is_ok());
        for _ in 0..5 {
            assert!(e.download(OWNER, for_heir2.item_id).is_ok());
        }
        // A ticket is its holder's only, and expires after an hour.
        e.rt.as_caller(p(HEIR2));
        assert_eq!(
            get_download_chunk(&e.s, &e.rt, t3.ticket_id, 0),
            Err(VaultError::NotAuthorized)
        );
        e.rt.as_caller(p(HEIR1));
        assert!(get_download_chunk(&e.s, &e.rt, t3.ticket_id, 0).is_ok());
        e.rt.advance(3600 * NANOS_PER_SEC);
        assert_eq!(
            get_download_chunk(&e.s, &e.rt, t3.ticket_id, 0),
            Err(VaultError::TokenExpired)
        );
        // The next day the allowance is back; old tickets and counters get collected.
        e.rt.now.set(day);
        assert!(e.download(HEIR1, for_all.item_id).is_ok());
        let removed = collect_expired_tickets(&mut e.s, e.rt.now(), 100);
        assert!(removed >= 5, "{removed}");
        assert_eq!(e.s.download_counters.len(), 1);
    }

    #[test]
    fn deleting_the_vault_and_purging_free_all_content() {
        let mut e = env();
        e.put(&data(3000, 1), None);
        e.begin(500, sha(b"x")).unwrap();
        e.rt.as_caller(p(OWNER));
        vaults::delete_vault(&mut e.s, &e.rt, e.vault).unwrap();
        assert!(e.s.content_items.is_empty());
        assert!(e.s.uploads.is_empty());
        assert!(e.s.content_chunks.is_empty());
        assert_eq!(
            e.s.header.get().content_free_pages,
            e.s.header.get().content_pages_hwm
        );

        let mut e = env();
        e.put(&data(3000, 1), None);
        {
            // What the scheduler does on `Unlockable → Expired`.
            let mut v = e.s.vaults.get(&e.vault).unwrap();
            crate::domain::vaults::purge_payload(&mut e.s, &mut v);
            e.s.vaults.insert(e.vault, v);
        }
        let v = e.vault();
        assert_eq!((v.item_count, v.storage_committed_bytes), (0, 0));
        assert!(e.s.content_chunks.is_empty());
    }

    /// The storage totals of `get_metrics` follow every path that changes a vault's numbers
    /// and always equal the sum over the vaults.
    #[test]
    fn metrics_storage_totals_follow_uploads_deletes_collection_and_purge() {
        use crate::domain::metrics::{current, recount};
        let mut e = env();
        let check = |e: &Env, committed: u64, reserved: u64| {
            let now = e.rt.now();
            let c = current(&e.s, now);
            assert_eq!(
                (c.storage_committed_bytes, c.storage_reserved_bytes),
                (committed, reserved)
            );
            assert_eq!(c, recount(&e.s, now));
        };
        check(&e, 0, 0);
        let item = e.put(&data(3000, 1), None);
        check(&e, 3000, 0);
        let open = e.begin(500, sha(b"x")).unwrap().upload_id;
        check(&e, 3000, 500);
        // A refused begin (over quota) changes nothing.
        assert!(e.begin(1 << 40, sha(b"y")).is_err());
        check(&e, 3000, 500);
        // Replace 3000 bytes by 100.
        let new = data(100, 2);
        let up = e
            .begin_with(100, sha(&new), None, Some(item.item_id))
            .unwrap();
        check(&e, 3000, 600);
        e.chunk(up.upload_id, 0, &new).unwrap();
        e.finish(up.upload_id).unwrap();
        check(&e, 100, 500);
        e.rt.as_caller(p(OWNER));
        abort_upload(&mut e.s, &e.rt, open).unwrap();
        check(&e, 100, 0);
        e.put(&data(200, 3), None);
        e.rt.as_caller(p(OWNER));
        delete_item(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
        check(&e, 200, 0);
        e.begin(50, sha(b"z")).unwrap();
        e.rt.advance(2 * 86_400 * NANOS_PER_SEC);
        assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 1);
        check(&e, 200, 0);
        e.begin(70, sha(b"w")).unwrap();
        check(&e, 200, 70);
        {
            // What the scheduler does on `Unlockable → Expired`.
            let mut v = e.s.vaults.get(&e.vault).unwrap();
            crate::domain::vaults::purge_payload(&mut e.s, &mut v);
            e.s.vaults.insert(e.vault, v);
        }
        check(&e, 0, 0);
        // Deleting a vault (tombstone) releases its numbers too.
        let mut e = env();
        e.put(&data(3000, 1), None);
        e.begin(500, sha(b"x")).unwrap();
        check(&e, 3000, 500);
        e.rt.as_caller(p(OWNER));
        vaults::delete_vault(&mut e.s, &e.rt, e.vault).unwrap();
        check(&e, 0, 0);
    }

    #[test]
    fn idempotent_begin_returns_the_open_upload() {
        let mut e = env();
        let args = BeginUploadArgs {
            vault_id: e.vault,
            kind: ItemKind::Letter,
            size: 10,
            sha256: sha(b"0123456789"),
            encrypted_meta: serde_bytes::ByteBuf::new(),
            recipients: None,
            replaces: None,
            idempotency_key: Some("k1".into()),
        };
        e.rt.as_caller(p(OWNER));
        let a = begin_upload(&mut e.s, &e.rt, args.clone()).unwrap();
        let b = begin_upload(&mut e.s, &e.rt, args.clone()).unwrap();
        assert_eq!(a, b);
        assert_eq!(e.vault().storage_reserved_bytes, 10);
        e.chunk(a.upload_id, 0, b"0123456789").unwrap();
        e.finish(a.upload_id).unwrap();
        e.rt.as_caller(p(OWNER));
        let c = begin_upload(&mut e.s, &e.rt, args).unwrap();
        assert_ne!(c.upload_id, a.upload_id);
    }
}
