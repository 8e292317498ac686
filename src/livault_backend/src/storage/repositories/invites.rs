//! Invites: the table `(vault, invite id) → invite` (memory `INVITES`) and its token index
//! `sha256(token) → (vault, invite id)` (memory `INVITE_TOKEN_INDEX`), through which a
//! presented token finds its invite.
//!
//! Every invite keeps its index entry for as long as it is stored (open, claimed, revoked
//! or replaced: a spent token must still answer with the invite's state), and the entry is
//! built from the record's own `token_hash`, so callers never write it. A new invite enters
//! through [`InviteRepository::insert_new`] (the token index is written first, then the
//! record, as the domain code did), a changed one through [`InviteRepository::save`].
//!
//! Recovery codes have a repository of their own ([`super::RecoveryCodeRepository`]): they
//! share no key, index or record with invites (their only link is the vault's
//! `membership.recovery_code_hash`), so keeping them apart leaves this module's invariant
//! about exactly one table and its one index.

use ic_stable_structures::StableBTreeMap;

use crate::model::records::InviteRecord;
use crate::model::types::VaultId;
use crate::storage::state::Mem;

/// The invite table and its token index.
pub struct InviteRepository {
    /// `(vault, invite id) → invite`.
    table: StableBTreeMap<(VaultId, u64), InviteRecord, Mem>,
    /// `sha256(token) → (vault, invite id)`: one entry per invite.
    by_token: StableBTreeMap<[u8; 32], (VaultId, u64), Mem>,
}

impl InviteRepository {
    /// Opens the table over `table` and the token index over `by_token`.
    pub fn init(table: Mem, by_token: Mem) -> Self {
        InviteRepository {
            table: StableBTreeMap::init(table),
            by_token: StableBTreeMap::init(by_token),
        }
    }

    /// Invite `invite_id` of `vault`.
    pub fn get(&self, vault: VaultId, invite_id: u64) -> Option<InviteRecord> {
        self.table.get(&(vault, invite_id))
    }

    /// The invite whose token hashes to `token_hash`.
    pub fn find_by_token(&self, token_hash: &[u8; 32]) -> Option<InviteRecord> {
        let key = self.by_token.get(token_hash)?;
        self.table.get(&key)
    }

    /// Whether an invite already uses the token hashing to `token_hash`.
    pub fn token_taken(&self, token_hash: &[u8; 32]) -> bool {
        self.by_token.contains_key(token_hash)
    }

