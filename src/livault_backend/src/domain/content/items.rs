//! Committed items: listing (what each reader may see), metadata updates, deletion.

use super::*;

pub(super) fn item_view(item: &ItemRecord) -> ItemView {
    ItemView {
        item_id: item.item_id,
        vault_id: item.vault_id,
        kind: item.kind,
        size: item.size,
        sha256: serde_bytes::ByteBuf::from(item.sha256.clone()),
        encrypted_meta: serde_bytes::ByteBuf::from(item.encrypted_meta.clone()),
        recipients: item.recipients.clone(),
        chunk_count: item.chunk_count,
        chunk_bytes: item.chunk_bytes,
        created_at: item.created_at,
        updated_at: item.updated_at,
        version: item.version,
    }
}

/// `delete_item`: the owner removes an item and frees its space.
pub fn delete_item(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    item_id: ItemId,
) -> VaultResult<()> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault = vault_core::load_owned(state, &caller, vault_id, lifecycle::content_writable)?;
    let item = state
        .content_items
        .get(vault_id, item_id)
        .ok_or(VaultError::NotFound)?;
    free_blob(state, item.blob_id);
    state.content_items.remove(vault_id, item_id);
    vault.item_count = vault.item_count.saturating_sub(1);
    vault.storage_committed_bytes = vault.storage_committed_bytes.saturating_sub(item.size);
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::ItemDeleted,
        format!("item={item_id} size={}", item.size),
    );
    vault_core::refresh_setup(state, &mut vault, now, caller);
    state.save_vault(&mut vault);
    Ok(())
}

/// `update_item_meta`: the owner replaces an item's `encrypted_meta` and recipients (e.g.
/// data keys re-wrapped when heirs change) without re-uploading the payload. `recipients`
/// replaces the old list (`None` = every heir). The payload, its SHA-256 and `version` stay;
/// `updated_at` moves.
pub fn update_item_meta(
    state: &mut State,
    rt: &impl Runtime,
    args: UpdateItemMetaArgs,
) -> VaultResult<ItemView> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault =
        vault_core::load_owned(state, &caller, args.vault_id, lifecycle::content_writable)?;
    validate_meta(&args.encrypted_meta)?;
    validate_recipients(state, args.vault_id, args.recipients.as_deref())?;
    let mut item = state
        .content_items
        .get(args.vault_id, args.item_id)
        .ok_or(VaultError::NotFound)?;
    item.encrypted_meta = args.encrypted_meta.into_vec();
    item.recipients = args.recipients;
    item.updated_at = now;
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::ItemMetaUpdated,
        format!(
            "item={} meta_bytes={} recipients={}",
            item.item_id,
            item.encrypted_meta.len(),
            item.recipients.as_ref().map_or(-1, |r| r.len() as i64)
        ),
    );
    state.content_items.save(&item);
    state.save_vault(&mut vault);
    Ok(item_view(&item))
}

/// Whether item `item` is addressed to heir `member_id`.
pub(super) fn addressed_to(item: &ItemRecord, member_id: u32) -> bool {
    item.recipients
        .as_ref()
        .is_none_or(|r| r.contains(&member_id))
}

/// What the caller may read of a vault's content: `None` = everything (owner), `Some(id)` =
/// items addressed to heir `id`. Witnesses, outsiders and heirs before unlock: `NotAuthorized`.
pub(super) fn reader(vault: &VaultRecord, access: Access) -> VaultResult<Option<u32>> {
    match access {
        Access::Owner => Ok(None),
        Access::Member {
            member_id,
            role: MemberRole::Heir,
        } if vault.status == VaultStatus::Unlockable => Ok(Some(member_id)),
        _ => Err(VaultError::NotAuthorized),
    }
}

/// `list_items`: metadata (never payload) by ascending item id. The owner sees every item;
/// heirs, once the vault is `Unlockable`, the items addressed to them.
pub fn list_items(
    state: &State,
    rt: &impl Runtime,
    vault_id: VaultId,
    args: PageArgs,
) -> VaultResult<Page<ItemView>> {
    let (vault, access) = access::load(state, vault_id, &rt.caller(), Need::OwnerOrMember)?;
    let heir = reader(&vault, access)?;
    let limit = validation::page_limit(args.limit)?;
    let from = args.start_after.map_or(0, |c| c.saturating_add(1));
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for item in state.content_items.in_vault_from(vault_id, from) {
        if items.len() == limit {
            more = true;
            break;
        }
        last = Some(item.item_id);
        if heir.is_none_or(|m| addressed_to(&item, m)) {
            items.push(item_view(&item));
        }
    }
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}
