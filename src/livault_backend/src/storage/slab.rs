//! Small records at a constant cost: a slab allocator and dense-id tables, out of every
//! BTreeMap.
//!
//! Why: an `ic-stable-structures` `StableBTreeMap` operation loads one node per level and a
//! node load makes a few dozen small reads and allocations; measured on the compiled wasm
//! (IC cost table, `bench_scheduler`), a `get` on a 1 000-entry map costs ~80 000
//! instructions, an `insert` ~140 000, a removal at the front ~240 000, and each grows with
//! the map. The records every scheduler item and every download touches are addressed by
//! dense, never-reused `u64` ids (vault ids, ticket ids, ...), so they need no search tree:
//!
//! - [`Slab`] owns one virtual memory cut into blocks of two series of size classes: codes
//!   0..=14 are 64 B × 2^c (64 B … 1 MiB), codes 15..=28 (since `LAYOUT_VERSION` 6) are
//!   96 B × 2^(c − 15) (96 B … 768 KiB), so a record wastes at most a third of its block
//!   instead of half (a 140-byte record takes 192 bytes, not 256). One free list per class
//!   is threaded through the free blocks, and a bump pointer hands out fresh space. Allocation and release are two or three fixed-size reads and
//!   writes; a freed block is reused by the next record of its class.
//! - [`DenseTable`] maps id → record with a directory in its own virtual memory: entry `id`
//!   (16 bytes) holds where the record's block is and how long the record is. Since
//!   `LAYOUT_VERSION` 8 the directory is an `ic-stable-structures` `StableVec` of those
//!   entries (before, a raw array of them at `16 × id`; [`convert_raw_directory`]). `get`
//!   is three reads (the vector's length, the entry, the record), `insert` one or two
//!   writes (in place while the record fits its block), iteration walks the directory in
//!   id order.
//!
//! The byte layouts below are part of the persisted layout (since `LAYOUT_VERSION` 3); change
//! them only with a migration.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::marker::PhantomData;

use ic_stable_structures::{Memory, StableVec, Storable};

/// Number of block size classes: codes `0..POW2_CLASSES` are 64 B × 2^c (up to 1 MiB), codes
/// `POW2_CLASSES..CLASSES` are 96 B × 2^(c − POW2_CLASSES) (up to 768 KiB). The first
/// series is layout 3's (its codes keep their meaning); the second was added in layout 6.
pub const CLASSES: u8 = POW2_CLASSES + 14;
/// Classes of the 64 B × 2^c series.
const POW2_CLASSES: u8 = 15;
/// Smallest block.
const MIN_BLOCK: u64 = 64;
/// Smallest block of the 96 B × 2^c series.
const MIN_BLOCK_3: u64 = 96;
/// Largest record a block holds.
pub const MAX_RECORD: u64 = MIN_BLOCK << (POW2_CLASSES - 1);

/// Block size of class `class` (< [`CLASSES`]).
pub const fn class_size(class: u8) -> u64 {
    if class < POW2_CLASSES {
        MIN_BLOCK << class
    } else {
        MIN_BLOCK_3 << (class - POW2_CLASSES)
    }
}
/// Slab header: magic, bump pointer, free-list heads; blocks start after it.
const SLAB_MAGIC: &[u8; 8] = b"LVSLAB\x00\x01";
const BUMP_AT: u64 = 8;
const HEADS_AT: u64 = 16;
const FIRST_BLOCK: u64 = 4096;
const WASM_PAGE: u64 = 65_536;

/// Where a record lives: its block and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// Address of the block in the slab memory (0: none).
    pub addr: u64,
    /// Bytes of the record (≤ the block size).
    pub len: u32,
    /// Block size class.
    pub class: u8,
}

impl Loc {
    /// Bytes of the encoded location.
    pub const BYTES: usize = 16;

    /// Block size.
    pub fn capacity(&self) -> u64 {
        class_size(self.class)
    }

    /// `addr: u64 LE, len: u32 LE, class: u8, present: u8 = 1, 2 zero bytes`.
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12] = self.class;
        b[13] = 1;
        b
    }

    /// `None` for an all-zero (absent) entry.
    pub fn decode(b: &[u8]) -> Option<Loc> {
        if b[13] == 0 {
            return None;
        }
        Some(Loc {
            addr: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            len: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            class: b[12],
        })
    }
}

fn read_u64<M: Memory>(m: &M, at: u64) -> u64 {
    let mut b = [0u8; 8];
    m.read(at, &mut b);
    u64::from_le_bytes(b)
}

/// Grows `m` so that `end` bytes are addressable.
fn ensure_size<M: Memory>(m: &M, end: u64) {
    let have = m.size() * WASM_PAGE;
    if end > have {
        let pages = (end - have).div_ceil(WASM_PAGE);
        assert!(
            m.grow(pages) >= 0,
            "BUG: stable memory exhausted (grow {pages} pages)"
        );
    }
}

/// The class of the smallest block that holds `len` bytes (of both series; the 64 B × 2^c
/// one on a tie, which never happens above 64 B).
fn class_for(len: u64) -> u8 {
    assert!(
        len <= MAX_RECORD,
        "BUG: record of {len} bytes over the slab maximum"
    );
    let mut pow2 = 0;
    while (MIN_BLOCK << pow2) < len {
        pow2 += 1;
    }
    // 96 × 2^k < 64 × 2^pow2 only for k = pow2 − 1.
    if pow2 >= 1 && (MIN_BLOCK_3 << (pow2 - 1)) >= len {
        POW2_CLASSES + pow2 - 1
    } else {
        pow2
    }
}

