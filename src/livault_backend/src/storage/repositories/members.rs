//! Members: the table `(vault, member id) → member` (memory `MEMBERS`) and its index
//! `(member principal, vault) → member id` (memory `VAULTS_BY_MEMBER`), which answers "is
//! this principal a member of that vault" and "which vaults did this principal join".
//!
//! A member record carries its principal, so the repository keeps the index from the record
//! itself: [`MemberRepository::insert`] adds the entry (and moves it when a stored member's
//! principal changed), [`MemberRepository::remove`] and [`MemberRepository::remove_vault`]
//! drop it with the record. Keys and values are those the plain maps held (same memories,
//! same encodings); the table is written before the index, as the domain code did.

use candid::Principal;
use ic_stable_structures::StableBTreeMap;

use crate::model::records::MemberRecord;
use crate::model::types::VaultId;
use crate::storage::state::Mem;

/// The member table and its principal index.
pub struct MemberRepository {
    /// `(vault, member id) → member`.
    table: StableBTreeMap<(VaultId, u32), MemberRecord, Mem>,
    /// `(member principal, vault) → member id`: one entry per member.
    by_principal: StableBTreeMap<(Principal, VaultId), u32, Mem>,
}

impl MemberRepository {
    /// Opens the table over `table` and the index over `by_principal`.
    pub fn init(table: Mem, by_principal: Mem) -> Self {
        MemberRepository {
            table: StableBTreeMap::init(table),
            by_principal: StableBTreeMap::init(by_principal),
        }
    }

    /// Member `member_id` of `vault`.
    pub fn get(&self, vault: VaultId, member_id: u32) -> Option<MemberRecord> {
        self.table.get(&(vault, member_id))
    }

    /// The member id `principal` holds in `vault`, if it is a member.
    pub fn member_id_of(&self, principal: Principal, vault: VaultId) -> Option<u32> {
        self.by_principal.get(&(principal, vault))
    }

    /// Whether `principal` is a member of `vault`.
    pub fn is_member(&self, principal: Principal, vault: VaultId) -> bool {
        self.by_principal.contains_key(&(principal, vault))
    }

