//! The owner index `(owner principal, vault id)`: a salted hash table with linear hashing,
//! whose buckets are records in the shared [`Slab`] (since `LAYOUT_VERSION` 6; before, a
//! `StableBTreeMap` in memory id 3, whose descent grew with the number of owners).
//!
//! - An owner's bucket is `h mod 2^(level+1)` if `h mod 2^level` is below `split`, else
//!   `h mod 2^level`, where `h` is SipHash-2-4 of the principal's bytes under the table's
//!   128-bit key (the salt). `2^level + split` buckets exist.
//! - Every insert that takes the entry count above [`LOAD`] entries per bucket splits bucket
//!   `split` into itself and `split + 2^level` (one bucket read, two written), so the table
//!   grows one bucket at a time: the directory stays dense and as small as the entries, and
//!   an insert, a removal or an owner's list reads one directory entry and one bucket of
//!   ~[`LOAD`] entries whatever the number of owners. Removals never merge buckets.
//! - The salt is chosen when the table is created (first insert or the layout-6 migration)
//!   from what the message cannot be told in advance ([`fresh_salt`]), then replaced once
//!   by 128 bits of the subnet's randomness ([`OwnerIndex::rekey`], from a timer after
//!   install and upgrade, `domain::vault_core::strengthen_owner_index`), after which it
//!   never changes: callers cannot see it, so they cannot choose principals that share a
//!   bucket (see docs/decisions.md).
//!
//! Persisted layout (a [`DenseBytes`] directory in its own memory over the record slab):
//! - directory id 0: the table's header record, [`META_BYTES`] bytes: magic `LVOI`, version
//!   `1`, `level: u8`, `random salt: u8` (1 once re-keyed from the subnet's randomness;
//!   since `LAYOUT_VERSION` 8, 0 before), a zero byte, `split: u64 LE`, `count: u64 LE`,
//!   `k0: u64 LE`, `k1: u64 LE`. Absent until the first entry or the re-key.
//! - directory id `b + 1`: bucket `b`, absent when empty; its entries one after another,
//!   each `principal length: u8, principal bytes, vault id: u64 LE`, in no particular order.

use std::rc::Rc;

use candid::Principal;
use ic_stable_structures::Memory;

use super::slab::{DenseBytes, Loc, Slab};
use crate::model::types::VaultId;

/// Entries per bucket above which the next insert splits a bucket.
pub const LOAD: u64 = 8;
const META_ID: u64 = 0;
const META_MAGIC: &[u8; 4] = b"LVOI";
const META_VERSION: u8 = 1;
const META_BYTES: usize = 40;

/// SipHash-2-4 of `data` under the key `(k0, k1)` (Aumasson and Bernstein's reference
/// algorithm; its output is part of the persisted layout, so it is written out here rather
/// than taken from a hasher whose algorithm may change).
pub fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v0 = k0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = k1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k1 ^ 0x7465_6462_7974_6573;
    let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    };
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        v3 ^= m;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= m;
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v3 ^= m;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= m;
    v2 ^= 0xff;
    for _ in 0..4 {
        round(&mut v0, &mut v1, &mut v2, &mut v3);
    }
    v0 ^ v1 ^ v2 ^ v3
}

/// The table's header (directory id 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    level: u8,
    split: u64,
    count: u64,
    k0: u64,
    k1: u64,
    /// Whether `(k0, k1)` came from the subnet's randomness ([`OwnerIndex::rekey`]).
    random_salt: bool,
}

