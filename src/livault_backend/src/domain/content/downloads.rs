//! Downloads: tickets with a daily allowance, chunk lookup, and the collection of expired
//! tickets.

use super::*;

/// `request_download`: checks the caller's right to the item, counts the download against
/// the daily allowance (owners unlimited) and returns a ticket.
pub fn request_download(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    item_id: ItemId,
) -> VaultResult<DownloadTicket> {
    let caller = rt.caller();
    let now = rt.now();
    let (mut vault, access) = access::load(state, vault_id, &caller, Need::OwnerOrMember)?;
    let heir = reader(&vault, access)?;
    let item = state
        .content_items
        .get(vault_id, item_id)
        .ok_or(VaultError::NotFound)?;
    if let Some(member_id) = heir {
        if !addressed_to(&item, member_id) {
            return Err(VaultError::NotAuthorized);
        }
    }
    let per_day = state.config().limits.downloads_per_day;
    let ticket_secs = state.config().durations.download_ticket_secs;
    let day = now / NANOS_PER_DAY;
    let counted = heir.is_some();
    // Owners are not counted: their count is never read.
    let used = if counted {
        state.download_counters.get(day, caller)
    } else {
        0
    };
    if counted && used >= per_day {
        return Err(VaultError::DownloadLimitReached {
            resets_at: (day + 1) * NANOS_PER_DAY,
        });
    }
    let expires_at = now.saturating_add(ticket_secs.saturating_mul(NANOS_PER_SEC));
    if counted {
        state.download_counters.increment_from(day, caller, used);
    }
    let ticket_id = state.issue_ticket(|ticket_id| TicketRecord {
        ticket_id,
        vault_id,
        item_id,
        blob_id: item.blob_id,
        holder: caller,
        expires_at,
        chunk_count: item.chunk_count,
    });
    if access == Access::Owner {
        vault_core::touch_owner(state, &mut vault, now, caller);
    }
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::DownloadRequested,
        format!("item={item_id} ticket={ticket_id}"),
    );
    state.save_vault(&mut vault);
    Ok(DownloadTicket {
        ticket_id,
        vault_id,
        item_id,
        size: item.size,
        chunk_count: item.chunk_count,
        chunk_bytes: item.chunk_bytes,
        sha256: serde_bytes::ByteBuf::from(item.sha256),
        expires_at,
    })
}

/// Where chunk `index` of a ticket's item is, after checking the ticket: only its holder,
/// before expiry (`TokenExpired`), while the holder still may read (heirs: vault still
/// `Unlockable`), and while the item still has that payload (`NotFound` after delete/replace).
pub fn download_chunk_loc(
    state: &State,
    caller: &Principal,
    now: u64,
    ticket_id: TicketId,
    index: u32,
) -> VaultResult<ChunkLoc> {
    let ticket = state.ticket(ticket_id).ok_or(VaultError::NotFound)?;
    if ticket.holder != *caller {
        return Err(VaultError::NotAuthorized);
    }
    if now >= ticket.expires_at {
        return Err(VaultError::TokenExpired);
    }
    let (vault, access) = access::load(state, ticket.vault_id, caller, Need::OwnerOrMember)?;
    reader(&vault, access)?;
    if index >= ticket.chunk_count {
        return Err(VaultError::invalid("index", "past the last chunk"));
    }
    state
        .content_chunks
        .get(ticket.blob_id, index)
        .ok_or(VaultError::NotFound)
}

/// `get_download_chunk` for native callers: the chunk's bytes.
pub fn get_download_chunk(
    state: &State,
    rt: &impl Runtime,
    ticket_id: TicketId,
    index: u32,
) -> VaultResult<Vec<u8>> {
    let loc = download_chunk_loc(state, &rt.caller(), rt.now(), ticket_id, index)?;
    Ok(pages::read(state, &loc))
}

/// Removes download tickets past their expiry and download counters of past days (at most
/// `max_batch` of each). Returns how many entries were removed. Called by the scheduler.
pub fn collect_expired_tickets(state: &mut State, now: u64, max_batch: usize) -> usize {
    let tickets = state.collect_expired_tickets(now, max_batch);
    let counters = state
        .download_counters
        .collect_before(now / NANOS_PER_DAY, max_batch);
    tickets + counters
}
