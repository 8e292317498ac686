//! The per-vault audit log: events in [`Slab`] blocks, found through a two-level page index
//! per vault (storage layout 4).
//!
//! A vault's kept events have consecutive sequence numbers `first..end` (new events are
//! appended, compaction drops the oldest). Their block locations ([`Loc`], 16 bytes) sit in
//! **leaf pages** of `P` entries, the leaf pages' locations in **directory pages** of `P`
//! entries, and the directory pages' locations in the vault's **root record**
//! ([`AUDIT_INDEX`](super::memory::AUDIT_INDEX), a [`DenseBytes`] table keyed by vault id):
//!
//! ```text
//! root:  first u64 | origin u64 | end u64 | tail Loc | dir Loc × dirs      (little endian)
//! event seq at position p = seq − origin: dir p / P², leaf (p / P) mod P, slot p mod P
//! ```
//!
//! `origin` is the seq at slot 0 of the first listed directory's first leaf; `tail` is the leaf
//! holding the newest event (also listed in its directory), so an append reads the directory
//! entry and the root header, writes the event's block, its 16-byte leaf slot and `end`: the
//! same number of stable reads and writes as the flat index of layout 3, whatever the log's
//! size. A full leaf starts a new one (a full directory a new directory, appended to the root).
//! Pages start at 64 bytes and double while they fill (the tail leaf and directory only), so
//! a vault with few events holds three small blocks (root, directory, leaf). Compaction
//! ([`AuditLog::drop_before`]) frees the dropped events' blocks, then the leaves and
//! directories wholly before the new `first`; only when whole directories go does it rewrite
//! the root (shifting its list and moving `origin` by `P²`): no entry is copied.
//!
//! **Capacity.** `P` = [`PAGE_ENTRIES`] = 8 192 (a full page is a 128 KiB slab block). The
//! root is a slab record (≤ 1 MiB): 40 header bytes and at most 65 533 directories of `P²` =
//! 67 108 864 events, so ≥ 65 532 × 2²⁶ ≈ 4.4 × 10¹² kept events per vault. Unreachable: the
//! rate limit lets a vault's at most 52 principals (owner, ≤ 50 heirs, witness; plus the
//! scheduler's few events) append ≤ 52 events a second, 1.6 × 10¹⁰ in the longest retention
//! (3 650 days); and the `MemoryManager`'s 256 GiB (32 768 buckets of 8 MiB) hold fewer than
//! 1.9 × 10⁹ events at ≥ 144 bytes each (a ≥ 128-byte event block plus its slot).
//!
//! Layout 3 kept one flat record per vault (`first`, then one `Loc` per event), capped at
//! 65 535 events by the 1 MiB record; [`AuditLog::migrate_flat_layout_3`] rebuilds those
//! records in this layout in `post_upgrade` (the event blocks stay where they are).

use std::borrow::Cow;
use std::rc::Rc;

use ic_stable_structures::{Memory, Storable};

use super::slab::{DenseBytes, Loc, Slab};
use crate::model::records::AuditEvent;
use crate::model::types::VaultId;

/// Entries per leaf and per directory page (128 KiB pages).
pub const PAGE_ENTRIES: u64 = 8_192;
const ENTRY: u64 = Loc::BYTES as u64;
/// Root header: `first`, `origin`, `end`, `tail`.
const HEAD: u64 = 40;
const END_AT: u64 = 16;
/// Leaf entries read per stable read while iterating or freeing.
const BATCH: u64 = 64;

/// A vault's root header, as read.
#[derive(Clone, Copy, Debug)]
struct Root {
    /// The root record's block.
    loc: Loc,
    first: u64,
    origin: u64,
    end: u64,
    tail: Loc,
}

