//! The per-vault audit log, in one of two forms per vault: a **packed** record holding the
//! events themselves while the log is small (layout 6), or events in [`Slab`] blocks found
//! through a two-level page index (layout 4).
//!
//! **Packed form.** A new log starts as one record in the root's place (the vault's
//! [`AUDIT_INDEX`](super::memory::AUDIT_INDEX) entry), told apart from a paged root by bit 63
//! of its first word (a seq never reaches it):
//!
//! ```text
//! packed: first | 2^63 u64 | newest event's hash [32] | events, oldest first
//! event:  at u64 | actor (u8 length + bytes, or 0xFF: the previous event's) | action (u8
//!         code, or 0 + varint length + string; bit 7: compact details) | details (varint
//!         length + string or its compact encoding) | hash (0: chained, or 1 + varint
//!         length + bytes)                                      (`binary::encode_audit_packed`)
//! ```
//!
//! Details are stored in the compact encoding of [`super::details`] (dictionary words and
//! numbers as a byte or a few) when that is shorter; records written before it hold plain
//! details and read the same (the flag is per event, so such a record takes new events).
//!
//! The seq is the event's position. A hash is stored as *chained* when it is the chain hash
//! ([`AuditEvent::chain_hash`]) after the previous event's (32 zero bytes before seq 0), as
//! the domain computes every hash; reads recompute it (the newest one is the header's), so
//! an append computes one hash and a read at most one per event before the one asked for.
//! The first kept event of a log that does not start at seq 0 (restarted or compacted)
//! stores its hash, and so does every event from the fourth on once a later one follows it
//! (its tag is the record's last byte when the next event arrives; [`CHAINED_EVENTS`]), so
//! the move to pages below recomputes at most three hashes. An idle vault (created and
//! paid: four events) is one record of ~160 bytes in a 192-byte block (~350 bytes, a
//! 384-byte block, with plain details), instead of four event blocks, a root, a directory
//! and a leaf (1 216 bytes). An append that would make the record longer than
//! [`PACKED_MAX`] or hold more than [`PACKED_EVENTS`] events moves the log to pages (each
//! event to its own block, as below) for good; compaction of a packed log rewrites the
//! record.
//!
//! **Paged form.**
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
//! Pages start at 64 bytes and double while they fill (the tail leaf and directory only). Compaction
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

use super::binary::{decode_audit_packed, encode_audit_packed, skip_audit_packed, Reader, Writer};
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
/// Bit 63 of a root record's first word: the record is a packed small log (layout 6).
const PACKED: u64 = 1 << 63;
/// Packed record header: `first | PACKED` and the newest event's hash.
const PACKED_HEAD: usize = 40;
/// Largest packed record (an idle vault's four events take ~160 bytes: one 192-byte block);
/// a log that would outgrow it moves to pages.
pub const PACKED_MAX: usize = 512;
/// Most events a packed record holds. With [`PACKED_MAX`] this bounds the one-time move to
/// pages (a chain hash recomputed per event, one block written per event): ~155 000
/// instructions for seven events, measured in the append that moves it
/// (`bench_endpoints_cost`: `generate_invite`'s callback). Six, so that `update_vault`
/// setting a paid vault's rules (two events after the idle vault's four) stays packed.
pub const PACKED_EVENTS: u64 = 6;
const ZERO_HASH: [u8; 32] = [0; 32];
/// Events of a packed record whose hashes stay chained (recomputed on read): an idle vault's
/// four. The newest event's hash is written out when a fifth or later event follows it.
const CHAINED_EVENTS: u64 = 4;

/// A packed small log as read: its events in order, each with whether its hash is chained
/// (empty until [`Packed::fill_hashes`] computes it).
struct Packed {
    first: u64,
    head: Vec<u8>,
    events: Vec<(AuditEvent, bool)>,
}

impl Packed {
    fn decode(bytes: &[u8]) -> Packed {
        Self::try_decode(bytes).unwrap_or_else(|e| panic!("BUG: {e}"))
    }

