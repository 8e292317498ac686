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
use super::error::{VaultError, VaultResult};
use super::lifecycle;
use super::validation;
use super::vault_core;
use super::vault_core::audit::{self, AuditAction};
use crate::model::records::{
    HashState, ItemRecord, MemberRole, TicketRecord, UploadHead, UploadProgress, VaultRecord,
};
use crate::model::types::{
    BeginUploadArgs, DownloadTicket, ItemId, ItemView, Page, PageArgs, TicketId,
    UpdateItemMetaArgs, UploadId, UploadView, VaultId, VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC,
};
use crate::runtime::Runtime;
use crate::storage::pages::{self, ChunkLoc};
use crate::storage::repositories::header::IdKind;
use crate::storage::State;

/// Largest `encrypted_meta`.
pub const MAX_META_BYTES: usize = 4096;
/// Most recipients one item may name.
pub const MAX_RECIPIENTS: usize = 64;
/// Most uploads open at once in one vault.
pub const MAX_OPEN_UPLOADS_PER_VAULT: u64 = 8;

mod downloads;
mod hash;
mod items;
mod uploads;

pub use downloads::*;
pub use items::*;
pub use uploads::*;

// ------------------------------------------------------------------ helpers

/// Frees every chunk of a blob (bounded by its chunk count).
fn free_blob(state: &mut State, blob_id: u64) {
    for loc in state.content_chunks.remove_blob(blob_id) {
        pages::free(state, &loc);
    }
}

// ------------------------------------------------------------------ purge

/// Frees all content of a vault (items, open uploads) without touching the vault record.
pub fn free_vault_content(state: &mut State, vault_id: VaultId) {
    for upload_id in open_uploads_in(state, vault_id) {
        if let Some(head) = head(state, upload_id) {
            drop_upload(state, &head);
        }
    }
    let items: Vec<ItemRecord> = state.content_items.in_vault(vault_id).collect();
    for item in items {
        free_blob(state, item.blob_id);
        state.content_items.remove(vault_id, item.item_id);
    }
}

#[cfg(test)]
mod tests;
