//! Public API types shared by the domain and the Candid interface.
//!
//! Times are nanoseconds since the Unix epoch (`nat64`, like `ic0.time`); money is `nat64` e8s.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

/// Vault identifier: assigned sequentially, never reused (deleted vaults keep a tombstone).
pub type VaultId = u64;

/// Nanoseconds in one second / day.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Nanoseconds in one day.
pub const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SEC;

// Lifecycle state of a vault (SPEC §3).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, CandidType, Serialize, Deserialize,
)]
pub enum VaultStatus {
    // Created, waiting for the creation payment.
    Draft,
    // Paid; the owner configures rules, content and heirs.
    NeedSetup,
    // Setup conditions hold; the owner may finalize.
    SetupComplete,
    // Finalized and watching the unlock rules.
    Active,
    // Validity ended; the owner can still renew.
    GraceMaster,
    // Owner did not renew; heirs can unlock with their quorum.
    GraceHeir,
    // Unlock rules met; heirs can download until `access_until`.
    Unlockable,
    // Access window over; payload purged.
    Expired,
    // Tombstone: only id, owner, timestamps and final status remain.
    Deleted,
}

impl VaultStatus {
    /// Every status, in lifecycle order (for tables and metrics).
    pub const ALL: [VaultStatus; 9] = [
        VaultStatus::Draft,
        VaultStatus::NeedSetup,
        VaultStatus::SetupComplete,
        VaultStatus::Active,
        VaultStatus::GraceMaster,
        VaultStatus::GraceHeir,
        VaultStatus::Unlockable,
        VaultStatus::Expired,
        VaultStatus::Deleted,
    ];

    /// Position in [`VaultStatus::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable name, as in the `.did`.
    pub fn name(self) -> &'static str {
        match self {
            VaultStatus::Draft => "Draft",
            VaultStatus::NeedSetup => "NeedSetup",
            VaultStatus::SetupComplete => "SetupComplete",
            VaultStatus::Active => "Active",
            VaultStatus::GraceMaster => "GraceMaster",
            VaultStatus::GraceHeir => "GraceHeir",
            VaultStatus::Unlockable => "Unlockable",
            VaultStatus::Expired => "Expired",
            VaultStatus::Deleted => "Deleted",
        }
    }
}

// Storage tier of a plan (SPEC §5).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, CandidType, Serialize, Deserialize,
)]
pub enum Tier {
    // 5 MiB, up to 2 heirs.
    Basic,
    // 10 MiB, up to 3 heirs.
    Standard,
    // 50 MiB, up to 5 heirs.
    Premium,
    // 100 MiB, up to 8 heirs.
    Deluxe,
    // 250 MiB, up to 10 heirs.
    Titan,
}

impl Tier {
    /// Every tier, cheapest first.
    pub const ALL: [Tier; 5] = [
        Tier::Basic,
        Tier::Standard,
        Tier::Premium,
        Tier::Deluxe,
        Tier::Titan,
    ];

    /// Position in [`Tier::ALL`] (a higher rank is a larger tier).
    pub fn rank(self) -> usize {
        self as usize
    }
}

// What the owner buys: a tier, a number of heir slots (1..=tier max) and the witness slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct PlanSelection {
    pub tier: Tier,
    pub heir_slots: u8,
    pub witness_slot: bool,
}

// Unlock rules (SPEC §4). At least one of `unlock_after` / `inactivity_days` must be set.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct UnlockRules {
    // The time gate holds from this moment (ns since epoch).
    pub unlock_after: Option<u64>,
    // The time gate holds after this many days without owner activity.
    pub inactivity_days: Option<u32>,
    // Wait after an unlock request before the time gate holds through it.
    pub request_wait_days: u32,
    // Heir approvals needed (0 = a pure time lock for heirs).
    pub required_heirs: u8,
    // Whether the witness' approval is needed too.
    pub required_witness: bool,
}