    /// The record's events; an error if it is malformed, holds no event, or chains its
    /// first event from before a first seq other than 0.
    fn try_decode(bytes: &[u8]) -> Result<Packed, String> {
        if bytes.len() < PACKED_HEAD {
            return Err(format!("packed audit log of {} bytes", bytes.len()));
        }
        let first = u64_at(bytes, 0) & !PACKED;
        let head = bytes[8..PACKED_HEAD].to_vec();
        let mut r = Reader(&bytes[PACKED_HEAD..]);
        let mut events: Vec<(AuditEvent, bool)> = Vec::new();
        while !r.at_end() {
            let seq = first + events.len() as u64;
            let prev = events.last().map(|(e, _)| e.actor);
            let ev = decode_audit_packed(&mut r, seq, prev.as_ref())
                .ok_or_else(|| format!("corrupt packed audit log at seq {seq}"))?;
            events.push(ev);
        }
        match events.first() {
            None => return Err("packed audit log without events".into()),
            Some((_, true)) if first != 0 => {
                return Err(format!(
                    "packed audit log chains seq {first} from before it"
                ))
            }
            _ => {}
        }
        Ok(Packed {
            first,
            head,
            events,
        })
    }

    fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    /// Computes the chained hashes of events `0..=upto`: the newest event's is the head,
    /// another's the chain hash after the previous event (32 zero bytes before seq 0).
    fn fill_hashes(&mut self, upto: usize) {
        let last = self.events.len() - 1;
        for i in 0..=upto.min(last) {
            if !self.events[i].1 || !self.events[i].0.hash.is_empty() {
                continue;
            }
            let hash = if i == last {
                self.head.clone()
            } else {
                let prev = if i == 0 {
                    assert_eq!(
                        self.first, 0,
                        "BUG: packed audit log chains before its first"
                    );
                    ZERO_HASH.to_vec()
                } else {
                    self.events[i - 1].0.hash.clone()
                };
                let e = &self.events[i].0;
                AuditEvent::chain_hash(&prev, e.seq, e.at, &e.actor, &e.action, &e.details).to_vec()
            };
            self.events[i].0.hash = hash;
        }
    }

    /// Event `i` with its hash.
    fn event(&mut self, i: usize) -> AuditEvent {
        if i == self.events.len() - 1 && self.events[i].1 {
            let mut e = self.events[i].0.clone();
            e.hash = self.head.clone();
            return e;
        }
        self.fill_hashes(i);
        self.events[i].0.clone()
    }

    /// The record: header, then the events (each hash chained or not as flagged).
    fn encode(&self, compress: bool) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(PACKED_MAX));
        w.u64(self.first | PACKED);
        w.0.extend_from_slice(&self.head);
        let mut prev = None;
        for (e, chained) in &self.events {
            encode_audit_packed(&mut w, e, prev, *chained, compress);
            prev = Some(&e.actor);
        }
        w.0
    }
}

/// A vault's log as read: pages under a root, or one packed record.
enum Log {
    Paged(Root),
    Packed(Loc, Packed),
}

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
    /// Largest packed record: [`PACKED_MAX`]; other sizes in tests (0: always pages).
    packed_max: usize,
    /// Packed events store their details compactly ([`super::details`]); off only in tests
    /// that write records as the first layout-6 code did.
    compress: bool,
}

impl<M: Memory> AuditLog<M> {
    /// Opens the log with index directory `dir` over the shared `slab`.
    pub fn init(dir: M, slab: Rc<Slab<M>>) -> Self {
        Self::with_page_entries(dir, slab, PAGE_ENTRIES, PACKED_MAX)
    }

    /// [`Self::init`] with `page` entries per page (tests cross page boundaries often) and
    /// packed records of at most `packed_max` bytes.
    fn with_page_entries(dir: M, slab: Rc<Slab<M>>, page: u64, packed_max: usize) -> Self {
        assert!(page >= 2, "BUG: audit pages need two entries");
        AuditLog {
            index: DenseBytes::init(dir),
            slab,
            page,
            packed_max,
            compress: true,
        }
    }