/// Blocks of 64 B × 2^c and 96 B × 2^c in one virtual memory (see the module docs).
pub struct Slab<M: Memory> {
    mem: M,
}

impl<M: Memory> Slab<M> {
    /// Opens the slab in `mem`, formatting empty memory.
    pub fn init(mem: M) -> Self {
        if mem.size() == 0 {
            ensure_size(&mem, FIRST_BLOCK);
            mem.write(0, SLAB_MAGIC);
            mem.write(BUMP_AT, &FIRST_BLOCK.to_le_bytes());
        } else {
            let mut magic = [0u8; 8];
            mem.read(0, &mut magic);
            assert_eq!(&magic, SLAB_MAGIC, "BUG: slab memory has an unknown layout");
        }
        Slab { mem }
    }

    /// A block for `len` bytes (contents unspecified).
    pub fn alloc(&self, len: usize) -> Loc {
        let class = class_for(len as u64);
        let head_at = HEADS_AT + 8 * u64::from(class);
        let head = read_u64(&self.mem, head_at);
        let addr = if head != 0 {
            let next = read_u64(&self.mem, head);
            self.mem.write(head_at, &next.to_le_bytes());
            head
        } else {
            let bump = read_u64(&self.mem, BUMP_AT);
            let end = bump + class_size(class);
            ensure_size(&self.mem, end);
            self.mem.write(BUMP_AT, &end.to_le_bytes());
            bump
        };
        Loc {
            addr,
            len: len as u32,
            class,
        }
    }

    /// Returns `loc`'s block to its class's free list.
    pub fn free(&self, loc: Loc) {
        let head_at = HEADS_AT + 8 * u64::from(loc.class);
        let head = read_u64(&self.mem, head_at);
        self.mem.write(loc.addr, &head.to_le_bytes());
        self.mem.write(head_at, &loc.addr.to_le_bytes());
    }

    /// Reads `dst.len()` bytes at `offset` within `loc`'s block.
    pub fn read(&self, loc: Loc, offset: u64, dst: &mut [u8]) {
        debug_assert!(offset + dst.len() as u64 <= loc.capacity());
        self.mem.read(loc.addr + offset, dst);
    }

    /// The whole record at `loc`.
    pub fn read_all(&self, loc: Loc) -> Vec<u8> {
        let mut out = Vec::with_capacity(loc.len as usize);
        // SAFETY: `read_unsafe` writes exactly `len` bytes into the reserved capacity before
        // `set_len` exposes them (no zero-fill pass).
        unsafe {
            self.mem
                .read_unsafe(loc.addr, out.as_mut_ptr(), loc.len as usize);
            out.set_len(loc.len as usize);
        }
        out
    }

    /// Writes `src` at `offset` within `loc`'s block.
    pub fn write(&self, loc: Loc, offset: u64, src: &[u8]) {
        debug_assert!(offset + src.len() as u64 <= loc.capacity());
        self.mem.write(loc.addr + offset, src);
    }

    /// Bytes of slab memory in use by blocks handed out or freed (the high-water mark).
    pub fn high_water(&self) -> u64 {
        read_u64(&self.mem, BUMP_AT)
    }

    /// Every block on the free lists, walking each class's list. An error if a list leaves
    /// the handed-out space, has a cycle, or two free blocks overlap.
    pub fn free_blocks(&self) -> Result<Vec<Loc>, String> {
        let bump = self.high_water();
        let mut out = Vec::new();
        for class in 0..CLASSES {
            let size = class_size(class);
            let mut addr = read_u64(&self.mem, HEADS_AT + 8 * u64::from(class));
            let mut steps = 0;
            while addr != 0 {
                if addr < FIRST_BLOCK || addr.saturating_add(size) > bump {
                    return Err(format!(
                        "slab: free list {class} holds block {addr} (size {size}) outside the \
                         handed-out space {FIRST_BLOCK}..{bump}"
                    ));
                }
                steps += 1;
                if steps > bump / MIN_BLOCK {
                    return Err(format!("slab: free list {class} has a cycle"));
                }
                out.push(Loc {
                    addr,
                    len: 0,
                    class,
                });
                addr = read_u64(&self.mem, addr);
            }
        }
        out.sort_unstable_by_key(|l| l.addr);
        for w in out.windows(2) {
            if w[0].addr + w[0].capacity() > w[1].addr {
                return Err(format!(
                    "slab: free blocks {:?} and {:?} overlap (a block freed twice?)",
                    w[0], w[1]
                ));
            }
        }
        Ok(out)
    }