// A vault as its owner and members see it. Never contains content or encrypted metadata.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct VaultView {
    pub id: VaultId,
    pub owner: Principal,
    pub name: String,
    pub status: VaultStatus,
    pub plan: PlanSelection,
    pub owner_age: u8,
    // The creation price frozen when the vault was created (e8s).
    pub price_e8s: u64,
    // `None` until the owner has set rules (or on a tombstone).
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
    pub last_owner_activity: u64,
    // Storage of the plan in bytes, and what is used of it (committed + reserved).
    pub storage_limit_bytes: u64,
    pub storage_used_bytes: u64,
    pub item_count: u32,
    pub heir_count: u32,
    pub witness_joined: bool,
    // What is still missing before the vault can reach `SetupComplete` (empty when none).
    pub setup_missing: Vec<String>,
    // The caller's role in this vault.
    pub my_role: VaultRole,
    // Owner only: where refunds of the vault's payments go (`None`: the owner's default
    // account).
    pub refund_account: Option<Account>,
}

// Role of a principal in a vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum VaultRole {
    Owner,
    Heir,
    Witness,
}

// One line of `list_my_vaults`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct VaultSummary {
    pub id: VaultId,
    pub name: String,
    pub status: VaultStatus,
    pub role: VaultRole,
    pub owner: Principal,
    pub expires_at: Option<u64>,
}

// A page of results plus the cursor for the next page (`None` when this is the last page).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<u64>,
}

// Arguments of `create_vault`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct CreateVaultArgs {
    // Display name, 1..=64 characters (plaintext: heirs see it in their invite).
    pub name: String,
    pub plan: PlanSelection,
    // Owner's age in years, 18..=120 (drives the price uplift).
    pub owner_age: u8,
    // Optional client-chosen key (1..=64 chars): a retry with the same key returns the
    // vault created by the first call instead of creating another.
    pub idempotency_key: Option<String>,
}

// Arguments of `update_vault`: only the fields that are set change.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpdateVaultArgs {
    pub vault_id: VaultId,
    pub name: Option<String>,
    pub unlock_rules: Option<UnlockRules>,
    // Days heirs keep access after unlock, 1..=365.
    pub post_unlock_days: Option<u16>,
    // Audit-log retention, 30..=3650 days.
    pub audit_retention_days: Option<u16>,
}

// Arguments of `list_my_vaults` and other cursor-paginated lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct PageArgs {
    // Return entries strictly after this cursor (`next_cursor` of the previous page).
    pub start_after: Option<u64>,
    // Page size, 1..=100 (default 50).
    pub limit: Option<u32>,
}

// Price request for a new vault (`quote`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct QuoteArgs {
    pub plan: PlanSelection,
    pub owner_age: u8,
}

// Price breakdown, all in e8s.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Quote {
    pub plan: PlanSelection,
    pub storage_e8s: u64,
    pub heir_slots_e8s: u64,
    pub witness_e8s: u64,
    // Age uplift in percent (0, 5, 10, 15, 20 or 25).
    pub age_uplift_percent: u8,
    // `(storage + heirs + witness) · (100 + uplift) / 100`.
    pub total_e8s: u64,
}

// Prorated price to move a vault to a bigger plan (`quote_upgrade`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeQuote {
    pub vault_id: VaultId,
    pub from: PlanSelection,
    pub to: PlanSelection,
    pub old_price_e8s: u64,
    pub new_price_e8s: u64,
    pub remaining_days: u64,
    // `(new − old) · remaining_days / validity_days`, rounded up to the e8s.
    pub amount_e8s: u64,
}

// One tier as `get_plans` lists it.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct TierInfo {
    pub tier: Tier,
    pub storage_bytes: u64,
    pub max_heirs: u8,
    pub storage_price_e8s: u64,
}

// Current plans and fees (`get_plans`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct PlansInfo {
    pub tiers: Vec<TierInfo>,
    pub heir_slot_fee_e8s: u64,
    pub witness_fee_e8s: u64,
    pub max_witnesses: u8,
    pub validity_days: u32,
    // Age brackets as (max age inclusive, uplift percent); above the last: 25 %.
    pub age_uplift: Vec<AgeBracket>,
}

// One age bracket of the price uplift.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AgeBracket {
    pub max_age: u8,
    pub uplift_percent: u8,
}

// One audit event as returned by `get_audit_log`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AuditEventView {
    pub seq: u64,
    pub at: u64,
    pub actor: Principal,
    // Stable action code, e.g. `vault.created`, `status.changed` (see the `.did`).
    pub action: String,
    pub details: String,
    // SHA-256 chain: `hash = sha256(prev_hash ‖ seq ‖ at ‖ actor ‖ action ‖ details)`.
    pub hash: serde_bytes::ByteBuf,
}

