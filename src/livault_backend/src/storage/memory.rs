//! The stable-memory layout: every [`MemoryId`] the canister uses, and what lives there.
//!
//! One `MemoryManager` splits stable memory into virtual memories. The numbering is part of
//! the persisted layout: an id is never reused for something else, retired ids stay listed
//! here (marked RETIRED), and ids for features that have not landed yet are reserved so the
//! numbering stays readable.
//!
//! # Buckets: 1 MiB, migrated in place from 8 MiB
//!
//! The manager hands memory out in buckets of [`BUCKET_PAGES`] Wasm pages (1 MiB). Before,
//! the library default of [`LEGACY_BUCKET_PAGES`] (8 MiB) applied: every memory a fresh
//! install touches took 8 MiB, 192 MiB for an empty canister. [`open_manager`] opens the
//! manager, and first converts an 8 MiB layout in place ([`migrate_buckets`]):
//!
//! - The manager's header (its version-1 layout, documented in `ic-stable-structures`'
//!   `memory_manager.rs`) is the magic `MGR`, the version `1`, the count of allocated buckets
//!   (`u16`), the bucket size in pages (`u16`), 32 reserved bytes, 255 memory sizes in pages
//!   (`u64`), then one owner byte per bucket (32 768 of them, 255 = unallocated); bucket `i`
//!   starts at byte `65 536 + i × bucket size`. A memory's buckets, in ascending bucket
//!   order, are its address space.
//! - An 8 MiB bucket `b` is exactly the eight 1 MiB buckets `8b … 8b+7` at the same offsets.
//!   So the rewrite sets the bucket size to 16, the count to 8×, and repeats each owner byte
//!   8 times; no data moves, every memory reads the same bytes at the same addresses. The
//!   count of buckets is bounded by 32 768, so an 8 MiB layout of more than 4 096 buckets
//!   (32 GiB) is refused.
//! - The new header and bucket table are written by one write (bytes 4 … 34 848), after every
//!   check passed; the check of a rewritten layout finds 16-page buckets and does nothing, so
//!   the step is idempotent. A trap anywhere in `post_upgrade` rolls the whole upgrade back
//!   on the IC (and on the embedded host), so a half-done rewrite is never observed.
//! - Anything else (no magic on non-empty memory, another manager version or bucket size,
//!   a count over the limit, an owner byte that is no memory id of this list, a table with
//!   holes, a memory larger than its buckets, physical memory smaller than the buckets) is
//!   refused: [`open_manager`] traps with the reason, which rolls the upgrade back.
//! - Stable memory never shrinks: a migrated canister keeps its size. What changes is that
//!   it grows by 1 MiB from then on. The unused tail of each memory's last 8 MiB bucket
//!   stays owned by that memory as 1 MiB buckets beyond its size ([`BucketSlack`]); the
//!   manager only allocates for the pages a memory grows by, so these are used as that
//!   memory grows and the slack stays constant.
//! - The cost: the manager addresses at most 32 768 buckets, i.e. 32 GiB of stable memory
//!   with 1 MiB buckets (256 GiB with 8 MiB ones).

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
use ic_stable_structures::Memory;

/// `StableCell<ConfigRecord>`: admins, ledger id, treasury, durations, prices, limits.
pub const CONFIG: MemoryId = MemoryId::new(0);
/// `StableCell<StorageHeader>`: layout version, id counters and per-status vault counts.
pub const HEADER: MemoryId = MemoryId::new(1);
/// RETIRED in layout 3 (read once by the migration from layout 2): was
/// `StableBTreeMap<VaultId, VaultRecord>`; vaults now live in [`VAULT_DIR`] + [`RECORD_SLAB`].
pub const VAULTS: MemoryId = MemoryId::new(2);
/// RETIRED in layout 6 (read once by the migration from layout 5): was
/// `StableBTreeMap<(Principal, VaultId), ()>`, the owner index; now [`OWNER_INDEX`] +
/// [`RECORD_SLAB`].
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
/// Since layout 6 only the entries that cannot be kept in [`BILLING_SLOTS`] (none the
/// canister writes; older records whose vault, owner, purpose or price differ from their
/// session's).
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
/// RETIRED in layout 7 (read once by the migration from layout 6): was
/// `StableBTreeMap<(Principal, day), u32>`, the daily download counters; now
/// [`DOWNLOAD_COUNTERS_BY_DAY`].
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
/// The dense-id directories: `StableVec`s of 16-byte block locations since layout 8 (raw
/// arrays of them before; converted in place by `State::open`, see `slab::DenseBytes`).
pub const DIRECTORIES: [MemoryId; 5] = [VAULT_DIR, AUDIT_INDEX, CHUNK_DIR, TICKET_DIR, OWNER_INDEX];