    /// The slab's own shape: its magic, a bump pointer inside its memory, and free lists that
    /// stay inside the handed-out space, are acyclic and never share or overlap a block
    /// ([`Self::free_blocks`]). Which blocks are live is known only to the structures that
    /// use the slab: [`Self::check_accounted`].
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut magic = [0u8; 8];
        self.mem.read(0, &mut magic);
        if &magic != SLAB_MAGIC {
            return Err("slab: unknown magic".into());
        }
        let bump = self.high_water();
        if bump < FIRST_BLOCK || bump > self.mem.size() * WASM_PAGE {
            return Err(format!(
                "slab: bump pointer {bump} outside {FIRST_BLOCK}..={}",
                self.mem.size() * WASM_PAGE
            ));
        }
        self.free_blocks().map(|_| ())
    }

    /// Whether `used` (the blocks the slab's users reach) and the free lists tile the
    /// handed-out space exactly: every block in exactly one of them, no block leaked (in
    /// neither), shared (in both, or twice) or overlapping another.
    pub fn check_accounted(&self, used: &[Loc]) -> Result<(), String> {
        let mut blocks: Vec<(u64, u64, bool)> = used
            .iter()
            .map(|l| (l.addr, l.capacity(), true))
            .chain(
                self.free_blocks()?
                    .iter()
                    .map(|l| (l.addr, l.capacity(), false)),
            )
            .collect();
        blocks.sort_unstable();
        let mut at = FIRST_BLOCK;
        for (addr, size, in_use) in blocks {
            if addr != at {
                return Err(format!(
                    "slab: block at {addr} (size {size}, in use: {in_use}): expected one at \
                     {at} (a leak, or a block shared or overlapping)"
                ));
            }
            at += size;
        }
        let bump = self.high_water();
        if at != bump {
            return Err(format!(
                "slab: space {at}..{bump} after the last block leaked"
            ));
        }
        Ok(())
    }

    /// [`Self::check_accounted`], panicking with its message (tests).
    #[cfg(test)]
    pub fn assert_accounted(&self, used: &[Loc]) {
        if let Err(e) = self.check_accounted(used) {
            panic!("{e}");
        }
    }
}

/// One directory entry: the 16 bytes of a [`Loc`], all zero for an absent id.
type DirEntry = [u8; Loc::BYTES];

/// Whether `dir` already holds a `StableVec` of 16-byte entries: its 64-byte header (magic
/// `SVC`, version 1, length, entry size 16, fixed-size flag 1, 47 zero bytes). A layout-3…7
/// raw directory never looks like that: its bytes 16..32 would be entry 1 with only its
/// first byte set, and an absent entry is written all zero.
fn is_stable_vec<M: Memory>(dir: &M) -> bool {
    if dir.size() == 0 {
        return false;
    }
    let mut h = [0u8; 64];
    dir.read(0, &mut h);
    h[..4] == *b"SVC\x01"
        && h[12..16] == (Loc::BYTES as u32).to_le_bytes()
        && h[16] == 1
        && h[17..].iter().all(|b| *b == 0)
}

/// Layout 8: converts a directory written as raw 16-byte entries (entry `id` at `16 × id`,
/// layouts 3…7) into the `StableVec` [`DenseBytes`] opens, in place: the entries are read
/// into the heap, the memory zeroed, and every entry up to the last present one pushed to a
/// vector over the same memory (the memory keeps its buckets; no new memory id, none
/// stranded; 64 bytes of header more, which the raw directory's zero tail almost always
/// holds). Empty memory and a
/// directory already converted are left alone, so opening the state twice before the
/// layout is stamped converts once. Returns the entries written (`None`: nothing to do).
pub fn convert_raw_directory<M: Memory>(dir: M) -> Option<u64> {
    if dir.size() == 0 || is_stable_vec(&dir) {
        return None;
    }
    let mut raw = vec![0u8; (dir.size() * WASM_PAGE) as usize];
    dir.read(0, &mut raw);
    let entries: Vec<DirEntry> = raw
        .chunks_exact(Loc::BYTES)
        .map(|e| e.try_into().expect("16 bytes"))
        .collect();
    // Zeroed first: the vector's header leaves its 47 reserved bytes as they are, and what
    // lies past its last entry is then zero as in any directory.
    raw.fill(0);
    dir.write(0, &raw);
    drop(raw);
    let keep = entries
        .iter()
        .rposition(|e| *e != [0u8; Loc::BYTES])
        .map_or(0, |i| i + 1);
    let vec = StableVec::<DirEntry, M>::new(dir);
    for e in &entries[..keep] {
        vec.push(e);
    }
    Some(keep as u64)
}

/// Raw id → bytes table: a directory of [`Loc`]s (an `ic-stable-structures` `StableVec` of
/// 16-byte entries, index = id) over a shared [`Slab`].
///
/// The vector is created by the first entry, not when the table opens: opening empty memory
/// writes nothing, so a fresh install allocates no bucket for a directory it never uses.
pub struct DenseBytes<M: Memory> {
    dir: OnceCell<StableVec<DirEntry, M>>,
    /// The directory's memory while it is empty and unwritten (taken by the first entry).
    unwritten: Cell<Option<M>>,
}

impl<M: Memory> DenseBytes<M> {
    /// Opens the directory in `dir` (empty memory: an empty table). Traps on memory that
    /// holds no directory of this layout (a raw layout-7 one must be converted first:
    /// [`convert_raw_directory`]).
    pub fn init(dir: M) -> Self {
        if dir.size() == 0 {
            return DenseBytes {
                dir: OnceCell::new(),
                unwritten: Cell::new(Some(dir)),
            };
        }
        DenseBytes {
            dir: OnceCell::from(StableVec::init(dir)),
            unwritten: Cell::new(None),
        }
    }

    /// Ids the directory holds an entry for (every id below is absent or present; every id
    /// from here is absent).
    pub fn id_capacity(&self) -> u64 {
        self.dir.get().map_or(0, |d| d.len())
    }

    /// Where record `id` is.
    pub fn loc(&self, id: u64) -> Option<Loc> {
        self.dir.get()?.get(id).and_then(|e| Loc::decode(&e))
    }