impl Meta {
    fn fresh(salt: [u8; 16]) -> Meta {
        Meta {
            level: 0,
            split: 0,
            count: 0,
            k0: u64::from_le_bytes(salt[..8].try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(salt[8..].try_into().expect("8 bytes")),
            random_salt: false,
        }
    }

    fn encode(&self) -> [u8; META_BYTES] {
        let mut b = [0u8; META_BYTES];
        b[..4].copy_from_slice(META_MAGIC);
        b[4] = META_VERSION;
        b[5] = self.level;
        b[6] = u8::from(self.random_salt);
        b[8..16].copy_from_slice(&self.split.to_le_bytes());
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..32].copy_from_slice(&self.k0.to_le_bytes());
        b[32..40].copy_from_slice(&self.k1.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Result<Meta, String> {
        if b.len() != META_BYTES
            || &b[..4] != META_MAGIC
            || b[4] != META_VERSION
            || b[6] > 1
            || b[7] != 0
        {
            return Err(format!("owner index: unknown header {b:?}"));
        }
        let u = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let meta = Meta {
            level: b[5],
            split: u(8),
            count: u(16),
            k0: u(24),
            k1: u(32),
            random_salt: b[6] == 1,
        };
        if meta.level >= 63 || meta.split >= 1u64 << meta.level {
            return Err(format!("owner index: impossible shape {meta:?}"));
        }
        Ok(meta)
    }

    fn buckets(&self) -> u64 {
        (1u64 << self.level) + self.split
    }

    fn hash(&self, owner: &[u8]) -> u64 {
        siphash24(self.k0, self.k1, owner)
    }

    fn bucket_of_hash(&self, h: u64) -> u64 {
        let low = h & ((1u64 << self.level) - 1);
        if low < self.split {
            h & ((2u64 << self.level) - 1)
        } else {
            low
        }
    }

    fn bucket_of(&self, owner: &[u8]) -> u64 {
        self.bucket_of_hash(self.hash(owner))
    }

    /// The shape of `buckets` buckets (≥ 1): `level = ⌊log2 buckets⌋`, the rest split.
    fn with_buckets(mut self, buckets: u64) -> Meta {
        let buckets = buckets.max(1);
        self.level = (63 - buckets.leading_zeros()) as u8;
        self.split = buckets - (1u64 << self.level);
        self
    }
}

/// One entry of a bucket record: the owner's bytes, the vault id, and its byte range.
struct Entry<'a> {
    owner: &'a [u8],
    id: VaultId,
    start: usize,
    end: usize,
}

/// The entries of a bucket record (a malformed record ends the walk: `check_invariants`
/// reports it).
fn entries(bytes: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = *bytes.get(at)? as usize;
        let end = at + 1 + len + 8;
        let owner = bytes.get(at + 1..at + 1 + len)?;
        let id = u64::from_le_bytes(bytes.get(at + 1 + len..end)?.try_into().ok()?);
        let e = Entry {
            owner,
            id,
            start: at,
            end,
        };
        at = end;
        Some(e)
    })
}

fn push_entry(bucket: &mut Vec<u8>, owner: &[u8], id: VaultId) {
    bucket.push(owner.len() as u8);
    bucket.extend_from_slice(owner);
    bucket.extend_from_slice(&id.to_le_bytes());
}

/// The owner index (see the module docs).
pub struct OwnerIndex<M: Memory> {
    dir: DenseBytes<M>,
    slab: Rc<Slab<M>>,
    /// The header a table created by this handle starts with: its salt, and whether that
    /// came from the subnet's randomness (a re-key of a table not yet written keeps it
    /// here, in the heap, until the first entry writes it). The stored one wins.
    fresh: Meta,
}

impl<M: Memory> OwnerIndex<M> {
    /// Opens the index with directory `dir` over `slab`; `salt` keys the hash if the table
    /// is created through this handle (an existing table keeps its own).
    pub fn init(dir: M, slab: Rc<Slab<M>>, salt: [u8; 16]) -> Self {
        OwnerIndex {
            dir: DenseBytes::init(dir),
            slab,
            fresh: Meta::fresh(salt),
        }
    }

    fn meta(&self) -> Option<Meta> {
        self.dir
            .get(&self.slab, META_ID)
            .map(|b| Meta::decode(&b).unwrap_or_else(|e| panic!("BUG: {e}")))
    }

    fn put_meta(&self, meta: &Meta) {
        self.dir.put(&self.slab, META_ID, &meta.encode());
    }

    fn bucket(&self, b: u64) -> Vec<u8> {
        self.dir.get(&self.slab, b + 1).unwrap_or_default()
    }

