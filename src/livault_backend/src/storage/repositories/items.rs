//! Content items: each finished upload's metadata (kind, size, hash, encrypted metadata,
//! recipients, its blob), by vault and item id.
//!
//! One `StableBTreeMap` keyed `(vault, item id)` (the persisted format of memory
//! `CONTENT_ITEMS`); an item is always stored under its own `(vault_id, item_id)`, so
//! callers pass the record and never build the key.

use ic_stable_structures::StableBTreeMap;

use crate::model::records::ItemRecord;
use crate::model::types::{ItemId, VaultId};
use crate::storage::state::Mem;

/// The content items.
pub struct ItemRepository {
    map: StableBTreeMap<(VaultId, ItemId), ItemRecord, Mem>,
}

impl ItemRepository {
    /// Opens the map over `memory`.
    pub fn init(memory: Mem) -> Self {
        ItemRepository {
            map: StableBTreeMap::init(memory),
        }
    }

    /// Item `item` of vault `vault`.
    pub fn get(&self, vault: VaultId, item: ItemId) -> Option<ItemRecord> {
        self.map.get(&(vault, item))
    }

    /// Whether vault `vault` has item `item`.
    pub fn contains(&self, vault: VaultId, item: ItemId) -> bool {
        self.map.contains_key(&(vault, item))
    }

    /// Stores `item` (a new one, or a new version of one) under its own vault and id.
    pub fn save(&mut self, item: &ItemRecord) {
        self.map.insert((item.vault_id, item.item_id), item.clone());
    }

    /// Removes item `item` of vault `vault`; returns it if it was stored.
    pub fn remove(&mut self, vault: VaultId, item: ItemId) -> Option<ItemRecord> {
        self.map.remove(&(vault, item))
    }

    /// Vault `vault`'s items with ids `from` and above, by ascending id.
    pub fn in_vault_from(
        &self,
        vault: VaultId,
        from: ItemId,
    ) -> impl Iterator<Item = ItemRecord> + '_ {
        self.map
            .range((vault, from)..=(vault, ItemId::MAX))
            .map(|e| e.into_pair().1)
    }

    /// Vault `vault`'s items by ascending id.
    pub fn in_vault(&self, vault: VaultId) -> impl Iterator<Item = ItemRecord> + '_ {
        self.in_vault_from(vault, 0)
    }

    /// Every item, by vault then id (invariant checks, tests).
    pub fn iter(&self) -> impl Iterator<Item = ItemRecord> + '_ {
        self.map.iter().map(|e| e.into_pair().1)
    }

    /// Whether no item is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The map's own walk: every item is stored under its own `(vault_id, item_id)`.
    pub fn check_invariants(&self) -> Result<(), String> {
        for entry in self.map.iter() {
            let ((vault, id), item) = entry.into_pair();
            if (vault, id) != (item.vault_id, item.item_id) {
                return Err(format!(
                    "item ({vault}, {id}) stored as item ({}, {})",
                    item.vault_id, item.item_id
                ));
            }
        }
        Ok(())
    }

    /// Stores `item` under `key` as given, bypassing [`Self::save`] (tests of the walk).
    #[cfg(test)]
    pub(in crate::storage) fn insert_raw(&mut self, key: (VaultId, ItemId), item: ItemRecord) {
        self.map.insert(key, item);
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::memory_manager::MemoryManager;
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;
    use crate::model::types::ItemKind;
    use crate::storage::memory::CONTENT_ITEMS;

    fn item(vault: VaultId, id: ItemId, version: u32) -> ItemRecord {
        ItemRecord {
            item_id: id,
            vault_id: vault,
            kind: ItemKind::Letter,
            size: 10 * id,
            sha256: vec![id as u8; 32],
            encrypted_meta: vec![1, 2, 3],
            recipients: Some(vec![1]),
            blob_id: 100 + id,
            chunk_count: 1,
            chunk_bytes: 10,
            created_at: 1,
            updated_at: 2,
            version,
        }
    }

    /// Items are keyed by their own `(vault, id)` as the map always was (no persisted
    /// change), listed per vault in id order, replaced in place and removed.
    #[test]
    fn items_are_stored_under_their_own_key_and_listed_per_vault() {
        let memory = DefaultMemoryImpl::default();
        let mut items =
            ItemRepository::init(MemoryManager::init(memory.clone()).get(CONTENT_ITEMS));
        assert!(items.is_empty());
        for (vault, id) in [(2, 5), (1, 4), (2, 3), (3, 1)] {
            items.save(&item(vault, id, 1));
        }
        items.save(&item(2, 5, 2));
        assert_eq!(items.check_invariants(), Ok(()));
        assert!(items.contains(2, 3));
        assert!(!items.contains(1, 3));
        assert_eq!(items.get(2, 5), Some(item(2, 5, 2)));
        let ids = |it: &ItemRepository, v| it.in_vault(v).map(|i| i.item_id).collect::<Vec<_>>();
        assert_eq!(ids(&items, 2), vec![3, 5]);
        assert_eq!(
            items
                .in_vault_from(2, 4)
                .map(|i| i.item_id)
                .collect::<Vec<_>>(),
            vec![5]
        );
        assert_eq!(ids(&items, 4), Vec::<ItemId>::new());
        drop(items);

        // What a plain map over the same memory (the format before the repository) reads.
        let plain: StableBTreeMap<(VaultId, ItemId), ItemRecord, Mem> =
            StableBTreeMap::init(MemoryManager::init(memory.clone()).get(CONTENT_ITEMS));
        let stored: Vec<_> = plain.iter().map(|e| e.into_pair()).collect();
        assert_eq!(
            stored,
            vec![
                ((1, 4), item(1, 4, 1)),
                ((2, 3), item(2, 3, 1)),
                ((2, 5), item(2, 5, 2)),
                ((3, 1), item(3, 1, 1)),
            ]
        );
        drop(plain);

        let mut items = ItemRepository::init(MemoryManager::init(memory).get(CONTENT_ITEMS));
        assert_eq!(items.remove(2, 3), Some(item(2, 3, 1)));
        assert_eq!(items.remove(2, 3), None);
        assert_eq!(ids(&items, 2), vec![5]);
        assert_eq!(items.iter().count(), 3);
    }

    #[test]
    fn the_walk_finds_an_item_under_another_key() {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        let mut items = ItemRepository::init(mm.get(CONTENT_ITEMS));
        items.save(&item(1, 1, 1));
        items.insert_raw((1, 2), item(1, 3, 1));
        assert_eq!(
            items.check_invariants(),
            Err("item (1, 2) stored as item (1, 3)".into())
        );
    }
}
