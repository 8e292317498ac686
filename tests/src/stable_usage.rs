//! What the canister keeps in stable memory, per memory and per category, read from outside
//! (a copy of the stable memory, [`local_replica::Host::stable_memory`]) so it works on the
//! shipped wasm: no endpoint of the canister is needed.
//!
//! Two measures per virtual memory (`livault_backend::storage::memory`):
//! - `pages`: what the `MemoryManager` handed the memory (64 KiB Wasm pages). The physical
//!   stable memory grows by whole buckets (1 MiB; 8 MiB before the bucket migration), so
//!   neither says what one call adds.
//! - `used`: the bytes the memory's structure holds for live data, at the granularity of its
//!   own allocation unit:
//!   - `StableBTreeMap`: allocated node chunks × chunk size (its allocator's header);
//!   - the record slab: handed-out blocks (bump pointer) minus the blocks on its free lists,
//!     split by owner: vault records (vault directory), download tickets (ticket
//!     directory), chunk indexes (chunk directory); the rest are audit events and audit
//!     index pages (the slab's only other user);
//!   - dense directories: 16 bytes per id up to the highest present entry;
//!   - due queues: 32 bytes per live slot;
//!   - content pages: the pages the memory grew to (freed runs are reused, listed in
//!     `CONTENT_FREE_PAGES`);
//!   - cells: one 64 KiB page each.
//!
//! A call's stable bytes are `used` after N calls minus `used` before, divided by N: B-tree
//! nodes (a few KiB) and slab blocks (64 B × 2^c or 96 B × 2^c) are allocated in units, so one
//! call can read 0 or a whole node; N calls average that out (see docs/security.md).

use std::collections::BTreeMap;

const WASM_PAGE: u64 = 65_536;
/// `MemoryManager` header: magic, version, buckets, bucket size, 32 reserved bytes, then 255
/// memory sizes in pages; the bucket table follows at [`BUCKET_TABLE`].
const SIZES_AT: usize = 40;
const BUCKET_TABLE: usize = SIZES_AT + 255 * 8;
const MAX_BUCKETS: usize = 32_768;
const UNALLOCATED: u8 = 255;

/// Memory ids (`livault_backend::storage::memory`) and how their bytes are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cell,
    BTree,
    Slab,
    Dir,
    Queue,
    Pages,
    Retired,
    Vec,
}

