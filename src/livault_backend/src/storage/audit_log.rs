//! The per-vault audit log: events in [`Slab`] blocks, one index record per vault.
//!
//! A vault's kept events have consecutive sequence numbers `first..next` (new events are
//! appended, compaction drops the oldest), so the vault's index record
//! ([`AUDIT_INDEX`](super::memory::AUDIT_INDEX), a [`DenseBytes`] table keyed by vault id) is
//! `first_seq: u64 LE` followed by one 16-byte [`Loc`] per kept event: event `seq` is found
//! at offset `8 + 16 × (seq − first)` with one read. Appending is an index append (in place
//! while the record's block has room) plus the event's block; a `StableBTreeMap` keyed by
//! `(vault, seq)` cost ~150 000 instructions per insert at 1 000 vaults, growing with the log.

use std::borrow::Cow;
use std::rc::Rc;

use ic_stable_structures::{Memory, Storable};

use super::slab::{DenseBytes, Loc, Slab};
use crate::domain::records::AuditEvent;
use crate::domain::types::VaultId;

const HEAD: u64 = 8;
const ENTRY: u64 = Loc::BYTES as u64;
/// Index entries read per stable read while iterating.
const BATCH: u64 = 32;

/// Every vault's audit events (see the module docs).
pub struct AuditLog<M: Memory> {
    index: DenseBytes<M>,
    slab: Rc<Slab<M>>,
}

impl<M: Memory> AuditLog<M> {
    /// Opens the log with index directory `dir` over the shared `slab`.
    pub fn init(dir: M, slab: Rc<Slab<M>>) -> Self {
        AuditLog {
            index: DenseBytes::init(dir),
            slab,
        }
    }

    /// `(first kept seq, number kept)` of the vault's log.
    pub fn bounds(&self, vault: VaultId) -> (u64, u64) {
        self.bounds_at(self.index.loc(vault))
    }

    /// [`Self::bounds`] from the vault's index location.
    fn bounds_at(&self, index: Option<Loc>) -> (u64, u64) {
        match index {
            None => (0, 0),
            Some(loc) => {
                let mut b = [0u8; 8];
                self.slab.read(loc, 0, &mut b);
                (u64::from_le_bytes(b), (u64::from(loc.len) - HEAD) / ENTRY)
            }
        }
    }

    /// Appends `event` to the vault's log. Its `seq` must follow the last kept event (or
    /// start the log); anything else is a programming error.
    pub fn append(&mut self, vault: VaultId, event: &AuditEvent) {
        let mut index = self.index.loc(vault);
        let (first, count) = self.bounds_at(index);
        if count == 0 {
            // (Re)start the index at this event's seq (once per vault: rare).
            self.index.put(&self.slab, vault, &event.seq.to_le_bytes());
            index = self.index.loc(vault);
        } else {
            assert_eq!(
                event.seq,
                first + count,
                "BUG: audit events out of sequence"
            );
        }
        let bytes = event.to_bytes();
        let loc = self.slab.alloc(bytes.len());
        self.slab.write(loc, 0, &bytes);
        self.index.append(&self.slab, vault, index, &loc.encode());
    }

    fn entry(&self, vault: VaultId, first: u64, seq: u64) -> Option<Loc> {
        let mut b = [0u8; Loc::BYTES];
        let at = HEAD + ENTRY * seq.checked_sub(first)?;
        if !self.index.read_at(&self.slab, vault, at, &mut b) {
            return None;
        }
        Loc::decode(&b)
    }

    fn read(&self, loc: Loc) -> AuditEvent {
        AuditEvent::from_bytes(Cow::Owned(self.slab.read_all(loc)))
    }

    /// Event `seq` of the vault, if kept.
    pub fn get(&self, vault: VaultId, seq: u64) -> Option<AuditEvent> {
        let (first, _) = self.bounds(vault);
        self.entry(vault, first, seq).map(|l| self.read(l))
    }

    /// The vault's oldest kept event.
    pub fn first(&self, vault: VaultId) -> Option<AuditEvent> {
        let (first, count) = self.bounds(vault);
        (count > 0).then(|| self.get(vault, first)).flatten()
    }

    /// The vault's newest event.
    pub fn last(&self, vault: VaultId) -> Option<AuditEvent> {
        let (first, count) = self.bounds(vault);
        (count > 0)
            .then(|| self.get(vault, first + count - 1))
            .flatten()
    }