/// `storage::admin_trail::AdminTrail`: the newest 2 047 admin actions (caller, time,
/// arguments), a ring of 4 KiB slots (8 MiB at most).
pub const ADMIN_TRAIL: MemoryId = MemoryId::new(34);
/// `StableBTreeMap<(day, Principal), u32>`: vaults each principal created per UTC day (at
/// most `vaults::MAX_VAULT_CREATIONS_PER_DAY`); past days are collected by the scheduler's
/// ticks (the day comes first, so they are a prefix).
pub const VAULT_CREATIONS: MemoryId = MemoryId::new(35);
/// `storage::owner_index::OwnerIndex` directory: the owner index `(owner, vault)` of the
/// vaults not deleted, a salted linear-hashing table: id 0 its header, id `b + 1` bucket
/// `b`'s block in [`RECORD_SLAB`].
pub const OWNER_INDEX: MemoryId = MemoryId::new(36);
/// `StableVec` of fixed 74-byte slots: billing entry `id` at index `id − 1`, without the
/// fields that are its session's (layout 6; whole entries that cannot be split so stay in
/// [`BILLING`]). See `storage::repositories::payments`.
pub const BILLING_SLOTS: MemoryId = MemoryId::new(37);
/// `StableBTreeMap<(day, Principal), u32>`: downloads each non-owner requested per UTC day
/// (layout 7; `storage::repositories::daily_counters`): past days are a prefix, collected
/// by the scheduler's ticks.
pub const DOWNLOAD_COUNTERS_BY_DAY: MemoryId = MemoryId::new(38);

/// Every id above with its number and its name in metrics
/// (`livault_stable_memory_virtual_bytes{memory=…}`), for the layout test and the
/// per-memory breakdown.
pub const ALL: [(MemoryId, u8, &str); 39] = [
    (CONFIG, 0, "config"),
    (HEADER, 1, "header"),
    (VAULTS, 2, "retired_vaults"),
    (VAULTS_BY_OWNER, 3, "retired_vaults_by_owner"),
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
    (DOWNLOAD_COUNTERS, 19, "retired_download_counters"),
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
    (OWNER_INDEX, 36, "owner_index"),
    (BILLING_SLOTS, 37, "billing_slots"),
    (DOWNLOAD_COUNTERS_BY_DAY, 38, "download_counters"),
];

/// Pages per bucket of the memory manager: 16 Wasm pages, 1 MiB.
pub const BUCKET_PAGES: u16 = 16;
/// Pages per bucket of layouts written before [`BUCKET_PAGES`] (the library default, 8 MiB).
pub const LEGACY_BUCKET_PAGES: u16 = 128;
/// Pages before the first bucket (the memory manager's header and bucket table).
pub const MANAGER_HEADER_PAGES: u64 = 1;
/// Buckets the memory manager can hand out (its bucket table has one byte per bucket).
pub const MAX_BUCKETS: usize = 32_768;

/// Header bytes before the bucket table: magic (3), version (1), allocated buckets (2),
/// bucket size (2), reserved (32), 255 memory sizes (8 each).
const SIZES_AT: usize = 40;
const MANAGED_MEMORIES: usize = 255;
const TABLE_AT: usize = SIZES_AT + MANAGED_MEMORIES * 8;
const HEADER_AND_TABLE: usize = TABLE_AT + MAX_BUCKETS;
const UNALLOCATED: u8 = 255;
const LEGACY_FACTOR: usize = (LEGACY_BUCKET_PAGES / BUCKET_PAGES) as usize;

/// What [`migrate_buckets`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketMigration {
    /// Empty stable memory: a fresh install.
    Fresh,
    /// Already 1 MiB buckets: nothing done.
    Current,
    /// Rewritten from 8 MiB buckets.
    Migrated {
        /// 8 MiB buckets before.
        from_buckets: u16,
        /// 1 MiB buckets after (8× as many).
        to_buckets: u16,
    },
}