impl Root {
    /// Directories listed.
    fn dirs(&self) -> u64 {
        (u64::from(self.loc.len) - HEAD) / ENTRY
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn decode_entry(b: &[u8]) -> Loc {
    Loc::decode(b).expect("BUG: empty audit index entry")
}

/// Every vault's audit events (see the module docs).
pub struct AuditLog<M: Memory> {
    index: DenseBytes<M>,
    slab: Rc<Slab<M>>,
    /// Entries per page (`P`): [`PAGE_ENTRIES`], smaller in tests. Part of the layout.
    page: u64,
}

impl<M: Memory> AuditLog<M> {
    /// Opens the log with index directory `dir` over the shared `slab`.
    pub fn init(dir: M, slab: Rc<Slab<M>>) -> Self {
        Self::with_page_entries(dir, slab, PAGE_ENTRIES)
    }

    /// [`Self::init`] with `page` entries per page (tests cross page boundaries often).
    fn with_page_entries(dir: M, slab: Rc<Slab<M>>, page: u64) -> Self {
        assert!(page >= 2, "BUG: audit pages need two entries");
        AuditLog {
            index: DenseBytes::init(dir),
            slab,
            page,
        }
    }

    fn root(&self, vault: VaultId) -> Option<Root> {
        let loc = self.index.loc(vault)?;
        let mut b = [0u8; HEAD as usize];
        self.slab.read(loc, 0, &mut b);
        Some(Root {
            loc,
            first: u64_at(&b, 0),
            origin: u64_at(&b, 8),
            end: u64_at(&b, 16),
            tail: decode_entry(&b[24..40]),
        })
    }

    fn read_entry(&self, block: Loc, at: u64) -> Loc {
        let mut b = [0u8; Loc::BYTES];
        self.slab.read(block, at, &mut b);
        decode_entry(&b)
    }

    /// Directory `d` (0: the first listed).
    fn dir_loc(&self, r: &Root, d: u64) -> Loc {
        debug_assert!(d < r.dirs());
        self.read_entry(r.loc, HEAD + d * ENTRY)
    }

    /// Leaf `leaf`, counted from `origin`'s leaf; must hold kept events.
    fn leaf_loc(&self, r: &Root, leaf: u64) -> Loc {
        let p = self.page;
        if leaf == (r.end - 1 - r.origin) / p {
            return r.tail;
        }
        let dir = self.dir_loc(r, leaf / p);
        self.read_entry(dir, (leaf % p) * ENTRY)
    }

    /// The vaults with a log (at least one kept event), ascending.
    pub fn vaults(&self) -> impl Iterator<Item = VaultId> + '_ {
        self.index.ids_from(0)
    }

    /// `(first kept seq, number kept)` of the vault's log.
    pub fn bounds(&self, vault: VaultId) -> (u64, u64) {
        self.root(vault)
            .map_or((0, 0), |r| (r.first, r.end - r.first))
    }

    /// Appends `event` to the vault's log. Its `seq` must follow the last kept event (or
    /// start the log); anything else is a programming error.
    pub fn append(&mut self, vault: VaultId, event: &AuditEvent) {
        let root = self.root(vault);
        if let Some(r) = &root {
            assert_eq!(event.seq, r.end, "BUG: audit events out of sequence");
        }
        let bytes = event.to_bytes();
        let loc = self.slab.alloc(bytes.len());
        self.slab.write(loc, 0, &bytes);
        match root {
            None => self.start(vault, event.seq, &loc.encode()),
            Some(r) => self.push(vault, r, loc),
        }
    }

    /// Creates the vault's index with `entries` (event locations from seq `first` on, at
    /// least one): full leaves, then directories, then the root.
    fn start(&mut self, vault: VaultId, first: u64, entries: &[u8]) {
        debug_assert!(!entries.is_empty() && entries.len().is_multiple_of(Loc::BYTES));
        let leaves: Vec<u8> = entries
            .chunks((self.page * ENTRY) as usize)
            .flat_map(|chunk| self.new_page(chunk).encode())
            .collect();
        let tail = decode_entry(&leaves[leaves.len() - Loc::BYTES..]);
        let mut root = Vec::with_capacity(HEAD as usize + Loc::BYTES);
        root.extend_from_slice(&first.to_le_bytes());
        root.extend_from_slice(&first.to_le_bytes());
        let end = first + (entries.len() / Loc::BYTES) as u64;
        root.extend_from_slice(&end.to_le_bytes());
        root.extend_from_slice(&tail.encode());
        for chunk in leaves.chunks((self.page * ENTRY) as usize) {
            root.extend_from_slice(&self.new_page(chunk).encode());
        }
        self.index.put(&self.slab, vault, &root);
    }

    /// A new page block holding `entries`.
    fn new_page(&self, entries: &[u8]) -> Loc {
        let loc = self.slab.alloc(entries.len());
        self.slab.write(loc, 0, entries);
        loc
    }

    /// Writes `entry` at `slot` of `page` (holding `slot` entries before it), moving the page
    /// to a block twice as large (at most `P` entries) when it is full. Returns the page's
    /// location (changed if it moved).
    fn page_put(&self, page: Loc, slot: u64, entry: &Loc) -> Loc {
        let at = slot * ENTRY;
        if at + ENTRY <= page.capacity() {
            self.slab.write(page, at, &entry.encode());
            return page;
        }
        let grown = self
            .slab
            .alloc(((2 * slot).min(self.page) * ENTRY) as usize);
        let mut prefix = vec![0u8; at as usize];
        self.slab.read(page, 0, &mut prefix);
        self.slab.write(grown, 0, &prefix);
        self.slab.free(page);
        self.slab.write(grown, at, &entry.encode());
        grown
    }

    /// Adds event location `loc` at seq `r.end`.
    fn push(&mut self, vault: VaultId, mut r: Root, loc: Loc) {
        let p = self.page;
        let pos = r.end - r.origin;
        let (leaf, slot) = (pos / p, pos % p);
        let tail = if slot == 0 {
            self.new_page(&loc.encode())
        } else {
            self.page_put(r.tail, slot, &loc)
        };
        if tail != r.tail {
            // A new or moved leaf: record it in its directory (a new leaf after a full
            // directory starts a new one).
            let (d, i) = (leaf / p, leaf % p);
            if slot == 0 && i == 0 {
                debug_assert_eq!(d, r.dirs());
                let dir = self.new_page(&tail.encode());
                self.index
                    .append(&self.slab, vault, Some(r.loc), &dir.encode());
                r.loc = self.index.loc(vault).expect("just appended");
            } else {
                let dir = self.dir_loc(&r, d);
                let moved = self.page_put(dir, i, &tail);
                if moved != dir {
                    self.slab.write(r.loc, HEAD + d * ENTRY, &moved.encode());
                }
            }
        }
        let mut head = [0u8; 24];
        head[..8].copy_from_slice(&(r.end + 1).to_le_bytes());
        if tail == r.tail {
            self.slab.write(r.loc, END_AT, &head[..8]);
        } else {
            head[8..].copy_from_slice(&tail.encode());
            self.slab.write(r.loc, END_AT, &head);
        }
    }

    fn read(&self, loc: Loc) -> AuditEvent {
        AuditEvent::from_bytes(Cow::Owned(self.slab.read_all(loc)))
    }

    /// Where event `seq` of `r` is, if kept.
    fn event_loc(&self, r: &Root, seq: u64) -> Option<Loc> {
        if seq < r.first || seq >= r.end {
            return None;
        }
        let pos = seq - r.origin;
        let leaf = self.leaf_loc(r, pos / self.page);
        Some(self.read_entry(leaf, (pos % self.page) * ENTRY))
    }

    /// Event `seq` of the vault, if kept.
    pub fn get(&self, vault: VaultId, seq: u64) -> Option<AuditEvent> {
        let r = self.root(vault)?;
        self.event_loc(&r, seq).map(|l| self.read(l))
    }

    /// The vault's oldest kept event.
    pub fn first(&self, vault: VaultId) -> Option<AuditEvent> {
        let r = self.root(vault)?;
        self.event_loc(&r, r.first).map(|l| self.read(l))
    }

    /// The vault's newest event.
    pub fn last(&self, vault: VaultId) -> Option<AuditEvent> {
        let r = self.root(vault)?;
        self.event_loc(&r, r.end - 1).map(|l| self.read(l))
    }

    /// Calls `f` with the locations of kept events `from..to` of `r`, up to [`BATCH`] at a
    /// time, in order.
    fn for_each_entries(&self, r: &Root, from: u64, to: u64, mut f: impl FnMut(&[u8])) {
        let mut buf = Vec::new();
        let mut next = from;
        while next < to {
            let pos = next - r.origin;
            let slot = pos % self.page;
            let n = BATCH.min(self.page - slot).min(to - next);
            buf.resize((n * ENTRY) as usize, 0);
            let leaf = self.leaf_loc(r, pos / self.page);
            self.slab.read(leaf, slot * ENTRY, &mut buf);
            f(&buf);
            next += n;
        }
    }

    /// The vault's kept events with seq ≥ `from`, oldest first (read lazily).
    pub fn events_from(&self, vault: VaultId, from: u64) -> impl Iterator<Item = AuditEvent> + '_ {
        let root = self.root(vault);
        let (mut next, end) = root.map_or((0, 0), |r| (from.max(r.first), r.end));
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = next;
        let page = self.page;
        // The leaf of the last batch: (leaf number, location).
        let mut leaf: Option<(u64, Loc)> = None;
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let r = root.as_ref().expect("a non-empty range has a root");
            if buf.is_empty() || next >= buf_start + buf.len() as u64 / ENTRY {
                let pos = next - r.origin;
                let (n_leaf, slot) = (pos / page, pos % page);
                let loc = match leaf {
                    Some((l, loc)) if l == n_leaf => loc,
                    _ => self.leaf_loc(r, n_leaf),
                };
                leaf = Some((n_leaf, loc));
                let n = BATCH.min(page - slot).min(end - next);
                buf.resize((n * ENTRY) as usize, 0);
                self.slab.read(loc, slot * ENTRY, &mut buf);
                buf_start = next;
            }
            let i = ((next - buf_start) * ENTRY) as usize;
            next += 1;
            Some(self.read(decode_entry(&buf[i..i + Loc::BYTES])))
        })
    }

    /// Removes the vault's events with seq < `before` (compaction); returns how many. Frees
    /// their blocks and the pages wholly before the new first event (work proportional to
    /// the events dropped); rewrites the root, a header and 16 bytes per directory, only when
    /// whole directories go. Dropping every event removes the vault's index: the next append
    /// starts the log afresh at its own seq (as in layout 3).
    pub fn drop_before(&mut self, vault: VaultId, before: u64) -> u64 {
        let Some(r) = self.root(vault) else {
            return 0;
        };
        let keep = before.clamp(r.first, r.end);
        let n = keep - r.first;
        if n == 0 {
            return 0;
        }
        self.for_each_entries(&r, r.first, keep, |entries| {
            for e in entries.chunks_exact(Loc::BYTES) {
                self.slab.free(decode_entry(e));
            }
        });
        let p = self.page;
        let first_leaf = (r.first - r.origin) / p;
        if keep == r.end {
            // Nothing kept: every page goes with the root (a later append starts afresh).
            let last_leaf = (r.end - 1 - r.origin) / p;
            for leaf in first_leaf..=last_leaf {
                self.slab.free(self.leaf_loc(&r, leaf));
            }
            for d in 0..r.dirs() {
                self.slab.free(self.dir_loc(&r, d));
            }
            self.index.remove(&self.slab, vault);
            return n;
        }
        let keep_leaf = (keep - r.origin) / p;
        for leaf in first_leaf..keep_leaf {
            self.slab.free(self.leaf_loc(&r, leaf));
        }
        let keep_dir = keep_leaf / p;
        if keep_dir == 0 {
            self.slab.write(r.loc, 0, &keep.to_le_bytes());
            return n;
        }
        for d in 0..keep_dir {
            self.slab.free(self.dir_loc(&r, d));
        }
        let record = self.index.get(&self.slab, vault).expect("root present");
        let mut root = Vec::with_capacity(record.len() - (keep_dir * ENTRY) as usize);
        root.extend_from_slice(&keep.to_le_bytes());
        root.extend_from_slice(&(r.origin + keep_dir * p * p).to_le_bytes());
        root.extend_from_slice(&record[16..HEAD as usize]);
        root.extend_from_slice(&record[(HEAD + keep_dir * ENTRY) as usize..]);
        self.index.put(&self.slab, vault, &root);
        n
    }

    /// Removes every event of the vault and its index (an erased draft).
    pub fn clear(&mut self, vault: VaultId) {
        self.drop_before(vault, u64::MAX);
    }

    /// Storage layout 3 → 4: rebuilds every vault's flat index record (`first: u64 LE`, then
    /// one [`Loc`] per kept event) as pages; the event blocks stay. Run once, by
    /// `State::migrate`, on a layout-3 memory only. Returns the vaults migrated.
    pub fn migrate_flat_layout_3(&mut self) -> u64 {
        let vaults: Vec<VaultId> = self.index.ids_from(0).collect();
        for &vault in &vaults {
            let record = self.index.get(&self.slab, vault).expect("listed");
            self.index.remove(&self.slab, vault);
            let first = u64_at(&record, 0);
            if record.len() > 8 {
                self.start(vault, first, &record[8..]);
            }
        }
        vaults.len() as u64
    }
}