    /// The vault's log, if it has one.
    fn load(&self, vault: VaultId) -> Option<Log> {
        let loc = self.index.loc(vault)?;
        let mut b = [0u8; HEAD as usize];
        let n = (loc.len as usize).min(HEAD as usize);
        self.slab.read(loc, 0, &mut b[..n]);
        if u64_at(&b, 0) & PACKED != 0 {
            return Some(Log::Packed(loc, Packed::decode(&self.slab.read_all(loc))));
        }
        Some(Log::Paged(Root {
            loc,
            first: u64_at(&b, 0),
            origin: u64_at(&b, 8),
            end: u64_at(&b, 16),
            tail: decode_entry(&b[24..40]),
        }))
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
        match self.load(vault) {
            None => (0, 0),
            Some(Log::Paged(r)) => (r.first, r.end - r.first),
            Some(Log::Packed(_, p)) => (p.first, p.events.len() as u64),
        }
    }

    /// Appends `event` to the vault's log. Its `seq` must follow the last kept event (or
    /// start the log); anything else is a programming error. Computes whether its hash
    /// chains from the log's newest (one SHA-256); [`Self::append_after`] is told.
    pub fn append(&mut self, vault: VaultId, event: &AuditEvent) {
        self.append_checked(vault, event, None);
    }

    /// [`Self::append`] of an event whose hash the caller computed as the chain hash after
    /// `prev` (the vault's chain head before it): it chains in a packed log when `prev` is
    /// the log's newest hash (32 zero bytes before seq 0), a 32-byte comparison.
    pub fn append_after(&mut self, vault: VaultId, event: &AuditEvent, prev: &[u8]) {
        debug_assert!(
            event.chains_from(prev),
            "BUG: the event does not chain from prev"
        );
        self.append_checked(vault, event, Some(prev));
    }

    fn append_checked(&mut self, vault: VaultId, event: &AuditEvent, prev: Option<&[u8]>) {
        let chains = |from: &[u8]| match prev {
            Some(prev) => prev == from,
            None => event.chains_from(from),
        };
        if let Some(loc) = self.index.loc(vault) {
            let mut word = [0u8; 8];
            self.slab.read(loc, 0, &mut word);
            if u64::from_le_bytes(word) & PACKED != 0 {
                self.append_packed(vault, loc, event, chains);
                return;
            }
        }
        let log = self.load(vault);
        if let Some(Log::Paged(r)) = &log {
            assert_eq!(event.seq, r.end, "BUG: audit events out of sequence");
        }
        let r = match log {
            Some(Log::Paged(r)) => Some(r),
            Some(Log::Packed(..)) => unreachable!("BUG: a packed log is appended above"),
            None => {
                let chained = event.seq == 0 && chains(&ZERO_HASH);
                let p = Packed {
                    first: event.seq,
                    head: event.hash.clone(),
                    events: vec![(event.clone(), chained)],
                };
                let bytes = p.encode(self.compress);
                if bytes.len() <= self.packed_max && event.hash.len() == ZERO_HASH.len() {
                    self.index.put(&self.slab, vault, &bytes);
                    return;
                }
                None
            }
        };
        let loc = self.write_event(event);
        match r {
            None => self.start(vault, event.seq, &loc.encode()),
            Some(r) => self.push(vault, r, loc),
        }
    }