    fn put_bucket(&self, b: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            self.dir.remove(&self.slab, b + 1);
        } else {
            self.dir.put(&self.slab, b + 1, bytes);
        }
    }

    /// Adds `(owner, id)`; `false` (and nothing changes) if it is already there.
    pub fn insert(&mut self, owner: Principal, id: VaultId) -> bool {
        let mut meta = self.meta().unwrap_or(self.fresh);
        let owner = owner.as_slice();
        let b = meta.bucket_of(owner);
        let mut bucket = self.bucket(b);
        if entries(&bucket).any(|e| e.id == id && e.owner == owner) {
            return false;
        }
        push_entry(&mut bucket, owner, id);
        self.put_bucket(b, &bucket);
        meta.count += 1;
        if meta.count > LOAD * meta.buckets() {
            self.split(&mut meta);
        }
        self.put_meta(&meta);
        true
    }

    /// Splits bucket `split` into itself and `split + 2^level`, then advances the split.
    fn split(&self, meta: &mut Meta) {
        let from = meta.split;
        let to = from + (1u64 << meta.level);
        let bucket = self.bucket(from);
        let (mut stay, mut go) = (Vec::new(), Vec::new());
        for e in entries(&bucket) {
            let side = if (meta.hash(e.owner) >> meta.level) & 1 == 0 {
                &mut stay
            } else {
                &mut go
            };
            side.extend_from_slice(&bucket[e.start..e.end]);
        }
        if !go.is_empty() {
            self.put_bucket(from, &stay);
            self.put_bucket(to, &go);
        }
        meta.split += 1;
        if meta.split == 1u64 << meta.level {
            meta.level += 1;
            meta.split = 0;
        }
    }

    /// Removes `(owner, id)`; whether it was there.
    pub fn remove(&mut self, owner: Principal, id: VaultId) -> bool {
        let Some(mut meta) = self.meta() else {
            return false;
        };
        let owner = owner.as_slice();
        let b = meta.bucket_of(owner);
        let mut bucket = self.bucket(b);
        let Some((start, end)) = entries(&bucket)
            .find(|e| e.id == id && e.owner == owner)
            .map(|e| (e.start, e.end))
        else {
            return false;
        };
        bucket.drain(start..end);
        self.put_bucket(b, &bucket);
        meta.count -= 1;
        self.put_meta(&meta);
        true
    }

    /// Ids ≥ `from` of `owner`'s entries, ascending.
    pub fn owned_by(&self, owner: Principal, from: VaultId) -> Vec<VaultId> {
        let Some(meta) = self.meta() else {
            return Vec::new();
        };
        let owner = owner.as_slice();
        let bucket = self.bucket(meta.bucket_of(owner));
        let mut ids: Vec<VaultId> = entries(&bucket)
            .filter(|e| e.owner == owner && e.id >= from)
            .map(|e| e.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.meta().map_or(0, |m| m.count)
    }

    /// Whether the index has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, in `(owner, id)` order (walks every bucket: tests, invariant checks).
    pub fn entries(&self) -> Vec<(Principal, VaultId)> {
        let mut out = self.entries_by_bucket();
        out.sort_unstable();
        out
    }

    /// Every entry, bucket by bucket (no order across owners).
    fn entries_by_bucket(&self) -> Vec<(Principal, VaultId)> {
        let Some(meta) = self.meta() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(meta.count as usize);
        for b in 0..meta.buckets() {
            let bucket = self.bucket(b);
            out.extend(entries(&bucket).map(|e| (Principal::from_slice(e.owner), e.id)));
        }
        out
    }

    /// Builds an empty index from `entries` in one pass (the layout-6 migration): sized for
    /// them up front, each bucket written once. Duplicates are kept once.
    pub fn bulk_load(&mut self, entries_in: impl Iterator<Item = (Principal, VaultId)>) {
        assert!(
            self.is_empty(),
            "BUG: bulk load into a non-empty owner index"
        );
        let mut all: Vec<(Principal, VaultId)> = entries_in.collect();
        all.sort_unstable();
        all.dedup();
        if all.is_empty() {
            return;
        }
        let meta = self.meta().unwrap_or(self.fresh);
        self.load(meta, &all);
    }

    /// Writes `all` (no duplicates) into an index with no bucket, keyed and flagged as
    /// `meta`, sized for them: each bucket written once, then the header.
    fn load(&mut self, meta: Meta, all: &[(Principal, VaultId)]) {
        let count = all.len() as u64;
        let meta = meta.with_buckets(count.div_ceil(LOAD));
        let mut buckets: Vec<Vec<u8>> = vec![Vec::new(); meta.buckets() as usize];
        for (owner, id) in all {
            let b = meta.bucket_of(owner.as_slice()) as usize;
            push_entry(&mut buckets[b], owner.as_slice(), *id);
        }
        for (b, bytes) in buckets.iter().enumerate() {
            self.put_bucket(b as u64, bytes);
        }
        self.put_meta(&Meta { count, ..meta });
    }

    /// Whether the hash is keyed by the subnet's randomness ([`Self::rekey`] ran).
    pub fn salt_is_random(&self) -> bool {
        self.meta()
            .map_or(self.fresh.random_salt, |m| m.random_salt)
    }

    /// Keys the hash with `salt`, 16 bytes of the subnet's randomness, and marks it so:
    /// every entry is read, every bucket record freed, and the entries written again under
    /// the new key in one pass (as [`Self::bulk_load`]). A table never written writes
    /// nothing: the key waits in the heap for its first entry (a fresh install allocates
    /// no memory for it; an upgrade before that entry re-keys again). O(entries): run once
    /// per canister, from a timer.
    pub fn rekey(&mut self, salt: [u8; 16]) {
        let keyed = Meta {
            random_salt: true,
            ..Meta::fresh(salt)
        };
        if self.meta().is_none() {
            self.fresh = keyed;
            return;
        }
        // Placed by hash: their order does not matter, so they are not sorted.
        let all: Vec<(Principal, VaultId)> = self.entries_by_bucket();
        if let Some(meta) = self.meta() {
            for b in 0..meta.buckets() {
                self.put_bucket(b, &[]);
            }
        }
        self.load(keyed, &all);
    }

    /// The whole table: a valid header (or none, and no bucket), no directory entry past the
    /// last bucket, no empty bucket record, every entry well formed and in the bucket its
    /// owner hashes to, no entry twice, the header's count the number of entries and at most
    /// [`LOAD`] per bucket. Returns the slab blocks it holds (for [`Slab::check_accounted`]).
    pub fn check_invariants(&self) -> Result<Vec<Loc>, String> {
        let locs = self.dir.check_invariants(&self.slab)?;
        let Some(meta_bytes) = self.dir.get(&self.slab, META_ID) else {
            if !locs.is_empty() {
                return Err("owner index: buckets without a header".into());
            }
            return Ok(locs);
        };
        let meta = Meta::decode(&meta_bytes)?;
        let mut seen = std::collections::BTreeSet::new();
        for id in self.dir.ids_from(1) {
            let b = id - 1;
            if b >= meta.buckets() {
                return Err(format!(
                    "owner index: bucket {b} stored, only {} exist",
                    meta.buckets()
                ));
            }
            let bytes = self.bucket(b);
            if bytes.is_empty() {
                return Err(format!("owner index: bucket {b} is stored empty"));
            }
            let mut walked = 0;
            for e in entries(&bytes) {
                walked = e.end;
                let owner = Principal::try_from_slice(e.owner)
                    .map_err(|err| format!("owner index: bucket {b}: bad principal: {err}"))?;
                let home = meta.bucket_of(e.owner);
                if home != b {
                    return Err(format!(
                        "owner index: ({owner}, {}) in bucket {b}, its owner hashes to {home}",
                        e.id
                    ));
                }
                if !seen.insert((owner, e.id)) {
                    return Err(format!("owner index: ({owner}, {}) twice", e.id));
                }
            }
            if walked != bytes.len() {
                return Err(format!(
                    "owner index: bucket {b} is malformed after byte {walked}"
                ));
            }
        }
        if seen.len() as u64 != meta.count {
            return Err(format!(
                "owner index: the header counts {} entries, {} are stored",
                meta.count,
                seen.len()
            ));
        }
        if meta.count > LOAD * meta.buckets() {
            return Err(format!(
                "owner index: {} entries in {} buckets, over {LOAD} per bucket",
                meta.count,
                meta.buckets()
            ));
        }
        Ok(locs)
    }

    /// Number of buckets (0 before the first entry; tests and benchmarks).
    pub fn bucket_count(&self) -> u64 {
        self.meta().map_or(0, |m| m.buckets())
    }
}

