//! Raw page store for content payloads (chunk bodies), kept out of every BTreeMap.
//!
//! Chunk bodies are large; a `StableBTreeMap` value rewrites neighbouring values when a node
//! is saved (20–40 instructions per byte), while a raw stable write costs about one
//! instruction per byte. So bodies live in their own virtual memory ([`CONTENT_PAGES`]) cut
//! into fixed pages of [`PAGE_BYTES`], written once with `Memory::write` at their final
//! offset and never copied. What this module owns:
//!
//! - the page memory and its high-water mark (`StorageHeader::content_pages_hwm`);
//! - the free list ([`CONTENT_FREE_PAGES`]: `first page → run length`, adjacent runs merged);
//! - [`ChunkLoc`], the page runs (extents) holding one chunk, stored by the content index.
//!
//! Allocation takes free runs lowest address first (a chunk may span several runs) and then
//! pages past the high-water mark, so its work is bounded by the pages it hands out.
//!
//! [`CONTENT_PAGES`]: super::memory::CONTENT_PAGES
//! [`CONTENT_FREE_PAGES`]: super::memory::CONTENT_FREE_PAGES

use std::borrow::Cow;

use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, Storable};

use super::State;

/// Bytes per content page. Small enough that the last page of an item wastes little,
/// large enough that a 1 MiB chunk is one or a few extents.
pub const PAGE_BYTES: u64 = 4096;
/// Wasm (stable memory) page size.
const WASM_PAGE_BYTES: u64 = 65_536;

/// A run of consecutive pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First page.
    pub start: u64,
    /// Number of pages (≥ 1).
    pub pages: u64,
}

/// Where one chunk's bytes are: `len` bytes spread over `extents` in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLoc {
    /// Bytes in the chunk.
    pub len: u32,
    /// Page runs in order.
    pub extents: Vec<Extent>,
}

/// Compact fixed-width encoding: `len: u32 LE`, then `(start: u64 LE, pages: u64 LE)*`.
impl Storable for ChunkLoc {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 16 * self.extents.len());
        out.extend_from_slice(&self.len.to_le_bytes());
        for e in &self.extents {
            out.extend_from_slice(&e.start.to_le_bytes());
            out.extend_from_slice(&e.pages.to_le_bytes());
        }
        out
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let (len, rest) = bytes.split_at(4);
        assert!(rest.len() % 16 == 0, "BUG: corrupt stored ChunkLoc");
        let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        ChunkLoc {
            len: u32::from_le_bytes(len.try_into().expect("4 bytes")),
            extents: rest
                .chunks_exact(16)
                .map(|e| Extent {
                    start: u64_at(&e[..8]),
                    pages: u64_at(&e[8..]),
                })
                .collect(),
        }
    }
    const BOUND: Bound = Bound::Unbounded;
}

/// Pages needed for `len` bytes.
pub fn pages_for(len: u64) -> u64 {
    len.div_ceil(PAGE_BYTES)
}

/// Why pages could not be handed out.
#[derive(Debug, PartialEq, Eq)]
pub struct OutOfStableMemory;

/// The page space's counters, persisted in the storage header
/// (`StorageHeader::content_pages_hwm`, `content_free_pages`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Pages ever handed out: every page below is in a chunk or in a free run.
    pub hwm: u64,
    /// Pages in the free runs.
    pub free: u64,
}

impl PageCounts {
    /// The state's counters.
    pub fn of(state: &State) -> PageCounts {
        let header = state.header.get();
        PageCounts {
            hwm: header.content_pages_hwm,
            free: header.content_free_pages,
        }
    }
    /// Stores the counters in the state's header.
    fn store(self, state: &mut State) {
        let mut header = state.header.get().clone();
        header.content_pages_hwm = self.hwm;
        header.content_free_pages = self.free;
        state.header.set(header);
    }
}

/// Allocates pages for `len` bytes (`len ≥ 1`). Either everything is allocated or nothing
/// changes.
pub fn allocate(state: &mut State, len: u64) -> Result<ChunkLoc, OutOfStableMemory> {
    let mut counts = PageCounts::of(state);
    let loc = allocate_in(
        &state.content_pages,
        &mut state.content_free,
        &mut counts,
        len,
    )?;
    counts.store(state);
    Ok(loc)
}