/// (id, name, kind, category)
const MEMORIES: [(u8, &str, Kind, Category); 36] = [
    (0, "CONFIG", Kind::Cell, Category::Vaults),
    (1, "HEADER", Kind::Cell, Category::Vaults),
    (2, "VAULTS (retired)", Kind::Retired, Category::Vaults),
    // Retired in layout 6 (a B-tree emptied by the migration; still read for older modules).
    (
        3,
        "VAULTS_BY_OWNER (retired)",
        Kind::BTree,
        Category::Indexes,
    ),
    (4, "VAULTS_BY_MEMBER", Kind::BTree, Category::Indexes),
    (5, "MEMBERS", Kind::BTree, Category::Members),
    (6, "INVITES", Kind::BTree, Category::Members),
    (7, "INVITE_TOKEN_INDEX", Kind::BTree, Category::Members),
    (8, "PAYMENT_SESSIONS", Kind::BTree, Category::Payments),
    (9, "PAYMENT_JOURNAL", Kind::BTree, Category::Payments),
    (10, "BILLING", Kind::BTree, Category::Payments),
    (11, "UPLOADS", Kind::BTree, Category::Content),
    (12, "CONTENT_ITEMS", Kind::BTree, Category::Content),
    (
        13,
        "CONTENT_CHUNK_INDEX (retired)",
        Kind::Retired,
        Category::Content,
    ),
    (14, "CONTENT_PAGES", Kind::Pages, Category::Content),
    (15, "CONTENT_FREE_PAGES", Kind::BTree, Category::Content),
    (16, "AUDIT_LOG (retired)", Kind::Retired, Category::Audit),
    (
        17,
        "SCHEDULER_QUEUE (retired)",
        Kind::Retired,
        Category::Queues,
    ),
    (18, "IDEMPOTENCY", Kind::BTree, Category::Indexes),
    (
        19,
        "DOWNLOAD_COUNTERS (retired)",
        Kind::Retired,
        Category::Counters,
    ),
    (
        20,
        "DOWNLOAD_TICKETS (retired)",
        Kind::Retired,
        Category::Counters,
    ),
    (21, "RECOVERY_CODES", Kind::BTree, Category::Members),
    (22, "VETKEYS", Kind::BTree, Category::Counters),
    (
        23,
        "PAYMENT_SESSIONS_BY_VAULT",
        Kind::BTree,
        Category::Payments,
    ),
    (24, "RECORD_SLAB", Kind::Slab, Category::Audit),
    (25, "VAULT_DIR", Kind::Dir, Category::Vaults),
    (26, "AUDIT_INDEX", Kind::Dir, Category::Audit),
    (27, "SCHEDULER_SLOTS", Kind::Queue, Category::Queues),
    (28, "CHUNK_DIR", Kind::Dir, Category::Content),
    (29, "TICKET_DIR", Kind::Dir, Category::Counters),
    (30, "PAYMENT_CHECKS", Kind::Queue, Category::Queues),
    (31, "REFUND_ACCOUNTS", Kind::BTree, Category::Payments),
    (32, "IDEMPOTENCY_BY_VAULT", Kind::BTree, Category::Indexes),
    (33, "OPS_SNAPSHOT", Kind::Pages, Category::Operations),
    (34, "ADMIN_TRAIL", Kind::Pages, Category::Operations),
    // Layout 6: the owner index's directory (its buckets are slab blocks, below).
    (36, "OWNER_INDEX", Kind::Dir, Category::Indexes),
];

/// Memories a newer layout may add (read as B-trees when present; listed by id).
const EXTRA_BTREES: [(u8, &str, Category); 2] = [
    (35, "VAULT_CREATIONS", Category::Counters),
    (38, "DOWNLOAD_COUNTERS_BY_DAY", Category::Counters),
];

/// Memories a newer layout may add that are `StableVec`s (read as such when present).
const EXTRA_VECS: [(u8, &str, Category); 1] = [(37, "BILLING_SLOTS", Category::Payments)];

/// What the bytes are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Vault records and their directory, configuration and header cells.
    Vaults,
    /// Audit events, their index pages and directory.
    Audit,
    /// Payment sessions, their vault index, journal, billing, refund accounts.
    Payments,
    /// The scheduler's due queue and payment checks.
    Queues,
    /// Download tickets and counters, vetKeys counters, vault creation counters.
    Counters,
    /// Owner, member and idempotency indexes.
    Indexes,
    /// Members, invites, token and recovery-code indexes.
    Members,
    /// Items, uploads, chunk indexes and content pages.
    Content,
    /// The operational counters' upgrade snapshot and the admin trail (a ring of at most
    /// 2 047 slots of 4 KiB).
    Operations,
}

impl Category {
    /// Every category, in report order.
    pub const ALL: [Category; 9] = [
        Category::Vaults,
        Category::Audit,
        Category::Payments,
        Category::Queues,
        Category::Counters,
        Category::Indexes,
        Category::Members,
        Category::Content,
        Category::Operations,
    ];

    /// Report label.
    pub fn label(self) -> &'static str {
        match self {
            Category::Vaults => "vaults (records, directory, cells)",
            Category::Audit => "audit log (events, index pages)",
            Category::Payments => "sessions / billing / journal",
            Category::Queues => "scheduler queues",
            Category::Counters => "tickets / counters",
            Category::Indexes => "indexes (owner, member, idempotency)",
            Category::Members => "members / invites / recovery",
            Category::Content => "content (items, uploads, pages)",
            Category::Operations => "operations (counter snapshot, admin trail)",
        }
    }
}

