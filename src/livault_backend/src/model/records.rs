//! Records as they are stored in stable memory.
//!
//! Each record type has a schema version (see `storage::codec`); new fields are added as
//! `#[serde(default)]` so records written by older code still decode.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use super::types::{ItemKind, PlanSelection, UnlockRules, VaultId, VaultStatus};

/// Current version of the whole stable-memory layout. `post_upgrade` refuses anything newer
/// and migrates anything older before touching state.
///
/// - 1: every record CBOR (version byte 1).
/// - 2: `VaultRecord`, `AuditEvent` and `StorageHeader` written in the compact binary
///   encoding (version byte 2, `storage::binary`); version-1 records still decode and are
///   rewritten on their next write, so the step 1 → 2 rewrites nothing. The bump makes older
///   code (which cannot read version-2 records) refuse this memory.
/// - 3: vault records, audit events, the scheduler queue, the chunk index and download
///   tickets leave their `StableBTreeMap`s (memory ids 2, 16, 17, 13, 20, retired) for
///   constant-cost structures: vaults and tickets in dense-id tables, audit events and chunk
///   locations in per-vault / per-blob index records, all over one slab allocator
///   (`storage::slab`, `storage::audit_log`, `storage::chunk_index`); queue entries in fixed
///   slots with a heap index (`storage::due_queue`). `post_upgrade` moves everything over once.
/// - 4: a vault's audit index is two levels of fixed-size pages under a root record instead of
///   one flat record capped at 65 535 events (issue #12, H1; `storage::audit_log`);
///   `post_upgrade` rebuilds each layout-3 record as pages (the event blocks stay).
/// - 5: members and the payment trail (sessions, journal entries, billing entries) written in
///   the compact binary encoding (version byte 2); their version-1 records still decode and
///   are rewritten on their next write, so the step 4 → 5 rewrites nothing. The bump makes
///   older code, which cannot read those version-2 records, refuse this memory (an upgrade
///   back to it traps and rolls back) instead of trapping later on the first such read.
/// - 6: the owner index leaves its `StableBTreeMap` (memory id 3, retired) for a salted
///   linear-hashing table whose buckets are records in the slab (`storage::owner_index`,
///   directory memory id 36), so its cost no longer grows with the number of owners;
///   `post_upgrade` builds it from the old map in one pass.
///   Also in 6: the record slab has a second series of block classes (96 B × 2^c, codes 15..=28; the
///   64 B × 2^c codes keep their meaning), and a vault's audit log starts as one packed
///   record (events inline, hashes chained, `storage::audit_log`) until it outgrows 512
///   bytes. Every layout-5 structure still reads as it is (paged logs stay paged), so the
///   step 5 → 6 rewrites nothing; the bump makes older code, which knows neither the new
///   classes nor packed records, refuse this memory.
///   Also in 6: the payment trail of a settled session shrinks (issue #14): sessions are written as
///   version 3 (the ICRC-1 account text as its owner, a journal base appended); billing
///   entries move to fixed 74-byte slots without the fields that are their session's
///   (memory 37, `BILLING_SLOTS`); the journal entries of a session with nothing left to
///   do are folded away. `post_upgrade` moves the billing entries into slots and folds the
///   settled journals once; version-2 sessions still decode and are rewritten on their
///   next write. The bump makes older code refuse this memory (it cannot see the slots).
///   Also in 6: packed audit events may keep their details in the compact encoding of
///   `storage::details` (bit 7 of the action byte); the layout-6 code before it was never
///   released.
/// - 7: the daily download counters are keyed `(day, principal)` (memory 38,
///   `DOWNLOAD_COUNTERS_BY_DAY`, a `DailyCounters` like the vault creations'), so the
///   collector removes a prefix instead of scanning every counter of the day on each tick;
///   `post_upgrade` moves them from the retired `(principal, day)` map (memory 19).
/// - 8: the five dense-id directories (vaults 25, audit roots 26, chunk index 28, tickets 29,
///   owner-index buckets 36) are `ic-stable-structures` `StableVec`s of 16-byte entries
///   instead of raw arrays of them (issue #14). Converted in place when the state is opened
///   (`storage::slab::convert_raw_directory`: the structures cannot open the raw format), on
///   the same memory ids; the slab and every record stay where they are.
pub const LAYOUT_VERSION: u32 = 8;

