//! Download tickets: records in a dense-id table, with their id counter and the collector's
//! cursor in the header, both kept here. A ticket is issued with the next id the header
//! hands out ([`TicketRepository::issue`]); [`TicketRepository::collect_expired`] removes
//! expired tickets from where the last collection stopped and moves the cursor itself, so no
//! caller reads or writes `tickets_collected_below` by hand.

use std::rc::Rc;

use super::header::{HeaderRepository, IdKind};
use crate::model::records::TicketRecord;
use crate::model::types::TicketId;
use crate::storage::slab::{DenseTable, Loc, Slab};
use crate::storage::state::Mem;

/// The ticket table (see the module docs).
pub struct TicketRepository {
    /// `ticket id → ticket`, until collected.
    table: DenseTable<TicketRecord, Mem>,
}

impl TicketRepository {
    /// Opens the table with directory `dir` over the shared `slab`.
    pub fn init(dir: Mem, slab: Rc<Slab<Mem>>) -> Self {
        TicketRepository {
            table: DenseTable::init(dir, slab),
        }
    }

    /// Stores `make(id)` under the next ticket id the header hands out; that id.
    pub fn issue(
        &mut self,
        header: &mut HeaderRepository,
        make: impl FnOnce(TicketId) -> TicketRecord,
    ) -> TicketId {
        let id = header.next_id(IdKind::Ticket);
        let ticket = make(id);
        debug_assert_eq!(ticket.ticket_id, id);
        self.table.insert(id, ticket);
        id
    }

    /// Ticket `id`, until collected.
    pub fn get(&self, id: TicketId) -> Option<TicketRecord> {
        self.table.get(&id)
    }

    /// Removes at most `max` tickets expired at `now`, from where the last collection
    /// stopped (the header's cursor) up to the first live one, and moves the cursor past
    /// them. Ticket ids grow with time and every ticket lives equally long, so expired
    /// tickets are (nearly) a prefix: a run never rescans what an earlier one collected.
    /// Returns how many were removed.
    pub fn collect_expired(
        &mut self,
        header: &mut HeaderRepository,
        now: u64,
        max: usize,
    ) -> usize {
        let collected_below = header.get().tickets_collected_below;
        let mut live = None;
        let expired: Vec<TicketId> = self
            .table
            .range_from(collected_below)
            .take(max)
            .take_while(|(id, t)| {
                let gone = t.expires_at <= now;
                if !gone {
                    live = Some(*id);
                }
                gone
            })
            .map(|(id, _)| id)
            .collect();
        for id in &expired {
            self.table.remove(id);
        }
        let below = live.unwrap_or_else(|| expired.last().map_or(0, |id| id + 1));
        if below > collected_below {
            header.set_tickets_collected_below(below);
        }
        expired.len()
    }

    /// Migration (layout 3): stores a ticket moved from the retired map as it is.
    pub(in crate::storage) fn migrate_ticket(&mut self, id: TicketId, ticket: TicketRecord) {
        self.table.insert(id, ticket);
    }

    /// Every ticket, ascending by id (the storage-wide walk, tests).
    pub(in crate::storage) fn iter(&self) -> impl Iterator<Item = (TicketId, TicketRecord)> + '_ {
        self.table.iter()
    }

    /// The directory's walk: every ticket's block (for `Slab::check_accounted`).
    pub(in crate::storage) fn check_invariants(&self) -> Result<Vec<Loc>, String> {
        self.table.check_invariants()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::state::State;
    use candid::Principal;
    use ic_stable_structures::DefaultMemoryImpl;

    fn ticket(id: TicketId, expires_at: u64) -> TicketRecord {
        TicketRecord {
            ticket_id: id,
            vault_id: 1,
            item_id: 2,
            blob_id: 3,
            holder: Principal::from_slice(&[4; 29]),
            expires_at,
            chunk_count: 1,
        }
    }

    /// Ids come from the header; a collection removes the expired prefix up to the first
    /// live ticket, at most `max` at a time, and the next one starts where it stopped.
    #[test]
    fn tickets_are_issued_in_order_and_collected_as_a_prefix() {
        let mut s = State::open(DefaultMemoryImpl::default());
        let issue = |s: &mut State, expires_at: u64| s.issue_ticket(|id| ticket(id, expires_at));
        let ids: Vec<TicketId> = [10, 20, 30, 40, 50]
            .into_iter()
            .map(|at| issue(&mut s, at))
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(s.ticket(3).map(|t| t.expires_at), Some(30));
        // At 35: tickets 1..=3 expired; two per run.
        assert_eq!(s.collect_expired_tickets(35, 2), 2);
        assert_eq!(s.header.get().tickets_collected_below, 3);
        assert_eq!(s.collect_expired_tickets(35, 2), 1);
        assert_eq!(
            s.header.get().tickets_collected_below,
            4,
            "stopped at live ticket 4"
        );
        assert_eq!(s.collect_expired_tickets(35, 2), 0);
        assert_eq!((s.ticket(3), s.ticket(4).is_some()), (None, true));
        assert_eq!(issue(&mut s, 60), 6);
        assert_eq!(s.collect_expired_tickets(1_000, 10), 3);
        assert_eq!(s.header.get().tickets_collected_below, 7);
        assert!(
            (1..=6).all(|id| s.ticket(id).is_none()),
            "every ticket collected"
        );
    }
}