/// One virtual memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemUsage {
    /// Name in `storage::memory`.
    pub name: &'static str,
    /// Pages the `MemoryManager` gave it.
    pub pages: u64,
    /// Bytes of live data (see the module docs).
    pub used: u64,
    /// Entries of a `StableBTreeMap` (its header's length) or live slots of a due queue.
    pub entries: u64,
}

/// The canister's stable memory, measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StableUsage {
    /// Size of the whole stable memory (what the IC charges for).
    pub physical: u64,
    /// Per memory id.
    pub memories: BTreeMap<u8, MemUsage>,
    /// Live bytes per category.
    pub categories: BTreeMap<Category, u64>,
}

impl StableUsage {
    /// Live bytes of all categories.
    pub fn used(&self) -> u64 {
        self.categories.values().sum()
    }

    /// Entries of memory `id` (B-tree length, live queue slots; 0 otherwise).
    pub fn entries(&self, id: u8) -> u64 {
        self.memories.get(&id).map_or(0, |m| m.entries)
    }

    /// Live bytes of `c`.
    pub fn of(&self, c: Category) -> u64 {
        self.categories.get(&c).copied().unwrap_or(0)
    }

    /// Measures a copy of the stable memory (empty: all zero).
    pub fn read(stable: &[u8]) -> StableUsage {
        let mut out = StableUsage {
            physical: stable.len() as u64,
            ..Default::default()
        };
        for c in Category::ALL {
            out.categories.insert(c, 0);
        }
        if stable.len() < BUCKET_TABLE + MAX_BUCKETS || &stable[..3] != b"MGR" {
            return out;
        }
        let mm = Manager::new(stable);
        let mut slab_used = 0;
        let mut slab_owned = 0;
        let all = MEMORIES.iter().copied().chain(
            EXTRA_BTREES
                .iter()
                .map(|(id, n, c)| (*id, *n, Kind::BTree, *c))
                .chain(EXTRA_VECS.iter().map(|(id, n, c)| (*id, *n, Kind::Vec, *c))),
        );
        for (id, name, kind, category) in all {
            let mem = mm.memory(id);
            let pages = mem.pages;
            let entries = match kind {
                Kind::BTree if pages > 0 => mem.u64(20),
                Kind::Queue if pages > 0 => queue_used(&mem) / 32,
                Kind::Vec if pages > 0 => mem.u64(4),
                _ => 0,
            };
            let used = if pages == 0 {
                0
            } else {
                match kind {
                    Kind::Cell => WASM_PAGE,
                    Kind::Retired => 0,
                    Kind::BTree => btree_used(&mem),
                    Kind::Queue => queue_used(&mem),
                    Kind::Pages => pages * WASM_PAGE,
                    Kind::Dir => dir_used(&mem),
                    Kind::Vec => vec_used(&mem),
                    Kind::Slab => {
                        slab_used = slab_used_bytes(&mem);
                        0
                    }
                }
            };
            out.memories.insert(
                id,
                MemUsage {
                    name,
                    pages,
                    used,
                    entries,
                },
            );
            *out.categories.entry(category).or_default() += used;
        }
        // The slab's blocks, by owner: vault records, tickets, chunk indexes and owner-index
        // buckets through their directories; audit events and pages are the rest.
        let slab = mm.memory(24);
        for (dir, category, nested) in [
            (25u8, Category::Vaults, false),
            (29, Category::Counters, false),
            (28, Category::Content, true),
            (36, Category::Indexes, false),
        ] {
            let bytes = dir_blocks(&mm.memory(dir), &slab, nested);
            slab_owned += bytes;
            *out.categories.entry(category).or_default() += bytes;
        }
        *out.categories.entry(Category::Audit).or_default() += slab_used.saturating_sub(slab_owned);
        if let Some(m) = out.memories.get_mut(&24) {
            m.used = slab_used;
        }
        out
    }
}

/// The bytes of virtual memory `id` (empty if it has none), read through the
/// `MemoryManager`'s bucket table of a copy of the stable memory (any bucket size).
pub fn virtual_memory(stable: &[u8], id: u8) -> Vec<u8> {
    if stable.len() < BUCKET_TABLE + MAX_BUCKETS || &stable[..3] != b"MGR" {
        return Vec::new();
    }
    let mem = Manager::new(stable).memory(id);
    let mut out = vec![0u8; mem.size() as usize];
    mem.read(0, &mut out);
    out
}