/// The first layout whose dense-id directories are `StableVec`s (see [`LAYOUT_VERSION`]).
pub const STABLE_VEC_DIRECTORIES: u32 = 8;

/// Layout version, id counters and aggregate counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageHeader {
    /// 0 in memory nobody has written yet; [`LAYOUT_VERSION`] after `init`.
    pub layout_version: u32,
    /// Next vault id to hand out (ids start at 1, never reused).
    pub next_vault_id: u64,
    /// Vaults per status, indexed by `VaultStatus::index()`.
    pub status_counts: Vec<u64>,
    // ---- content
    /// Next upload id (ids start at 1, never reused).
    #[serde(default)]
    pub next_upload_id: u64,
    /// Next item id (ids start at 1, never reused, shared by all vaults).
    #[serde(default)]
    pub next_item_id: u64,
    /// Next payload (blob) id: an upload's chunks are stored under it and the committed item
    /// keeps it, so a commit never moves or re-indexes chunks.
    #[serde(default)]
    pub next_blob_id: u64,
    /// Next download ticket id.
    #[serde(default)]
    pub next_ticket_id: u64,
    /// Content pages ever handed out (pages past this are unused).
    #[serde(default)]
    pub content_pages_hwm: u64,
    /// Content pages on the free list.
    #[serde(default)]
    pub content_free_pages: u64,
    // ---- metrics
    /// Aggregates for `get_metrics`, updated where the events happen (`domain::metrics`).
    #[serde(default)]
    pub counters: MetricsCounters,
    /// Version of `counters`: 0 in a header written before they existed (decoded with the
    /// serde default), so `post_upgrade` recounts them once from the stored records;
    /// [`COUNTERS_VERSION`] once they are maintained.
    #[serde(default)]
    pub counters_version: u32,
    /// Download tickets below this id are all collected (the collector's resume point).
    #[serde(default)]
    pub tickets_collected_below: u64,
}

/// Version of [`MetricsCounters`] written by this code.
pub const COUNTERS_VERSION: u32 = 1;

/// Aggregate counters behind `get_metrics` (kept in the header so metrics stay O(1)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsCounters {
    /// Content bytes of committed items, all vaults.
    pub storage_committed_bytes: u64,
    /// Bytes reserved by open uploads, all vaults.
    pub storage_reserved_bytes: u64,
    /// UTC day number (`now / 1 day`) the `*_today` counters belong to.
    pub invites_day: u64,
    /// Invites issued (generated or regenerated) on `invites_day`.
    pub invites_issued_today: u64,
    /// Invites claimed on `invites_day`.
    pub invites_claimed_today: u64,
    /// Invites ever issued.
    pub invites_issued_total: u64,
    /// Invites ever claimed.
    pub invites_claimed_total: u64,
    /// Payment sessions in status `Open`.
    pub open_sessions: u64,
    /// Billing entries recorded.
    pub billing_entries: u64,
    /// e8s swept into the treasury (sum of the billing entries' `treasury_e8s`).
    pub treasury_e8s: u64,
    /// e8s returned to owners by transfers known applied: excess refunds and admin refunds.
    pub refunded_e8s: u64,
}