    /// Rewrites the entry of `id`, which the caller just read present (so `id` is inside
    /// the vector: no length read of ours before the vector's own bounds check).
    fn rewrite_loc(&self, id: u64, loc: Option<Loc>) {
        let entry = loc.map_or([0u8; Loc::BYTES], |l| l.encode());
        self.written().set(id, &entry);
    }

    /// Writes the entry of `id`, which the caller just read absent: in place below the
    /// vector's length, else pushed (after absent entries up to it).
    fn add_loc(&self, id: u64, loc: Loc) {
        let dir = self.written();
        let len = dir.len();
        if id < len {
            dir.set(id, &loc.encode());
        } else {
            // Ids are dense: at most a few absent entries to fill before it. (The library
            // traps when stable memory cannot grow.)
            for _ in len..id {
                dir.push(&[0u8; Loc::BYTES]);
            }
            dir.push(&loc.encode());
        }
    }

    /// The vector, created in the memory on the first write.
    fn written(&self) -> &StableVec<DirEntry, M> {
        self.dir.get_or_init(|| {
            StableVec::new(
                self.unwritten
                    .take()
                    .expect("BUG: a directory neither opened nor unwritten"),
            )
        })
    }

    /// Every entry, in id order.
    fn entries(&self) -> impl Iterator<Item = DirEntry> + '_ {
        self.dir.get().into_iter().flat_map(|d| d.iter())
    }
    /// Record `id`.
    pub fn get(&self, slab: &Slab<M>, id: u64) -> Option<Vec<u8>> {
        self.loc(id).map(|loc| slab.read_all(loc))
    }

    /// Stores `bytes` as record `id`, in place while it fits the record's block.
    pub fn put(&self, slab: &Slab<M>, id: u64, bytes: &[u8]) {
        match self.loc(id) {
            Some(mut loc) if bytes.len() as u64 <= loc.capacity() => {
                slab.write(loc, 0, bytes);
                if loc.len as usize != bytes.len() {
                    loc.len = bytes.len() as u32;
                    self.rewrite_loc(id, Some(loc));
                }
            }
            old => {
                let loc = slab.alloc(bytes.len());
                slab.write(loc, 0, bytes);
                match old {
                    Some(old) => {
                        self.rewrite_loc(id, Some(loc));
                        slab.free(old);
                    }
                    None => self.add_loc(id, loc),
                }
            }
        }
    }

    /// Appends `bytes` to record `id`, whose location the caller has just read (`old`, from
    /// [`DenseBytes::loc`]; `None`: created); moves it to a larger block (twice the size
    /// needed) when it outgrows its block, so appends are amortized O(1).
    pub fn append(&self, slab: &Slab<M>, id: u64, old: Option<Loc>, bytes: &[u8]) {
        debug_assert_eq!(old, self.loc(id));
        let len = old.map_or(0, |l| u64::from(l.len));
        let new_len = len + bytes.len() as u64;
        match old {
            Some(mut loc) if new_len <= loc.capacity() => {
                slab.write(loc, len, bytes);
                loc.len = new_len as u32;
                self.rewrite_loc(id, Some(loc));
            }
            _ => {
                let mut loc = slab.alloc((new_len * 2).min(MAX_RECORD).max(new_len) as usize);
                if let Some(old) = old {
                    let prefix = slab.read_all(old);
                    slab.write(loc, 0, &prefix);
                    slab.free(old);
                }
                slab.write(loc, len, bytes);
                loc.len = new_len as u32;
                if old.is_some() {
                    self.rewrite_loc(id, Some(loc));
                } else {
                    self.add_loc(id, loc);
                }
            }
        }
    }

    /// Reads `dst.len()` bytes at `offset` of record `id`; `false` if the record is absent
    /// or shorter.
    pub fn read_at(&self, slab: &Slab<M>, id: u64, offset: u64, dst: &mut [u8]) -> bool {
        match self.loc(id) {
            Some(loc) if offset + dst.len() as u64 <= u64::from(loc.len) => {
                slab.read(loc, offset, dst);
                true
            }
            _ => false,
        }
    }

    /// Removes record `id`; whether it was present.
    pub fn remove(&self, slab: &Slab<M>, id: u64) -> bool {
        match self.loc(id) {
            Some(loc) => {
                slab.free(loc);
                self.rewrite_loc(id, None);
                true
            }
            None => false,
        }
    }

    /// Present ids ≥ `from`, ascending.
    pub fn ids_from(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        (from..)
            .zip(self.entries().skip(from.try_into().unwrap_or(usize::MAX)))
            .filter_map(|(id, e)| (e[13] != 0).then_some(id))
    }
}

impl<M: Memory> DenseBytes<M> {
    /// Walks the whole directory: an absent entry is all zero; a present one names a block of
    /// a real class inside `slab`'s handed-out space, with the record's length within the
    /// block. Returns every present record's block (for [`Slab::check_accounted`]).
    pub fn check_invariants(&self, slab: &Slab<M>) -> Result<Vec<Loc>, String> {
        let bump = slab.high_water();
        let mut out = Vec::new();
        for (at, e) in self.entries().enumerate() {
            match e[13] {
                0 if e == [0u8; Loc::BYTES] => {}
                1 if e[14..].iter().all(|b| *b == 0) => {
                    let loc = Loc::decode(&e).expect("present");
                    if loc.class >= CLASSES
                        || u64::from(loc.len) > loc.capacity()
                        || loc.addr < FIRST_BLOCK
                        || loc.addr.saturating_add(loc.capacity()) > bump
                    {
                        return Err(format!(
                            "dense directory: entry {at} names an impossible block {loc:?} \
                             (slab space {FIRST_BLOCK}..{bump})"
                        ));
                    }
                    out.push(loc);
                }
                _ => return Err(format!("dense directory: entry {at} is malformed: {e:?}")),
            }
        }
        Ok(out)
    }
}

