//! Records as they are stored in stable memory.
//!
//! Each record type has a schema version (see `storage::codec`); new fields are added as
//! `#[serde(default)]` so records written by older code still decode.

use candid::Principal;
use serde::{Deserialize, Serialize};

use super::types::{PlanSelection, UnlockRules, VaultId, VaultStatus};

/// Current version of the whole stable-memory layout. `post_upgrade` refuses anything newer
/// and migrates anything older before touching state.
pub const LAYOUT_VERSION: u32 = 1;

/// Layout version, id counters and aggregate counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageHeader {
    /// 0 in memory nobody has written yet; [`LAYOUT_VERSION`] after `init`.
    pub layout_version: u32,
    /// Next vault id to hand out (ids start at 1, never reused).
    pub next_vault_id: u64,
    /// Vaults per status, indexed by `VaultStatus::index()`.
    pub status_counts: Vec<u64>,
}

impl Default for StorageHeader {
    fn default() -> Self {
        StorageHeader {
            layout_version: 0,
            next_vault_id: 1,
            status_counts: vec![0; VaultStatus::ALL.len()],
        }
    }
}

/// A vault. A deleted vault keeps only id, owner, timestamps and final status (tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultRecord {
    pub id: VaultId,
    pub owner: Principal,
    pub name: String,
    pub status: VaultStatus,
    pub plan: PlanSelection,
    pub owner_age: u8,
    /// Creation price frozen at `create_vault`.
    pub price_e8s: u64,
    pub unlock_rules: Option<UnlockRules>,
    pub post_unlock_days: u16,
    pub audit_retention_days: u16,
    pub created_at: u64,
    pub updated_at: u64,
    pub status_changed_at: u64,
    pub paid_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub activated_at: Option<u64>,
    pub unlocked_at: Option<u64>,
    pub access_until: Option<u64>,
    pub deleted_at: Option<u64>,
    /// Last authenticated owner update or check-in.
    pub last_owner_activity: u64,
    /// Bytes of committed content.
    pub storage_committed_bytes: u64,
    /// Bytes reserved by open uploads.
    pub storage_reserved_bytes: u64,
    pub item_count: u32,
    pub heir_count: u32,
    pub witness_joined: bool,
    /// Next audit sequence number.
    pub audit_next_seq: u64,
    /// Hash of the last audit event (all zeros before the first).
    #[serde(with = "serde_bytes")]
    pub audit_head: Vec<u8>,
}

/// Role of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRole {
    Heir,
    Witness,
}

/// A principal that joined a vault through an invite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub vault_id: VaultId,
    pub member_id: u32,
    pub principal: Principal,
    pub role: MemberRole,
    pub name: String,
    pub share_index: u8,
    pub joined_at: u64,
}

/// One audit event. `hash = sha256(prev_hash ‖ seq ‖ at ‖ actor ‖ action ‖ details)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    pub at: u64,
    pub actor: Principal,
    pub action: String,
    pub details: String,
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
}

/// Stored configuration cell: `None` only before `init` has run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigCell(pub Option<super::config::Config>);