/// [`allocate`] over the page memory `pages`, its free runs and counters.
pub fn allocate_in<P: Memory, F: Memory>(
    pages: &P,
    free_runs: &mut StableBTreeMap<u64, u64, F>,
    counts: &mut PageCounts,
    len: u64,
) -> Result<ChunkLoc, OutOfStableMemory> {
    let mut needed = pages_for(len);
    // Plan first (read-only), so a failed grow leaves the free list untouched.
    let mut taken: Vec<Extent> = Vec::new();
    for (start, pages) in free_runs.iter().map(|e| e.into_pair()) {
        if needed == 0 {
            break;
        }
        let take = pages.min(needed);
        taken.push(Extent { start, pages: take });
        needed -= take;
    }
    let mut hwm = counts.hwm;
    if needed > 0 {
        let start = hwm;
        let end = start + needed;
        let have = pages.size();
        let want = (end * PAGE_BYTES).div_ceil(WASM_PAGE_BYTES);
        if want > have && pages.grow(want - have) < 0 {
            return Err(OutOfStableMemory);
        }
        taken.push(Extent {
            start,
            pages: needed,
        });
        hwm = end;
    }
    // Apply: remove or shorten the free runs used.
    let from_hwm = needed > 0;
    let used_runs = taken.len() - usize::from(from_hwm);
    for e in &taken[..used_runs] {
        let run = free_runs
            .remove(&e.start)
            .expect("BUG: planned free run vanished");
        if run > e.pages {
            free_runs.insert(e.start + e.pages, run - e.pages);
        }
        counts.free -= e.pages;
    }
    counts.hwm = hwm;
    Ok(ChunkLoc {
        len: len as u32,
        extents: taken,
    })
}

/// Returns the pages of `loc` to the free list, merging with adjacent free runs.
pub fn free(state: &mut State, loc: &ChunkLoc) {
    let mut counts = PageCounts::of(state);
    free_in(&mut state.content_free, &mut counts, loc);
    counts.store(state);
}

/// [`free`] over the free runs `free_runs` and counters.
pub fn free_in<M: Memory>(
    free_runs: &mut StableBTreeMap<u64, u64, M>,
    counts: &mut PageCounts,
    loc: &ChunkLoc,
) {
    for e in &loc.extents {
        let mut start = e.start;
        let mut pages = e.pages;
        if let Some((prev, prev_len)) = free_runs.range(..start).next_back().map(|x| x.into_pair())
        {
            if prev + prev_len == start {
                free_runs.remove(&prev);
                start = prev;
                pages += prev_len;
            }
        }
        if let Some(next_len) = free_runs.get(&(start + pages)) {
            free_runs.remove(&(start + pages));
            pages += next_len;
        }
        free_runs.insert(start, pages);
        counts.free += e.pages;
    }
}

/// The page space's shape: free runs of at least one page, below the high-water mark,
/// disjoint and coalesced (a gap between any two), adding up to the free count; the page
/// memory large enough for the high-water mark. (That the chunks' runs and the free runs
/// tile `0..hwm` exactly is the state's walk: the chunks live in the chunk index.)
pub fn check_invariants<P: Memory, F: Memory>(
    pages: &P,
    free_runs: &StableBTreeMap<u64, u64, F>,
    counts: PageCounts,
) -> Result<(), String> {
    if pages.size() * WASM_PAGE_BYTES < counts.hwm * PAGE_BYTES {
        return Err(format!(
            "content pages: high-water mark {} past the memory ({} Wasm pages)",
            counts.hwm,
            pages.size()
        ));
    }
    let mut free = 0u64;
    let mut prev_end: Option<u64> = None;
    for (start, n) in free_runs.iter().map(|e| e.into_pair()) {
        if n == 0 || start.saturating_add(n) > counts.hwm {
            return Err(format!(
                "content pages: free run {start}+{n} empty or past the high-water mark {}",
                counts.hwm
            ));
        }
        if prev_end.is_some_and(|end| end >= start) {
            return Err(format!(
                "content pages: free run {start}+{n} overlaps or touches the previous one \
                 (ends at {prev_end:?}): not coalesced"
            ));
        }
        prev_end = Some(start + n);
        free += n;
    }
    if free != counts.free {
        return Err(format!(
            "content pages: free runs hold {free} pages, the counter says {}",
            counts.free
        ));
    }
    Ok(())
}