/// Typed id → record table: [`DenseBytes`] with [`Storable`] records. The ids are the
/// record's own dense ids (never reused); the API mirrors the `StableBTreeMap` calls the
/// domain code uses.
pub struct DenseTable<T: Storable, M: Memory> {
    bytes: DenseBytes<M>,
    slab: std::rc::Rc<Slab<M>>,
    _t: PhantomData<T>,
}

impl<T: Storable, M: Memory> DenseTable<T, M> {
    /// Opens the table with directory `dir` over the shared `slab`.
    pub fn init(dir: M, slab: std::rc::Rc<Slab<M>>) -> Self {
        DenseTable {
            bytes: DenseBytes::init(dir),
            slab,
            _t: PhantomData,
        }
    }

    /// Record `id`.
    pub fn get(&self, id: &u64) -> Option<T> {
        self.bytes
            .get(&self.slab, *id)
            .map(|b| T::from_bytes(Cow::Owned(b)))
    }

    /// Whether record `id` exists.
    pub fn contains_key(&self, id: &u64) -> bool {
        self.bytes.loc(*id).is_some()
    }

    /// Stores `value` as record `id` (replacing any previous one).
    pub fn insert(&mut self, id: u64, value: T) {
        self.put(id, &value);
    }

    /// Stores `value` as record `id` without taking it (replacing any previous one).
    pub fn put(&mut self, id: u64, value: &T) {
        self.bytes.put(&self.slab, id, &value.to_bytes());
    }

    /// Removes record `id`; whether it existed.
    pub fn remove(&mut self, id: &u64) -> bool {
        self.bytes.remove(&self.slab, *id)
    }

