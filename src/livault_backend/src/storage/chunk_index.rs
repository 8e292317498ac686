//! Where each chunk of a blob is: one index record per blob, O(1) per chunk.
//!
//! Blob ids are dense and never reused, so the index is a [`DenseBytes`] table keyed by blob
//! id ([`CHUNK_DIR`](super::memory::CHUNK_DIR)): the blob's record is one 16-byte [`Loc`]
//! per chunk, in chunk order, each pointing at a [`Slab`] block with that chunk's
//! [`ChunkLoc`] (its page runs in `CONTENT_PAGES`). Finding chunk `i` is a directory read,
//! one 16-byte read at `16 × i` and the `ChunkLoc` block: a few hundred instructions where
//! the `StableBTreeMap<(blob, chunk), ChunkLoc>` it replaces cost ~80 000 per lookup.

use std::borrow::Cow;
use std::rc::Rc;

use ic_stable_structures::{Memory, Storable};

use super::pages::ChunkLoc;
use super::slab::{DenseBytes, Loc, Slab};

const ENTRY: u64 = Loc::BYTES as u64;

/// Most chunks one blob's index record holds (one slab record of at most
/// [`MAX_RECORD`](super::slab::MAX_RECORD) bytes). `begin_upload` refuses larger uploads and
/// the configuration keeps every tier's storage within it (issue #12 L6).
pub const MAX_CHUNKS: u64 = super::slab::MAX_RECORD / ENTRY;

/// Chunks in a blob's index record at `record`.
fn count_at(record: Option<Loc>) -> u32 {
    record.map_or(0, |l| (u64::from(l.len) / ENTRY) as u32)
}

/// Every blob's chunk locations (see the module docs).
pub struct ChunkIndex<M: Memory> {
    blobs: DenseBytes<M>,
    slab: Rc<Slab<M>>,
}

impl<M: Memory> ChunkIndex<M> {
    /// Opens the index with directory `dir` over the shared `slab`.
    pub fn init(dir: M, slab: Rc<Slab<M>>) -> Self {
        ChunkIndex {
            blobs: DenseBytes::init(dir),
            slab,
        }
    }

    /// Chunks recorded for `blob`.
    pub fn chunk_count(&self, blob: u64) -> u32 {
        count_at(self.blobs.loc(blob))
    }

    /// Chunk `index` of `blob`.
    pub fn get(&self, blob: u64, index: u32) -> Option<ChunkLoc> {
        let mut b = [0u8; Loc::BYTES];
        if !self
            .blobs
            .read_at(&self.slab, blob, u64::from(index) * ENTRY, &mut b)
        {
            return None;
        }
        let loc = Loc::decode(&b)?;
        Some(ChunkLoc::from_bytes(Cow::Owned(self.slab.read_all(loc))))
    }

    /// Records chunk `index` of `blob`; chunks are recorded in order (`index` must be the
    /// current count, anything else is a programming error).
    pub fn push(&mut self, blob: u64, index: u32, chunk: &ChunkLoc) {
        let record = self.blobs.loc(blob);
        assert_eq!(index, count_at(record), "BUG: chunk recorded out of order");
        let bytes = chunk.to_bytes();
        let loc = self.slab.alloc(bytes.len());
        self.slab.write(loc, 0, &bytes);
        self.blobs.append(&self.slab, blob, record, &loc.encode());
    }

    /// Removes `blob`'s index and returns its chunks in order.
    pub fn remove_blob(&mut self, blob: u64) -> Vec<ChunkLoc> {
        let Some(record) = self.blobs.get(&self.slab, blob) else {
            return Vec::new();
        };
        let chunks = record
            .chunks_exact(Loc::BYTES)
            .filter_map(Loc::decode)
            .map(|loc| {
                let chunk = ChunkLoc::from_bytes(Cow::Owned(self.slab.read_all(loc)));
                self.slab.free(loc);
                chunk
            })
            .collect();
        self.blobs.remove(&self.slab, blob);
        chunks
    }