impl Default for StorageHeader {
    fn default() -> Self {
        StorageHeader {
            layout_version: 0,
            next_vault_id: 1,
            status_counts: vec![0; VaultStatus::ALL.len()],
            next_upload_id: 1,
            next_item_id: 1,
            next_blob_id: 1,
            next_ticket_id: 1,
            content_pages_hwm: 0,
            content_free_pages: 0,
            counters: MetricsCounters::default(),
            counters_version: COUNTERS_VERSION,
            tickets_collected_below: 0,
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
    /// Invites, share indices, the unlock request, approvals and the recovery code.
    #[serde(default)]
    pub membership: VaultMembership,
}

// Role of a member (also the `role` of an invite in the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
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
    #[serde(default)]
    pub relation: Relation,
    #[serde(default)]
    pub email_hint: Option<String>,
    /// May open an unlock request (always for heirs).
    #[serde(default)]
    pub can_trigger_unlock: bool,
    /// The approval counts towards the quorum (always for heirs).
    #[serde(default)]
    pub count_as_approver: bool,
    /// The invite this member claimed.
    #[serde(default)]
    pub invite_id: u64,
}

/// Per-vault membership and unlock bookkeeping, kept inside the vault record so that one
/// write of the vault updates it atomically with the audit chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultMembership {
    /// Invite ids handed out so far (ids start at 1, never reused).
    #[serde(default)]
    pub invites_issued: u64,
    /// Member ids handed out so far (ids start at 1, never reused).
    #[serde(default)]
    pub members_issued: u32,
    /// Share indices handed out so far: the next one is `share_indices_used + 1`, at most 255.
    /// A share index is never handed out twice in a vault (a regenerated invite keeps its own).
    #[serde(default)]
    pub share_indices_used: u16,
    /// The open unlock request, if any.
    #[serde(default)]
    pub unlock_request: Option<UnlockRequestRecord>,
    /// Collected approvals of current members (dropped with the member, cleared by owner
    /// activity).
    #[serde(default)]
    pub approvals: Vec<ApprovalRecord>,
    /// Failed unlock attempts in the last hour (pruned on write), for the 5-per-hour limit.
    #[serde(default)]
    pub failed_attempts: Vec<FailedAttempt>,
    /// SHA-256 of the active recovery code, if one is active.
    #[serde(default)]
    pub recovery_code_hash: Option<[u8; 32]>,
    /// Invites not claimed nor revoked (expired ones are pruned on the next write): what the
    /// plan caps count besides joined members, without scanning the invite history.
    #[serde(default)]
    pub open_invites: Vec<OpenInvite>,
}

/// An invite still counted against the plan until it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInvite {
    pub invite_id: u64,
    pub role: MemberRole,
    pub expires_at: u64,
}

/// An open unlock request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockRequestRecord {
    pub opened_by: Principal,
    pub member_id: u32,
    pub opened_at: u64,
}

/// One member's approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub member_id: u32,
    pub at: u64,
}

/// One unlock call refused for conditions or quorum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAttempt {
    pub principal: Principal,
    pub at: u64,
}

/// What became of an invite besides expiring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InviteState {
    /// Not claimed yet (expired once `now >= expires_at`).
    Open,
    /// Revoked by the owner (irreversible).
    Revoked { at: u64 },
    /// A member joined with it.
    Claimed {
        by: Principal,
        member_id: u32,
        at: u64,
    },
}

/// An invite. The token is never stored: only its SHA-256 (also the key of the token index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub vault_id: VaultId,
    pub invite_id: u64,
    pub role: MemberRole,
    pub name: String,
    pub relation: Relation,
    pub email_hint: Option<String>,
    pub can_trigger_unlock: bool,
    pub count_as_approver: bool,
    pub share_index: u8,
    pub token_hash: [u8; 32],
    pub created_at: u64,
    pub expires_at: u64,
    pub state: InviteState,
    /// The invite that replaced this one (`regenerate_invite`).
    #[serde(default)]
    pub replaced_by: Option<u64>,
}

/// State of a recovery code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryState {
    Active,
    /// Revoked by the owner, replaced by a newer code, or revoked when a member joined.
    Revoked {
        at: u64,
        reason: String,
    },
    /// Used for an ownership transfer or to satisfy the quorum.
    Used {
        at: u64,
        by: Principal,
    },
}

/// A recovery code (SPEC §9), keyed by its SHA-256. Entries stay after use or revocation so a
/// later presentation answers `RecoveryBlocked` instead of `TokenInvalid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodeRecord {
    pub vault_id: VaultId,
    pub bypass_quorum: bool,
    pub issued_at: u64,
    pub state: RecoveryState,
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