// Head of a vault's audit hash chain.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AuditHead {
    pub vault_id: VaultId,
    // Number of events ever appended (the next sequence number).
    pub next_seq: u64,
    pub head_hash: serde_bytes::ByteBuf,
}

// Admin metrics (`get_metrics`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Metrics {
    pub now: u64,
    pub vaults_total: u64,
    pub vaults_by_status: Vec<StatusCount>,
    pub cycles_balance: u128,
    // The canister's stable memory (what the IC charges for).
    pub stable_memory_bytes: u64,
    // Where it goes: each virtual memory of the memory manager (with its 64 KiB header,
    // their allocated bytes add up to `stable_memory_bytes`).
    pub stable_memories: Vec<MemoryUsage>,
    // The capacity high-water mark (`limits.stable_memory_high_water_bytes`).
    pub stable_memory_high_water_bytes: u64,
    // Bytes left below the mark; at 0 new vaults and uploads are refused.
    pub stable_memory_headroom_bytes: u64,
    pub heap_memory_bytes: u64,
    pub admins: u32,
    pub rate_limited_principals: u64,
    // The scheduler's queue and its last run.
    pub scheduler: SchedulerMetrics,
    // Content bytes of committed items across all vaults.
    pub storage_committed_bytes: u64,
    // Bytes reserved by open uploads across all vaults.
    pub storage_reserved_bytes: u64,
    // Invites issued (generated or regenerated) during the current UTC day.
    pub invites_issued_today: u64,
    // Invites claimed during the current UTC day.
    pub invites_claimed_today: u64,
    // Invites ever issued.
    pub invites_issued_total: u64,
    // Invites ever claimed.
    pub invites_claimed_total: u64,
    // Payment sessions still open (past their expiry included: late funds still verify).
    pub open_payment_sessions: u64,
    // Billing entries (confirmed payments).
    pub billing_entries: u64,
    // e8s swept into the treasury.
    pub billing_treasury_e8s: u64,
    // e8s returned to owners: refunded excess and admin refunds (`refund_session`).
    pub billing_refunded_e8s: u64,
    // vetKeys key release: derivations, cycles spent, refusals.
    pub vetkeys: super::keys::VetKeyMetrics,
    // Build, upgrades, update calls and errors, ledger calls, refusals (since install).
    pub ops: super::ops::OpsMetrics,
}

// One virtual memory of the stable-memory layout (`storage::memory`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct MemoryUsage {
    // Its `MemoryId`.
    pub id: u8,
    // Its name in `storage::memory` (lower case; retired ones start with `retired_`).
    pub name: String,
    // Size of the virtual memory.
    pub bytes: u64,
    // Stable memory the memory manager gave it: whole 8 MiB buckets.
    pub allocated_bytes: u64,
}

// ---- scheduler and admin

// What one maintenance tick did (`run_maintenance`, metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct TickReport {
    // When the tick started (ns).
    pub started_at: u64,
    // `true` for `run_maintenance`, `false` for the periodic timer.
    pub manual: bool,
    // Why the tick did nothing, if it was skipped: `"busy"` (another run in progress) or
    // `"paused"` (the periodic timer does not run while the canister is paused).
    pub skipped: Option<String>,
    // Due entries the tick took from the queue (at most one batch).
    pub taken: u32,
    // Entries processed and removed from the queue.
    pub processed: u32,
    // Of those, entries whose duty applied (a transition or a compaction).
    pub applied: u32,
    // Entries whose processing trapped: kept in the queue and retried later.
    pub failed: u32,
    // Whether more entries were due when the tick ended (continued by the next tick).
    pub more_due: bool,
    // Instructions of the whole tick, its batch messages included.
    pub instructions: u64,
    // Most instructions one entry took.
    pub max_item_instructions: u64,
}

// Scheduler part of the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct SchedulerMetrics {
    // The last tick that ran (heap: empty after an upgrade until the next tick).
    pub last_run: Option<TickReport>,
    // Ticks that ran and entries processed, since install.
    pub runs: u64,
    pub processed_total: u64,
    // Entries whose processing trapped on their own, since install.
    pub failed_total: u64,
    // Of those, entries parked after their last attempt, since install.
    pub parked_total: u64,
    // Entries in the queue (due now or later, parked included).
    pub queue_len: u64,
    // Entries due now (the backlog), counted up to 100 000.
    pub due_now: u64,
    // Entries parked after repeated failures (never retried automatically).
    pub parked: u64,
    // Period of the maintenance timer in seconds.
    pub interval_secs: u64,
    // Payment sessions the scheduler will check again (`domain::payments::checks`).
    pub payment_checks_queued: u64,
    // Of those, due now (counted up to 100 000).
    pub payment_checks_due: u64,
}