/// Why a stored memory-manager layout is refused (nothing was written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketLayoutError {
    /// Non-empty stable memory without the manager's magic.
    NoManager,
    /// Another version of the manager's layout.
    Version(u8),
    /// Neither 1 MiB nor 8 MiB buckets.
    BucketSize(u16),
    /// More 8 MiB buckets than fit in the table as 1 MiB buckets.
    TooManyBuckets(u16),
    /// A bucket owned by a memory id this canister does not know.
    UnknownOwner { bucket: usize, owner: u8 },
    /// The table disagrees with the count: an unallocated bucket below it, or an allocated
    /// one above it.
    Table { bucket: usize },
    /// A memory larger than its buckets.
    MemorySize { id: u8, pages: u64, buckets: u64 },
    /// Physical stable memory smaller than the allocated buckets.
    Physical { pages: u64, needed: u64 },
}

impl std::fmt::Display for BucketLayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoManager => write!(f, "non-empty stable memory without a memory manager"),
            Self::Version(v) => write!(f, "memory manager layout version {v} (expected 1)"),
            Self::BucketSize(p) => write!(
                f,
                "bucket size of {p} pages (expected {BUCKET_PAGES} or {LEGACY_BUCKET_PAGES})"
            ),
            Self::TooManyBuckets(n) => write!(
                f,
                "{n} buckets of 8 MiB do not fit in {MAX_BUCKETS} buckets of 1 MiB (at most {})",
                MAX_BUCKETS / LEGACY_FACTOR
            ),
            Self::UnknownOwner { bucket, owner } => {
                write!(f, "bucket {bucket} owned by unknown memory id {owner}")
            }
            Self::Table { bucket } => {
                write!(
                    f,
                    "bucket table disagrees with the bucket count at {bucket}"
                )
            }
            Self::MemorySize { id, pages, buckets } => {
                write!(f, "memory {id} has {pages} pages but {buckets} buckets")
            }
            Self::Physical { pages, needed } => write!(
                f,
                "stable memory has {pages} pages, the buckets need {needed}"
            ),
        }
    }
}

/// 1 MiB buckets each memory holds beyond what its size needs: the unused tail of its last
/// 8 MiB bucket when the layout was migrated (all zero on a fresh install). Constant for the
/// life of the layout: the manager allocates only for the pages a memory grows by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSlack([u16; MANAGED_MEMORIES]);

impl BucketSlack {
    /// Pages of stable memory the manager gave memory `id` of `pages` pages.
    pub fn allocated_pages(&self, id: u8, pages: u64) -> u64 {
        let slack = self.0.get(id as usize).copied().unwrap_or(0) as u64;
        (pages.div_ceil(BUCKET_PAGES as u64) + slack) * BUCKET_PAGES as u64
    }
}

/// Opens the memory manager over `memory` with 1 MiB buckets, first converting an 8 MiB
/// layout in place ([`migrate_buckets`]). Traps (panics) on a layout it does not know:
/// in `post_upgrade` that rolls the upgrade back and leaves the memory as it was.
pub fn open_manager<M: Memory>(memory: M) -> (MemoryManager<M>, BucketSlack) {
    if let Err(e) = migrate_buckets(&memory) {
        panic!("stable memory: refusing to open the memory manager: {e}");
    }
    let slack = bucket_slack(&memory);
    (
        MemoryManager::init_with_bucket_size(memory, BUCKET_PAGES),
        slack,
    )
}

