//! The stable-memory layout: every [`MemoryId`] the canister uses, and what lives there.
//!
//! One `MemoryManager` splits stable memory into virtual memories. The numbering is part of
//! the persisted layout: an id is never reused for something else, retired ids stay listed
//! here (marked RETIRED), and ids for features that have not landed yet are reserved so the
//! numbering stays readable.

use ic_stable_structures::memory_manager::MemoryId;

/// `StableCell<ConfigRecord>`: admins, ledger id, treasury, durations, prices, limits.
pub const CONFIG: MemoryId = MemoryId::new(0);
/// `StableCell<StorageHeader>`: layout version, id counters and per-status vault counts.
pub const HEADER: MemoryId = MemoryId::new(1);
/// RETIRED in layout 3 (read once by the migration from layout 2): was
/// `StableBTreeMap<VaultId, VaultRecord>`; vaults now live in [`VAULT_DIR`] + [`RECORD_SLAB`].
pub const VAULTS: MemoryId = MemoryId::new(2);
/// `StableBTreeMap<PrincipalVaultKey, ()>`: index owner principal → owned vault ids.
pub const VAULTS_BY_OWNER: MemoryId = MemoryId::new(3);
/// `StableBTreeMap<PrincipalVaultKey, ()>`: index member principal → vaults they belong to.
pub const VAULTS_BY_MEMBER: MemoryId = MemoryId::new(4);
/// `StableBTreeMap<(VaultId, MemberId), MemberRecord>`: heirs and witness of each vault.
pub const MEMBERS: MemoryId = MemoryId::new(5);
/// `StableBTreeMap<(VaultId, InviteId), InviteRecord>`: invites of each vault (members issue).
pub const INVITES: MemoryId = MemoryId::new(6);
/// `StableBTreeMap<[u8; 32], (VaultId, InviteId)>`: SHA-256 of an invite token → its invite.
/// The token itself is never stored.
pub const INVITE_TOKEN_INDEX: MemoryId = MemoryId::new(7);
/// `StableBTreeMap<SessionId, PaymentSession>`: every payment session (never removed).
pub const PAYMENT_SESSIONS: MemoryId = MemoryId::new(8);
/// `StableBTreeMap<(SessionId, seq), JournalEntry>`: ledger transfer intents (written before
/// the call) and their outcomes (see `domain::payments::journal`).
pub const PAYMENT_JOURNAL: MemoryId = MemoryId::new(9);
/// `StableBTreeMap<BillingId, BillingEntry>`: confirmed payments with ledger block indices.
pub const BILLING: MemoryId = MemoryId::new(10);
/// `StableBTreeMap<(tag, a, b), UploadEntry>`: open upload sessions (head, progress with the
/// resumable hash state, encrypted meta) and their idle-time and per-vault indexes.
pub const UPLOADS: MemoryId = MemoryId::new(11);
/// `StableBTreeMap<(VaultId, ItemId), ItemRecord>`: item metadata, never payload.
pub const CONTENT_ITEMS: MemoryId = MemoryId::new(12);
/// RETIRED in layout 3 (read once by the migration from layout 2): was
/// `StableBTreeMap<(BlobId, chunk), ChunkLoc>`; now [`CHUNK_DIR`] + [`RECORD_SLAB`].
pub const CONTENT_CHUNK_INDEX: MemoryId = MemoryId::new(13);
/// Raw 4 KiB pages holding chunk bodies, written with `Memory::write` (no BTreeMap).
pub const CONTENT_PAGES: MemoryId = MemoryId::new(14);
/// `StableBTreeMap<u64, u64>`: free page runs (first page → length) in [`CONTENT_PAGES`].
pub const CONTENT_FREE_PAGES: MemoryId = MemoryId::new(15);
/// RETIRED in layout 3 (read once by the migration from layout 2): was
/// `StableBTreeMap<(VaultId, Seq), AuditEvent>`; now [`AUDIT_INDEX`] + [`RECORD_SLAB`].
pub const AUDIT_LOG: MemoryId = MemoryId::new(16);
/// RETIRED in layout 3 (read once by the migration from layout 2): was the
/// `StableBTreeMap<(u64, u8, u64), u32>` due queue; now [`SCHEDULER_SLOTS`].
pub const SCHEDULER_QUEUE: MemoryId = MemoryId::new(17);
/// `StableBTreeMap<IdempotencyKey, VaultId>`: `create_vault` retries return the same vault.
pub const IDEMPOTENCY: MemoryId = MemoryId::new(18);
/// `StableBTreeMap<(Principal, day), u32>`: per-user daily download counters.
pub const DOWNLOAD_COUNTERS: MemoryId = MemoryId::new(19);
/// RETIRED in layout 3 (read once by the migration from layout 2): was
/// `StableBTreeMap<TicketId, TicketRecord>`; now [`TICKET_DIR`] + [`RECORD_SLAB`].
pub const DOWNLOAD_TICKETS: MemoryId = MemoryId::new(20);
/// `StableBTreeMap<[u8; 32], RecoveryCodeRecord>`: SHA-256 of a recovery code → its vault,
/// mode and state (kept after use or revocation so later use answers `RecoveryBlocked`).
pub const RECOVERY_CODES: MemoryId = MemoryId::new(21);
/// `StableBTreeMap<(u8, u64), KeyRecord>`: vetKeys key release (SPEC §16,
/// `domain::keys`): `(0, 0)` the cached vetKD public key, `(1, 0)` canister-wide counters,
/// `(2, vault)` a vault's derivation counters.
pub const VETKEYS: MemoryId = MemoryId::new(22);
/// `StableBTreeMap<(VaultId, SessionId), ()>`: index vault → its payment sessions.
pub const PAYMENT_SESSIONS_BY_VAULT: MemoryId = MemoryId::new(23);
/// `storage::slab::Slab`: blocks of 64 B … 1 MiB holding vault records, audit events and
/// audit index pages (free list per size class).
pub const RECORD_SLAB: MemoryId = MemoryId::new(24);
/// `DenseTable<VaultRecord>` directory: vault id → its block in [`RECORD_SLAB`]; every
/// vault, including tombstones of deleted ones.
pub const VAULT_DIR: MemoryId = MemoryId::new(25);
/// `storage::audit_log::AuditLog` directory: vault id → its root record in [`RECORD_SLAB`]
/// (layout 4: kept seq range and the directory pages of its leaf pages of event locations;
/// layout 3: first kept seq, then one block location per event); the per-vault,
/// hash-chained log.
pub const AUDIT_INDEX: MemoryId = MemoryId::new(26);
/// `storage::due_queue::DueQueue`: the scheduler's due queue `(due_ns, kind, id) → failed
/// attempts`, one 32-byte slot per entry (see `domain::scheduler`).
pub const SCHEDULER_SLOTS: MemoryId = MemoryId::new(27);
/// `storage::chunk_index::ChunkIndex` directory: blob id → its index record (one block
/// location per chunk, each block a `ChunkLoc`: page runs in [`CONTENT_PAGES`]).
pub const CHUNK_DIR: MemoryId = MemoryId::new(28);
/// `DenseTable<TicketRecord>` directory: download ticket id → its block in
/// [`RECORD_SLAB`], until collected.
pub const TICKET_DIR: MemoryId = MemoryId::new(29);

