//! The scheduler's due queue: fixed-size slots in stable memory, ordered in a heap index.
//!
//! Every entry `(due_ns, kind, id) → failed attempts` is one 32-byte slot of its own
//! virtual memory ([`SCHEDULER_SLOTS`](super::memory::SCHEDULER_SLOTS)); the order the
//! scheduler ranges over lives in a heap `BTreeMap` rebuilt from the slots when the state is
//! opened (`init`, `post_upgrade`: one sequential scan, a sort and a bulk build). An
//! insert or a removal is then one heap-map operation plus one 32-byte stable write, where a
//! `StableBTreeMap` removal at the front of the queue cost ~240 000 instructions at 1 000
//! entries and more with every level. The heap copy is an index only: the slots are the
//! truth, written in the same message, so a trap rolls both back together.
//!
//! A second heap index, `(id, kind, due)`, answers "which entries does this id have" (for
//! one kind, or for all kinds in one range) without a scan, so callers can keep one entry
//! per (kind, id) and remove a deleted vault's entries with one lookup.
//!
//! Slot 0 is the header: magic (8 bytes), then the number of slots ever used (`u64 LE`).
//! Slot `i ≥ 1`: `due: u64 LE, id: u64 LE, attempts: u32 LE, kind: u8, live: u8`, zero
//! padding. Freed slots (live = 0) are reused.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeBounds;

use ic_stable_structures::Memory;

/// Queue key: `(due_ns, kind code, id)`.
pub type QueueKey = (u64, u8, u64);

const SLOT: u64 = 32;
const MAGIC: &[u8; 8] = b"LVQUEUE1";
const WASM_PAGE: u64 = 65_536;

/// The due queue (see the module docs).
pub struct DueQueue<M: Memory> {
    mem: M,
    /// key → (attempts, slot).
    index: BTreeMap<QueueKey, (u32, u64)>,
    /// `(id, kind, due)` of every entry.
    by_id: BTreeSet<(u64, u8, u64)>,
    /// Slots free for reuse.
    free: Vec<u64>,
    /// Slots ever used (the next fresh one).
    used: u64,
}

fn encode(key: QueueKey, attempts: u32) -> [u8; SLOT as usize] {
    let mut b = [0u8; SLOT as usize];
    b[..8].copy_from_slice(&key.0.to_le_bytes());
    b[8..16].copy_from_slice(&key.2.to_le_bytes());
    b[16..20].copy_from_slice(&attempts.to_le_bytes());
    b[20] = key.1;
    b[21] = 1;
    b
}

impl<M: Memory> DueQueue<M> {
    /// Opens the queue in `mem` (formatting empty memory) and rebuilds the heap index.
    pub fn init(mem: M) -> Self {
        let mut q = DueQueue {
            mem,
            index: BTreeMap::new(),
            by_id: BTreeSet::new(),
            free: Vec::new(),
            used: 1,
        };
        if q.mem.size() == 0 {
            assert!(q.mem.grow(1) >= 0, "BUG: stable memory exhausted");
            q.mem.write(0, MAGIC);
            q.write_used();
            return q;
        }
        let mut head = [0u8; 16];
        q.mem.read(0, &mut head);
        assert_eq!(&head[..8], MAGIC, "BUG: queue memory has an unknown layout");
        q.used = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        // One scan, 64 KiB per read; the index is built in bulk from the sorted entries
        // (one insert per entry would cost several thousand instructions each).
        let mut entries = Vec::new();
        let mut buf = vec![0u8; WASM_PAGE as usize];
        let mut slot = 1;
        while slot < q.used {
            let n = (WASM_PAGE / SLOT).min(q.used - slot);
            let bytes = &mut buf[..(n * SLOT) as usize];
            q.mem.read(slot * SLOT, bytes);
            for (i, s) in bytes.chunks_exact(SLOT as usize).enumerate() {
                let at = slot + i as u64;
                if s[21] == 0 {
                    q.free.push(at);
                    continue;
                }
                let u64_at = |r: std::ops::Range<usize>| {
                    u64::from_le_bytes(s[r].try_into().expect("8 bytes"))
                };
                let key = (u64_at(0..8), s[20], u64_at(8..16));
                let attempts = u32::from_le_bytes(s[16..20].try_into().expect("4 bytes"));
                entries.push((key, (attempts, at)));
            }
            slot += n;
        }
        let mut by_id: Vec<(u64, u8, u64)> =
            entries.iter().map(|((d, k, i), _)| (*i, *k, *d)).collect();
        by_id.sort_unstable();
        q.by_id = by_id.into_iter().collect();
        entries.sort_unstable_by_key(|(key, _)| *key);
        q.index = entries.into_iter().collect();
        q
    }

