//! The admin trail's storage: a bounded, append-only ring of fixed-size slots in its own
//! virtual memory ([`ADMIN_TRAIL`](super::memory::ADMIN_TRAIL)).
//!
//! Entries are numbered from 1. Entry `seq` lives in slot `1 + (seq - 1) % capacity`, so once
//! `capacity` entries are stored each new one overwrites the oldest (oldest-first eviction)
//! and the memory never grows past `(capacity + 1) × 4 KiB`: with [`CAPACITY`] = 2 047 that
//! is exactly 8 MiB, one bucket of the memory manager.
//!
//! Slot 0 is the header: magic (8 bytes), then the next entry's number (`u64 LE`).
//! Slot `i ≥ 1`: the record's length (`u32 LE`), then the record (at most
//! [`MAX_RECORD_BYTES`]). Empty memory is an empty trail; the header is written with the
//! first entry, so opening the trail writes nothing.

use ic_stable_structures::Memory;

/// Bytes per slot.
pub const SLOT: u64 = 4_096;
/// Longest record a slot holds (after its 4-byte length).
pub const MAX_RECORD_BYTES: usize = SLOT as usize - 4;
/// Entries kept: the newest 2 047.
pub const CAPACITY: u64 = 2_047;

const MAGIC: &[u8; 8] = b"LVTRAIL1";
const WASM_PAGE: u64 = 65_536;

/// The ring (see the module docs).
pub struct AdminTrail<M: Memory> {
    mem: M,
    capacity: u64,
    /// The next entry's number (the first is 1).
    next: u64,
}

impl<M: Memory> AdminTrail<M> {
    /// Opens the trail in `mem` with the canister's [`CAPACITY`].
    pub fn init(mem: M) -> Self {
        Self::init_with_capacity(mem, CAPACITY)
    }

    /// Opens the trail with another capacity (tests; the capacity of a stored trail never
    /// changes).
    pub fn init_with_capacity(mem: M, capacity: u64) -> Self {
        assert!(capacity > 0, "BUG: admin trail capacity 0");
        let mut next = 1;
        if mem.size() > 0 {
            let mut head = [0u8; 16];
            mem.read(0, &mut head);
            if &head[..8] == MAGIC {
                next = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
            } else {
                assert_eq!(
                    head, [0; 16],
                    "BUG: admin trail memory has an unknown layout"
                );
            }
        }
        AdminTrail {
            mem,
            capacity,
            next,
        }
    }

    /// The next entry's number: entries ever appended + 1.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The oldest entry still kept (equals [`Self::next_seq`] when the trail is empty).
    pub fn first_seq(&self) -> u64 {
        self.next.saturating_sub(self.capacity).max(1)
    }

    fn offset(&self, seq: u64) -> u64 {
        (1 + (seq - 1) % self.capacity) * SLOT
    }

    /// Appends `record` (at most [`MAX_RECORD_BYTES`]: longer is a programming error) and
    /// returns its number; the oldest entry goes when the ring is full. Traps if stable
    /// memory cannot grow (the whole message then rolls back).
    pub fn append(&mut self, record: &[u8]) -> u64 {
        assert!(
            record.len() <= MAX_RECORD_BYTES,
            "BUG: admin trail record of {} bytes",
            record.len()
        );
        let seq = self.next;
        let offset = self.offset(seq);
        let pages = (offset + SLOT).div_ceil(WASM_PAGE);
        if self.mem.size() < pages {
            assert!(
                self.mem.grow(pages - self.mem.size()) >= 0,
                "stable memory exhausted (admin trail)"
            );
        }
        let mut slot = Vec::with_capacity(4 + record.len());
        slot.extend_from_slice(&(record.len() as u32).to_le_bytes());
        slot.extend_from_slice(record);
        self.mem.write(offset, &slot);
        self.next = seq + 1;
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(MAGIC);
        head[8..].copy_from_slice(&self.next.to_le_bytes());
        self.mem.write(0, &head);
        seq
    }