/// `storage::due_queue::DueQueue`: the scheduler's payment checks `(due_ns, 9, session id)
/// → consecutive retries`, at most one per session (see `domain::payments::checks`); apart
/// from [`SCHEDULER_SLOTS`] so payment checks never delay vault deadlines.
pub const PAYMENT_CHECKS: MemoryId = MemoryId::new(30);
/// `StableBTreeMap<VaultId, Account>`: the account refunds of a vault's payments go to, when
/// its owner named one (`set_refund_account`).
pub const REFUND_ACCOUNTS: MemoryId = MemoryId::new(31);

/// `StableBTreeMap<VaultId, [u8; 32]>`: the idempotency key hash a `Draft` was created with
/// (reverse of [`IDEMPOTENCY`]), so both entries go when the draft is paid or erased.
pub const IDEMPOTENCY_BY_VAULT: MemoryId = MemoryId::new(32);

/// Raw: the operational counters' snapshot (`domain::ops`), written by `pre_upgrade` and
/// read by `post_upgrade` (4 pages reserved at install and upgrade, so `pre_upgrade` never
/// grows memory).
pub const OPS_SNAPSHOT: MemoryId = MemoryId::new(33);
/// `storage::admin_trail::AdminTrail`: the newest 2 047 admin actions (caller, time,
/// arguments), a ring of 4 KiB slots (8 MiB at most).
pub const ADMIN_TRAIL: MemoryId = MemoryId::new(34);
/// `StableBTreeMap<(day, Principal), u32>`: vaults each principal created per UTC day (at
/// most `vaults::MAX_VAULT_CREATIONS_PER_DAY`); past days are collected by the scheduler's
/// ticks (the day comes first, so they are a prefix).
pub const VAULT_CREATIONS: MemoryId = MemoryId::new(35);