/// [`check_invariants`] of the state's page space.
pub fn check_state(state: &State) -> Result<(), String> {
    check_invariants(
        &state.content_pages,
        &state.content_free,
        PageCounts::of(state),
    )
}

/// Writes `bytes` (exactly `loc.len` of them) into the pages of `loc`.
pub fn write(state: &State, loc: &ChunkLoc, bytes: &[u8]) {
    debug_assert_eq!(bytes.len(), loc.len as usize);
    let mut rest = bytes;
    for e in &loc.extents {
        let n = rest.len().min((e.pages * PAGE_BYTES) as usize);
        state.content_pages.write(e.start * PAGE_BYTES, &rest[..n]);
        rest = &rest[n..];
    }
}

/// Appends the chunk's bytes to `out` straight from stable memory (no zero-fill, one copy).
pub fn read_append(state: &State, loc: &ChunkLoc, out: &mut Vec<u8>) {
    let mut remaining = loc.len as usize;
    out.reserve(remaining);
    for e in &loc.extents {
        let n = remaining.min((e.pages * PAGE_BYTES) as usize);
        let at = out.len();
        // SAFETY: `reserve` made room for `remaining ≥ n` more bytes; `read_unsafe` fills
        // exactly `n` of them before the length is extended over them.
        unsafe {
            state
                .content_pages
                .read_unsafe(e.start * PAGE_BYTES, out.as_mut_ptr().add(at), n);
            out.set_len(at + n);
        }
        remaining -= n;
    }
}

/// Reads the chunk into a new vector.
pub fn read(state: &State, loc: &ChunkLoc) -> Vec<u8> {
    let mut out = Vec::new();
    read_append(state, loc, &mut out);
    out
}