    /// Appends `event` to the packed record at `loc`: scans the record for its length and
    /// newest actor (no decoding), then writes the new head and the event in place while
    /// the block holds them, else rewrites the record (or moves the log to pages past
    /// `packed_max`).
    fn append_packed(
        &mut self,
        vault: VaultId,
        loc: Loc,
        event: &AuditEvent,
        chains: impl Fn(&[u8]) -> bool,
    ) {
        let mut bytes = self.slab.read_all(loc);
        let first = u64_at(&bytes, 0) & !PACKED;
        let mut r = Reader(&bytes[PACKED_HEAD..]);
        let (mut count, mut actor, mut newest_chained) = (0u64, None, false);
        while !r.at_end() {
            let (a, chained) = skip_audit_packed(&mut r).expect("BUG: corrupt packed audit log");
            actor = a.or(actor);
            newest_chained = chained;
            count += 1;
        }
        assert_eq!(
            event.seq,
            first + count,
            "BUG: audit events out of sequence"
        );
        let chained = chains(&bytes[8..PACKED_HEAD]);
        let mut w = Writer(Vec::with_capacity(128));
        let same = actor == Some(event.actor.as_slice());
        let prev_actor = same.then_some(&event.actor);
        encode_audit_packed(&mut w, event, prev_actor, chained, self.compress);
        // From the fifth event on, the newest event's hash (the header's) is written out when
        // the next one arrives instead of staying chained: its tag is the record's last byte.
        // A later move to pages then recomputes the first events' hashes only.
        let spell_out = newest_chained && count >= CHAINED_EVENTS;
        // What is appended: the newest event's hash when it is spelled out (its tag byte
        // turns from 0 into 1), then the new event.
        let mut tail = Vec::with_capacity(1 + ZERO_HASH.len() + w.0.len());
        if spell_out {
            tail.push(ZERO_HASH.len() as u8);
            tail.extend_from_slice(&bytes[8..PACKED_HEAD]);
        }
        tail.extend_from_slice(&w.0);
        let new_len = bytes.len() + tail.len();
        if new_len > self.packed_max
            || count + 1 > PACKED_EVENTS
            || event.hash.len() != ZERO_HASH.len()
        {
            let mut p = Packed::decode(&bytes);
            // The newest event's hash is the header's: no need to recompute it.
            let head = std::mem::replace(&mut p.head, event.hash.clone());
            if let Some((newest, true)) = p.events.last_mut() {
                newest.hash = head;
            }
            p.events.push((event.clone(), chained));
            self.unpack(vault, p);
            return;
        }
        let tag = bytes.len() - 1;
        debug_assert!(
            !spell_out || bytes[tag] == 0,
            "BUG: a chained event ends with tag 0"
        );
        if new_len as u64 <= loc.capacity() {
            self.slab.write(loc, 8, &event.hash);
            if spell_out {
                self.slab.write(loc, tag as u64, &[1]);
            }
            self.index.append(&self.slab, vault, Some(loc), &tail);
        } else {
            bytes[8..PACKED_HEAD].copy_from_slice(&event.hash);
            if spell_out {
                bytes[tag] = 1;
            }
            bytes.extend_from_slice(&tail);
            self.index.put(&self.slab, vault, &bytes);
        }
    }

    /// A block holding `event` (the paged form's event encoding).
    fn write_event(&self, event: &AuditEvent) -> Loc {
        let bytes = event.to_bytes();
        let loc = self.slab.alloc(bytes.len());
        self.slab.write(loc, 0, &bytes);
        loc
    }

    /// Moves a packed log that outgrew its record to pages: one block per event, then the
    /// index (the packed record is freed).
    fn unpack(&mut self, vault: VaultId, mut p: Packed) {
        p.fill_hashes(p.events.len() - 1);
        let last = p.events.len() - 1;
        let mut entries = Vec::with_capacity(p.events.len() * Loc::BYTES);
        for (i, (e, chained)) in p.events.iter_mut().enumerate() {
            if i == last && *chained {
                e.hash.clone_from(&p.head);
            }
            entries.extend_from_slice(&self.write_event(e).encode());
        }
        self.index.remove(&self.slab, vault);
        self.start(vault, p.first, &entries);
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
        match self.load(vault)? {
            Log::Paged(r) => self.event_loc(&r, seq).map(|l| self.read(l)),
            Log::Packed(_, mut p) => {
                if seq < p.first || seq >= p.end() {
                    return None;
                }
                Some(p.event((seq - p.first) as usize))
            }
        }
    }

    /// The vault's oldest kept event.
    pub fn first(&self, vault: VaultId) -> Option<AuditEvent> {
        match self.load(vault)? {
            Log::Paged(r) => self.event_loc(&r, r.first).map(|l| self.read(l)),
            Log::Packed(_, mut p) => Some(p.event(0)),
        }
    }