/// The `MemoryManager`'s bucket size in Wasm pages and its count of allocated buckets
/// (`None` without a manager).
pub fn buckets(stable: &[u8]) -> Option<(u16, u16)> {
    if stable.len() < BUCKET_TABLE + MAX_BUCKETS || &stable[..3] != b"MGR" {
        return None;
    }
    Some((
        u16::from_le_bytes([stable[6], stable[7]]),
        u16::from_le_bytes([stable[4], stable[5]]),
    ))
}

/// Difference `after − before` per category (negative: freed).
pub fn diff(before: &StableUsage, after: &StableUsage) -> BTreeMap<Category, i64> {
    Category::ALL
        .iter()
        .map(|c| (*c, after.of(*c) as i64 - before.of(*c) as i64))
        .collect()
}

/// The `MemoryManager`'s bucket table over a copy of the stable memory.
struct Manager<'a> {
    stable: &'a [u8],
    bucket_bytes: u64,
    buckets: Vec<Vec<u64>>,
    sizes: Vec<u64>,
}

/// A virtual memory: its buckets in order.
struct VMem<'a> {
    stable: &'a [u8],
    bucket_bytes: u64,
    buckets: Vec<u64>,
    pages: u64,
}

impl<'a> Manager<'a> {
    fn new(stable: &'a [u8]) -> Self {
        let bucket_pages = u16::from_le_bytes([stable[6], stable[7]]) as u64;
        let mut buckets = vec![Vec::new(); 256];
        for (i, m) in stable[BUCKET_TABLE..BUCKET_TABLE + MAX_BUCKETS]
            .iter()
            .enumerate()
        {
            if *m != UNALLOCATED {
                buckets[*m as usize].push(i as u64);
            }
        }
        let sizes = (0..255)
            .map(|i| u64_at(stable, (SIZES_AT + 8 * i) as u64))
            .collect();
        Manager {
            stable,
            bucket_bytes: bucket_pages * WASM_PAGE,
            buckets,
            sizes,
        }
    }

    fn memory(&self, id: u8) -> VMem<'a> {
        VMem {
            stable: self.stable,
            bucket_bytes: self.bucket_bytes,
            buckets: self.buckets[id as usize].clone(),
            pages: self.sizes[id as usize],
        }
    }
}

impl VMem<'_> {
    fn size(&self) -> u64 {
        self.pages * WASM_PAGE
    }

    fn read(&self, at: u64, dst: &mut [u8]) {
        let mut done = 0usize;
        while done < dst.len() {
            let a = at + done as u64;
            let bucket = (a / self.bucket_bytes) as usize;
            let off = a % self.bucket_bytes;
            let n = ((self.bucket_bytes - off) as usize).min(dst.len() - done);
            let phys = WASM_PAGE + self.buckets[bucket] * self.bucket_bytes + off;
            let phys = phys as usize;
            dst[done..done + n].copy_from_slice(&self.stable[phys..phys + n]);
            done += n;
        }
    }

    fn u64(&self, at: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(at, &mut b);
        u64::from_le_bytes(b)
    }
}