/// Converts a memory manager layout of 8 MiB buckets to 1 MiB buckets in place (see the
/// module docs); does nothing on empty memory or 1 MiB buckets. Every check runs before
/// the one write; an error writes nothing.
pub fn migrate_buckets<M: Memory>(memory: &M) -> Result<BucketMigration, BucketLayoutError> {
    if memory.size() == 0 {
        return Ok(BucketMigration::Fresh);
    }
    let mut head = vec![0u8; HEADER_AND_TABLE];
    memory.read(0, &mut head);
    if &head[..3] != b"MGR" {
        return Err(BucketLayoutError::NoManager);
    }
    if head[3] != 1 {
        return Err(BucketLayoutError::Version(head[3]));
    }
    let allocated = u16::from_le_bytes([head[4], head[5]]);
    let bucket_pages = u16::from_le_bytes([head[6], head[7]]);
    match bucket_pages {
        BUCKET_PAGES => return Ok(BucketMigration::Current),
        LEGACY_BUCKET_PAGES => {}
        other => return Err(BucketLayoutError::BucketSize(other)),
    }
    let n = allocated as usize;
    if n * LEGACY_FACTOR > MAX_BUCKETS {
        return Err(BucketLayoutError::TooManyBuckets(allocated));
    }
    let table = &head[TABLE_AT..];
    let mut owned = [0u64; MANAGED_MEMORIES];
    for (bucket, &owner) in table.iter().enumerate() {
        match (bucket < n, owner) {
            (true, UNALLOCATED) | (false, 0..=254) => {
                return Err(BucketLayoutError::Table { bucket })
            }
            (false, _) => {}
            (true, owner) => {
                if !ALL.iter().any(|(_, id, _)| *id == owner) {
                    return Err(BucketLayoutError::UnknownOwner { bucket, owner });
                }
                owned[owner as usize] += 1;
            }
        }
    }
    for (id, buckets) in owned.iter().enumerate() {
        let pages = size_at(&head, id);
        if pages > buckets * LEGACY_BUCKET_PAGES as u64 {
            return Err(BucketLayoutError::MemorySize {
                id: id as u8,
                pages,
                buckets: *buckets,
            });
        }
    }
    let needed = MANAGER_HEADER_PAGES + n as u64 * LEGACY_BUCKET_PAGES as u64;
    if memory.size() < needed {
        return Err(BucketLayoutError::Physical {
            pages: memory.size(),
            needed,
        });
    }
    let to_buckets = (n * LEGACY_FACTOR) as u16;
    let mut new_table = vec![UNALLOCATED; MAX_BUCKETS];
    for (b, owner) in table[..n].iter().enumerate() {
        new_table[b * LEGACY_FACTOR..(b + 1) * LEGACY_FACTOR].fill(*owner);
    }
    head[4..6].copy_from_slice(&to_buckets.to_le_bytes());
    head[6..8].copy_from_slice(&BUCKET_PAGES.to_le_bytes());
    head[TABLE_AT..].copy_from_slice(&new_table);
    memory.write(4, &head[4..]);
    Ok(BucketMigration::Migrated {
        from_buckets: allocated,
        to_buckets,
    })
}

/// [`BucketSlack`] of a 1 MiB layout (all zero on empty memory).
fn bucket_slack<M: Memory>(memory: &M) -> BucketSlack {
    let mut slack = [0u16; MANAGED_MEMORIES];
    if memory.size() == 0 {
        return BucketSlack(slack);
    }
    let mut head = vec![0u8; HEADER_AND_TABLE];
    memory.read(0, &mut head);
    let mut owned = [0u64; MANAGED_MEMORIES];
    for &owner in &head[TABLE_AT..] {
        if owner != UNALLOCATED {
            owned[owner as usize] += 1;
        }
    }
    for (id, s) in slack.iter_mut().enumerate() {
        let needed = size_at(&head, id).div_ceil(BUCKET_PAGES as u64);
        *s = owned[id].saturating_sub(needed) as u16;
    }
    BucketSlack(slack)
}

