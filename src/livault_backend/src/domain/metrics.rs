//! Aggregate counters behind `get_metrics` (SPEC §12): storage used, invites issued and
//! claimed (today and in total), open payment sessions, billing totals.
//!
//! They live in the stable header ([`MetricsCounters`]) and are updated where each event
//! happens, in the same message as the event, so `get_metrics` reads them in O(1). The
//! storage totals are kept by the vault repository itself: saving a vault whose
//! `(committed, reserved)` bytes changed since it was loaded moves them (`storage::
//! repositories::vaults`), so no path that changes a vault's numbers can forget them. The
//! other counters follow events that are not a vault write (an invite issued, a session
//! closed), so the domain calls the functions below. [`recount`] recomputes them from the stored records (O(n)); `post_upgrade` uses
//! it once for a header written before the counters existed ([`ensure_counters`]), and the
//! tests use it to check that the maintained counters never drift.
//!
//! "Today" is the current UTC day (`now / 1 day`): the `*_today` counters start again at 0
//! with the first event of a new day, and `get_metrics` reports 0 for a day without events.

use crate::model::member_types::InviteStatus;
use crate::model::payments::PaymentSessionStatus;
use crate::model::records::{InviteState, MetricsCounters, COUNTERS_VERSION};
use crate::model::types::NANOS_PER_DAY;
use crate::storage::State;

/// Applies `f` to the stored counters.
fn update(state: &mut State, f: impl FnOnce(&mut MetricsCounters)) {
    state.header.update_counters(f);
}

/// Starts the `*_today` counters again when `now` is in a later UTC day.
fn roll_day(c: &mut MetricsCounters, now: u64) {
    let day = now / NANOS_PER_DAY;
    if c.invites_day != day {
        c.invites_day = day;
        c.invites_issued_today = 0;
        c.invites_claimed_today = 0;
    }
}

/// The counters as of `now` (the `*_today` counters read 0 on a day without events).
pub fn current(state: &State, now: u64) -> MetricsCounters {
    let mut c = state.header.get().counters.clone();
    roll_day(&mut c, now);
    c
}

/// An invite was issued (generated or regenerated).
pub fn invite_issued(state: &mut State, now: u64) {
    update(state, |c| {
        roll_day(c, now);
        c.invites_issued_today += 1;
        c.invites_issued_total += 1;
    });
}

/// An invite was claimed (a repeated claim by the same principal is not a new claim).
pub fn invite_claimed(state: &mut State, now: u64) {
    update(state, |c| {
        roll_day(c, now);
        c.invites_claimed_today += 1;
        c.invites_claimed_total += 1;
    });
}

/// A payment session opened (new, or an admin refund that did not apply re-opened it).
pub fn session_opened(state: &mut State) {
    update(state, |c| c.open_sessions += 1);
}

/// An open payment session closed (completed or refunded).
pub fn session_closed(state: &mut State) {
    update(state, |c| {
        c.open_sessions = c.open_sessions.saturating_sub(1)
    });
}

/// A payment completed: its open session closed and a billing entry was recorded with
/// `treasury_e8s` swept to the treasury (one header write).
pub fn payment_completed(state: &mut State, treasury_e8s: u64) {
    update(state, |c| {
        c.open_sessions = c.open_sessions.saturating_sub(1);
        c.billing_entries += 1;
        c.treasury_e8s = c.treasury_e8s.saturating_add(treasury_e8s);
    });
}

/// A refund transfer of `e8s` is known applied.
pub fn refunded(state: &mut State, e8s: u64) {
    update(state, |c| {
        c.refunded_e8s = c.refunded_e8s.saturating_add(e8s)
    });
}

/// Recomputes the counters from the stored records (O(n): migrations and tests only).
/// Invites already purged with their vault (tombstones) are no longer counted.
pub fn recount(state: &State, now: u64) -> MetricsCounters {
    let day = now / NANOS_PER_DAY;
    let in_today = |t: u64| t / NANOS_PER_DAY == day;
    let mut c = MetricsCounters {
        invites_day: day,
        ..MetricsCounters::default()
    };
    for (_, v) in state.vaults.iter() {
        c.storage_committed_bytes += v.storage_committed_bytes;
        c.storage_reserved_bytes += v.storage_reserved_bytes;
    }
    for i in state.invites.iter() {
        c.invites_issued_total += 1;
        c.invites_issued_today += u64::from(in_today(i.created_at));
        if i.status_at(now) == InviteStatus::Claimed {
            c.invites_claimed_total += 1;
            if let InviteState::Claimed { at, .. } = i.state {
                c.invites_claimed_today += u64::from(in_today(at));
            }
        }
    }
    for s in state.payments.sessions() {
        c.open_sessions += u64::from(s.status == PaymentSessionStatus::Open);
        c.refunded_e8s += s.refunded_e8s;
    }
    for b in state.payments.billing_entries() {
        c.billing_entries += 1;
        c.treasury_e8s += b.treasury_e8s;
        if !b.refund_pending {
            c.refunded_e8s += b.refund_e8s;
        }
    }
    c
}