    fn write_used(&self) {
        self.mem.write(8, &self.used.to_le_bytes());
    }

    /// Whether `key` is queued.
    pub fn contains_key(&self, key: &QueueKey) -> bool {
        self.index.contains_key(key)
    }

    /// Failed attempts of `key`, if queued.
    pub fn get(&self, key: &QueueKey) -> Option<u32> {
        self.index.get(key).map(|(a, _)| *a)
    }

    /// Queues `key` with `attempts` (updating it in place if already queued); returns the
    /// previous attempts.
    pub fn insert(&mut self, key: QueueKey, attempts: u32) -> Option<u32> {
        if let Some((old, slot)) = self.index.get_mut(&key) {
            let prev = *old;
            *old = attempts;
            self.mem.write(*slot * SLOT, &encode(key, attempts));
            return Some(prev);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.used;
                self.used += 1;
                let end = self.used * SLOT;
                let have = self.mem.size() * WASM_PAGE;
                if end > have {
                    assert!(self.mem.grow(1) >= 0, "BUG: stable memory exhausted");
                }
                self.write_used();
                s
            }
        };
        self.mem.write(slot * SLOT, &encode(key, attempts));
        self.index.insert(key, (attempts, slot));
        self.by_id.insert((key.2, key.1, key.0));
        None
    }

    /// Due times of the entries of `kind` for `id`, earliest first.
    pub fn dues_of(&self, kind: u8, id: u64) -> impl Iterator<Item = u64> + '_ {
        self.by_id
            .range((id, kind, 0)..=(id, kind, u64::MAX))
            .map(|(_, _, due)| *due)
    }

    /// Every entry of `id`, all kinds, as `(kind, due)` in order (one range of the by-id
    /// index).
    pub fn entries_of(&self, id: u64) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.by_id
            .range((id, 0, 0)..=(id, u8::MAX, u64::MAX))
            .map(|(_, kind, due)| (*kind, *due))
    }

    /// Removes `key`; its attempts if it was queued.
    pub fn remove(&mut self, key: &QueueKey) -> Option<u32> {
        let (attempts, slot) = self.index.remove(key)?;
        self.by_id.remove(&(key.2, key.1, key.0));
        self.mem.write(slot * SLOT, &[0u8; SLOT as usize]);
        self.free.push(slot);
        Some(attempts)
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = QueueKey> + '_ {
        self.index.keys().copied()
    }

    /// Keys in `range`, in order.
    pub fn keys_range(
        &self,
        range: impl RangeBounds<QueueKey>,
    ) -> impl Iterator<Item = QueueKey> + '_ {
        self.index.range(range).map(|(k, _)| *k)
    }

    /// Entries (key, attempts) in order.
    pub fn iter(&self) -> impl Iterator<Item = (QueueKey, u32)> + '_ {
        self.index.iter().map(|(k, (a, _))| (*k, *a))
    }

    /// Number of queued entries.
    pub fn len(&self) -> u64 {
        self.index.len() as u64
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Walks every slot against the heap indexes: the header holds the magic and the slots
    /// ever used, inside the memory; each live slot's entry is in the index with that slot and
    /// attempts, and the index holds nothing else (so no key twice and no slot twice); the
    /// by-id index mirrors the index; the free slots are exactly the dead ones (all zero),
    /// each listed once.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut head = [0u8; 16];
        self.mem.read(0, &mut head);
        if &head[..8] != MAGIC {
            return Err("due queue: unknown magic".into());
        }
        let used = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        if used != self.used || used == 0 || used * SLOT > self.mem.size() * WASM_PAGE {
            return Err(format!(
                "due queue: {used} slots used in the header, {} in the heap, {} pages",
                self.used,
                self.mem.size()
            ));
        }
        let mut live = 0u64;
        let mut dead = BTreeSet::new();
        let mut s = [0u8; SLOT as usize];
        for slot in 1..used {
            self.mem.read(slot * SLOT, &mut s);
            match s[21] {
                0 if s.iter().all(|b| *b == 0) => {
                    dead.insert(slot);
                }
                1 if s[22..].iter().all(|b| *b == 0) => {
                    let u64_at =
                        |at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
                    let key = (u64_at(0), s[20], u64_at(8));
                    let attempts = u32::from_le_bytes(s[16..20].try_into().expect("4 bytes"));
                    if self.index.get(&key) != Some(&(attempts, slot)) {
                        return Err(format!(
                            "due queue: slot {slot} holds {key:?} ({attempts} attempts), the \
                             index says {:?}",
                            self.index.get(&key)
                        ));
                    }
                    live += 1;
                }
                _ => return Err(format!("due queue: slot {slot} is malformed: {s:?}")),
            }
        }
        if live != self.index.len() as u64 {
            return Err(format!(
                "due queue: {live} live slots, {} indexed entries",
                self.index.len()
            ));
        }
        let by_id: BTreeSet<(u64, u8, u64)> =
            self.index.keys().map(|(d, k, i)| (*i, *k, *d)).collect();
        if by_id != self.by_id {
            return Err("due queue: the by-id index differs from the index".into());
        }
        let free: BTreeSet<u64> = self.free.iter().copied().collect();
        if free.len() != self.free.len() || free != dead {
            return Err(format!(
                "due queue: free slots {:?}, dead slots {dead:?}",
                self.free
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    #[test]
    fn entries_survive_reopening_in_order_and_slots_are_reused() {
        let mem = VectorMemory::default();
        let mut q = DueQueue::init(mem.clone());
        for i in 0..5_000u64 {
            q.insert((10_000 - i, (i % 9) as u8, i), 0);
        }
        assert_eq!(q.insert((9_999, 1, 1), 3), Some(0), "update in place");
        for i in (0..5_000u64).step_by(2) {
            assert_eq!(q.remove(&(10_000 - i, (i % 9) as u8, i)), Some(0));
        }
        assert_eq!(q.remove(&(1, 1, 1)), None);
        assert_eq!(q.len(), 2_500);
        let slots_before = q.used;
        q.insert((7, 7, 7), 1);
        assert_eq!(q.used, slots_before, "a freed slot was reused");

        let again = DueQueue::init(mem);
        assert_eq!(again.len(), 2_501);
        assert_eq!(
            again.keys().collect::<Vec<_>>(),
            q.keys().collect::<Vec<_>>()
        );
        assert_eq!(again.get(&(9_999, 1, 1)), Some(3));
        assert_eq!(again.dues_of(1, 1).collect::<Vec<_>>(), vec![9_999]);
        assert_eq!(again.dues_of(7, 7).collect::<Vec<_>>(), vec![7, 9_993]);
        assert_eq!(again.dues_of(0, 0).count(), 0, "removed");
        assert_eq!(
            again.by_id.len() as u64,
            again.len(),
            "one by-id entry per queued entry"
        );
        assert_eq!(again.get(&(7, 7, 7)), Some(1));
        assert_eq!(again.free.len(), q.free.len());
        assert_eq!(
            again.keys_range(..=(5_100, u8::MAX, u64::MAX)).count(),
            q.keys_range(..=(5_100, u8::MAX, u64::MAX)).count()
        );
    }

    #[test]
    #[should_panic(expected = "unknown layout")]
    fn foreign_memory_is_refused() {
        let m = VectorMemory::default();
        m.grow(1);
        m.write(0, b"not a queue");
        let _ = DueQueue::init(m);
    }

    // ------------------------------------------------------------ randomized model test

    use crate::storage::model_test::{cases, ok};
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert { key: QueueKey, attempts: u32 },
        Remove { key: QueueKey },
        Get { key: QueueKey },
        DuesOf { kind: u8, id: u64 },
        Range { lo: QueueKey, hi: QueueKey },
        Reopen,
    }

    /// Small domains, so inserts collide with queued keys and removals hit.
    fn key() -> impl Strategy<Value = QueueKey> {
        (0u64..12, 0u8..3, 0u64..5)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (key(), 0u32..4).prop_map(|(key, attempts)| Op::Insert { key, attempts }),
            4 => key().prop_map(|key| Op::Remove { key }),
            2 => key().prop_map(|key| Op::Get { key }),
            1 => (0u8..3, 0u64..5).prop_map(|(kind, id)| Op::DuesOf { kind, id }),
            1 => (key(), key()).prop_map(|(lo, hi)| Op::Range { lo, hi }),
            1 => Just(Op::Reopen),
        ]
    }

    fn run(ops: Vec<Op>) {
        let mem = VectorMemory::default();
        let mut q = DueQueue::init(mem.clone());
        let mut model: BTreeMap<QueueKey, u32> = BTreeMap::new();
        let mut peak = 0;
        for op in ops {
            match op {
                Op::Insert { key, attempts } => {
                    assert_eq!(q.insert(key, attempts), model.insert(key, attempts));
                }
                Op::Remove { key } => assert_eq!(q.remove(&key), model.remove(&key)),
                Op::Get { key } => {
                    assert_eq!(q.get(&key), model.get(&key).copied());
                    assert_eq!(q.contains_key(&key), model.contains_key(&key));
                }
                Op::DuesOf { kind, id } => {
                    let want: Vec<u64> = model
                        .keys()
                        .filter(|(_, k, i)| (*k, *i) == (kind, id))
                        .map(|(d, _, _)| *d)
                        .collect();
                    assert_eq!(q.dues_of(kind, id).collect::<Vec<_>>(), want);
                    let mut all: Vec<(u8, u64)> = model
                        .keys()
                        .filter(|(_, _, i)| *i == id)
                        .map(|(d, k, _)| (*k, *d))
                        .collect();
                    all.sort_unstable();
                    assert_eq!(q.entries_of(id).collect::<Vec<_>>(), all);
                }
                Op::Range { lo, hi } => {
                    let (lo, hi) = (lo.min(hi), lo.max(hi));
                    let want: Vec<QueueKey> = model.range(lo..=hi).map(|(k, _)| *k).collect();
                    assert_eq!(q.keys_range(lo..=hi).collect::<Vec<_>>(), want);
                }
                Op::Reopen => {
                    drop(q);
                    q = DueQueue::init(mem.clone());
                }
            }
            ok(q.check_invariants());
            assert_eq!(
                q.iter().collect::<Vec<_>>(),
                model.clone().into_iter().collect::<Vec<_>>()
            );
            assert_eq!(q.keys().count(), model.len());
            assert_eq!(
                (q.len(), q.is_empty()),
                (model.len() as u64, model.is_empty())
            );
            // Freed slots are reused: never more slots than the most entries ever queued.
            peak = peak.max(model.len() as u64);
            assert!(
                q.used - 1 <= peak,
                "{} slots for at most {peak} entries",
                q.used - 1
            );
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
    fn the_walk_catches_a_slot_the_index_does_not_know() {
        let mem = VectorMemory::default();
        let mut q = DueQueue::init(mem.clone());
        q.insert((5, 1, 2), 0);
        q.insert((6, 1, 2), 0);
        assert_eq!(q.check_invariants(), Ok(()));
        // Slot 2 rewritten behind the index's back.
        mem.write(2 * SLOT, &encode((9, 9, 9), 0));
        assert!(q.check_invariants().unwrap_err().contains("slot 2"));
        q.remove(&(5, 1, 2));
        let mut q = DueQueue::init(mem);
        q.free.push(1);
        assert!(q.check_invariants().unwrap_err().contains("free slots"));
    }
}