/// Every id above with its number and its name in metrics
/// (`livault_stable_memory_virtual_bytes{memory=…}`), for the layout test and the
/// per-memory breakdown.
pub const ALL: [(MemoryId, u8, &str); 36] = [
    (CONFIG, 0, "config"),
    (HEADER, 1, "header"),
    (VAULTS, 2, "retired_vaults"),
    (VAULTS_BY_OWNER, 3, "vaults_by_owner"),
    (VAULTS_BY_MEMBER, 4, "vaults_by_member"),
    (MEMBERS, 5, "members"),
    (INVITES, 6, "invites"),
    (INVITE_TOKEN_INDEX, 7, "invite_token_index"),
    (PAYMENT_SESSIONS, 8, "payment_sessions"),
    (PAYMENT_JOURNAL, 9, "payment_journal"),
    (BILLING, 10, "billing"),
    (UPLOADS, 11, "uploads"),
    (CONTENT_ITEMS, 12, "content_items"),
    (CONTENT_CHUNK_INDEX, 13, "retired_content_chunk_index"),
    (CONTENT_PAGES, 14, "content_pages"),
    (CONTENT_FREE_PAGES, 15, "content_free_pages"),
    (AUDIT_LOG, 16, "retired_audit_log"),
    (SCHEDULER_QUEUE, 17, "retired_scheduler_queue"),
    (IDEMPOTENCY, 18, "idempotency"),
    (DOWNLOAD_COUNTERS, 19, "download_counters"),
    (DOWNLOAD_TICKETS, 20, "retired_download_tickets"),
    (RECOVERY_CODES, 21, "recovery_codes"),
    (VETKEYS, 22, "vetkeys"),
    (PAYMENT_SESSIONS_BY_VAULT, 23, "payment_sessions_by_vault"),
    (RECORD_SLAB, 24, "record_slab"),
    (VAULT_DIR, 25, "vault_dir"),
    (AUDIT_INDEX, 26, "audit_index"),
    (SCHEDULER_SLOTS, 27, "scheduler_slots"),
    (CHUNK_DIR, 28, "chunk_dir"),
    (TICKET_DIR, 29, "ticket_dir"),
    (PAYMENT_CHECKS, 30, "payment_checks"),
    (REFUND_ACCOUNTS, 31, "refund_accounts"),
    (IDEMPOTENCY_BY_VAULT, 32, "idempotency_by_vault"),
    (OPS_SNAPSHOT, 33, "ops_snapshot"),
    (ADMIN_TRAIL, 34, "admin_trail"),
    (VAULT_CREATIONS, 35, "vault_creations"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_ids_are_unique_and_named() {
        let mut seen = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for (id, n, name) in ALL {
            assert_eq!(id, MemoryId::new(n), "{name}");
            assert!(seen.insert(id), "{id:?} listed twice");
            assert!(names.insert(name), "{name} listed twice");
            assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'));
        }
        assert_eq!(ALL.len(), 36);
    }
}