/// The salt of a table created now: on the IC, SHA-256 of what this message cannot be
/// told in advance by a caller (the time in ns, the instructions run so far, the cycle
/// balance, the canister id), cut to 128 bits; natively (tests), a fixed salt.
pub fn fresh_salt() -> [u8; 16] {
    #[cfg(target_arch = "wasm32")]
    {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"livault owner index salt");
        h.update(ic_cdk::api::time().to_le_bytes());
        h.update(ic_cdk::api::performance_counter(0).to_le_bytes());
        h.update(ic_cdk::api::performance_counter(1).to_le_bytes());
        h.update(ic_cdk::api::canister_cycle_balance().to_le_bytes());
        h.update(ic_cdk::api::canister_self().as_slice());
        let d = h.finalize();
        d[..16].try_into().expect("16 bytes")
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        *b"native test salt"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::model_test::{cases, ok};
    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // The paper's vector: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
        // And the standard library's SipHash-2-4 for every length up to 40.
        for len in 0..40u8 {
            let msg: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            #[allow(deprecated)]
            let mut std = std::hash::SipHasher::new_with_keys(k0, k1);
            std::hash::Hasher::write(&mut std, &msg);
            assert_eq!(
                siphash24(k0, k1, &msg),
                std::hash::Hasher::finish(&std),
                "len {len}"
            );
        }
    }

    fn p(n: u16) -> Principal {
        // Lengths 1..=29, like real principals (self-authenticating ones are 29 bytes).
        let len = 1 + (n as usize * 7) % 29;
        let bytes: Vec<u8> = (0..len).map(|i| (n as usize * 31 + i) as u8).collect();
        Principal::from_slice(&bytes)
    }

    fn open(dir: &VectorMemory, data: &VectorMemory, salt: [u8; 16]) -> OwnerIndex<VectorMemory> {
        OwnerIndex::init(dir.clone(), Rc::new(Slab::init(data.clone())), salt)
    }

    fn check(ix: &OwnerIndex<VectorMemory>) {
        let used = ok(ix.check_invariants());
        ok(ix.slab.check_accounted(&used));
    }

    #[test]
    fn grows_one_bucket_at_a_time_and_lists_in_id_order() {
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        let mut ix = open(&dir, &data, [7; 16]);
        assert_eq!(ix.bucket_count(), 0);
        assert_eq!(dir.size(), 0, "nothing written before the first entry");
        for id in (1..=500u64).rev() {
            let before = ix.bucket_count();
            assert!(ix.insert(p((id % 60) as u16), id));
            assert!(ix.bucket_count() - before <= 1, "one split at most");
            assert!(ix.len() <= LOAD * ix.bucket_count());
        }
        assert_eq!(ix.len(), 500);
        assert_eq!(ix.bucket_count(), 500u64.div_ceil(LOAD));
        assert!(!ix.insert(p(1), 61), "already there");
        let want: Vec<u64> = (1..=500).filter(|id| id % 60 == 1 && *id >= 100).collect();
        assert_eq!(ix.owned_by(p(1), 100), want);
        check(&ix);
        for id in 1..=500u64 {
            assert!(ix.remove(p((id % 60) as u16), id));
            assert!(!ix.remove(p((id % 60) as u16), id));
        }
        assert!(ix.is_empty());
        assert_eq!(ix.bucket_count(), 500u64.div_ceil(LOAD), "no merges");
        check(&ix);
        assert!(ix.entries().is_empty());
    }

    #[test]
    fn the_salt_decides_the_buckets_and_stays_with_the_table() {
        let buckets = |salt: [u8; 16]| {
            let meta = Meta::fresh(salt).with_buckets(64);
            (0..40)
                .map(|n| meta.bucket_of(p(n).as_slice()))
                .collect::<Vec<_>>()
        };
        assert_ne!(buckets([1; 16]), buckets([2; 16]));
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        let mut ix = open(&dir, &data, [1; 16]);
        for n in 0..100 {
            ix.insert(p(n), u64::from(n));
        }
        // Reopened with another salt (the next upgrade computes a new one): the stored one
        // still places every entry.
        let ix = open(&dir, &data, [2; 16]);
        for n in 0..100 {
            assert_eq!(ix.owned_by(p(n), 0), vec![u64::from(n)]);
        }
        check(&ix);
    }

    #[test]
    fn bulk_load_sizes_the_table_and_matches_inserts() {
        for n in [0u64, 1, 8, 9, 1_000, 4_097] {
            let (dir, data) = (VectorMemory::default(), VectorMemory::default());
            let mut ix = open(&dir, &data, [3; 16]);
            let all: Vec<(Principal, u64)> = (0..n).map(|i| (p((i % 300) as u16), i)).collect();
            ix.bulk_load(all.iter().copied().chain(all.first().copied()));
            assert_eq!(ix.len(), n);
            assert_eq!(ix.bucket_count(), if n == 0 { 0 } else { n.div_ceil(LOAD) });
            check(&ix);
            let mut want = all.clone();
            want.sort_unstable();
            assert_eq!(ix.entries(), want);
            // Grows on by inserts from there.
            ix.insert(p(5), 1_000_000);
            check(&ix);
        }
    }

    #[test]
    fn the_walk_catches_a_misplaced_entry_and_a_wrong_count() {
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        let mut ix = open(&dir, &data, [4; 16]);
        for n in 0..40 {
            ix.insert(p(n), u64::from(n));
        }
        check(&ix);
        // An entry written into a bucket its owner does not hash to.
        let meta = ix.meta().unwrap();
        let home = meta.bucket_of(p(0).as_slice());
        let other = (home + 1) % meta.buckets();
        let mut bytes = ix.bucket(other);
        push_entry(&mut bytes, p(0).as_slice(), 999);
        ix.put_bucket(other, &bytes);
        assert!(ix.check_invariants().unwrap_err().contains("hashes to"));
        // A header count that is off.
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        let mut ix = open(&dir, &data, [4; 16]);
        ix.insert(p(1), 1);
        ix.put_meta(&Meta {
            count: 2,
            ..ix.meta().unwrap()
        });
        assert!(ix.check_invariants().unwrap_err().contains("counts 2"));
    }

    /// 29-byte principals (like self-authenticating ones) numbered `n`.
    fn q(n: u64) -> Principal {
        let mut b = [0xAB; 29];
        b[..8].copy_from_slice(&n.to_le_bytes());
        Principal::from_slice(&b)
    }

    /// The most entries one bucket holds.
    fn fullest_bucket(ix: &OwnerIndex<VectorMemory>) -> usize {
        let buckets = ix.bucket_count();
        (0..buckets)
            .map(|b| entries(&ix.bucket(b)).count())
            .max()
            .unwrap_or(0)
    }

    /// Someone who knows the salt picks principals whose hashes share their low 8 bits: they
    /// all land in one bucket, and every lookup of its owners reads them all. Re-keyed with
    /// a salt they do not know, the same principals spread over the table; every entry is
    /// kept, no block leaks, and the new key and its flag survive a reopening.
    #[test]
    fn a_rekey_spreads_principals_chosen_against_the_old_salt() {
        let weak = [7u8; 16];
        let meta = Meta::fresh(weak);
        let chosen: Vec<Principal> = (0u64..)
            .map(q)
            .filter(|p| meta.hash(p.as_slice()) & 0xFF == 0)
            .take(200)
            .collect();
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        let mut ix = open(&dir, &data, weak);
        assert!(!ix.salt_is_random());
        for (i, p) in chosen.iter().enumerate() {
            assert!(ix.insert(*p, i as u64 + 1));
        }
        check(&ix);
        assert_eq!(
            ix.bucket_count(),
            25,
            "200 entries, 8 per bucket on average"
        );
        assert_eq!(
            fullest_bucket(&ix),
            200,
            "every chosen principal in one bucket"
        );
        let before = ix.entries();

        ix.rekey(*b"subnet random 16");
        assert!(ix.salt_is_random());
        check(&ix);
        assert_eq!(ix.entries(), before);
        assert_eq!(ix.len(), 200);
        let fullest = fullest_bucket(&ix);
        assert!(fullest <= 24, "the fullest bucket holds {fullest} of 200");
        for (i, p) in chosen.iter().enumerate() {
            assert_eq!(ix.owned_by(*p, 0), vec![i as u64 + 1]);
        }
        drop(ix);
        let mut ix = open(&dir, &data, [9; 16]);
        assert!(ix.salt_is_random(), "kept across a reopening");
        assert_eq!(ix.entries(), before);
        assert!(ix.insert(q(u64::MAX), 999));
        assert!(ix.remove(chosen[0], 1));
        check(&ix);

        // A table never written writes nothing; its first entry writes the new key and flag,
        // and the chosen principals spread under it.
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        let mut empty = open(&dir, &data, weak);
        empty.rekey(*b"subnet random 16");
        assert!(empty.salt_is_random());
        assert_eq!((empty.len(), empty.bucket_count(), dir.size()), (0, 0, 0));
        check(&empty);
        for (i, p) in chosen.iter().enumerate() {
            assert!(empty.insert(*p, i as u64 + 1));
        }
        check(&empty);
        assert!(fullest_bucket(&empty) <= 24);
        drop(empty);
        assert!(
            open(&dir, &data, weak).salt_is_random(),
            "written with the first entry"
        );
        // Not written before a reopening (an upgrade): the key is gone with the heap, and
        // the next upgrade's timer re-keys.
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        open(&dir, &data, weak).rekey(*b"subnet random 16");
        assert!(!open(&dir, &data, weak).salt_is_random());
    }

    // ------------------------------------------------------------ randomized model test

    #[derive(Clone, Debug)]
    enum Op {
        Insert {
            owner: u16,
            id: u64,
        },
        Remove {
            owner: u16,
            id: u64,
        },
        List {
            owner: u16,
            from: u64,
        },
        /// Dropped and opened again over the same memories (an upgrade), with another salt.
        Reopen,
        /// Re-keyed with another salt (the timer after install or upgrade).
        Rekey {
            salt: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few owners (several ids each, so one bucket holds an owner's many entries) and
        // ids that collide often.
        let owner = 0u16..40;
        let id = 0u64..300;
        prop_oneof![
            6 => (owner.clone(), id.clone()).prop_map(|(owner, id)| Op::Insert { owner, id }),
            3 => (owner.clone(), id.clone()).prop_map(|(owner, id)| Op::Remove { owner, id }),
            2 => (owner, id).prop_map(|(owner, from)| Op::List { owner, from }),
            1 => Just(Op::Reopen),
            1 => any::<u8>().prop_map(|salt| Op::Rekey { salt }),
        ]
    }

    fn run(salt: [u8; 16], ops: Vec<Op>) {
        let (dir, data) = (VectorMemory::default(), VectorMemory::default());
        let mut ix = open(&dir, &data, salt);
        let mut model: BTreeMap<(Principal, u64), ()> = BTreeMap::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Insert { owner, id } => {
                    let fresh = model.insert((p(owner), id), ()).is_none();
                    assert_eq!(ix.insert(p(owner), id), fresh, "step {step}: insert");
                }
                Op::Remove { owner, id } => {
                    let was = model.remove(&(p(owner), id)).is_some();
                    assert_eq!(ix.remove(p(owner), id), was, "step {step}: remove");
                }
                Op::List { owner, from } => {
                    let want: Vec<u64> = model
                        .range((p(owner), from)..=(p(owner), u64::MAX))
                        .map(|((_, id), _)| *id)
                        .collect();
                    assert_eq!(ix.owned_by(p(owner), from), want, "step {step}: list");
                }
                Op::Reopen => {
                    // The flag is kept once a header is stored (a re-key of a table never
                    // written lives in the heap only).
                    let random = ix.salt_is_random() && ix.bucket_count() > 0;
                    drop(ix);
                    ix = open(&dir, &data, [step as u8; 16]);
                    assert_eq!(ix.salt_is_random(), random, "step {step}: the flag is kept");
                }
                Op::Rekey { salt } => {
                    ix.rekey([salt; 16]);
                    assert!(ix.salt_is_random());
                }
            }
            check(&ix);
            assert_eq!(ix.len(), model.len() as u64);
            let want: Vec<(Principal, u64)> = model.keys().copied().collect();
            assert_eq!(ix.entries(), want, "step {step}: entries");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(64)))]
        #[test]
        fn random_operations_match_a_model(
            salt in any::<[u8; 16]>(),
            ops in prop::collection::vec(op(), 1..400),
        ) {
            run(salt, ops);
        }
    }
}