fn u64_at(b: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `StableBTreeMap`: the allocator (at 52) holds `allocation_size` and the chunk count.
fn btree_used(m: &VMem) -> u64 {
    let mut magic = [0u8; 3];
    m.read(0, &mut magic);
    assert_eq!(&magic, b"BTR", "not a StableBTreeMap");
    let mut alloc = [0u8; 3];
    m.read(52, &mut alloc);
    assert_eq!(&alloc, b"BTA", "no B-tree allocator at 52");
    let chunk = m.u64(52 + 8);
    let chunks = m.u64(52 + 16);
    chunk * chunks
}

/// `StableVec`: its 64-byte header and its slots (the max element size, plus a length prefix
/// of 1, 2 or 4 bytes unless the elements are fixed-size; `ic-stable-structures`'
/// `base_vec.rs`).
fn vec_used(m: &VMem) -> u64 {
    let mut magic = [0u8; 3];
    m.read(0, &mut magic);
    assert_eq!(&magic, b"SVC", "not a StableVec");
    let mut head = [0u8; 17];
    m.read(0, &mut head);
    let len = u64::from_le_bytes(head[4..12].try_into().unwrap());
    let max = u64::from(u32::from_le_bytes(head[12..16].try_into().unwrap()));
    let prefix = match (head[16] != 0, max) {
        (true, _) => 0,
        (false, 0..=255) => 1,
        (false, 256..=65_535) => 2,
        (false, _) => 4,
    };
    64 + len * (max + prefix)
}

/// Due queue: 32 bytes per live slot (slot 0 is the header with the slots ever used).
fn queue_used(m: &VMem) -> u64 {
    let mut magic = [0u8; 8];
    m.read(0, &mut magic);
    assert_eq!(&magic, b"LVQUEUE1", "not a due queue");
    let used = m.u64(8);
    let mut bytes = vec![0u8; (used * 32) as usize];
    m.read(0, &mut bytes);
    bytes
        .chunks_exact(32)
        .skip(1)
        .filter(|s| s[21] != 0)
        .count() as u64
        * 32
}

/// Dense directory: 16 bytes per id up to the highest present entry.
fn dir_used(m: &VMem) -> u64 {
    let mut bytes = vec![0u8; m.size() as usize];
    m.read(0, &mut bytes);
    bytes
        .chunks_exact(16)
        .rposition(|e| e[13] != 0)
        .map_or(0, |i| (i as u64 + 1) * 16)
}

/// Slab block classes: codes 0..=14 are 64 B × 2^c, codes 15..=28 (layout 6) 96 B × 2^(c − 15).
const SLAB_CLASSES: u8 = 29;

/// Size of a slab block of class `class`.
fn block_size(class: u8) -> u64 {
    if class < 15 {
        64u64 << class
    } else {
        96u64 << (class - 15)
    }
}

/// Slab block at a 16-byte location entry: its address, record length and class.
fn loc(e: &[u8]) -> Option<(u64, u32, u8)> {
    if e[13] == 0 {
        return None;
    }
    Some((
        u64::from_le_bytes(e[..8].try_into().expect("8")),
        u32::from_le_bytes(e[8..12].try_into().expect("4")),
        e[12],
    ))
}

/// Blocks the directory's records take in the slab; `nested`: each record is itself a list
/// of locations of further blocks (chunk indexes).
fn dir_blocks(dir: &VMem, slab: &VMem, nested: bool) -> u64 {
    if dir.pages == 0 {
        return 0;
    }
    let mut bytes = vec![0u8; dir.size() as usize];
    dir.read(0, &mut bytes);
    let mut total = 0;
    for e in bytes.chunks_exact(16) {
        let Some((addr, len, class)) = loc(e) else {
            continue;
        };
        total += block_size(class);
        if nested {
            let mut rec = vec![0u8; len as usize];
            slab.read(addr, &mut rec);
            for inner in rec.chunks_exact(16) {
                if let Some((_, _, c)) = loc(inner) {
                    total += block_size(c);
                }
            }
        }
    }
    total
}

/// Slab: bump pointer (at 8) minus the first block's offset and every free block.
fn slab_used_bytes(m: &VMem) -> u64 {
    let mut magic = [0u8; 8];
    m.read(0, &mut magic);
    assert_eq!(&magic, b"LVSLAB\x00\x01", "not the record slab");
    let bump = m.u64(8);
    let mut free = 0;
    for class in 0..SLAB_CLASSES {
        let mut addr = m.u64(16 + 8 * u64::from(class));
        let mut steps = 0;
        while addr != 0 {
            free += block_size(class);
            addr = m.u64(addr);
            steps += 1;
            assert!(steps <= bump / 64, "slab free list {class} has a cycle");
        }
    }
    bump.saturating_sub(4096).saturating_sub(free)
}