// One vault as admins see it in `list_vaults`: status, plan, dates and storage numbers.
// Never the name (user data), content, members or encrypted metadata.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AdminVaultSummary {
    pub id: VaultId,
    pub owner: Principal,
    pub status: VaultStatus,
    pub plan: PlanSelection,
    pub price_e8s: u64,
    pub created_at: u64,
    pub status_changed_at: u64,
    pub paid_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub deleted_at: Option<u64>,
    pub storage_limit_bytes: u64,
    pub storage_used_bytes: u64,
    pub item_count: u32,
    pub heir_count: u32,
}

// An HTTP request as the IC HTTP gateway sends it to `http_request`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_bytes::ByteBuf,
}

// The answer of `http_request`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct HttpResponse {
    pub status_code: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_bytes::ByteBuf,
}

// Count of vaults in one status.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct StatusCount {
    pub status: VaultStatus,
    pub count: u64,
}

// ---- content

/// Content item identifier (unique across vaults, never reused).
pub type ItemId = u64;
/// Upload session identifier.
pub type UploadId = u64;
/// Download ticket identifier.
pub type TicketId = u64;

// Kind of a content item. Every kind is opaque ciphertext to the canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum ItemKind {
    File,
    Letter,
    Password,
}

// `begin_upload` arguments.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct BeginUploadArgs {
    pub vault_id: VaultId,
    pub kind: ItemKind,
    // Exact payload size in bytes (≥ 1: ciphertext is never empty).
    pub size: u64,
    // SHA-256 of the whole payload (32 bytes).
    pub sha256: serde_bytes::ByteBuf,
    // Client-encrypted title / file name / mime / notes, ≤ 4 KiB.
    pub encrypted_meta: serde_bytes::ByteBuf,
    // Heir member ids; `None` = every heir.
    pub recipients: Option<Vec<u32>>,
    // Item whose content this upload replaces on `finish_upload` (the item id stays).
    pub replaces: Option<ItemId>,
    // Retries with the same key return the same open upload.
    pub idempotency_key: Option<String>,
}

// An open upload session.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UploadView {
    pub upload_id: UploadId,
    pub vault_id: VaultId,
    pub kind: ItemKind,
    pub size: u64,
    // Every chunk but the last must have exactly this many bytes.
    pub chunk_bytes: u32,
    pub chunk_count: u32,
    // Index the next `upload_chunk` must carry.
    pub next_index: u32,
    pub received_bytes: u64,
    pub replaces: Option<ItemId>,
    // Collected if idle until then (ns since epoch).
    pub expires_at: u64,
}

// `update_item_meta` arguments: the item's new encrypted metadata and recipients.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpdateItemMetaArgs {
    pub vault_id: VaultId,
    pub item_id: ItemId,
    // At most 4 KiB, replaces the old metadata (e.g. data keys re-wrapped for new heirs).
    pub encrypted_meta: serde_bytes::ByteBuf,
    // Heir member ids; `null` = every heir. Replaces the old list.
    pub recipients: Option<Vec<u32>>,
}

// A committed item: metadata, never payload.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ItemView {
    pub item_id: ItemId,
    pub vault_id: VaultId,
    pub kind: ItemKind,
    pub size: u64,
    pub sha256: serde_bytes::ByteBuf,
    pub encrypted_meta: serde_bytes::ByteBuf,
    pub recipients: Option<Vec<u32>>,
    pub chunk_count: u32,
    pub chunk_bytes: u32,
    pub created_at: u64,
    pub updated_at: u64,
    pub version: u32,
}

// A download ticket: read the item's chunks with `get_download_chunk` until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct DownloadTicket {
    pub ticket_id: TicketId,
    pub vault_id: VaultId,
    pub item_id: ItemId,
    pub size: u64,
    pub chunk_count: u32,
    // Length of every chunk but the last.
    pub chunk_bytes: u32,
    pub sha256: serde_bytes::ByteBuf,
    pub expires_at: u64,
}

// An ICRC-1 account (owner + optional 32-byte subaccount).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Account {
    pub owner: Principal,
    pub subaccount: Option<serde_bytes::ByteBuf>,
}
