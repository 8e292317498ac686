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

/// `StableBTreeMap<(day, Principal), u32>`: vaults each principal created per UTC day (at
/// most `vaults::MAX_VAULT_CREATIONS_PER_DAY`); past days are collected by the scheduler's
/// ticks (the day comes first, so they are a prefix).
pub const VAULT_CREATIONS: MemoryId = MemoryId::new(33);

/// Every id above, for the layout test (no id appears twice).
pub const ALL: [MemoryId; 34] = [
    CONFIG,
    HEADER,
    VAULTS,
    VAULTS_BY_OWNER,
    VAULTS_BY_MEMBER,
    MEMBERS,
    INVITES,
    INVITE_TOKEN_INDEX,
    PAYMENT_SESSIONS,
    PAYMENT_JOURNAL,
    BILLING,
    UPLOADS,
    CONTENT_ITEMS,
    CONTENT_CHUNK_INDEX,
    CONTENT_PAGES,
    CONTENT_FREE_PAGES,
    AUDIT_LOG,
    SCHEDULER_QUEUE,
    IDEMPOTENCY,
    DOWNLOAD_COUNTERS,
    DOWNLOAD_TICKETS,
    RECOVERY_CODES,
    VETKEYS,
    PAYMENT_SESSIONS_BY_VAULT,
    RECORD_SLAB,
    VAULT_DIR,
    AUDIT_INDEX,
    SCHEDULER_SLOTS,
    CHUNK_DIR,
    TICKET_DIR,
    PAYMENT_CHECKS,
    REFUND_ACCOUNTS,
    IDEMPOTENCY_BY_VAULT,
    VAULT_CREATIONS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_ids_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for id in ALL {
            assert!(seen.insert(id), "{id:?} listed twice");
        }
    }
}