    /// The vault's newest event.
    pub fn last(&self, vault: VaultId) -> Option<AuditEvent> {
        match self.load(vault)? {
            Log::Paged(r) => self.event_loc(&r, r.end - 1).map(|l| self.read(l)),
            Log::Packed(_, mut p) => Some(p.event(p.events.len() - 1)),
        }
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
        let (root, packed) = match self.load(vault) {
            None => (None, None),
            Some(Log::Paged(r)) => (Some(r), None),
            Some(Log::Packed(_, mut p)) => {
                let skip = from.saturating_sub(p.first).min(p.events.len() as u64) as usize;
                if skip < p.events.len() {
                    p.fill_hashes(p.events.len() - 1);
                }
                let events: Vec<AuditEvent> =
                    p.events.drain(..).skip(skip).map(|(e, _)| e).collect();
                (None, Some(events.into_iter()))
            }
        };
        let (mut next, end) = root.map_or((0, 0), |r| (from.max(r.first), r.end));
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = next;
        let page = self.page;
        // The leaf of the last batch: (leaf number, location).
        let mut leaf: Option<(u64, Loc)> = None;
        let paged = std::iter::from_fn(move || {
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
        });
        packed.into_iter().flatten().chain(paged)
    }

    /// Removes the vault's events with seq < `before` (compaction); returns how many. Frees
    /// their blocks and the pages wholly before the new first event (work proportional to
    /// the events dropped); rewrites the root, a header and 16 bytes per directory, only when
    /// whole directories go. Dropping every event removes the vault's index: the next append
    /// starts the log afresh at its own seq (as in layout 3).
    pub fn drop_before(&mut self, vault: VaultId, before: u64) -> u64 {
        let r = match self.load(vault) {
            None => return 0,
            Some(Log::Paged(r)) => r,
            Some(Log::Packed(_, p)) => return self.drop_packed(vault, p, before),
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

    /// [`Self::drop_before`] of a packed log: the record is rewritten without the dropped
    /// events (the new first event's hash stored, as nothing before it is kept).
    fn drop_packed(&mut self, vault: VaultId, mut p: Packed, before: u64) -> u64 {
        let keep = before.clamp(p.first, p.end());
        let n = keep - p.first;
        if n == 0 {
            return 0;
        }
        if keep == p.end() {
            self.index.remove(&self.slab, vault);
            return n;
        }
        p.fill_hashes(n as usize);
        p.events.drain(..n as usize);
        p.events[0].1 = false;
        p.first = keep;
        self.index.put(&self.slab, vault, &p.encode(self.compress));
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
            let r = match self.load_checked(vault)? {
                Log::Paged(r) => r,
                Log::Packed(loc, mut packed) => {
                    ensure!(
                        loc.len as usize <= self.packed_max,
                        "audit log: vault {vault}: packed record of {} bytes",
                        loc.len
                    );
                    ensure!(
                        packed.events.len() as u64 <= PACKED_EVENTS,
                        "audit log: vault {vault}: {} packed events",
                        packed.events.len()
                    );
                    let last = packed.events.len() - 1;
                    if !packed.events[last].1 {
                        ensure!(
                            packed.events[last].0.hash == packed.head,
                            "audit log: vault {vault}: the packed head is not the newest hash"
                        );
                    }
                    packed.fill_hashes(last);
                    blocks.push(loc);
                    continue;
                }
            };
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

    /// [`Self::load`], with a malformed packed record an error.
    fn load_checked(&self, vault: VaultId) -> Result<Log, String> {
        let loc = self.index.loc(vault).expect("listed");
        let mut word = [0u8; 8];
        self.slab.read(loc, 0, &mut word);
        if u64::from_le_bytes(word) & PACKED != 0 {
            let packed = Packed::try_decode(&self.slab.read_all(loc))
                .map_err(|e| format!("audit log: vault {vault}: {e}"))?;
            return Ok(Log::Packed(loc, packed));
        }
        Ok(self.load(vault).expect("listed"))
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

    /// An event whose encoding varies in length (several slab classes), with the vault's
    /// actor or another one, and an action the packed form codes or spells out.
    fn ev_of(vault: VaultId, seq: u64) -> AuditEvent {
        AuditEvent {
            seq,
            at: 1_000 + seq,
            actor: if seq % 3 == 1 {
                Principal::from_slice(&[vault as u8, 1])
            } else {
                Principal::from_slice(&[vault as u8; 29])
            },
            action: if seq.is_multiple_of(2) {
                "status.changed".into()
            } else {
                "vault.updated".into()
            },
            details: format!(
                "vault {vault} event {seq}{} {}",
                // Text the compact details encoding shortens, on some events.
                if seq.is_multiple_of(4) {
                    " amount_e8s=150000000 -> Active"
                } else {
                    ""
                },
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
            self.open_packing(page, PACKED_MAX)
        }
        /// [`Self::open`] with packed records of at most `packed_max` bytes.
        fn open_packing(&self, page: u64, packed_max: usize) -> AuditLog<VectorMemory> {
            AuditLog::with_page_entries(
                self.dir.clone(),
                Rc::new(Slab::init(self.data.clone())),
                page,
                packed_max,
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

    /// Events as the domain writes them: hashes chained from 32 zero bytes.
    fn chained(vault: VaultId, seqs: std::ops::Range<u64>, details: usize) -> Vec<AuditEvent> {
        let mut head = vec![0u8; 32];
        let mut out = Vec::new();
        for seq in 0..seqs.end {
            let mut e = ev_of(vault, seq);
            e.actor = Principal::from_slice(&[vault as u8; 29]);
            e.action = "payment.confirmed".into();
            e.details = "d".repeat(details);
            e.hash =
                AuditEvent::chain_hash(&head, seq, e.at, &e.actor, &e.action, &e.details).to_vec();
            head.clone_from(&e.hash);
            if seq >= seqs.start {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn a_small_log_is_one_packed_record_until_it_outgrows_it() {
        let m = Mems::new();
        let mut log = m.open(PAGE_ENTRIES);
        // An idle vault's four events (created, session opened, status, confirmed): one
        // record, the hashes but the newest recomputed on read.
        let events = chained(5, 0..40, 60);
        log.append_after(5, &events[0], &[0; 32]);
        for w in events[..4].windows(2) {
            log.append_after(5, &w[1], &w[0].hash);
        }
        let blocks = log.reachable_blocks().unwrap();
        assert_eq!(blocks.len(), 1, "one packed record");
        // 40 header bytes; 8 + 30 + 1 + 61 + 1 for the first event (actor spelled out, hash
        // chained from zeros), 8 + 1 + 1 + 61 + 1 for each other (same actor, chained).
        assert_eq!(blocks[0].len, 40 + 101 + 3 * 72);
        assert_eq!(blocks[0].capacity(), 384);
        assert_eq!(log.events_from(5, 0).collect::<Vec<_>>(), events[..4]);
        assert_eq!(log.get(5, 2), Some(events[2].clone()));
        assert_eq!(log.first(5), Some(events[0].clone()));
        assert_eq!(log.last(5), Some(events[3].clone()));
        assert_eq!(log.bounds(5), (0, 4));
        log.assert_consistent();
        // Compaction keeps the rest readable (the new first event's hash is stored).
        assert_eq!(log.drop_before(5, 2), 2);
        assert_eq!(log.first(5), Some(events[2].clone()));
        assert_eq!(log.events_from(5, 0).collect::<Vec<_>>(), events[2..4]);
        log.assert_consistent();
        // Growing past PACKED_MAX moves the log to pages, every event as it was.
        for e in &events[4..40] {
            log.append(5, e);
        }
        assert!(log.reachable_blocks().unwrap().len() > 3, "pages now");
        assert_eq!(log.events_from(5, 0).collect::<Vec<_>>(), events[2..40]);
        drop(log);
        let log = m.open(PAGE_ENTRIES);
        assert_eq!(log.get(5, 39), Some(events[39].clone()));
        log.assert_consistent();
    }

    #[test]
    fn past_four_events_the_previous_newest_hash_is_written_out() {
        let m = Mems::new();
        let mut log = m.open(PAGE_ENTRIES);
        let events = chained(5, 0..7, 20);
        log.append_after(5, &events[0], &[0; 32]);
        for w in events[..6].windows(2) {
            log.append_after(5, &w[1], &w[0].hash);
        }
        // 40 header bytes, 8 + 30 + 1 + 21 + 1 for the first event, 8 + 1 + 1 + 21 + 1 for
        // each other; events 3 and 4 carry their hashes (a tag, a length byte and 32 bytes
        // instead of the tag).
        let blocks = log.reachable_blocks().unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].len, 40 + 61 + 5 * 32 + 2 * 33);
        assert_eq!(log.events_from(5, 0).collect::<Vec<_>>(), events[..6]);
        log.assert_consistent();
        // The seventh moves the log to pages, every hash as it was.
        log.append_after(5, &events[6], &events[5].hash);
        assert!(log.reachable_blocks().unwrap().len() > 3, "pages now");
        drop(log);
        let log = m.open(PAGE_ENTRIES);
        assert_eq!(log.events_from(5, 0).collect::<Vec<_>>(), events);
        log.assert_consistent();
    }

    #[test]
    fn an_idle_vaults_record_fits_a_192_byte_block() {
        // The four events of a created and paid vault, their details as the domain formats
        // them: with compact details one 192-byte block, with plain ones (the first layout-6
        // records) a 384-byte one; both read back the same events.
        let details = [
            "plan=Standard heir_slots=2 witness_slot=true price_e8s=150000000",
            "session=7 purpose=Create amount_e8s=150000000",
            "session=7 purpose=Create amount_e8s=150000000 received_e8s=150000000 billing=7 applied=true",
            "Draft -> NeedSetup (CreationPaid)",
        ];
        let actions = [
            "vault.created",
            "payment.session_opened",
            "payment.confirmed",
            "status.changed",
        ];
        let mut head = vec![0u8; 32];
        let mut events = Vec::new();
        for (seq, (action, details)) in actions.iter().zip(details).enumerate() {
            let mut e = ev_of(9, seq as u64);
            e.actor = Principal::from_slice(&[9; 29]);
            e.at = 1_790_000_000_000_000_000 + seq as u64 * 60_000_000_000;
            e.action = (*action).into();
            e.details = details.into();
            e.hash = AuditEvent::chain_hash(&head, e.seq, e.at, &e.actor, &e.action, &e.details)
                .to_vec();
            head.clone_from(&e.hash);
            events.push(e);
        }
        for (compress, capacity) in [(true, 192), (false, 384)] {
            let m = Mems::new();
            let mut log = m.open(PAGE_ENTRIES);
            log.compress = compress;
            for e in &events {
                log.append(9, e);
            }
            let blocks = log.reachable_blocks().unwrap();
            assert_eq!(blocks.len(), 1);
            assert_eq!(
                blocks[0].capacity(),
                capacity,
                "compact details: {compress}"
            );
            let log = m.open(PAGE_ENTRIES);
            assert_eq!(log.events_from(9, 0).collect::<Vec<_>>(), events);
            log.assert_consistent();
        }
    }

    #[test]
    fn a_packed_record_holds_at_most_packed_events() {
        let m = Mems::new();
        let mut log = m.open(PAGE_ENTRIES);
        let events = chained(3, 0..8, 0);
        for (i, e) in events.iter().enumerate() {
            log.append(3, e);
            let blocks = log.reachable_blocks().unwrap().len();
            if (i as u64) < PACKED_EVENTS {
                assert_eq!(blocks, 1, "{} tiny events: one record", i + 1);
            } else {
                assert_eq!(blocks, 3 + i + 1, "{} events: pages", i + 1);
            }
        }
        assert_eq!(log.events_from(3, 0).collect::<Vec<_>>(), events);
        log.assert_consistent();
    }

    /// Logs written before layout 6 are paged however small: they stay paged and readable,
    /// while a new vault's log starts packed.
    #[test]
    fn layout_5_paged_logs_stay_paged_next_to_packed_ones() {
        let m = Mems::new();
        let mut old = m.open_packing(PAGE_ENTRIES, 0);
        let events = chained(1, 0..8, 30);
        for e in &events[..3] {
            old.append(1, e);
        }
        assert_eq!(
            old.reachable_blocks().unwrap().len(),
            6,
            "root, dir, leaf, 3 events"
        );
        drop(old);
        let mut log = m.open(PAGE_ENTRIES);
        for e in &events[3..] {
            log.append(1, e);
        }
        assert_eq!(log.events_from(1, 0).collect::<Vec<_>>(), events);
        assert_eq!(log.reachable_blocks().unwrap().len(), 3 + 8, "still paged");
        let fresh = chained(2, 0..2, 30);
        for e in &fresh {
            log.append(2, e);
        }
        assert_eq!(log.reachable_blocks().unwrap().len(), 3 + 8 + 1, "packed");
        assert_eq!(log.drop_before(1, 5), 5);
        assert_eq!(log.events_from(1, 0).collect::<Vec<_>>(), events[5..]);
        assert_eq!(log.events_from(2, 0).collect::<Vec<_>>(), fresh);
        log.assert_consistent();
    }

    #[test]
    fn a_restarted_log_stores_its_first_hash() {
        let m = Mems::new();
        let mut log = m.open(4);
        let events = chained(2, 0..6, 10);
        for e in &events[..3] {
            log.append(2, e);
        }
        assert_eq!(log.drop_before(2, 3), 3);
        assert_eq!(log.reachable_blocks(), Ok(vec![]));
        // Restarting at seq 3: its predecessor is gone, so its hash is kept as given.
        for e in &events[3..] {
            log.append(2, e);
        }
        assert_eq!(log.events_from(2, 0).collect::<Vec<_>>(), events[3..]);
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
        /// `n` events; an empty log restarts `jump` after its last seq. `chain`: their
        /// hashes chain from the previous event's, as the domain computes them.
        Append {
            vault: usize,
            n: u8,
            jump: u8,
            chain: bool,
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
        /// Opens the log again, writing compact details or (as the first layout-6 code
        /// did) plain ones.
        Reopen {
            compress: bool,
        },
    }

    const VAULTS: [VaultId; 4] = [0, 1, 5, 300];

    fn op() -> impl Strategy<Value = Op> {
        let vault = 0..VAULTS.len();
        prop_oneof![
            4 => (vault.clone(), 1u8..40, 0u8..3, any::<bool>())
                .prop_map(|(vault, n, jump, chain)| Op::Append { vault, n, jump, chain }),
            2 => (vault.clone(), -3i64..60).prop_map(|(vault, delta)| Op::DropBefore { vault, delta }),
            2 => (vault.clone(), -3i64..80).prop_map(|(vault, delta)| Op::Get { vault, delta }),
            1 => (vault, -3i64..80, 0usize..100).prop_map(|(vault, delta, take)| Op::EventsFrom { vault, delta, take }),
            1 => any::<bool>().prop_map(|compress| Op::Reopen { compress }),
        ]
    }

    /// The model: per vault, the next seq the domain would append, the kept events and the
    /// hash of the last event appended (the chain's head).
    struct Model {
        next: u64,
        kept: VecDeque<AuditEvent>,
        head: Vec<u8>,
    }

    impl Default for Model {
        fn default() -> Self {
            Model {
                next: 0,
                kept: VecDeque::new(),
                head: vec![0; 32],
            }
        }
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

    fn run(page: u64, packed_max: usize, ops: Vec<Op>) {
        let mems = Mems::new();
        let mut log = mems.open_packing(page, packed_max);
        let mut model: BTreeMap<VaultId, Model> =
            VAULTS.iter().map(|&v| (v, Model::default())).collect();
        for op in ops {
            match op {
                Op::Append {
                    vault,
                    n,
                    jump,
                    chain,
                } => {
                    let (v, m) = (VAULTS[vault], model.get_mut(&VAULTS[vault]).unwrap());
                    for _ in 0..n {
                        let seq = if m.kept.is_empty() {
                            m.next + u64::from(jump)
                        } else {
                            m.next
                        };
                        let mut e = ev_of(v, seq);
                        if chain {
                            e.hash = AuditEvent::chain_hash(
                                &m.head, e.seq, e.at, &e.actor, &e.action, &e.details,
                            )
                            .to_vec();
                            // The domain's path (told the previous head) on odd seqs, the
                            // checking one on even.
                            if seq % 2 == 1 {
                                log.append_after(v, &e, &m.head);
                            } else {
                                log.append(v, &e);
                            }
                        } else {
                            log.append(v, &e);
                        }
                        m.head.clone_from(&e.hash);
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
                Op::Reopen { compress } => {
                    drop(log);
                    log = mems.open_packing(page, packed_max);
                    log.compress = compress;
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
            packed_max in prop::sample::select(vec![0usize, 200, PACKED_MAX]),
            ops in prop::collection::vec(op(), 1..60),
        ) {
            run(page, packed_max, ops);
        }
    }
}