/// Fails the walk with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// The invariant walks.
impl<M: Memory> AuditLog<M> {
    /// Walks every vault's index and checks its shape: the directory entries are well formed;
    /// `origin ≤ first < end`; the listed directories are exactly those from `origin`'s up to
    /// the newest event's, none wholly before `first`; the tail is the newest leaf as listed;
    /// every page block is large enough for its used slots; every kept event reads back with
    /// its own seq (the kept seqs are contiguous). Returns every block reached (roots,
    /// directories, leaves holding kept events, kept events), for [`Slab::check_accounted`].
    /// (The hash chain is the domain's: the state's walk checks it.)
    pub fn reachable_blocks(&self) -> Result<Vec<Loc>, String> {
        let p = self.page;
        let mut blocks = Vec::new();
        self.index.check_invariants(&self.slab)?;
        for vault in self.index.ids_from(0) {
            let r = self.root(vault).expect("listed");
            ensure!(
                u64::from(r.loc.len) >= HEAD && (u64::from(r.loc.len) - HEAD).is_multiple_of(ENTRY),
                "audit log: vault {vault}: root record of {} bytes",
                r.loc.len
            );
            ensure!(
                r.first < r.end,
                "audit log: vault {vault}: an empty log keeps no root"
            );
            ensure!(
                r.origin <= r.first,
                "audit log: vault {vault}: origin after first"
            );
            ensure!(
                r.first - r.origin < p * p,
                "audit log: vault {vault}: a directory wholly before first is still listed"
            );
            let (first_leaf, last_leaf) = ((r.first - r.origin) / p, (r.end - 1 - r.origin) / p);
            ensure!(
                r.dirs() == last_leaf / p + 1,
                "audit log: vault {vault}: {} directories listed, {} expected",
                r.dirs(),
                last_leaf / p + 1
            );
            blocks.push(r.loc);
            for d in 0..r.dirs() {
                let dir = self.dir_loc(&r, d);
                let used = if d == r.dirs() - 1 {
                    last_leaf % p + 1
                } else {
                    p
                };
                ensure!(
                    used * ENTRY <= dir.capacity(),
                    "audit log: vault {vault}: directory {d} too small"
                );
                ensure!(
                    dir.capacity() <= (p * ENTRY).max(64).next_power_of_two(),
                    "audit log: vault {vault}: directory {d} larger than a full page"
                );
                blocks.push(dir);
            }
            for leaf in first_leaf..=last_leaf {
                let dir = self.dir_loc(&r, leaf / p);
                let loc = self.read_entry(dir, (leaf % p) * ENTRY);
                ensure!(
                    leaf != last_leaf || loc == r.tail,
                    "audit log: vault {vault}: the tail leaf is not the one listed"
                );
                let used = if leaf == last_leaf {
                    (r.end - 1 - r.origin) % p + 1
                } else {
                    p
                };
                ensure!(
                    used * ENTRY <= loc.capacity(),
                    "audit log: vault {vault}: leaf {leaf} too small"
                );
                blocks.push(loc);
            }
            for seq in r.first..r.end {
                let loc = self.event_loc(&r, seq).expect("kept");
                let found = self.read(loc).seq;
                ensure!(
                    found == seq,
                    "audit log: vault {vault}: event {seq} reads back as {found}"
                );
                blocks.push(loc);
            }
        }
        Ok(blocks)
    }