fn size_at(head: &[u8], id: usize) -> u64 {
    let at = SIZES_AT + 8 * id;
    u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"))
}

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
        assert_eq!(ALL.len(), 39);
    }

    use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap};

    const WASM_PAGE: u64 = 65_536;

    /// Deterministic bytes for memory `id` at `offset`.
    fn pattern(id: u8, offset: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let x = (offset + i).wrapping_mul(0x9E37_79B9) ^ (id as u64) << 24;
                (x >> 7) as u8
            })
            .collect()
    }

    fn contents(m: &impl Memory) -> Vec<u8> {
        let mut v = vec![0u8; (m.size() * WASM_PAGE) as usize];
        m.read(0, &mut v);
        v
    }

    fn header_u16(mem: &DefaultMemoryImpl, at: u64) -> u16 {
        let mut b = [0u8; 2];
        mem.read(at, &mut b);
        u16::from_le_bytes(b)
    }

    /// An 8 MiB layout as today's canister writes it: interleaved growth of several
    /// memories (so their buckets alternate), raw data across bucket boundaries and a
    /// B-tree.
    fn legacy_image() -> DefaultMemoryImpl {
        let raw = DefaultMemoryImpl::default();
        let mm = MemoryManager::init(raw.clone());
        let raw_ids = [CONTENT_PAGES, RECORD_SLAB, ADMIN_TRAIL, OPS_SNAPSHOT];
        for round in 0..3u64 {
            for (k, id) in raw_ids.iter().enumerate() {
                let m = mm.get(*id);
                let grow = [1u64, 70, 3, 60][k] + round;
                let at = m.size() * WASM_PAGE;
                assert!(m.grow(grow) >= 0);
                m.write(at, &pattern(k as u8, at, (grow * WASM_PAGE) as usize));
            }
        }
        let mut map: StableBTreeMap<u64, Vec<u8>, _> = StableBTreeMap::init(mm.get(MEMBERS));
        for i in 0..3_000u64 {
            map.insert(i, pattern(5, i, (i % 300) as usize));
        }
        drop(map);
        drop(mm);
        assert_eq!(header_u16(&raw, 6), LEGACY_BUCKET_PAGES);
        raw
    }

    fn virtual_contents(mm: &MemoryManager<DefaultMemoryImpl>) -> Vec<(u8, Vec<u8>)> {
        ALL.iter()
            .map(|(id, n, _)| (*n, contents(&mm.get(*id))))
            .collect()
    }

    #[test]
    fn eight_mib_buckets_become_one_mib_buckets_with_the_same_contents() {
        let raw = legacy_image();
        let before = virtual_contents(&MemoryManager::init(raw.clone()));
        let physical = raw.borrow().len();
        let mut table = vec![0u8; MAX_BUCKETS];
        raw.read(TABLE_AT as u64, &mut table);
        let old_count = header_u16(&raw, 4);
        assert!(old_count >= 6, "the image interleaves buckets: {old_count}");

        let (mm, slack) = open_manager(raw.clone());
        assert_eq!(header_u16(&raw, 6), BUCKET_PAGES);
        assert_eq!(header_u16(&raw, 4), old_count * 8);
        let mut new_table = vec![0u8; MAX_BUCKETS];
        raw.read(TABLE_AT as u64, &mut new_table);
        for b in 0..MAX_BUCKETS {
            let expect = if b < old_count as usize * 8 {
                table[b / 8]
            } else {
                UNALLOCATED
            };
            assert_eq!(new_table[b], expect, "bucket {b}");
        }
        assert_eq!(raw.borrow().len(), physical, "no data moves, nothing grows");
        assert_eq!(virtual_contents(&mm), before);
        // Slack: each memory's buckets beyond its size, as 1 MiB buckets.
        for (id, n, _) in ALL {
            let pages = mm.get(id).size();
            let owned = table[..old_count as usize]
                .iter()
                .filter(|o| **o == n)
                .count() as u64;
            assert_eq!(slack.allocated_pages(n, pages), owned * 128, "memory {n}");
        }

        // New writes: memories grow by 1 MiB buckets; old and new data read back.
        let pages_before = raw.borrow().len() as u64 / WASM_PAGE;
        let m = mm.get(CONTENT_PAGES);
        let at = m.size() * WASM_PAGE;
        assert!(m.grow(200) >= 0, "into its slack and beyond");
        m.write(at, &pattern(9, at, 200 * WASM_PAGE as usize));
        let fresh = mm.get(VAULT_CREATIONS);
        assert!(fresh.grow(1) >= 0);
        fresh.write(0, b"new memory");
        let grown = raw.borrow().len() as u64 / WASM_PAGE - pages_before;
        assert!(
            grown.is_multiple_of(16) && grown < 200 + 16,
            "grew by 1 MiB buckets: {grown} pages"
        );
        drop(mm);
        let (again, slack_again) = open_manager(raw.clone());
        assert_eq!(slack_again, slack, "the slack stays constant");
        let after = virtual_contents(&again);
        for ((n, old), (n2, new)) in before.iter().zip(&after) {
            assert_eq!(n, n2);
            assert_eq!(&new[..old.len()], &old[..], "memory {n} keeps its bytes");
        }
        let m = again.get(CONTENT_PAGES);
        let mut got = vec![0u8; 200 * WASM_PAGE as usize];
        m.read(at, &mut got);
        assert_eq!(got, pattern(9, at, got.len()));
        let mut got = [0u8; 10];
        again.get(VAULT_CREATIONS).read(0, &mut got);
        assert_eq!(&got, b"new memory");
        let map: StableBTreeMap<u64, Vec<u8>, _> = StableBTreeMap::init(again.get(MEMBERS));
        assert_eq!(map.len(), 3_000);
        assert_eq!(map.get(&2_999), Some(pattern(5, 2_999, 2_999 % 300)));
    }

    #[test]
    fn the_migration_is_idempotent() {
        let raw = legacy_image();
        assert!(matches!(
            migrate_buckets(&raw),
            Ok(BucketMigration::Migrated { .. })
        ));
        let once = raw.borrow().clone();
        assert_eq!(migrate_buckets(&raw), Ok(BucketMigration::Current));
        assert_eq!(*raw.borrow(), once);
    }

    #[test]
    fn a_fresh_install_uses_one_mib_buckets() {
        let raw = DefaultMemoryImpl::default();
        assert_eq!(migrate_buckets(&raw), Ok(BucketMigration::Fresh));
        let (mm, slack) = open_manager(raw.clone());
        assert!(mm.get(CONFIG).grow(1) >= 0);
        assert_eq!(header_u16(&raw, 6), BUCKET_PAGES);
        assert_eq!(raw.borrow().len() as u64, (1 + 16) * WASM_PAGE);
        assert_eq!(slack.allocated_pages(0, 1), 16);
        assert_eq!(slack.allocated_pages(1, 0), 0);
    }

    /// Every refusal leaves the memory byte-identical.
    #[test]
    fn unknown_layouts_are_refused_and_left_alone() {
        type Corrupt = Box<dyn Fn(&mut Vec<u8>)>;
        type Expect = fn(&BucketLayoutError) -> bool;
        use BucketLayoutError as E;
        let cases: Vec<(&str, Corrupt, Expect)> = vec![
            ("magic", Box::new(|m| m[0] = b'X'), |e| *e == E::NoManager),
            ("version", Box::new(|m| m[3] = 2), |e| *e == E::Version(2)),
            (
                "bucket size",
                Box::new(|m| m[6..8].copy_from_slice(&64u16.to_le_bytes())),
                |e| *e == E::BucketSize(64),
            ),
            (
                "count",
                Box::new(|m| m[4..6].copy_from_slice(&4_097u16.to_le_bytes())),
                |e| *e == E::TooManyBuckets(4_097),
            ),
            ("owner", Box::new(|m| m[TABLE_AT] = 200), |e| {
                *e == E::UnknownOwner {
                    bucket: 0,
                    owner: 200,
                }
            }),
            ("hole", Box::new(|m| m[TABLE_AT + 1] = UNALLOCATED), |e| {
                *e == E::Table { bucket: 1 }
            }),
            (
                "beyond the count",
                Box::new(|m| m[TABLE_AT + 4_000] = 3),
                |e| *e == E::Table { bucket: 4_000 },
            ),
            (
                "memory size",
                Box::new(|m| {
                    let at = SIZES_AT + 8 * 33;
                    m[at..at + 8].copy_from_slice(&1_000_000u64.to_le_bytes())
                }),
                |e| {
                    matches!(
                        e,
                        E::MemorySize {
                            id: 33,
                            pages: 1_000_000,
                            ..
                        }
                    )
                },
            ),
            (
                "physical",
                Box::new(|m| m.truncate(m.len() - WASM_PAGE as usize)),
                |e| matches!(e, E::Physical { .. }),
            ),
        ];
        let base = legacy_image().borrow().clone();
        for (what, corrupt, expected) in cases {
            let raw = DefaultMemoryImpl::new(std::cell::RefCell::new(base.clone()));
            corrupt(&mut raw.borrow_mut());
            let before = raw.borrow().clone();
            let got = migrate_buckets(&raw).expect_err(what);
            assert!(expected(&got), "{what}: {got}");
            assert_eq!(*raw.borrow(), before, "{what}: nothing written");
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                open_manager(raw.clone()).1
            }));
            assert!(opened.is_err(), "{what}: open_manager traps");
        }
    }
}