    /// Records with id ≥ `from`, ascending.
    pub fn range_from(&self, from: u64) -> impl Iterator<Item = (u64, T)> + '_ {
        self.bytes
            .ids_from(from)
            .filter_map(move |id| self.get(&id).map(|v| (id, v)))
    }

    /// Every record, ascending by id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, T)> + '_ {
        self.range_from(0)
    }

    /// The slab the records live in.
    pub fn slab(&self) -> &Slab<M> {
        &self.slab
    }

    /// [`DenseBytes::check_invariants`] of the directory; every record's block.
    pub fn check_invariants(&self) -> Result<Vec<Loc>, String> {
        self.bytes.check_invariants(&self.slab)
    }

    /// Number of records (walks the directory).
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.bytes.ids_from(0).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;
    use std::rc::Rc;

    fn setup() -> (Rc<Slab<VectorMemory>>, VectorMemory, VectorMemory) {
        let data = VectorMemory::default();
        let dir = VectorMemory::default();
        (Rc::new(Slab::init(data.clone())), data, dir)
    }

    #[test]
    fn classes_cover_every_length() {
        assert_eq!(class_for(0), 0);
        assert_eq!(class_for(64), 0);
        assert_eq!((class_for(65), class_size(class_for(65))), (15, 96));
        assert_eq!((class_for(97), class_size(class_for(97))), (1, 128));
        assert_eq!((class_for(129), class_size(class_for(129))), (16, 192));
        assert_eq!((class_for(193), class_size(class_for(193))), (2, 256));
        assert_eq!(class_for(MAX_RECORD), POW2_CLASSES - 1);
        assert_eq!(class_size(CLASSES - 1), 96 << 13);
        // Layout 3's codes keep their sizes (blocks written by older code stay valid).
        for c in 0..POW2_CLASSES {
            assert_eq!(class_size(c), 64 << c);
        }
        // Every length gets the smallest block of either series that holds it.
        for len in (0..5_000).chain([MAX_RECORD - 1, MAX_RECORD, 700_000, 786_433]) {
            let c = class_for(len);
            let smallest = (0..CLASSES)
                .map(class_size)
                .filter(|s| *s >= len)
                .min()
                .unwrap();
            assert_eq!(class_size(c), smallest, "length {len}");
        }
    }

    #[test]
    fn freed_blocks_are_reused_by_their_class() {
        let (slab, _, _) = setup();
        let a = slab.alloc(100);
        let b = slab.alloc(100);
        assert_ne!(a.addr, b.addr);
        let hw = slab.high_water();
        slab.free(a);
        let c = slab.alloc(120);
        assert_eq!(c.addr, a.addr, "same class: the freed block");
        let d = slab.alloc(10);
        assert!(d.addr >= hw, "another class: fresh space");
        slab.free(b);
        slab.free(c);
        let e = slab.alloc(128);
        let f = slab.alloc(128);
        assert_eq!((e.addr, f.addr), (c.addr, b.addr), "LIFO free list");
    }

    #[test]
    fn table_round_trips_grows_shrinks_and_iterates_in_id_order() {
        let (slab, data, dir) = setup();
        let mut t: DenseTable<Vec<u8>, _> = DenseTable::init(dir.clone(), slab.clone());
        for id in [5u64, 1, 9_000, 3] {
            t.insert(id, vec![id as u8; 10]);
        }
        assert_eq!(t.get(&5), Some(vec![5; 10]));
        assert_eq!(t.get(&2), None);
        assert_eq!(t.get(&1_000_000), None);
        // Grows out of its block, then shrinks in place.
        t.insert(5, vec![7; 5_000]);
        assert_eq!(t.get(&5), Some(vec![7; 5_000]));
        t.insert(5, vec![8; 3]);
        assert_eq!(t.get(&5), Some(vec![8; 3]));
        assert!(t.remove(&3));
        assert!(!t.remove(&3));
        assert!(!t.contains_key(&3));
        let ids: Vec<u64> = t.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![1, 5, 9_000]);
        assert_eq!(t.range_from(2).next().map(|(id, _)| id), Some(5));
        assert_eq!(t.count(), 3);
        // Reopened over the same memories (an upgrade): the same records.
        drop(t);
        let slab = Rc::new(Slab::init(data));
        let t: DenseTable<Vec<u8>, _> = DenseTable::init(dir, slab);
        assert_eq!(t.get(&9_000), Some(vec![9_000u64 as u8; 10]));
        assert_eq!(t.get(&5), Some(vec![8; 3]));
    }

    /// Writes `locs` the way layouts 3…7 did: entry `id` at `16 × id`, absent all zero, the
    /// memory grown by whole pages.
    pub(crate) fn write_raw_directory(dir: &VectorMemory, locs: &[(u64, Loc)]) {
        for (id, loc) in locs {
            ensure_size(dir, (id + 1) * Loc::BYTES as u64);
            dir.write(id * Loc::BYTES as u64, &loc.encode());
        }
    }

    #[test]
    fn an_empty_directory_writes_nothing_until_its_first_entry() {
        let (slab, _, dir) = setup();
        let t = DenseBytes::init(dir.clone());
        assert_eq!(
            (t.loc(3), t.id_capacity(), t.ids_from(0).count()),
            (None, 0, 0)
        );
        assert!(!t.remove(&slab, 3));
        assert_eq!(
            dir.size(),
            0,
            "reads and a removal of nothing write nothing"
        );
        t.put(&slab, 2, &[9; 10]);
        assert_eq!(dir.size(), 1);
        assert_eq!(t.id_capacity(), 3, "ids 0 and 1 filled as absent");
        assert_eq!(t.ids_from(0).collect::<Vec<_>>(), vec![2]);
        let again = DenseBytes::init(dir);
        assert_eq!(again.get(&slab, 2), Some(vec![9; 10]));
        assert_eq!(again.id_capacity(), 3);
    }

    /// Layout 8: a raw directory becomes a `StableVec` in place; every id reads the same
    /// block, trailing absent entries are not carried, and converting again does nothing.
    #[test]
    fn a_raw_directory_converts_in_place_and_reads_the_same() {
        let (slab, _, dir) = setup();
        // Records written through a table, then their locations laid out raw.
        let scratch = DenseBytes::init(VectorMemory::default());
        let ids: Vec<u64> = vec![0, 1, 2, 5, 6, 7, 300, 301, 4_095, 4_096, 5_000];
        for id in &ids {
            scratch.put(&slab, *id, &bytes(1, *id, (*id as usize * 13) % 700));
        }
        scratch.remove(&slab, 6);
        let locs: Vec<(u64, Loc)> = ids
            .iter()
            .filter_map(|id| scratch.loc(*id).map(|l| (*id, l)))
            .collect();
        write_raw_directory(&dir, &locs);
        let raw_pages = dir.size();
        assert_eq!(raw_pages, 2, "5 001 entries of 16 bytes");

        assert_eq!(convert_raw_directory(dir.clone()), Some(5_001));
        assert_eq!(dir.size(), raw_pages, "in place: the memory did not grow");
        let t = DenseBytes::init(dir.clone());
        assert_eq!(t.id_capacity(), 5_001);
        for id in 0..5_100 {
            assert_eq!(t.loc(id), scratch.loc(id), "id {id}");
        }
        let present: Vec<u64> = locs.iter().map(|(id, _)| *id).collect();
        assert_eq!(t.ids_from(0).collect::<Vec<_>>(), present);
        assert_eq!(t.ids_from(7).collect::<Vec<_>>(), present[4..]);
        assert_eq!(
            ok(t.check_invariants(&slab)),
            locs.iter().map(|l| l.1).collect::<Vec<_>>()
        );
        for (id, _) in &locs {
            assert_eq!(t.get(&slab, *id), scratch.get(&slab, *id));
        }

        // Converting again (the state opened twice before the layout is stamped), and
        // converting empty memory, change nothing.
        let mut image = vec![0u8; (dir.size() * WASM_PAGE) as usize];
        dir.read(0, &mut image);
        assert_eq!(convert_raw_directory(dir.clone()), None);
        let mut again = vec![0u8; image.len()];
        dir.read(0, &mut again);
        assert!(again == image);
        let empty = VectorMemory::default();
        assert_eq!(convert_raw_directory(empty.clone()), None);
        assert_eq!(empty.size(), 0);
        // A raw directory whose entries are all absent converts to an empty vector.
        let zeros = VectorMemory::default();
        zeros.grow(1);
        assert_eq!(convert_raw_directory(zeros.clone()), Some(0));
        assert_eq!(DenseBytes::init(zeros).id_capacity(), 0);
    }

    /// The raw format can never be taken for a converted directory: its first 64 bytes
    /// would need entry 1 to be "absent" with a non-zero first byte.
    #[test]
    fn a_raw_directory_is_never_mistaken_for_a_converted_one() {
        let (slab, _, dir) = setup();
        let scratch = DenseBytes::init(VectorMemory::default());
        scratch.put(&slab, 0, &[1; 10]);
        let mut loc = scratch.loc(0).unwrap();
        // Entry 0 spelling the vector's magic, version and entry size as far as a Loc can.
        loc.addr = u64::from_le_bytes(*b"SVC\x01\0\0\0\0");
        loc.len = 0;
        loc.class = 16;
        write_raw_directory(&dir, &[(0, loc), (3, loc)]);
        assert!(!is_stable_vec(&dir));
        assert_eq!(convert_raw_directory(dir.clone()), Some(4));
        assert!(is_stable_vec(&dir));
    }

    #[test]
    fn appends_keep_earlier_bytes_across_moves() {
        let (slab, _, dir) = setup();
        let t = DenseBytes::init(dir);
        let mut expect = Vec::new();
        for i in 0..300u32 {
            let piece = i.to_le_bytes();
            t.append(&slab, 4, t.loc(4), &piece);
            expect.extend_from_slice(&piece);
        }
        assert_eq!(t.get(&slab, 4), Some(expect.clone()));
        let mut b = [0u8; 4];
        assert!(t.read_at(&slab, 4, 4 * 299, &mut b));
        assert_eq!(u32::from_le_bytes(b), 299);
        assert!(!t.read_at(&slab, 4, 4 * 300, &mut b), "past the end");
        assert!(!t.read_at(&slab, 5, 0, &mut b), "absent record");
    }

    #[test]
    fn accounting_finds_every_block_and_catches_a_leak() {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        let (slab, _, _) = setup();
        let blocks: Vec<Loc> = [10, 100, 3_000, 100, 64].map(|n| slab.alloc(n)).to_vec();
        slab.free(blocks[1]);
        slab.free(blocks[3]);
        assert_eq!(slab.free_blocks().unwrap().len(), 2);
        slab.assert_accounted(&[blocks[0], blocks[2], blocks[4]]);
        let leaked = catch_unwind(AssertUnwindSafe(|| {
            slab.assert_accounted(&[blocks[0], blocks[2]])
        }));
        assert!(leaked.is_err(), "a block neither used nor free is a leak");
        let shared = catch_unwind(AssertUnwindSafe(|| {
            slab.assert_accounted(&[blocks[0], blocks[1], blocks[2], blocks[4]])
        }));
        assert!(shared.is_err(), "a free block in use is shared");
    }

    #[test]
    #[should_panic(expected = "unknown layout")]
    fn foreign_memory_is_refused() {
        let m = VectorMemory::default();
        m.grow(1);
        m.write(0, b"something else");
        let _ = Slab::init(m);
    }

    // ------------------------------------------------------------ randomized model test

    use crate::storage::model_test::{cases, ok};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Tables over one slab: 0 and 1 raw [`DenseBytes`] (puts and appends), 2 a typed
    /// [`DenseTable`].
    const TABLES: usize = 3;

    #[derive(Clone, Debug)]
    enum Op {
        Put {
            t: usize,
            id: u64,
            len: usize,
        },
        Append {
            t: usize,
            id: u64,
            len: usize,
        },
        Remove {
            t: usize,
            id: u64,
        },
        Get {
            t: usize,
            id: u64,
        },
        ReadAt {
            t: usize,
            id: u64,
            offset: u64,
            len: usize,
        },
        IdsFrom {
            t: usize,
            from: u64,
        },
        /// Every handle dropped and opened again over the same memories (an upgrade).
        Reopen,
    }

    /// Record lengths: mostly small, some in the middle classes, a few near the top.
    fn len() -> impl Strategy<Value = usize> {
        prop_oneof![
            6 => 0usize..200,
            3 => 200usize..9_000,
            1 => 60_000usize..300_000,
        ]
    }

    /// Ids: dense small ones (collisions), and a few far ones (the directory grows).
    fn id() -> impl Strategy<Value = u64> {
        prop_oneof![9 => 0u64..24, 1 => 4_000u64..9_000]
    }

    fn op() -> impl Strategy<Value = Op> {
        let t = 0..TABLES;
        prop_oneof![
            5 => (t.clone(), id(), len()).prop_map(|(t, id, len)| Op::Put { t, id, len }),
            3 => (0..2usize, id(), 0usize..3_000).prop_map(|(t, id, len)| Op::Append { t, id, len }),
            3 => (t.clone(), id()).prop_map(|(t, id)| Op::Remove { t, id }),
            2 => (t.clone(), id()).prop_map(|(t, id)| Op::Get { t, id }),
            2 => (t.clone(), id(), 0u64..5_000, 0usize..300)
                .prop_map(|(t, id, offset, len)| Op::ReadAt { t, id, offset, len }),
            1 => (t, 0u64..30).prop_map(|(t, from)| Op::IdsFrom { t, from }),
            1 => Just(Op::Reopen),
        ]
    }

    struct Opened {
        slab: Rc<Slab<VectorMemory>>,
        raw: [DenseBytes<VectorMemory>; 2],
        typed: DenseTable<Vec<u8>, VectorMemory>,
    }

    fn open(data: &VectorMemory, dirs: &[VectorMemory; TABLES]) -> Opened {
        let slab = Rc::new(Slab::init(data.clone()));
        Opened {
            raw: [
                DenseBytes::init(dirs[0].clone()),
                DenseBytes::init(dirs[1].clone()),
            ],
            typed: DenseTable::init(dirs[2].clone(), slab.clone()),
            slab,
        }
    }

    impl Opened {
        fn get(&self, t: usize, id: u64) -> Option<Vec<u8>> {
            match t {
                2 => self.typed.get(&id),
                _ => self.raw[t].get(&self.slab, id),
            }
        }
        fn ids_from(&self, t: usize, from: u64) -> Vec<u64> {
            match t {
                2 => self.typed.range_from(from).map(|(id, _)| id).collect(),
                _ => self.raw[t].ids_from(from).collect(),
            }
        }
        /// Every invariant, and the slab's blocks are exactly the tables' plus its free lists.
        fn check(&self) {
            ok(self.slab.check_invariants());
            let mut used = ok(self.typed.check_invariants());
            for raw in &self.raw {
                used.extend(ok(raw.check_invariants(&self.slab)));
            }
            ok(self.slab.check_accounted(&used));
        }
    }

    /// Bytes that differ by step and id, so a stale or misplaced block shows.
    fn bytes(step: usize, id: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u64 * 31 + id * 7 + step as u64 * 13) as u8)
            .collect()
    }

    fn run(ops: Vec<Op>) {
        let data = VectorMemory::default();
        let dirs: [VectorMemory; TABLES] = Default::default();
        let mut s = open(&data, &dirs);
        let mut model: [BTreeMap<u64, Vec<u8>>; TABLES] = Default::default();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Put { t, id, len } => {
                    let b = bytes(step, id, len);
                    match t {
                        2 => s.typed.insert(id, b.clone()),
                        _ => s.raw[t].put(&s.slab, id, &b),
                    }
                    model[t].insert(id, b);
                }
                Op::Append { t, id, len } => {
                    let b = bytes(step, id, len);
                    s.raw[t].append(&s.slab, id, s.raw[t].loc(id), &b);
                    model[t].entry(id).or_default().extend_from_slice(&b);
                }
                Op::Remove { t, id } => {
                    let removed = match t {
                        2 => s.typed.remove(&id),
                        _ => s.raw[t].remove(&s.slab, id),
                    };
                    assert_eq!(removed, model[t].remove(&id).is_some(), "remove {t}/{id}");
                }
                Op::Get { t, id } => {
                    assert_eq!(s.get(t, id), model[t].get(&id).cloned(), "get {t}/{id}");
                    assert_eq!(
                        t == 2 && s.typed.contains_key(&id),
                        t == 2 && model[t].contains_key(&id)
                    );
                }
                Op::ReadAt { t, id, offset, len } => {
                    let mut dst = vec![0u8; len];
                    let found = match t {
                        2 => s.typed.bytes.read_at(&s.slab, id, offset, &mut dst),
                        _ => s.raw[t].read_at(&s.slab, id, offset, &mut dst),
                    };
                    let want = model[t]
                        .get(&id)
                        .and_then(|r| r.get(offset as usize..offset as usize + len));
                    assert_eq!(found, want.is_some(), "read_at {t}/{id}@{offset}+{len}");
                    if let Some(want) = want {
                        assert_eq!(dst, want);
                    }
                }
                Op::IdsFrom { t, from } => {
                    let want: Vec<u64> = model[t].range(from..).map(|(id, _)| *id).collect();
                    assert_eq!(s.ids_from(t, from), want);
                }
                Op::Reopen => {
                    drop(s);
                    s = open(&data, &dirs);
                }
            }
            s.check();
            for (t, m) in model.iter().enumerate() {
                for (id, want) in m {
                    assert_eq!(s.get(t, *id).as_ref(), Some(want), "table {t} record {id}");
                }
                assert_eq!(s.ids_from(t, 0).len(), m.len(), "table {t}: record count");
            }
            assert_eq!(s.typed.count(), model[2].len() as u64);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(64)))]
        #[test]
        fn random_operations_match_a_model(ops in prop::collection::vec(op(), 1..80)) {
            run(ops);
        }
    }

    #[test]
    fn the_walks_catch_a_double_free_and_a_corrupt_directory_entry() {
        let (slab, _, dir) = setup();
        let t = DenseBytes::init(dir.clone());
        t.put(&slab, 1, &[1; 100]);
        t.put(&slab, 2, &[2; 100]);
        let loc = t.loc(1).unwrap();
        assert_eq!(t.check_invariants(&slab), Ok(vec![loc, t.loc(2).unwrap()]));
        // A block freed twice is on its free list twice: a cycle.
        slab.free(loc);
        slab.free(loc);
        assert!(slab.check_invariants().unwrap_err().contains("cycle"));
        // A directory entry pointing past the slab's handed-out space.
        let (slab, _, dir) = setup();
        let t = DenseBytes::init(dir.clone());
        t.put(&slab, 0, &[0; 10]);
        let mut bad = t.loc(0).unwrap();
        bad.addr = slab.high_water();
        dir.write(64, &bad.encode());
        assert!(t
            .check_invariants(&slab)
            .unwrap_err()
            .contains("impossible block"));
        // A used block also on a free list is shared.
        let (slab, _, dir) = setup();
        let t = DenseBytes::init(dir);
        t.put(&slab, 0, &[0; 10]);
        let used = t.check_invariants(&slab).unwrap();
        slab.free(used[0]);
        assert!(slab.check_accounted(&used).is_err());
    }
}