    /// Every `(blob, index, chunk)`, in order (walks the directory).
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32, ChunkLoc)> + '_ {
        self.blobs.ids_from(0).flat_map(move |blob| {
            (0..self.chunk_count(blob)).filter_map(move |i| self.get(blob, i).map(|c| (blob, i, c)))
        })
    }

    /// Walks every blob's record: a whole number of entries, at least one (a blob without
    /// chunks keeps no record), each naming a slab block of the right size class inside the
    /// slab holding a well-formed [`ChunkLoc`]: page runs of at least one page whose total is
    /// exactly the pages of its length. Returns every block reached (records and chunk
    /// blocks, for [`Slab::check_accounted`]); where the page runs lie is checked against the
    /// page space by the state's walk.
    pub fn check_invariants(&self) -> Result<Vec<Loc>, String> {
        let mut blocks = self.blobs.check_invariants(&self.slab)?;
        for blob in self.blobs.ids_from(0) {
            let record = self.blobs.get(&self.slab, blob).expect("listed");
            if record.is_empty() || !record.len().is_multiple_of(Loc::BYTES) {
                return Err(format!(
                    "chunk index: blob {blob} record of {} bytes",
                    record.len()
                ));
            }
            for (i, e) in record.chunks_exact(Loc::BYTES).enumerate() {
                let loc = Loc::decode(e)
                    .filter(|l| l.class < super::slab::CLASSES && u64::from(l.len) <= l.capacity())
                    .ok_or_else(|| format!("chunk index: blob {blob} chunk {i}: bad entry"))?;
                let bytes = self.slab.read_all(loc);
                if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(16) {
                    return Err(format!("chunk index: blob {blob} chunk {i}: malformed"));
                }
                let chunk = ChunkLoc::from_bytes(Cow::Owned(bytes));
                let pages: u64 = chunk.extents.iter().map(|e| e.pages).sum();
                if chunk.extents.iter().any(|e| e.pages == 0)
                    || pages != super::pages::pages_for(u64::from(chunk.len))
                {
                    return Err(format!(
                        "chunk index: blob {blob} chunk {i}: {chunk:?} does not hold its length"
                    ));
                }
                blocks.push(loc);
            }
        }
        Ok(blocks)
    }

    /// Whether no blob has a recorded chunk.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.blobs.ids_from(0).next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::pages::Extent;
    use ic_stable_structures::VectorMemory;

    fn chunk(n: u64) -> ChunkLoc {
        ChunkLoc {
            len: n as u32 * 10,
            extents: (0..n % 3 + 1)
                .map(|i| Extent {
                    start: n * 100 + i,
                    pages: i + 1,
                })
                .collect(),
        }
    }

    #[test]
    fn chunks_are_found_by_index_and_removed_with_their_blob() {
        let data = VectorMemory::default();
        let dir = VectorMemory::default();
        let mut ix = ChunkIndex::init(dir.clone(), Rc::new(Slab::init(data.clone())));
        assert!(ix.is_empty());
        for i in 0..40u32 {
            ix.push(3, i, &chunk(u64::from(i)));
        }
        ix.push(5, 0, &chunk(99));
        assert_eq!(ix.chunk_count(3), 40);
        assert_eq!(ix.get(3, 17), Some(chunk(17)));
        assert_eq!(ix.get(3, 40), None);
        assert_eq!(ix.get(4, 0), None);
        assert_eq!(ix.iter().count(), 41);
        drop(ix);
        let mut ix = ChunkIndex::init(dir, Rc::new(Slab::init(data)));
        let removed = ix.remove_blob(3);
        assert_eq!(removed, (0..40).map(chunk).collect::<Vec<_>>());
        assert_eq!(ix.get(3, 0), None);
        assert!(ix.remove_blob(3).is_empty());
        assert!(!ix.is_empty());
        ix.remove_blob(5);
        assert!(ix.is_empty());
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn a_gap_is_a_bug() {
        let mut ix = ChunkIndex::init(
            VectorMemory::default(),
            Rc::new(Slab::init(VectorMemory::default())),
        );
        ix.push(1, 1, &chunk(1));
    }

    // ------------------------------------------------------------ randomized model test

    use crate::storage::model_test::{cases, ok};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        /// Appends chunk `n` (its shape derived from `n`) to `blob`.
        Push {
            blob: u64,
            n: u64,
        },
        Get {
            blob: u64,
            index: u32,
        },
        RemoveBlob {
            blob: u64,
        },
        Reopen,
    }

    /// A chunk whose length its page runs hold exactly (one to four runs).
    fn chunk_of(n: u64) -> ChunkLoc {
        let runs = n % 4 + 1;
        let extents: Vec<Extent> = (0..runs)
            .map(|i| Extent {
                start: n * 1_000 + i * 10,
                pages: (n + i) % 3 + 1,
            })
            .collect();
        let pages: u64 = extents.iter().map(|e| e.pages).sum();
        ChunkLoc {
            len: ((pages - 1) * super::super::pages::PAGE_BYTES + 1 + n % 4_000) as u32,
            extents,
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u64..5, 0u64..1_000).prop_map(|(blob, n)| Op::Push { blob, n }),
            3 => (0u64..5, 0u32..30).prop_map(|(blob, index)| Op::Get { blob, index }),
            1 => (0u64..5).prop_map(|blob| Op::RemoveBlob { blob }),
            1 => Just(Op::Reopen),
        ]
    }

    fn run(ops: Vec<Op>) {
        let data = VectorMemory::default();
        let dir = VectorMemory::default();
        let open = || {
            let slab = Rc::new(Slab::init(data.clone()));
            (ChunkIndex::init(dir.clone(), slab.clone()), slab)
        };
        let (mut ix, mut slab) = open();
        let mut model: BTreeMap<u64, Vec<ChunkLoc>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Push { blob, n } => {
                    let chunks = model.entry(blob).or_default();
                    ix.push(blob, chunks.len() as u32, &chunk_of(n));
                    chunks.push(chunk_of(n));
                }
                Op::Get { blob, index } => {
                    let want = model
                        .get(&blob)
                        .and_then(|c| c.get(index as usize))
                        .cloned();
                    assert_eq!(ix.get(blob, index), want, "get({blob}, {index})");
                }
                Op::RemoveBlob { blob } => {
                    assert_eq!(
                        ix.remove_blob(blob),
                        model.remove(&blob).unwrap_or_default()
                    );
                }
                Op::Reopen => {
                    drop((ix, slab));
                    (ix, slab) = open();
                }
            }
            let blocks = ok(ix.check_invariants());
            ok(slab.check_invariants());
            ok(slab.check_accounted(&blocks));
            let want: Vec<(u64, u32, ChunkLoc)> = model
                .iter()
                .flat_map(|(b, c)| c.iter().enumerate().map(|(i, c)| (*b, i as u32, c.clone())))
                .collect();
            assert_eq!(ix.iter().collect::<Vec<_>>(), want);
            assert_eq!(ix.is_empty(), model.is_empty());
            for (blob, chunks) in &model {
                assert_eq!(ix.chunk_count(*blob), chunks.len() as u32);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(128)))]
        #[test]
        fn random_operations_match_a_model(ops in prop::collection::vec(op(), 1..120)) {
            run(ops);
        }
    }

    #[test]
    fn the_walk_catches_a_chunk_that_does_not_hold_its_length() {
        let mut ix = ChunkIndex::init(
            VectorMemory::default(),
            Rc::new(Slab::init(VectorMemory::default())),
        );
        ix.push(1, 0, &chunk_of(7));
        assert!(ix.check_invariants().is_ok());
        let mut short = chunk_of(8);
        short.len += (super::super::pages::PAGE_BYTES * 5) as u32;
        ix.push(1, 1, &short);
        assert!(ix
            .check_invariants()
            .unwrap_err()
            .contains("blob 1 chunk 1"));
    }
}