    /// [`Self::reachable_blocks`] without the blocks.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.reachable_blocks().map(|_| ())
    }

    /// Events kept for all vaults (walks every index).
    #[cfg(test)]
    pub fn event_count(&self) -> u64 {
        self.index.ids_from(0).map(|v| self.bounds(v).1).sum()
    }

    /// [`Self::reachable_blocks`], and the slab (used by this log only) holds exactly the
    /// blocks it reaches plus its free lists.
    #[cfg(test)]
    pub fn assert_consistent(&self) {
        let blocks = crate::storage::model_test::ok(self.reachable_blocks());
        crate::storage::model_test::ok(self.slab.check_invariants());
        crate::storage::model_test::ok(self.slab.check_accounted(&blocks));
    }
}

/// The flat per-vault index of storage layout 3 (the code that wrote it), for migration
/// tests: `first_seq: u64 LE`, then one [`Loc`] per kept event.
#[cfg(test)]
pub(crate) mod layout3 {
    use super::*;

    /// Layout 3's `AuditLog::append`.
    pub fn append<M: Memory>(
        index: &DenseBytes<M>,
        slab: &Slab<M>,
        vault: VaultId,
        event: &AuditEvent,
    ) {
        let mut loc = index.loc(vault);
        let count = loc.map_or(0, |l| (u64::from(l.len) - 8) / ENTRY);
        if count == 0 {
            index.put(slab, vault, &event.seq.to_le_bytes());
            loc = index.loc(vault);
        }
        let bytes = event.to_bytes();
        let ev = slab.alloc(bytes.len());
        slab.write(ev, 0, &bytes);
        index.append(slab, vault, loc, &ev.encode());
    }

