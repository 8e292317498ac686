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
//! A second heap index, `(kind, id, due)`, answers "which entries does this id have for this
//! kind" without a scan, so callers can keep one entry per (kind, id) and remove a deleted
//! vault's entries.
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
    /// `(kind, id, due)` of every entry.
    by_id: BTreeSet<(u8, u64, u64)>,
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
        let mut by_id: Vec<(u8, u64, u64)> =
            entries.iter().map(|((d, k, i), _)| (*k, *i, *d)).collect();
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
        self.by_id.insert((key.1, key.2, key.0));
        None
    }

    /// Due times of the entries of `kind` for `id`, earliest first.
    pub fn dues_of(&self, kind: u8, id: u64) -> impl Iterator<Item = u64> + '_ {
        self.by_id
            .range((kind, id, 0)..=(kind, id, u64::MAX))
            .map(|(_, _, due)| *due)
    }

    /// Removes `key`; its attempts if it was queued.
    pub fn remove(&mut self, key: &QueueKey) -> Option<u32> {
        let (attempts, slot) = self.index.remove(key)?;
        self.by_id.remove(&(key.1, key.2, key.0));
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
}
