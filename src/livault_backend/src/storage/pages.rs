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
use ic_stable_structures::{Memory, Storable};

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

/// Allocates pages for `len` bytes (`len ≥ 1`). Either everything is allocated or nothing
/// changes.
pub fn allocate(state: &mut State, len: u64) -> Result<ChunkLoc, OutOfStableMemory> {
    let mut needed = pages_for(len);
    // Plan first (read-only), so a failed grow leaves the free list untouched.
    let mut taken: Vec<Extent> = Vec::new();
    for (start, pages) in state.content_free.iter().map(|e| e.into_pair()) {
        if needed == 0 {
            break;
        }
        let take = pages.min(needed);
        taken.push(Extent { start, pages: take });
        needed -= take;
    }
    let mut header = state.header.get().clone();
    if needed > 0 {
        let start = header.content_pages_hwm;
        let end = start + needed;
        let have = state.content_pages.size();
        let want = (end * PAGE_BYTES).div_ceil(WASM_PAGE_BYTES);
        if want > have && state.content_pages.grow(want - have) < 0 {
            return Err(OutOfStableMemory);
        }
        taken.push(Extent {
            start,
            pages: needed,
        });
        header.content_pages_hwm = end;
    }
    // Apply: remove or shorten the free runs used.
    let from_hwm = needed > 0;
    let free_runs = taken.len() - usize::from(from_hwm);
    for e in &taken[..free_runs] {
        let run = state
            .content_free
            .remove(&e.start)
            .expect("BUG: planned free run vanished");
        if run > e.pages {
            state.content_free.insert(e.start + e.pages, run - e.pages);
        }
        header.content_free_pages -= e.pages;
    }
    state.header.set(header);
    Ok(ChunkLoc {
        len: len as u32,
        extents: taken,
    })
}

/// Returns the pages of `loc` to the free list, merging with adjacent free runs.
pub fn free(state: &mut State, loc: &ChunkLoc) {
    let mut header = state.header.get().clone();
    for e in &loc.extents {
        let mut start = e.start;
        let mut pages = e.pages;
        if let Some((prev, prev_len)) = state
            .content_free
            .range(..start)
            .next_back()
            .map(|x| x.into_pair())
        {
            if prev + prev_len == start {
                state.content_free.remove(&prev);
                start = prev;
                pages += prev_len;
            }
        }
        if let Some(next_len) = state.content_free.get(&(start + pages)) {
            state.content_free.remove(&(start + pages));
            pages += next_len;
        }
        state.content_free.insert(start, pages);
        header.content_free_pages += e.pages;
    }
    state.header.set(header);
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

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::DefaultMemoryImpl;

    fn free_runs(s: &State) -> Vec<(u64, u64)> {
        s.content_free.iter().map(|e| e.into_pair()).collect()
    }

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
}