    /// Layout 3's `AuditLog::drop_before`.
    pub fn drop_before<M: Memory>(
        index: &DenseBytes<M>,
        slab: &Slab<M>,
        vault: VaultId,
        before: u64,
    ) {
        let record = index.get(slab, vault).expect("present");
        let first = u64_at(&record, 0);
        let entries = &record[8..];
        let n = before
            .saturating_sub(first)
            .min((entries.len() / Loc::BYTES) as u64) as usize;
        for e in entries[..n * Loc::BYTES].chunks_exact(Loc::BYTES) {
            slab.free(decode_entry(e));
        }
        let mut rest = (first + n as u64).to_le_bytes().to_vec();
        rest.extend_from_slice(&entries[n * Loc::BYTES..]);
        index.put(slab, vault, &rest);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use super::*;
    use candid::Principal;
    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;

    /// An event whose encoding varies in length (several slab classes).
    fn ev_of(vault: VaultId, seq: u64) -> AuditEvent {
        AuditEvent {
            seq,
            at: 1_000 + seq,
            actor: Principal::from_slice(&[vault as u8; 29]),
            action: "vault.updated".into(),
            details: format!(
                "vault {vault} event {seq} {}",
                "x".repeat((seq % 7 * 23) as usize)
            ),
            hash: vec![seq as u8; 32],
        }
    }

    fn ev(seq: u64) -> AuditEvent {
        ev_of(7, seq)
    }

    struct Mems {
        data: VectorMemory,
        dir: VectorMemory,
    }

    impl Mems {
        fn new() -> Self {
            Mems {
                data: VectorMemory::default(),
                dir: VectorMemory::default(),
            }
        }
        /// The log over these memories (opened again: an upgrade).
        fn open(&self, page: u64) -> AuditLog<VectorMemory> {
            AuditLog::with_page_entries(
                self.dir.clone(),
                Rc::new(Slab::init(self.data.clone())),
                page,
            )
        }
    }

    #[test]
    fn append_read_page_compact_and_reopen() {
        let m = Mems::new();
        let mut log = m.open(4);
        for seq in 0..100 {
            log.append(7, &ev(seq));
            if seq < 3 {
                log.append(9, &ev(seq));
            }
        }
        log.assert_consistent();
        assert_eq!(log.bounds(7), (0, 100));
        assert_eq!(log.get(7, 42), Some(ev(42)));
        assert_eq!(log.get(7, 100), None);
        assert_eq!(log.get(8, 0), None);
        assert_eq!(log.last(9), Some(ev(2)));
        let seqs: Vec<u64> = log.events_from(7, 60).map(|e| e.seq).collect();
        assert_eq!(seqs, (60..100).collect::<Vec<_>>());
        // 90 dropped: five whole directories of 16 go, the root is rewritten.
        assert_eq!(log.drop_before(7, 90), 90);
        log.assert_consistent();
        assert_eq!(log.drop_before(7, 10), 0, "already gone");
        assert_eq!(log.first(7), Some(ev(90)));
        assert_eq!(log.get(7, 89), None);
        log.append(7, &ev(100));
        assert_eq!(
            log.events_from(7, 0).map(|e| e.seq).collect::<Vec<_>>(),
            (90..=100).collect::<Vec<_>>()
        );
        assert_eq!(log.event_count(), 14);
        drop(log);
        let log = m.open(4);
        assert_eq!(log.get(7, 95), Some(ev(95)));
        assert_eq!(log.events_from(9, 1).count(), 2);
        log.assert_consistent();
    }

    #[test]
    fn dropping_everything_frees_everything_and_the_log_restarts() {
        let m = Mems::new();
        let mut log = m.open(3);
        for seq in 0..40 {
            log.append(1, &ev(seq));
        }
        assert_eq!(log.drop_before(1, 1_000), 40);
        assert_eq!(log.bounds(1), (0, 0));
        assert_eq!((log.first(1), log.last(1)), (None, None));
        log.assert_consistent();
        assert_eq!(log.reachable_blocks(), Ok(vec![]), "nothing reachable");
        // Like layout 3: an empty log starts again at the next event's seq.
        log.append(1, &ev(45));
        assert_eq!(log.bounds(1), (45, 1));
        assert_eq!(log.get(1, 45), Some(ev(45)));
        log.assert_consistent();
    }

    /// The layout-3 cap: the 65 536th kept event went past the 1 MiB record and trapped.
    #[test]
    fn a_log_holds_far_more_than_65536_events_with_production_pages() {
        let m = Mems::new();
        let mut log = m.open(PAGE_ENTRIES);
        let n = 3 * 65_536 + 5;
        for seq in 0..n {
            log.append(3, &ev(seq));
        }
        assert_eq!(log.bounds(3), (0, n));
        for seq in [0, 8_191, 8_192, 65_535, 65_536, n - 1] {
            assert_eq!(log.get(3, seq), Some(ev(seq)));
        }
        assert_eq!(log.events_from(3, n - 3).count(), 3);
        // Compaction in scheduler-sized batches: constant work, whole pages freed.
        for run in 1..=100 {
            assert_eq!(log.drop_before(3, 100 * run), 100);
        }
        assert_eq!(log.first(3), Some(ev(10_000)));
        log.assert_consistent();
    }

    #[test]
    #[should_panic(expected = "out of sequence")]
    fn a_gap_in_sequence_is_a_bug() {
        let mut log = Mems::new().open(4);
        log.append(1, &ev(0));
        log.append(1, &ev(2));
    }

    #[test]
    fn layout_3_records_migrate_to_pages() {
        let m = Mems::new();
        let index = DenseBytes::init(m.dir.clone());
        let slab = Slab::init(m.data.clone());
        // Vault 1: 70 events, 10 compacted; 2: one event; 3: emptied (a header-only record);
        // 4: the layout-3 maximum.
        for seq in 0..70 {
            layout3::append(&index, &slab, 1, &ev_of(1, seq));
        }
        layout3::drop_before(&index, &slab, 1, 10);
        layout3::append(&index, &slab, 2, &ev_of(2, 0));
        for seq in 0..5 {
            layout3::append(&index, &slab, 3, &ev_of(3, seq));
        }
        layout3::drop_before(&index, &slab, 3, 5);
        for seq in 0..65_535 {
            layout3::append(&index, &slab, 4, &ev_of(4, seq));
        }
        let mut log = m.open(PAGE_ENTRIES);
        assert_eq!(log.migrate_flat_layout_3(), 4);
        log.assert_consistent();
        assert_eq!(log.bounds(1), (10, 60));
        assert_eq!(
            log.events_from(1, 0).collect::<Vec<_>>(),
            (10..70).map(|s| ev_of(1, s)).collect::<Vec<_>>()
        );
        assert_eq!(log.last(2), Some(ev_of(2, 0)));
        assert_eq!(log.bounds(3), (0, 0));
        assert_eq!(log.bounds(4), (0, 65_535));
        assert_eq!(log.get(4, 40_000), Some(ev_of(4, 40_000)));
        // Past the old cap, and the emptied log restarts at its next seq.
        log.append(4, &ev_of(4, 65_535));
        log.append(4, &ev_of(4, 65_536));
        log.append(3, &ev_of(3, 5));
        assert_eq!(log.bounds(3), (5, 1));
        assert_eq!(log.last(4), Some(ev_of(4, 65_536)));
        log.assert_consistent();
    }

    // ------------------------------------------------------------ randomized model test

    #[derive(Clone, Debug)]
    enum Op {
        /// `n` events; an empty log restarts `jump` after its last seq.
        Append {
            vault: usize,
            n: u8,
            jump: u8,
        },
        DropBefore {
            vault: usize,
            delta: i64,
        },
        Get {
            vault: usize,
            delta: i64,
        },
        EventsFrom {
            vault: usize,
            delta: i64,
            take: usize,
        },
        Reopen,
    }

    const VAULTS: [VaultId; 4] = [0, 1, 5, 300];

    fn op() -> impl Strategy<Value = Op> {
        let vault = 0..VAULTS.len();
        prop_oneof![
            4 => (vault.clone(), 1u8..40, 0u8..3).prop_map(|(vault, n, jump)| Op::Append { vault, n, jump }),
            2 => (vault.clone(), -3i64..60).prop_map(|(vault, delta)| Op::DropBefore { vault, delta }),
            2 => (vault.clone(), -3i64..80).prop_map(|(vault, delta)| Op::Get { vault, delta }),
            1 => (vault, -3i64..80, 0usize..100).prop_map(|(vault, delta, take)| Op::EventsFrom { vault, delta, take }),
            1 => Just(Op::Reopen),
        ]
    }

    /// The model: per vault, the next seq the domain would append and the kept events.
    #[derive(Default)]
    struct Model {
        next: u64,
        kept: VecDeque<AuditEvent>,
    }

    impl Model {
        /// The seq `delta` after the first kept (or the next) event, if not negative.
        fn at(&self, delta: i64) -> Option<u64> {
            let base = self.kept.front().map_or(self.next, |e| e.seq);
            base.checked_add_signed(delta)
        }
    }

    fn check(log: &AuditLog<VectorMemory>, model: &BTreeMap<VaultId, Model>) {
        log.assert_consistent();
        for (&vault, m) in model {
            let expect: Vec<AuditEvent> = m.kept.iter().cloned().collect();
            let bounds = m
                .kept
                .front()
                .map_or((0, 0), |e| (e.seq, expect.len() as u64));
            assert_eq!(log.bounds(vault), bounds, "vault {vault}");
            assert_eq!(log.events_from(vault, 0).collect::<Vec<_>>(), expect);
            assert_eq!(log.first(vault).as_ref(), m.kept.front());
            assert_eq!(log.last(vault).as_ref(), m.kept.back());
        }
    }

    fn run(page: u64, ops: Vec<Op>) {
        let mems = Mems::new();
        let mut log = mems.open(page);
        let mut model: BTreeMap<VaultId, Model> =
            VAULTS.iter().map(|&v| (v, Model::default())).collect();
        for op in ops {
            match op {
                Op::Append { vault, n, jump } => {
                    let (v, m) = (VAULTS[vault], model.get_mut(&VAULTS[vault]).unwrap());
                    for _ in 0..n {
                        let seq = if m.kept.is_empty() {
                            m.next + u64::from(jump)
                        } else {
                            m.next
                        };
                        let e = ev_of(v, seq);
                        log.append(v, &e);
                        m.kept.push_back(e);
                        m.next = seq + 1;
                    }
                }
                Op::DropBefore { vault, delta } => {
                    let (v, m) = (VAULTS[vault], model.get_mut(&VAULTS[vault]).unwrap());
                    let Some(before) = m.at(delta) else { continue };
                    let mut dropped = 0;
                    while m.kept.front().is_some_and(|e| e.seq < before) {
                        m.kept.pop_front();
                        dropped += 1;
                    }
                    assert_eq!(log.drop_before(v, before), dropped);
                }
                Op::Get { vault, delta } => {
                    let (v, m) = (VAULTS[vault], &model[&VAULTS[vault]]);
                    let Some(seq) = m.at(delta) else { continue };
                    let expect = m.kept.iter().find(|e| e.seq == seq).cloned();
                    assert_eq!(log.get(v, seq), expect, "get({v}, {seq})");
                }
                Op::EventsFrom { vault, delta, take } => {
                    let (v, m) = (VAULTS[vault], &model[&VAULTS[vault]]);
                    let Some(from) = m.at(delta) else { continue };
                    let expect: Vec<AuditEvent> = m
                        .kept
                        .iter()
                        .filter(|e| e.seq >= from)
                        .take(take)
                        .cloned()
                        .collect();
                    assert_eq!(
                        log.events_from(v, from).take(take).collect::<Vec<_>>(),
                        expect
                    );
                }
                Op::Reopen => {
                    drop(log);
                    log = mems.open(page);
                }
            }
            check(&log, &model);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::storage::model_test::cases(100)))]
        #[test]
        fn random_operations_match_a_model(
            page in prop::sample::select(vec![2u64, 3, 4, 5, 8, 13]),
            ops in prop::collection::vec(op(), 1..60),
        ) {
            run(page, ops);
        }
    }
}