/// The free page runs `(first page, pages)`, ascending (tests compare them).
#[cfg(test)]
pub(crate) fn free_runs(state: &State) -> Vec<(u64, u64)> {
    state.content_free.iter().map(|e| e.into_pair()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::DefaultMemoryImpl;

    #[test]
    fn chunk_loc_round_trips() {
        let loc = ChunkLoc {
            len: 123_456,
            extents: vec![
                Extent { start: 7, pages: 3 },
                Extent {
                    start: 1 << 40,
                    pages: 28,
                },
            ],
        };
        assert_eq!(ChunkLoc::from_bytes(loc.to_bytes()), loc);
    }

    #[test]
    fn allocate_write_read_free_reuse_and_merge() {
        let mut s = State::open(DefaultMemoryImpl::default());
        let a = allocate(&mut s, 10_000).unwrap(); // 3 pages
        let b = allocate(&mut s, 1).unwrap(); // 1 page
        let c = allocate(&mut s, 3 * PAGE_BYTES).unwrap(); // 3 pages
        assert_eq!(a.extents, vec![Extent { start: 0, pages: 3 }]);
        assert_eq!(b.extents, vec![Extent { start: 3, pages: 1 }]);
        assert_eq!(c.extents, vec![Extent { start: 4, pages: 3 }]);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        write(&s, &a, &data);
        write(&s, &b, &[9]);
        assert_eq!(read(&s, &a), data);
        assert_eq!(read(&s, &b), vec![9]);

        free(&mut s, &a);
        free(&mut s, &c);
        assert_eq!(free_runs(&s), vec![(0, 3), (4, 3)]);
        free(&mut s, &b); // merges both neighbours
        assert_eq!(free_runs(&s), vec![(0, 7)]);
        assert_eq!(s.header.get().content_free_pages, 7);

        // Reuse: lowest free pages first; a chunk larger than the free runs continues at
        // the high-water mark.
        let d = allocate(&mut s, 9 * PAGE_BYTES).unwrap();
        assert_eq!(
            d.extents,
            vec![Extent { start: 0, pages: 7 }, Extent { start: 7, pages: 2 }]
        );
        assert_eq!(s.header.get().content_pages_hwm, 9);
        assert_eq!(s.header.get().content_free_pages, 0);
        let big: Vec<u8> = (0..9 * PAGE_BYTES as u32).map(|i| (i % 13) as u8).collect();
        write(&s, &d, &big);
        assert_eq!(read(&s, &d), big);

        // A partial reuse splits the run.
        free(&mut s, &d);
        let e = allocate(&mut s, PAGE_BYTES + 1).unwrap();
        assert_eq!(e.extents, vec![Extent { start: 0, pages: 2 }]);
        assert_eq!(free_runs(&s), vec![(2, 7)]);
    }

    // ------------------------------------------------------------ randomized model test

    use crate::storage::model_test::{cases, ok};
    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A memory that refuses to grow past `limit` Wasm pages (stable memory running out).
    #[derive(Clone)]
    struct Limited(VectorMemory, u64);

    impl Memory for Limited {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn grow(&self, pages: u64) -> i64 {
            if self.0.size() + pages > self.1 {
                return -1;
            }
            self.0.grow(pages)
        }
        fn read(&self, offset: u64, dst: &mut [u8]) {
            self.0.read(offset, dst)
        }
        unsafe fn read_unsafe(&self, offset: u64, dst: *mut u8, count: usize) {
            self.0.read_unsafe(offset, dst, count)
        }
        fn write(&self, offset: u64, src: &[u8]) {
            self.0.write(offset, src)
        }
    }

    /// 8 Wasm pages: 128 content pages.
    const LIMIT: u64 = 8;

    #[derive(Clone, Debug)]
    enum Op {
        Allocate {
            len: u64,
        },
        /// Frees the live chunk at `i` (modulo the live chunks).
        Free {
            i: usize,
        },
        /// Reads the live chunk at `i` back.
        Read {
            i: usize,
        },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (1u64..20 * PAGE_BYTES).prop_map(|len| Op::Allocate { len }),
            4 => any::<usize>().prop_map(|i| Op::Free { i }),
            1 => any::<usize>().prop_map(|i| Op::Read { i }),
            1 => Just(Op::Reopen),
        ]
    }

    /// The model: free pages one by one, the high-water mark and the live chunks' pages.
    #[derive(Default)]
    struct Model {
        free: BTreeSet<u64>,
        hwm: u64,
    }

    impl Model {
        /// What `allocate_in` hands out: the lowest free pages (in maximal runs), then pages
        /// from the high-water mark; `None` past the memory limit.
        fn allocate(&mut self, len: u64) -> Option<Vec<Extent>> {
            let needed = pages_for(len);
            let from_free: Vec<u64> = self.free.iter().copied().take(needed as usize).collect();
            let rest = needed - from_free.len() as u64;
            if rest > 0 && ((self.hwm + rest) * PAGE_BYTES).div_ceil(WASM_PAGE_BYTES) > LIMIT {
                return None;
            }
            let mut out: Vec<Extent> = Vec::new();
            for p in from_free {
                self.free.remove(&p);
                match out.last_mut() {
                    Some(e) if e.start + e.pages == p => e.pages += 1,
                    _ => out.push(Extent { start: p, pages: 1 }),
                }
            }
            if rest > 0 {
                out.push(Extent {
                    start: self.hwm,
                    pages: rest,
                });
                self.hwm += rest;
            }
            Some(out)
        }
        fn runs(&self) -> Vec<(u64, u64)> {
            let mut out: Vec<(u64, u64)> = Vec::new();
            for &p in &self.free {
                match out.last_mut() {
                    Some((s, n)) if *s + *n == p => *n += 1,
                    _ => out.push((p, 1)),
                }
            }
            out
        }
    }

    fn read_back(pages: &Limited, loc: &ChunkLoc) -> Vec<u8> {
        let mut out = Vec::new();
        let mut remaining = loc.len as usize;
        for e in &loc.extents {
            let n = remaining.min((e.pages * PAGE_BYTES) as usize);
            let mut b = vec![0u8; n];
            pages.read(e.start * PAGE_BYTES, &mut b);
            out.extend_from_slice(&b);
            remaining -= n;
        }
        out
    }

    fn content(step: usize, len: u64) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + step as u64 * 31) as u8).collect()
    }

    fn run(ops: Vec<Op>) {
        let pages = Limited(VectorMemory::default(), LIMIT);
        let runs_mem = VectorMemory::default();
        let mut runs: StableBTreeMap<u64, u64, VectorMemory> =
            StableBTreeMap::init(runs_mem.clone());
        let mut counts = PageCounts::default();
        let mut model = Model::default();
        let mut live: Vec<(ChunkLoc, Vec<u8>)> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Allocate { len } => {
                    let want = model.allocate(len);
                    let before = (
                        runs.iter().map(|e| e.into_pair()).collect::<Vec<_>>(),
                        counts,
                    );
                    match allocate_in(&pages, &mut runs, &mut counts, len) {
                        Ok(loc) => {
                            assert_eq!(Some(&loc.extents), want.as_ref(), "allocate {len}");
                            assert_eq!(loc.len as u64, len);
                            let data = content(step, len);
                            let mut rest = &data[..];
                            for e in &loc.extents {
                                let n = rest.len().min((e.pages * PAGE_BYTES) as usize);
                                pages.write(e.start * PAGE_BYTES, &rest[..n]);
                                rest = &rest[n..];
                            }
                            live.push((loc, data));
                        }
                        Err(OutOfStableMemory) => {
                            assert_eq!(want, None, "allocate {len}: refused");
                            let after = (
                                runs.iter().map(|e| e.into_pair()).collect::<Vec<_>>(),
                                counts,
                            );
                            assert_eq!(after, before, "a refused allocation changes nothing");
                        }
                    }
                }
                Op::Free { i } => {
                    if live.is_empty() {
                        continue;
                    }
                    let (loc, _) = live.swap_remove(i % live.len());
                    for e in &loc.extents {
                        model.free.extend(e.start..e.start + e.pages);
                    }
                    free_in(&mut runs, &mut counts, &loc);
                }
                Op::Read { i } => {
                    if live.is_empty() {
                        continue;
                    }
                    let (loc, data) = &live[i % live.len()];
                    assert_eq!(&read_back(&pages, loc), data);
                }
                Op::Reopen => {
                    drop(runs);
                    runs = StableBTreeMap::init(runs_mem.clone());
                }
            }
            ok(check_invariants(&pages, &runs, counts));
            assert_eq!(
                runs.iter().map(|e| e.into_pair()).collect::<Vec<_>>(),
                model.runs()
            );
            assert_eq!(
                counts,
                PageCounts {
                    hwm: model.hwm,
                    free: model.free.len() as u64
                }
            );
            // The live chunks and the free runs tile 0..hwm.
            let mut owned: Vec<(u64, u64)> = live
                .iter()
                .flat_map(|(l, _)| l.extents.iter().map(|e| (e.start, e.pages)))
                .chain(model.runs())
                .collect();
            owned.sort_unstable();
            let mut at = 0;
            for (start, n) in owned {
                assert_eq!(start, at, "pages tile the space");
                at += n;
            }
            assert_eq!(at, counts.hwm);
        }
        // Every live chunk still reads back its own bytes (no page shared).
        for (loc, data) in &live {
            assert_eq!(&read_back(&pages, loc), data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(128)))]
        #[test]
        fn random_operations_match_a_model(ops in prop::collection::vec(op(), 1..80)) {
            run(ops);
        }
    }

    #[test]
    fn the_walk_catches_uncoalesced_runs_and_a_wrong_count() {
        let pages = VectorMemory::default();
        let mut runs: StableBTreeMap<u64, u64, VectorMemory> =
            StableBTreeMap::init(VectorMemory::default());
        let mut counts = PageCounts::default();
        let a = allocate_in(&pages, &mut runs, &mut counts, 3 * PAGE_BYTES).unwrap();
        free_in(&mut runs, &mut counts, &a);
        assert_eq!(check_invariants(&pages, &runs, counts), Ok(()));
        runs.insert(0, 1);
        runs.insert(1, 2);
        assert!(check_invariants(&pages, &runs, counts)
            .unwrap_err()
            .contains("coalesced"));
        runs.remove(&1);
        assert!(check_invariants(&pages, &runs, counts)
            .unwrap_err()
            .contains("counter"));
        runs.insert(0, 4);
        counts.free = 4;
        assert!(check_invariants(&pages, &runs, counts)
            .unwrap_err()
            .contains("high-water"));
    }
}