/// Migration step for `post_upgrade`: a header written before the counters existed gets
/// them recounted once. Returns whether it recounted.
pub fn ensure_counters(state: &mut State, now: u64) -> bool {
    if state.header.get().counters_version >= COUNTERS_VERSION {
        return false;
    }
    let counters = recount(state, now);
    state.header.replace_counters(counters, COUNTERS_VERSION);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{Config, InitArgs};
    use crate::model::types::{CreateVaultArgs, PlanSelection, Tier};
    use crate::runtime::testing::MockRuntime;
    use candid::Principal;
    use ic_stable_structures::DefaultMemoryImpl;

    const T0: u64 = 1_767_225_600_000_000_000; // 2026-01-01 00:00 UTC

    /// A stored vault (Draft) of a fresh state.
    fn with_vault(s: &mut State) -> crate::storage::LoadedVault {
        let rt = MockRuntime::new(T0, Principal::from_slice(&[2; 29]));
        let v = crate::domain::vaults::create_vault(
            s,
            &rt,
            CreateVaultArgs {
                name: "v".into(),
                plan: PlanSelection {
                    tier: Tier::Basic,
                    heir_slots: 1,
                    witness_slot: false,
                },
                owner_age: 40,
                idempotency_key: None,
            },
        )
        .unwrap();
        s.vaults.load(v.id).unwrap()
    }

    fn state() -> State {
        let mut s = State::open(DefaultMemoryImpl::default());
        s.set_config(
            Config::from_init(InitArgs::default(), Principal::from_slice(&[9; 29])).unwrap(),
        );
        s.stamp_layout();
        s
    }

    #[test]
    fn today_counters_start_again_each_utc_day() {
        let mut s = state();
        invite_issued(&mut s, T0);
        invite_issued(&mut s, T0 + NANOS_PER_DAY - 1);
        invite_claimed(&mut s, T0 + 5);
        let c = current(&s, T0 + NANOS_PER_DAY - 1);
        assert_eq!((c.invites_issued_today, c.invites_claimed_today), (2, 1));
        // Next day: read as 0 before any event, then counting again; totals keep going.
        let c = current(&s, T0 + NANOS_PER_DAY);
        assert_eq!((c.invites_issued_today, c.invites_claimed_today), (0, 0));
        assert_eq!((c.invites_issued_total, c.invites_claimed_total), (2, 1));
        invite_issued(&mut s, T0 + NANOS_PER_DAY + 1);
        let c = current(&s, T0 + NANOS_PER_DAY + 2);
        assert_eq!(
            (
                c.invites_issued_today,
                c.invites_claimed_today,
                c.invites_issued_total
            ),
            (1, 0, 3)
        );
    }

    #[test]
    fn session_billing_and_refund_counters() {
        let mut s = state();
        for _ in 0..4 {
            session_opened(&mut s);
        }
        session_closed(&mut s);
        payment_completed(&mut s, 1_000);
        payment_completed(&mut s, 2_000);
        refunded(&mut s, 30);
        let c = current(&s, T0);
        assert_eq!(
            (
                c.open_sessions,
                c.billing_entries,
                c.treasury_e8s,
                c.refunded_e8s
            ),
            (1, 2, 3_000, 30)
        );
        // Never below zero.
        session_closed(&mut s);
        session_closed(&mut s);
        assert_eq!(current(&s, T0).open_sessions, 0);
    }

    #[test]
    fn storage_totals_move_by_the_vault_change_on_save() {
        let mut s = state();
        let totals = |s: &State| {
            let c = current(s, T0);
            (c.storage_committed_bytes, c.storage_reserved_bytes)
        };
        let mut v = with_vault(&mut s);
        v.storage_committed_bytes = 100;
        v.storage_reserved_bytes = 40;
        assert_eq!(totals(&s), (0, 0), "nothing moves before the save");
        s.save_vault(&mut v);
        assert_eq!(totals(&s), (100, 40));
        // Saving again without a change moves nothing; a later change moves by its delta.
        s.save_vault(&mut v);
        assert_eq!(totals(&s), (100, 40));
        v.storage_committed_bytes = 70;
        v.storage_reserved_bytes = 0;
        s.save_vault(&mut v);
        assert_eq!(totals(&s), (70, 0));
        // A second vault adds to the totals; reloading starts from what is stored.
        let mut w = with_vault(&mut s);
        w.storage_reserved_bytes = 5;
        s.save_vault(&mut w);
        let mut again = s.vaults.load(v.id).unwrap();
        again.storage_committed_bytes = 10;
        s.save_vault(&mut again);
        assert_eq!(totals(&s), (10, 5));
        assert_eq!(current(&s, T0), recount(&s, T0));
    }

    #[test]
    fn a_header_from_before_the_counters_is_recounted_once_on_upgrade() {
        let mut s = state();
        // Fresh state: counters maintained from the start, nothing to recount.
        assert!(!ensure_counters(&mut s, T0));
        let mut v = with_vault(&mut s);
        v.storage_committed_bytes = 1234;
        v.storage_reserved_bytes = 5;
        s.save_vault(&mut v);
        // Simulate a header written by the previous code: no counters (serde default).
        s.header.replace_counters(MetricsCounters::default(), 0);
        assert!(ensure_counters(&mut s, T0));
        let c = current(&s, T0);
        assert_eq!(
            (c.storage_committed_bytes, c.storage_reserved_bytes),
            (1234, 5)
        );
        assert_eq!(s.header.get().counters_version, COUNTERS_VERSION);
        assert!(!ensure_counters(&mut s, T0), "once");
    }
}