    /// The invites of `vault` with id ≥ `from`, ascending by id.
    pub fn of_vault(&self, vault: VaultId, from: u64) -> impl Iterator<Item = InviteRecord> + '_ {
        self.table
            .range((vault, from)..=(vault, u64::MAX))
            .map(|e| e.into_pair().1)
    }

    /// Every invite, ascending by `(vault, invite id)`.
    pub fn iter(&self) -> impl Iterator<Item = InviteRecord> + '_ {
        self.table.iter().map(|e| e.into_pair().1)
    }

    /// Every token-index entry, in key order (tests, invariant checks).
    pub fn token_entries(&self) -> impl Iterator<Item = ([u8; 32], (VaultId, u64))> + '_ {
        self.by_token.iter().map(|e| e.into_pair())
    }

    /// Stores a new invite under its own `(vault, invite id)` with its token-index entry.
    /// The caller has made sure its token is not taken ([`Self::token_taken`]).
    pub fn insert_new(&mut self, invite: &InviteRecord) {
        let key = (invite.vault_id, invite.invite_id);
        debug_assert!(
            !self.by_token.contains_key(&invite.token_hash),
            "token reused"
        );
        debug_assert!(!self.table.contains_key(&key), "invite id reused");
        self.by_token.insert(invite.token_hash, key);
        self.table.insert(key, invite.clone());
    }

    /// Writes a changed invite back (claimed, revoked, replaced). Its token never changes
    /// in the flows; should it have, the index entry moves with it.
    pub fn save(&mut self, invite: &InviteRecord) {
        let key = (invite.vault_id, invite.invite_id);
        let before = self.table.insert(key, invite.clone());
        match before {
            Some(old) if old.token_hash == invite.token_hash => {}
            Some(old) => {
                self.by_token.remove(&old.token_hash);
                self.by_token.insert(invite.token_hash, key);
            }
            None => {
                self.by_token.insert(invite.token_hash, key);
            }
        }
    }

    /// Removes every invite of `vault` with their token-index entries (tombstoning); how
    /// many.
    pub fn remove_vault(&mut self, vault: VaultId) -> usize {
        let invites: Vec<InviteRecord> = self.of_vault(vault, 0).collect();
        for invite in &invites {
            self.by_token.remove(&invite.token_hash);
            self.table.remove(&(vault, invite.invite_id));
        }
        invites.len()
    }

    /// The table and the token index agree both ways: each invite is stored under its own
    /// `(vault, invite id)` and its token's entry names it; each entry names an invite with
    /// that token.
    pub fn check_invariants(&self) -> Result<(), String> {
        for ((vault, id), invite) in self.table.iter().map(|e| e.into_pair()) {
            if (invite.vault_id, invite.invite_id) != (vault, id) {
                return Err(format!(
                    "invite ({vault}, {id}) stored as ({}, {})",
                    invite.vault_id, invite.invite_id
                ));
            }
            let indexed = self.by_token.get(&invite.token_hash);
            if indexed != Some((vault, id)) {
                return Err(format!(
                    "invite ({vault}, {id}): its token's index entry is {indexed:?}"
                ));
            }
        }
        for (token, (vault, id)) in self.token_entries() {
            let record = self.table.get(&(vault, id));
            if record.is_none_or(|i| i.token_hash != token) {
                return Err(format!(
                    "invite token index → ({vault}, {id}): no such invite with that token"
                ));
            }
        }
        Ok(())
    }

    /// Test fixtures: a token-index entry written directly (to corrupt the index).
    #[cfg(test)]
    pub fn index_unchecked(&mut self, token_hash: [u8; 32], vault: VaultId, invite_id: u64) {
        self.by_token.insert(token_hash, (vault, invite_id));
    }

    /// Test fixtures: a token-index entry removed directly (to corrupt the index).
    #[cfg(test)]
    pub fn unindex_unchecked(&mut self, token_hash: &[u8; 32]) {
        self.by_token.remove(token_hash);
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;
    use crate::model::records::{InviteState, MemberRole};

    fn repo() -> InviteRepository {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        InviteRepository::init(mm.get(MemoryId::new(0)), mm.get(MemoryId::new(1)))
    }

    fn invite(vault: VaultId, invite_id: u64, token: u8) -> InviteRecord {
        InviteRecord {
            vault_id: vault,
            invite_id,
            role: MemberRole::Heir,
            name: format!("i{invite_id}"),
            relation: Default::default(),
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
            share_index: invite_id as u8,
            token_hash: [token; 32],
            created_at: 1,
            expires_at: 2,
            state: InviteState::Open,
            replaced_by: None,
        }
    }

    #[test]
    fn the_token_index_follows_inserts_changes_and_purges() {
        let mut r = repo();
        r.insert_new(&invite(7, 1, 0xa1));
        r.insert_new(&invite(7, 2, 0xa2));
        r.insert_new(&invite(8, 1, 0xb1));
        assert_eq!(r.check_invariants(), Ok(()));
        assert!(r.token_taken(&[0xa2; 32]) && !r.token_taken(&[0xa3; 32]));
        assert_eq!(r.find_by_token(&[0xa2; 32]), Some(invite(7, 2, 0xa2)));
        assert_eq!(r.find_by_token(&[0xa3; 32]), None);
        assert_eq!(r.get(8, 1), Some(invite(8, 1, 0xb1)));
        let ids: Vec<u64> = r.of_vault(7, 0).map(|i| i.invite_id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(r.of_vault(7, 2).count(), 1);

        // A claimed invite keeps its token; a changed token moves the entry.
        let mut claimed = invite(7, 1, 0xa1);
        claimed.state = InviteState::Revoked { at: 3 };
        r.save(&claimed);
        assert_eq!(r.find_by_token(&[0xa1; 32]), Some(claimed));
        r.save(&invite(7, 1, 0xa9));
        assert!(!r.token_taken(&[0xa1; 32]));
        assert_eq!(r.find_by_token(&[0xa9; 32]).map(|i| i.invite_id), Some(1));
        assert_eq!(r.check_invariants(), Ok(()));

        assert_eq!(r.remove_vault(7), 2);
        assert_eq!(r.remove_vault(7), 0);
        assert!(!r.token_taken(&[0xa2; 32]) && !r.token_taken(&[0xa9; 32]));
        assert_eq!(r.iter().count(), 1);
        assert_eq!(
            r.token_entries().collect::<Vec<_>>(),
            vec![([0xb1; 32], (8, 1))]
        );
        assert_eq!(r.check_invariants(), Ok(()));
    }

    #[test]
    fn the_walk_finds_a_broken_token_index_either_way() {
        let mut r = repo();
        r.insert_new(&invite(7, 1, 0xa1));
        r.unindex_unchecked(&[0xa1; 32]);
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("its token's index entry is None"), "{err}");

        let mut r = repo();
        r.insert_new(&invite(7, 1, 0xa1));
        r.index_unchecked([0xcc; 32], 7, 1);
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("no such invite with that token"), "{err}");
    }
}