    /// The members of `vault` with id ≥ `from`, ascending by id.
    pub fn of_vault(&self, vault: VaultId, from: u32) -> impl Iterator<Item = MemberRecord> + '_ {
        self.table
            .range((vault, from)..=(vault, u32::MAX))
            .map(|e| e.into_pair().1)
    }

    /// `(vault, member id)` of the vaults with id ≥ `from` that `principal` is a member of,
    /// ascending by vault.
    pub fn vaults_of(
        &self,
        principal: Principal,
        from: VaultId,
    ) -> impl Iterator<Item = (VaultId, u32)> + '_ {
        self.by_principal
            .range((principal, from)..=(principal, VaultId::MAX))
            .map(|e| {
                let ((_, vault), member_id) = e.into_pair();
                (vault, member_id)
            })
    }

    /// Stores `member` (a new one, or a changed one) under its own `(vault, member id)` with
    /// its index entry. Should the key have held a member of another principal, that
    /// principal's entry goes.
    pub fn insert(&mut self, member: &MemberRecord) {
        let vault = member.vault_id;
        let before = self.table.insert((vault, member.member_id), member.clone());
        if let Some(old) = before {
            if old.principal != member.principal {
                self.by_principal.remove(&(old.principal, vault));
            }
        }
        self.by_principal
            .insert((member.principal, vault), member.member_id);
    }

    /// Removes member `member_id` of `vault` and its index entry; the removed member.
    pub fn remove(&mut self, vault: VaultId, member_id: u32) -> Option<MemberRecord> {
        let member = self.table.remove(&(vault, member_id))?;
        self.by_principal.remove(&(member.principal, vault));
        Some(member)
    }

    /// Removes every member of `vault` with their index entries (tombstoning); how many.
    pub fn remove_vault(&mut self, vault: VaultId) -> usize {
        let ids: Vec<u32> = self
            .table
            .keys_range((vault, 0)..=(vault, u32::MAX))
            .map(|(_, id)| id)
            .collect();
        for &id in &ids {
            self.remove(vault, id);
        }
        ids.len()
    }

    /// Every member, ascending by `(vault, member id)`.
    pub fn iter(&self) -> impl Iterator<Item = MemberRecord> + '_ {
        self.table.iter().map(|e| e.into_pair().1)
    }

    /// Every index entry `((principal, vault), member id)`, in key order (tests, invariant
    /// checks).
    pub fn index_entries(&self) -> impl Iterator<Item = ((Principal, VaultId), u32)> + '_ {
        self.by_principal.iter().map(|e| e.into_pair())
    }

    /// The table and the index agree both ways: each member is stored under its own
    /// `(vault, member id)` and has its index entry; each index entry names a member of
    /// that vault with that principal.
    pub fn check_invariants(&self) -> Result<(), String> {
        for ((vault, id), m) in self.table.iter().map(|e| e.into_pair()) {
            if (m.vault_id, m.member_id) != (vault, id) {
                return Err(format!(
                    "member ({vault}, {id}) stored as ({}, {})",
                    m.vault_id, m.member_id
                ));
            }
            let indexed = self.by_principal.get(&(m.principal, vault));
            if indexed != Some(id) {
                return Err(format!(
                    "member ({vault}, {id}) of {}: the member index holds {indexed:?}",
                    m.principal
                ));
            }
        }
        for ((principal, vault), id) in self.index_entries() {
            let member = self.table.get(&(vault, id));
            if member.is_none_or(|m| m.principal != principal) {
                return Err(format!(
                    "member index ({principal}, {vault}) → {id}: no such member"
                ));
            }
        }
        Ok(())
    }

    /// Test fixtures: an index entry written directly (to corrupt the index).
    #[cfg(test)]
    pub fn index_unchecked(&mut self, principal: Principal, vault: VaultId, member_id: u32) {
        self.by_principal.insert((principal, vault), member_id);
    }

    /// Test fixtures: an index entry removed directly (to corrupt the index).
    #[cfg(test)]
    pub fn unindex_unchecked(&mut self, principal: Principal, vault: VaultId) {
        self.by_principal.remove(&(principal, vault));
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;
    use crate::model::records::MemberRole;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn repo() -> MemberRepository {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        MemberRepository::init(mm.get(MemoryId::new(0)), mm.get(MemoryId::new(1)))
    }

    fn member(vault: VaultId, member_id: u32, who: u8) -> MemberRecord {
        MemberRecord {
            vault_id: vault,
            member_id,
            principal: p(who),
            role: MemberRole::Heir,
            name: format!("m{member_id}"),
            share_index: member_id as u8,
            joined_at: 5,
            relation: Default::default(),
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
            invite_id: u64::from(member_id),
        }
    }

    #[test]
    fn the_index_follows_inserts_changes_and_removals() {
        let mut r = repo();
        r.insert(&member(7, 1, 10));
        r.insert(&member(7, 2, 11));
        r.insert(&member(8, 1, 10));
        r.insert(&member(9, 1, 10));
        assert_eq!(r.check_invariants(), Ok(()));
        assert_eq!(r.member_id_of(p(10), 7), Some(1));
        assert_eq!(r.member_id_of(p(11), 7), Some(2));
        assert!(r.is_member(p(11), 7) && !r.is_member(p(11), 8));
        assert_eq!(r.get(7, 2), Some(member(7, 2, 11)));
        let ids: Vec<u32> = r.of_vault(7, 0).map(|m| m.member_id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(r.of_vault(7, 2).count(), 1);
        assert_eq!(
            r.vaults_of(p(10), 0).collect::<Vec<_>>(),
            vec![(7, 1), (8, 1), (9, 1)]
        );
        assert_eq!(
            r.vaults_of(p(10), 8).collect::<Vec<_>>(),
            vec![(8, 1), (9, 1)]
        );

        // A changed member keeps one index entry; a changed principal moves it.
        let mut renamed = member(7, 2, 11);
        renamed.name = "renamed".into();
        r.insert(&renamed);
        assert_eq!(r.get(7, 2).unwrap().name, "renamed");
        r.insert(&member(7, 2, 12));
        assert!(!r.is_member(p(11), 7));
        assert_eq!(r.member_id_of(p(12), 7), Some(2));
        assert_eq!(r.check_invariants(), Ok(()));

        assert_eq!(r.remove(7, 1), Some(member(7, 1, 10)));
        assert_eq!(r.remove(7, 1), None);
        assert!(!r.is_member(p(10), 7));
        assert_eq!(
            r.vaults_of(p(10), 0).collect::<Vec<_>>(),
            vec![(8, 1), (9, 1)]
        );
        assert_eq!(r.remove_vault(8), 1);
        assert_eq!(r.remove_vault(8), 0);
        assert_eq!(r.check_invariants(), Ok(()));
        let left: Vec<(VaultId, u32)> = r.iter().map(|m| (m.vault_id, m.member_id)).collect();
        assert_eq!(left, vec![(7, 2), (9, 1)]);
        assert_eq!(r.index_entries().count(), 2);
    }

    #[test]
    fn the_walk_finds_a_broken_index_either_way() {
        let mut r = repo();
        r.insert(&member(7, 1, 10));
        r.unindex_unchecked(p(10), 7);
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("member (7, 1)"), "{err}");

        let mut r = repo();
        r.insert(&member(7, 1, 10));
        r.index_unchecked(p(11), 7, 1);
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("no such member"), "{err}");

        let mut r = repo();
        r.insert(&member(7, 1, 10));
        r.index_unchecked(p(10), 7, 2);
        assert!(r.check_invariants().is_err());
    }
}