    /// The vault's kept events with seq ≥ `from`, oldest first (read lazily).
    pub fn events_from(&self, vault: VaultId, from: u64) -> impl Iterator<Item = AuditEvent> + '_ {
        let (first, count) = self.bounds(vault);
        let end = first + count;
        let mut next = from.max(first);
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = next;
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            if next >= buf_start + (buf.len() as u64 / ENTRY) || buf.is_empty() {
                let n = BATCH.min(end - next);
                buf.resize((n * ENTRY) as usize, 0);
                let ok =
                    self.index
                        .read_at(&self.slab, vault, HEAD + ENTRY * (next - first), &mut buf);
                assert!(ok, "BUG: audit index shorter than its bounds");
                buf_start = next;
            }
            let i = ((next - buf_start) * ENTRY) as usize;
            next += 1;
            let loc = Loc::decode(&buf[i..i + Loc::BYTES]).expect("BUG: empty audit index entry");
            Some(self.read(loc))
        })
    }

    /// Removes the vault's events with seq < `before` (compaction); returns how many.
    pub fn drop_before(&mut self, vault: VaultId, before: u64) -> u64 {
        let (first, count) = self.bounds(vault);
        let n = before.saturating_sub(first).min(count);
        if n == 0 {
            return 0;
        }
        let record = self
            .index
            .get(&self.slab, vault)
            .expect("bounds say present");
        let entries = &record[HEAD as usize..];
        for e in entries[..(n * ENTRY) as usize].chunks_exact(Loc::BYTES) {
            self.slab
                .free(Loc::decode(e).expect("BUG: empty audit index entry"));
        }
        let mut rest = Vec::with_capacity(8 + entries.len() - (n * ENTRY) as usize);
        rest.extend_from_slice(&(first + n).to_le_bytes());
        rest.extend_from_slice(&entries[(n * ENTRY) as usize..]);
        self.index.put(&self.slab, vault, &rest);
        n
    }

    /// Removes every event of the vault and its index record (an erased draft).
    pub fn clear(&mut self, vault: VaultId) {
        let (first, count) = self.bounds(vault);
        self.drop_before(vault, first + count);
        self.index.remove(&self.slab, vault);
    }

    /// Events kept for all vaults (walks every index).
    #[cfg(test)]
    pub fn event_count(&self) -> u64 {
        self.index.ids_from(0).map(|v| self.bounds(v).1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;
    use ic_stable_structures::VectorMemory;

    fn ev(seq: u64) -> AuditEvent {
        AuditEvent {
            seq,
            at: 1_000 + seq,
            actor: Principal::anonymous(),
            action: "vault.updated".into(),
            details: format!("event {seq}"),
            hash: vec![seq as u8; 32],
        }
    }

    #[test]
    fn append_read_page_compact_and_reopen() {
        let data = VectorMemory::default();
        let dir = VectorMemory::default();
        let mut log = AuditLog::init(dir.clone(), Rc::new(Slab::init(data.clone())));
        for seq in 0..100 {
            log.append(7, &ev(seq));
            if seq < 3 {
                log.append(9, &ev(seq));
            }
        }
        assert_eq!(log.bounds(7), (0, 100));
        assert_eq!(log.get(7, 42), Some(ev(42)));
        assert_eq!(log.get(7, 100), None);
        assert_eq!(log.get(8, 0), None);
        assert_eq!(log.last(9), Some(ev(2)));
        let seqs: Vec<u64> = log.events_from(7, 60).map(|e| e.seq).collect();
        assert_eq!(seqs, (60..100).collect::<Vec<_>>());
        assert_eq!(log.drop_before(7, 90), 90);
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
        let log = AuditLog::init(dir, Rc::new(Slab::init(data)));
        assert_eq!(log.get(7, 95), Some(ev(95)));
        assert_eq!(log.events_from(9, 1).count(), 2);
    }

    #[test]
    #[should_panic(expected = "out of sequence")]
    fn a_gap_in_sequence_is_a_bug() {
        let mut log = AuditLog::init(
            VectorMemory::default(),
            Rc::new(Slab::init(VectorMemory::default())),
        );
        log.append(1, &ev(0));
        log.append(1, &ev(2));
    }
}