    /// The record of entry `seq`, if it is still kept.
    pub fn get(&self, seq: u64) -> Option<Vec<u8>> {
        if seq < self.first_seq() || seq >= self.next {
            return None;
        }
        let offset = self.offset(seq);
        let mut len = [0u8; 4];
        self.mem.read(offset, &mut len);
        let len = (u32::from_le_bytes(len) as usize).min(MAX_RECORD_BYTES);
        let mut out = vec![0u8; len];
        self.mem.read(offset + 4, &mut out);
        Some(out)
    }
}

impl<M: Memory> AdminTrail<M> {
    /// The ring's shape: empty memory, or a header that is all zero (next = 1) or holds the
    /// magic and the same next number as the heap copy; the memory no larger than the slots
    /// the entries so far needed (at most `capacity + 1`); every kept entry's length fits
    /// its slot.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.next == 0 {
            return Err("admin trail: entry numbers start at 1".into());
        }
        if self.mem.size() == 0 {
            return match self.next {
                1 => Ok(()),
                n => Err(format!("admin trail: next entry {n} with no memory")),
            };
        }
        let mut head = [0u8; 16];
        self.mem.read(0, &mut head);
        let stored = if &head[..8] == MAGIC {
            u64::from_le_bytes(head[8..].try_into().expect("8 bytes"))
        } else if head == [0; 16] {
            1
        } else {
            return Err("admin trail: unknown header".into());
        };
        if stored != self.next {
            return Err(format!(
                "admin trail: next entry {stored} stored, {} in the heap",
                self.next
            ));
        }
        let slots = 1 + (self.next - 1).min(self.capacity);
        let pages = (slots * SLOT).div_ceil(WASM_PAGE);
        if self.mem.size() > pages.max(1) {
            return Err(format!(
                "admin trail: {} pages for {slots} slots",
                self.mem.size()
            ));
        }
        for seq in self.first_seq()..self.next {
            let mut len = [0u8; 4];
            self.mem.read(self.offset(seq), &mut len);
            let len = u32::from_le_bytes(len) as usize;
            if len > MAX_RECORD_BYTES {
                return Err(format!("admin trail: entry {seq} claims {len} bytes"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    fn rec(seq: u64) -> Vec<u8> {
        // Lengths vary, some fill the slot.
        let len = if seq.is_multiple_of(7) {
            MAX_RECORD_BYTES
        } else {
            (seq % 300) as usize
        };
        (0..len).map(|i| (seq as usize + i) as u8).collect()
    }

    #[test]
    fn an_empty_trail_writes_nothing_and_holds_nothing() {
        let mem = VectorMemory::default();
        let t = AdminTrail::init(mem.clone());
        assert_eq!((t.first_seq(), t.next_seq()), (1, 1));
        assert_eq!(t.get(1), None);
        assert_eq!(mem.size(), 0);
    }

    /// Against a model (the last `capacity` records), through wrap-around and reopening.
    #[test]
    fn the_ring_keeps_the_newest_entries_and_evicts_the_oldest() {
        let mem = VectorMemory::default();
        let cap = 5;
        let mut t = AdminTrail::init_with_capacity(mem.clone(), cap);
        for seq in 1..=23u64 {
            assert_eq!(t.append(&rec(seq)), seq);
            let first = seq.saturating_sub(cap) + 1;
            assert_eq!((t.first_seq(), t.next_seq()), (first.max(1), seq + 1));
            for s in 0..=seq + 1 {
                let kept = s >= first && s <= seq && s >= 1;
                assert_eq!(t.get(s), kept.then(|| rec(s)), "after {seq}: entry {s}");
            }
            let reopened = AdminTrail::init_with_capacity(mem.clone(), cap);
            assert_eq!(reopened.next_seq(), seq + 1);
            assert_eq!(reopened.get(seq), Some(rec(seq)));
        }
        // Memory never grows past capacity + 1 slots (rounded up to a page).
        assert_eq!(mem.size(), ((cap + 1) * SLOT).div_ceil(WASM_PAGE));
    }

    #[test]
    fn the_full_capacity_fits_one_bucket_of_the_memory_manager() {
        assert_eq!((CAPACITY + 1) * SLOT, 128 * WASM_PAGE);
        let mem = VectorMemory::default();
        let mut t = AdminTrail::init(mem.clone());
        for seq in 1..=CAPACITY + 3 {
            t.append(&seq.to_le_bytes());
        }
        assert_eq!(mem.size(), 128);
        assert_eq!(t.first_seq(), 4);
        assert_eq!(t.get(4), Some(4u64.to_le_bytes().to_vec()));
        assert_eq!(t.get(3), None);
    }

    #[test]
    #[should_panic(expected = "BUG: admin trail record")]
    fn an_oversized_record_is_a_programming_error() {
        let mut t = AdminTrail::init(VectorMemory::default());
        t.append(&vec![0; MAX_RECORD_BYTES + 1]);
    }

    // ------------------------------------------------------------ randomized model test

    use crate::storage::model_test::{cases, ok};
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Clone, Debug)]
    enum Op {
        Append {
            len: usize,
        },
        /// Entry `first_seq + delta` (may be before the first or past the newest).
        Get {
            delta: i64,
        },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => prop_oneof![4 => 0usize..300, 1 => Just(MAX_RECORD_BYTES)]
                .prop_map(|len| Op::Append { len }),
            3 => (-3i64..12).prop_map(|delta| Op::Get { delta }),
            1 => Just(Op::Reopen),
        ]
    }

    fn run(cap: u64, ops: Vec<Op>) {
        let mem = VectorMemory::default();
        let mut t = AdminTrail::init_with_capacity(mem.clone(), cap);
        // The model: the numbers handed out and the newest `cap` records.
        let mut next = 1u64;
        let mut kept: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        for op in ops {
            match op {
                Op::Append { len } => {
                    let r: Vec<u8> = (0..len).map(|i| (i as u64 + next) as u8).collect();
                    assert_eq!(t.append(&r), next);
                    kept.push_back((next, r));
                    if kept.len() as u64 > cap {
                        kept.pop_front();
                    }
                    next += 1;
                }
                Op::Get { delta } => {
                    let Some(seq) = t.first_seq().checked_add_signed(delta) else {
                        continue;
                    };
                    let want = kept.iter().find(|(s, _)| *s == seq).map(|(_, r)| r.clone());
                    assert_eq!(t.get(seq), want, "entry {seq}");
                }
                Op::Reopen => {
                    drop(t);
                    t = AdminTrail::init_with_capacity(mem.clone(), cap);
                }
            }
            ok(t.check_invariants());
            assert_eq!(t.next_seq(), next);
            assert_eq!(t.first_seq(), kept.front().map_or(next, |(s, _)| *s));
            for (seq, r) in &kept {
                assert_eq!(t.get(*seq).as_ref(), Some(r), "entry {seq}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(128)))]
        #[test]
        fn random_operations_match_a_model(
            cap in 1u64..7,
            ops in prop::collection::vec(op(), 1..60),
        ) {
            run(cap, ops);
        }
    }

    #[test]
    fn the_walk_catches_a_header_out_of_step_and_a_bad_length() {
        let mem = VectorMemory::default();
        let mut t = AdminTrail::init_with_capacity(mem.clone(), 3);
        assert_eq!(t.check_invariants(), Ok(()));
        t.append(b"one");
        t.append(b"two");
        assert_eq!(t.check_invariants(), Ok(()));
        mem.write(SLOT, &u32::MAX.to_le_bytes());
        assert!(t.check_invariants().unwrap_err().contains("entry 1 claims"));
        mem.write(8, &7u64.to_le_bytes());
        assert!(t.check_invariants().unwrap_err().contains("next entry 7"));
    }
}