impl AuditEvent {
    /// The chain hash of an event given the previous event's hash (32 zero bytes before seq
    /// 0): `sha256(prev ‖ seq ‖ at ‖ actor ‖ action ‖ details)` with fixed-width big-endian
    /// integers and length-prefixed strings (SPEC §11).
    pub fn chain_hash(
        prev: &[u8],
        seq: u64,
        at: u64,
        actor: &Principal,
        action: &str,
        details: &str,
    ) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(prev);
        h.update(seq.to_be_bytes());
        h.update(at.to_be_bytes());
        let actor = actor.as_slice();
        h.update([actor.len() as u8]);
        h.update(actor);
        h.update((action.len() as u64).to_be_bytes());
        h.update(action.as_bytes());
        h.update((details.len() as u64).to_be_bytes());
        h.update(details.as_bytes());
        h.finalize().into()
    }

    /// Whether this event's hash is the chain hash after `prev`.
    pub fn chains_from(&self, prev: &[u8]) -> bool {
        self.hash
            == Self::chain_hash(
                prev,
                self.seq,
                self.at,
                &self.actor,
                &self.action,
                &self.details,
            )
    }
}

/// Stored configuration cell: `None` only before `init` has run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigCell(pub Option<super::config::Config>);

// ---- content

/// A committed content item: metadata only; the payload is in raw pages under `blob_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub item_id: u64,
    pub vault_id: VaultId,
    pub kind: ItemKind,
    pub size: u64,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub encrypted_meta: Vec<u8>,
    /// Heir member ids; `None` = every heir (also those who join later).
    pub recipients: Option<Vec<u32>>,
    pub blob_id: u64,
    pub chunk_count: u32,
    /// Length of every chunk but the last.
    pub chunk_bytes: u32,
    pub created_at: u64,
    pub updated_at: u64,
    /// 1 for a new item, +1 on each replace.
    pub version: u32,
}

/// The fixed part of an open upload (written once by `begin_upload`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadHead {
    pub upload_id: u64,
    pub vault_id: VaultId,
    pub owner: Principal,
    pub kind: ItemKind,
    pub size: u64,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    pub recipients: Option<Vec<u32>>,
    pub replaces: Option<u64>,
    pub blob_id: u64,
    /// Length of every chunk but the last (the configured maximum at `begin_upload`).
    pub chunk_bytes: u32,
    pub created_at: u64,
    /// Key of the idempotency entry, removed when the upload ends.
    pub idempotency_hash: Option<[u8; 32]>,
}

/// Resumable SHA-256: the chaining value, the unprocessed tail (< 64 bytes) and the length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashState {
    pub h: [u32; 8],
    #[serde(with = "serde_bytes")]
    pub tail: Vec<u8>,
    pub len: u64,
}

/// The part of an open upload that every chunk advances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadProgress {
    pub next_index: u32,
    pub received: u64,
    pub hash: HashState,
    pub last_activity: u64,
}

/// One entry of the uploads map (see `storage::State::uploads` for the key scheme).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadEntry {
    Head(UploadHead),
    Progress(UploadProgress),
    #[serde(with = "serde_bytes")]
    Meta(Vec<u8>),
    /// Index entries carry no value.
    Index,
}

/// A download ticket: who may read which payload until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    pub ticket_id: u64,
    pub vault_id: VaultId,
    pub item_id: u64,
    pub blob_id: u64,
    pub holder: Principal,
    pub expires_at: u64,
    pub chunk_count: u32,
}

// How the invited person relates to the owner (SPEC §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, CandidType, Serialize, Deserialize)]
pub enum Relation {
    Spouse,
    Son,
    Daughter,
    Father,
    Mother,
    Brother,
    Sister,
    Friend,
    Lawyer,
    Notary,
    #[default]
    Other,
}

impl Relation {
    /// Every relation in declaration order (the stable binary code is the index; new ones
    /// are only ever appended).
    pub const ALL: [Relation; 11] = [
        Relation::Spouse,
        Relation::Son,
        Relation::Daughter,
        Relation::Father,
        Relation::Mother,
        Relation::Brother,
        Relation::Sister,
        Relation::Friend,
        Relation::Lawyer,
        Relation::Notary,
        Relation::Other,
    ];
}
