//! The scheduler's due queue and its duties (SPEC §10): pure logic, no timers.
//!
//! Owns the time-ordered queue in stable memory (`SCHEDULER_QUEUE`): one entry per deadline,
//! keyed `(due_ns, kind, id)` with the number of failed attempts as value. A tick ranges only
//! over `..=(now, MAX, MAX)`, so its cost depends on the work due, never on how many vaults
//! exist. Entries are enqueued where deadlines are created (see `vault_core::schedule_for_status`
//! and the calls in the features).
//!
//! Processing is idempotent: an entry removes itself from the queue and re-reads the vault;
//! when the transition no longer applies it does nothing, and when the deadline moved (a
//! renewal, a changed setting) it re-enqueues itself at the new deadline. An entry's removal
//! and its effect happen in the same message, so they commit (or roll back) together.
//!
//! The tick that takes due entries (one at a time, each batch in its own message so a trap
//! cannot lose or roll back others' work) is in `domain::maintenance`, generic over the
//! runtime.

use candid::Principal;

use super::lifecycle::LifecycleEvent;
use super::vault_core::audit::{self, AuditAction};
use super::vault_core::{self, access_until};
use super::vaults;
use crate::model::types::{VaultId, VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC};
use crate::storage::{LoadedVault, State};

use super::vault_core::{enqueue, QueueKind, PARKED_DUE};

/// Queue key: `(due_ns, kind code, id)`.
pub type QueueKey = (u64, u8, u64);

/// Most entries one tick takes from the queue; the rest waits for the next tick.
pub const MAX_ITEMS_PER_TICK: usize = 50;
/// Most audit events one compaction entry deletes; more are left for the next tick.
pub const MAX_EVENTS_PER_COMPACTION: usize = 100;
/// Compaction of one vault runs at most this often.
pub const MIN_COMPACTION_INTERVAL_NS: u64 = NANOS_PER_DAY;
/// An entry whose processing trapped is retried after `attempts × RETRY_DELAY_NS`.
pub const RETRY_DELAY_NS: u64 = 10 * 60 * NANOS_PER_SEC;
/// After this many failed attempts an entry is parked (kept, never due; see metrics).
pub const MAX_ATTEMPTS: u32 = 8;

fn days(d: impl Into<u64>) -> u64 {
    d.into().saturating_mul(NANOS_PER_DAY)
}

/// Up to `max` entries due at `now`, oldest first (parked entries are never due). The range
/// runs over the queue's heap index, so an empty tick costs the same at any queue size.
pub fn due_batch(state: &State, now: u64, max: usize) -> Vec<QueueKey> {
    due_keys(state, now).take(max).collect()
}

/// The entries due at `now`, oldest first.
fn due_keys(state: &State, now: u64) -> impl Iterator<Item = QueueKey> + '_ {
    state
        .scheduler_queue
        .keys_range(..=(now.min(PARKED_DUE - 1), u8::MAX, u64::MAX))
}

/// Whether anything is due at `now`.
pub fn has_due(state: &State, now: u64) -> bool {
    !due_batch(state, now, 1).is_empty()
}

/// Due entries at `now`, counting at most `cap` (for metrics).
pub fn due_count(state: &State, now: u64, cap: usize) -> u64 {
    due_keys(state, now).take(cap).count() as u64
}

/// Parked entries (failed [`MAX_ATTEMPTS`] times), counting at most `cap`.
pub fn parked_count(state: &State, cap: usize) -> u64 {
    state
        .scheduler_queue
        .keys_range((PARKED_DUE, 0, 0)..)
        .take(cap)
        .count() as u64
}

/// What processing one entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The entry was no longer in the queue (already processed): nothing done.
    Gone,
    /// The duty applied: a transition or a compaction.
    Applied,
    /// The transition no longer applies (or the deadline moved and was re-enqueued).
    NoLongerApplies,
}

/// Result of processing a batch in one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Entries found in the queue and removed.
    pub processed: u32,
    /// Of those, entries whose duty applied.
    pub applied: u32,
}

/// Processes `keys` (due entries taken by a tick). Each entry is removed together with its
/// effect; entries no longer present are skipped, so a batch run twice does nothing extra.
/// `before_item` runs before each item (the API measures instructions there).
pub fn process_batch(
    state: &mut State,
    keys: &[QueueKey],
    now: u64,
    system: Principal,
    mut before_item: impl FnMut(),
) -> BatchResult {
    let mut result = BatchResult::default();
    for key in keys {
        before_item();
        match process_entry(state, *key, now, system) {
            Outcome::Gone => {}
            Outcome::Applied => {
                result.processed += 1;
                result.applied += 1;
            }
            Outcome::NoLongerApplies => result.processed += 1,
        }
    }
    result
}

/// Processes one entry: removes it from the queue and applies its duty if it still applies.
pub fn process_entry(state: &mut State, key: QueueKey, now: u64, system: Principal) -> Outcome {
    let (due, code, id) = key;
    if due > now || state.scheduler_queue.remove(&key).is_none() {
        return Outcome::Gone;
    }
    if code == QueueKind::SessionCheck.code() {
        // Written by an older version: the payment check moves to its own queue.
        if let Some(mut session) = state.payments.session(id) {
            if session.next_check_at.is_none() {
                super::payments::checks::set(state, &mut session, Some(now), 0);
            }
        }
        return Outcome::NoLongerApplies;
    }
    let Some(kind) = QueueKind::from_code(code) else {
        // Unknown kind: written by newer code (upgrades refuse downgrades). Dropped.
        return Outcome::NoLongerApplies;
    };
    let Some(mut vault) = state.vaults.load(id) else {
        return Outcome::NoLongerApplies;
    };
    let d = state.config().durations.clone();
    // (status the duty needs, its deadline, the event, whether the payload is purged)
    let (needs, deadline, event) = match kind {
        QueueKind::DraftPurge => (
            VaultStatus::Draft,
            vault.created_at.saturating_add(days(d.draft_ttl_days)),
            LifecycleEvent::DraftUnpaidTimeout,
        ),
        QueueKind::ValidityEnd => (
            VaultStatus::Active,
            vault.expires_at.unwrap_or(u64::MAX),
            LifecycleEvent::ValidityEnded,
        ),
        QueueKind::GraceMasterEnd => (
            VaultStatus::GraceMaster,
            vault
                .status_changed_at
                .saturating_add(days(d.grace_master_days)),
            LifecycleEvent::GraceMasterElapsed,
        ),
        QueueKind::GraceHeirEnd => (
            VaultStatus::GraceHeir,
            vault
                .status_changed_at
                .saturating_add(days(d.grace_heir_days)),
            LifecycleEvent::GraceHeirElapsed,
        ),
        QueueKind::AccessEnd => (
            VaultStatus::Unlockable,
            access_until(&vault),
            LifecycleEvent::AccessEnded,
        ),
        QueueKind::TombstoneDue => (
            VaultStatus::Expired,
            vault
                .status_changed_at
                .saturating_add(days(d.tombstone_after_days)),
            LifecycleEvent::TombstoneDue,
        ),
        QueueKind::AuditCompaction => return compact_audit(state, &mut vault, now, system),
        QueueKind::UnlockCheck => return check_unlock(state, vault, now, system),
        QueueKind::SessionCheck => return Outcome::NoLongerApplies,
    };
    if vault.status != needs {
        return Outcome::NoLongerApplies;
    }
    if deadline > now {
        // The deadline moved (renewal, changed configuration): wait for the new one.
        if deadline != u64::MAX {
            enqueue(state, deadline, kind, id);
        }
        return Outcome::NoLongerApplies;
    }
    if kind == QueueKind::DraftPurge {
        // An unpaid draft leaves nothing but its id.
        vaults::erase_draft(state, &vault);
        return Outcome::Applied;
    }
    // `transition` only fails when the table has no such move, ruled out by `needs` above.
    if vault_core::transition(state, &mut vault, event, now, system).is_err() {
        return Outcome::NoLongerApplies;
    }
    match vault.status {
        VaultStatus::Deleted => {
            vault.deleted_at = Some(now);
            vaults::purge_to_tombstone(state, &mut vault);
        }
        VaultStatus::Expired => vaults::purge_payload(state, &mut vault),
        _ => {}
    }
    state.save_vault(&mut vault);
    Outcome::Applied
}

/// Unlocks an `Active` or `GraceHeir` vault whose rules hold now; otherwise waits for the
/// next moment its time gate can open (in `GraceHeir` it holds already: an approval then
/// unlocks on its own call).
fn check_unlock(state: &mut State, vault: LoadedVault, now: u64, system: Principal) -> Outcome {
    if !matches!(vault.status, VaultStatus::Active | VaultStatus::GraceHeir) {
        return Outcome::NoLongerApplies;
    }
    let id = vault.id;
    match super::unlock::unlock_if_due(state, vault, now, system) {
        Ok(eval) if eval.event.is_some() => Outcome::Applied,
        Ok(eval) => {
            if let Some(at) = eval.time_gate.opens_at.filter(|at| *at > now) {
                enqueue(state, at, QueueKind::UnlockCheck, id);
            }
            Outcome::NoLongerApplies
        }
        // Only a refused transition, which evaluate_unlock never proposes.
        Err(_) => Outcome::NoLongerApplies,
    }
}

/// Deletes the vault's audit events older than its retention (at most
/// [`MAX_EVENTS_PER_COMPACTION`], never the newest event, so the chain stays verifiable from
/// the first kept event up to the head), logs `audit.compacted` and schedules the next run.
fn compact_audit(
    state: &mut State,
    vault: &mut LoadedVault,
    now: u64,
    system: Principal,
) -> Outcome {
    let retention = days(vault.audit_retention_days);
    let cutoff = now.saturating_sub(retention);
    let newest = vault.audit_next_seq.saturating_sub(1);
    let old: Vec<(u64, u64)> = state
        .audit
        .events_from(vault.id, 0)
        .take_while(|e| e.seq < newest)
        .take(MAX_EVENTS_PER_COMPACTION)
        .map(|e| (e.seq, e.at))
        .take_while(|(_, at)| *at < cutoff)
        .collect();
    if let Some((last, _)) = old.last() {
        state.audit.drop_before(vault.id, last + 1);
    }
    let full_batch = old.len() == MAX_EVENTS_PER_COMPACTION;
    // A tombstone's compactions are not logged (the gap in sequence numbers shows them), so
    // its log shrinks to the newest event and the chain below ends.
    let logged = vault.status != VaultStatus::Deleted;
    if let (true, Some((first, _)), Some((last, _))) = (logged, old.first(), old.last()) {
        let details = format!(
            "removed {} events (seq {first}..={last}) older than {} days",
            old.len(),
            vault.audit_retention_days
        );
        audit::append(
            state,
            vault,
            now,
            system,
            AuditAction::AuditCompacted,
            details,
        );
        state.save_vault(vault);
    }
    // A tombstone whose log is down to its newest event has nothing left to age out: its
    // compaction chain ends (issue #12 M2: it used to re-queue itself forever).
    if vault.status == VaultStatus::Deleted && state.audit.bounds(vault.id).1 <= 1 {
        return if old.is_empty() {
            Outcome::NoLongerApplies
        } else {
            Outcome::Applied
        };
    }
    // Next run: when the oldest kept event ages out, at most once a day; at once when this
    // run stopped at its batch bound.
    let next = if full_batch {
        now
    } else {
        let oldest = state.audit.first(vault.id).map_or(now, |e| e.at);
        oldest
            .saturating_add(retention)
            .max(now.saturating_add(MIN_COMPACTION_INTERVAL_NS))
    };
    enqueue(state, next, QueueKind::AuditCompaction, vault.id);
    if old.is_empty() {
        Outcome::NoLongerApplies
    } else {
        Outcome::Applied
    }
}

/// Records that processing `key` trapped (its message rolled back, so the entry is still
/// there): moves it to a retry time, or parks it after [`MAX_ATTEMPTS`]. Returns whether it
/// was parked.
pub fn record_failure(state: &mut State, key: QueueKey, now: u64) -> bool {
    let Some(attempts) = state.scheduler_queue.remove(&key) else {
        return false;
    };
    let attempts = attempts.saturating_add(1);
    let (_, kind, id) = key;
    let parked = attempts >= MAX_ATTEMPTS;
    let due = if parked {
        PARKED_DUE
    } else {
        now.saturating_add(RETRY_DELAY_NS.saturating_mul(u64::from(attempts)))
            .min(PARKED_DUE - 1)
    };
    state.scheduler_queue.insert((due, kind, id), attempts);
    parked
}

/// Lifecycle deadlines of one vault in the queue (for tests and admin diagnostics).
pub fn entries_of(state: &State, id: VaultId) -> Vec<(QueueKey, u32)> {
    state
        .scheduler_queue
        .iter()
        .filter(|((_, _, i), _)| *i == id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::vault_core::{schedule_for_status, unschedule_vault};
    use crate::model::config::{Config, InitArgs};
    use crate::model::types::{CreateVaultArgs, PlanSelection, Tier, UpdateVaultArgs};
    use crate::runtime::testing::MockRuntime;
    use ic_stable_structures::DefaultMemoryImpl;

    const T0: u64 = 1_767_225_600_000_000_000;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn system() -> Principal {
        p(99)
    }

    fn setup() -> (State, MockRuntime) {
        let mut s = State::open(DefaultMemoryImpl::default());
        s.set_config(Config::from_init(InitArgs::default(), p(1)).unwrap());
        s.stamp_layout();
        (s, MockRuntime::new(T0, p(2)))
    }

    fn create(s: &mut State, rt: &MockRuntime) -> VaultId {
        vaults::create_vault(
            s,
            rt,
            CreateVaultArgs {
                name: "Family".into(),
                plan: PlanSelection {
                    tier: Tier::Standard,
                    heir_slots: 2,
                    witness_slot: false,
                },
                owner_age: 40,
                idempotency_key: None,
            },
        )
        .unwrap()
        .id
    }

    /// Runs ticks until nothing is due (each tick a bounded batch); returns entries processed.
    fn drain(s: &mut State, now: u64) -> u32 {
        let mut total = 0;
        loop {
            let keys = due_batch(s, now, MAX_ITEMS_PER_TICK);
            if keys.is_empty() {
                return total;
            }
            total += process_batch(s, &keys, now, system(), || {}).processed;
        }
    }

    fn status(s: &State, id: VaultId) -> VaultStatus {
        s.vaults.get(&id).unwrap().status
    }

    fn last_action(s: &State, id: VaultId) -> (String, String) {
        let e = s.audit.last(id).unwrap();
        (e.action, e.details)
    }

    fn count(s: &State, st: VaultStatus) -> u64 {
        s.header.get().status_counts[st.index()]
    }

    /// A paid vault forced into `status` at `now` (the paths into it land on other branches;
    /// the lifecycle transition itself is the real one).
    fn paid_vault_in(s: &mut State, rt: &MockRuntime, status: VaultStatus) -> VaultId {
        let id = create(s, rt);
        vault_core::confirm_creation_payment(s, id, rt.now.get(), p(2)).unwrap();
        let mut v = s.vaults.load(id).unwrap();
        v.status = status;
        v.status_changed_at = rt.now.get();
        v.storage_committed_bytes = 1234;
        v.item_count = 2;
        if status == VaultStatus::Unlockable {
            v.unlocked_at = Some(rt.now.get());
            v.access_until = Some(rt.now.get() + days(30u64));
        }
        s.save_vault(&mut v);
        schedule_for_status(s, &v, rt.now.get());
        id
    }

    #[test]
    fn unpaid_draft_is_erased_after_the_ttl_only() {
        let (mut s, rt) = setup();
        let id = create(&mut s, &rt);
        assert_eq!(drain(&mut s, T0 + days(7u64) - 1), 0);
        assert_eq!(status(&s, id), VaultStatus::Draft);
        assert_eq!(drain(&mut s, T0 + days(7u64)), 1);
        // Erased: no record, no log, no queue entry, no index entry; the id stays used.
        assert!(s.vaults.get(&id).is_none());
        assert!(s.audit.last(id).is_none());
        assert!(entries_of(&s, id).is_empty());
        assert!(s.vaults.owner_index().next().is_none());
        assert_eq!(count(&s, VaultStatus::Draft), 0);
        assert_eq!(count(&s, VaultStatus::Deleted), 0);
        assert_eq!(s.header.get().next_vault_id, id + 1);
        // Running the same work again does nothing.
        assert_eq!(drain(&mut s, T0 + days(8u64)), 0);
    }

    #[test]
    fn one_entry_per_kind_and_vault_the_earliest_wins() {
        let (mut s, rt) = setup();
        let id = create(&mut s, &rt);
        let compactions = |s: &State| {
            entries_of(s, id)
                .into_iter()
                .filter(|((_, k, _), _)| *k == QueueKind::AuditCompaction.code())
                .map(|((due, _, _), _)| due)
                .collect::<Vec<_>>()
        };
        let first = compactions(&s);
        assert_eq!(first.len(), 1);
        enqueue(&mut s, first[0] + 10, QueueKind::AuditCompaction, id);
        assert_eq!(compactions(&s), first, "a later entry is not added");
        enqueue(&mut s, first[0] - 10, QueueKind::AuditCompaction, id);
        assert_eq!(
            compactions(&s),
            vec![first[0] - 10],
            "an earlier one replaces it"
        );
        unschedule_vault(&mut s, id);
        assert!(entries_of(&s, id).is_empty());
    }

    #[test]
    fn paid_draft_is_not_purged() {
        let (mut s, rt) = setup();
        let id = create(&mut s, &rt);
        vault_core::confirm_creation_payment(&mut s, id, T0 + 10, p(2)).unwrap();
        let head = s.vaults.get(&id).unwrap().audit_next_seq;
        assert_eq!(drain(&mut s, T0 + days(8u64)), 1, "the entry is consumed");
        assert_eq!(status(&s, id), VaultStatus::NeedSetup);
        assert_eq!(s.vaults.get(&id).unwrap().audit_next_seq, head);
    }

    #[test]
    fn active_to_grace_master_to_grace_heir_to_deleted() {
        let (mut s, rt) = setup();
        let id = paid_vault_in(&mut s, &rt, VaultStatus::Active);
        let expires = s.vaults.get(&id).unwrap().expires_at.unwrap();
        assert_eq!(expires, T0 + days(3650u64));
        drain(&mut s, expires - 1);
        assert_eq!(status(&s, id), VaultStatus::Active);
        drain(&mut s, expires);
        assert_eq!(status(&s, id), VaultStatus::GraceMaster);
        assert_eq!(
            last_action(&s, id).1,
            "Active -> GraceMaster (ValidityEnded)"
        );
        drain(&mut s, expires + days(14u64) - 1);
        assert_eq!(status(&s, id), VaultStatus::GraceMaster);
        drain(&mut s, expires + days(14u64));
        assert_eq!(status(&s, id), VaultStatus::GraceHeir);
        drain(&mut s, expires + days(28u64));
        let v = s.vaults.get(&id).unwrap();
        assert_eq!(v.status, VaultStatus::Deleted);
        assert_eq!(v.storage_committed_bytes, 0, "payload purged");
        assert_eq!(v.item_count, 0);
        assert_eq!(
            last_action(&s, id).1,
            "GraceHeir -> Deleted (GraceHeirElapsed)"
        );
        assert_eq!(count(&s, VaultStatus::Deleted), 1);
        assert_eq!(count(&s, VaultStatus::Active), 0);
    }

    #[test]
    fn renewal_moves_the_validity_deadline() {
        let (mut s, rt) = setup();
        let id = paid_vault_in(&mut s, &rt, VaultStatus::Active);
        let mut v = s.vaults.load(id).unwrap();
        let old = v.expires_at.unwrap();
        v.expires_at = Some(old + days(100u64));
        s.save_vault(&mut v);
        drain(&mut s, old);
        assert_eq!(status(&s, id), VaultStatus::Active);
        drain(&mut s, old + days(100u64));
        assert_eq!(status(&s, id), VaultStatus::GraceMaster);
    }

    #[test]
    fn unlockable_to_expired_to_deleted() {
        let (mut s, rt) = setup();
        let id = paid_vault_in(&mut s, &rt, VaultStatus::Unlockable);
        drain(&mut s, T0 + days(30u64) - 1);
        assert_eq!(status(&s, id), VaultStatus::Unlockable);
        drain(&mut s, T0 + days(30u64));
        let v = s.vaults.get(&id).unwrap();
        assert_eq!(v.status, VaultStatus::Expired);
        assert_eq!(v.storage_committed_bytes, 0, "payload purged");
        assert_eq!(v.name, "Family", "metadata kept until the tombstone");
        drain(&mut s, T0 + days(60u64));
        let v = s.vaults.get(&id).unwrap();
        assert_eq!(v.status, VaultStatus::Deleted);
        assert_eq!(v.name, "");
        assert_eq!(last_action(&s, id).1, "Expired -> Deleted (TombstoneDue)");
    }

    #[test]
    fn audit_compaction_keeps_the_chain_verifiable() {
        let (mut s, rt) = setup();
        let id = create(&mut s, &rt);
        vault_core::confirm_creation_payment(&mut s, id, T0, p(2)).unwrap();
        for day in 1..=40u64 {
            rt.now.set(T0 + days(day));
            vaults::check_in(&mut s, &rt, id).unwrap();
        }
        vaults::update_vault(
            &mut s,
            &rt,
            UpdateVaultArgs {
                vault_id: id,
                name: None,
                unlock_rules: None,
                post_unlock_days: None,
                audit_retention_days: Some(30),
            },
        )
        .unwrap();
        let before = s.vaults.get(&id).unwrap();
        let events_before = s.audit.events_from(id, 0).count();
        // Shortening the retention enqueued a compaction for when the oldest event ages out.
        assert!(entries_of(&s, id)
            .iter()
            .any(|((due, k, _), _)| *k == QueueKind::AuditCompaction.code()
                && *due == T0 + days(40u64)));
        drain(&mut s, T0 + days(41u64));
        let after = s.vaults.get(&id).unwrap();
        let kept: Vec<_> = s.audit.events_from(id, 0).collect();
        let cutoff = T0 + days(11u64);
        assert!(kept[..kept.len() - 1].iter().all(|e| e.at >= cutoff));
        assert!(kept.len() < events_before);
        assert_eq!(after.audit_next_seq, before.audit_next_seq + 1);
        assert_eq!(kept.last().unwrap().action, "audit.compacted");
        assert!(audit::verify_chain(&s, &after));
        // Scheduled again, not earlier than a day later.
        assert!(entries_of(&s, id)
            .iter()
            .any(|((due, k, _), _)| *k == QueueKind::AuditCompaction.code()
                && *due >= T0 + days(42u64)));
        // A second run at the same time removes nothing and logs nothing.
        enqueue(&mut s, T0 + days(41u64), QueueKind::AuditCompaction, id);
        drain(&mut s, T0 + days(41u64));
        assert_eq!(
            s.vaults.get(&id).unwrap().audit_next_seq,
            after.audit_next_seq
        );
    }

    #[test]
    fn backlog_is_processed_in_bounded_batches_without_repeats() {
        let (mut s, rt) = setup();
        let mut ids = Vec::new();
        for i in 0..120u8 {
            rt.as_caller(Principal::from_slice(&[i, 7, 7]));
            ids.push(create(&mut s, &rt));
        }
        let now = T0 + days(8u64);
        let mut seen = std::collections::BTreeSet::new();
        let mut ticks = 0;
        loop {
            let keys = due_batch(&s, now, MAX_ITEMS_PER_TICK);
            if keys.is_empty() {
                break;
            }
            assert!(keys.len() <= MAX_ITEMS_PER_TICK);
            for k in &keys {
                assert!(seen.insert(*k), "{k:?} taken twice");
            }
            let r = process_batch(&mut s, &keys, now, system(), || {});
            assert_eq!(r.processed as usize, keys.len());
            // Replaying the same batch (a duplicate timer run) does nothing.
            assert_eq!(
                process_batch(&mut s, &keys, now, system(), || {}).processed,
                0
            );
            ticks += 1;
        }
        assert_eq!(ticks, 3);
        assert_eq!(seen.len(), 120);
        assert!(
            ids.iter().all(|id| s.vaults.get(id).is_none()),
            "every draft erased"
        );
    }

    #[test]
    fn failed_entries_are_retried_then_parked_never_lost() {
        let (mut s, rt) = setup();
        let id = create(&mut s, &rt);
        let now = T0 + days(7u64);
        let key = due_batch(&s, now, 10)[0];
        assert!(!record_failure(&mut s, key, now));
        assert!(due_batch(&s, now, 10).is_empty(), "retried later");
        let retry = now + RETRY_DELAY_NS;
        let key = due_batch(&s, retry, 10)[0];
        assert_eq!(key.2, id);
        let mut t = retry;
        let mut key = key;
        for _ in 2..MAX_ATTEMPTS {
            assert!(!record_failure(&mut s, key, t));
            t += days(1u64);
            key = due_batch(&s, t, 10)[0];
        }
        assert!(record_failure(&mut s, key, t));
        assert!(due_batch(&s, u64::MAX, 10)
            .iter()
            .all(|(_, k, _)| *k != QueueKind::DraftPurge.code()));
        assert_eq!(parked_count(&s, 10), 1);
        assert_eq!(status(&s, id), VaultStatus::Draft);
    }

    #[test]
    fn deadlines_are_enqueued_where_they_are_created() {
        let (mut s, rt) = setup();
        let id = create(&mut s, &rt);
        let kinds: Vec<u8> = entries_of(&s, id).iter().map(|((_, k, _), _)| *k).collect();
        assert!(kinds.contains(&QueueKind::DraftPurge.code()));
        assert!(kinds.contains(&QueueKind::AuditCompaction.code()));
        let id = paid_vault_in(&mut s, &rt, VaultStatus::Active);
        assert!(entries_of(&s, id)
            .iter()
            .any(|((due, k, _), _)| *k == QueueKind::ValidityEnd.code()
                && *due == T0 + days(3650u64)));
    }

    /// Creation counters: at most `max` go while today's are present; once every counter is
    /// from a past day, one call drops them all, and counting starts afresh.
    #[test]
    fn past_creation_counters_go_in_bounded_steps_or_all_at_once() {
        let (mut s, rt) = setup();
        let create_as = |s: &mut State, who: u8| {
            rt.caller.set(p(who));
            create(s, &rt)
        };
        for who in 10..15 {
            create_as(&mut s, who);
        }
        rt.now.set(T0 + NANOS_PER_DAY);
        create_as(&mut s, 15);
        create_as(&mut s, 15);
        let today = (T0 + NANOS_PER_DAY) / NANOS_PER_DAY;
        let counters =
            |s: &State| -> Vec<((u64, Principal), u32)> { s.vault_creations.iter().collect() };
        assert_eq!(counters(&s).len(), 6);
        // Today's counter is there: past ones go two at a time.
        let now = rt.now.get();
        assert_eq!(vaults::collect_creation_counters(&mut s, now, 2), 2);
        assert_eq!(vaults::collect_creation_counters(&mut s, now, 2), 2);
        assert_eq!(vaults::collect_creation_counters(&mut s, now, 2), 1);
        assert_eq!(vaults::collect_creation_counters(&mut s, now, 2), 0);
        assert_eq!(counters(&s), vec![((today, p(15)), 2)]);
        // Two days later every counter is past: all go in one call, whatever `max`.
        for who in 16..20 {
            create_as(&mut s, who);
        }
        let later = T0 + 3 * NANOS_PER_DAY;
        assert_eq!(vaults::collect_creation_counters(&mut s, later, 1), 5);
        assert!(counters(&s).is_empty());
        assert_eq!(vaults::collect_creation_counters(&mut s, later, 1), 0);
        // The emptied map counts the new day's creations.
        rt.now.set(later);
        create_as(&mut s, 15);
        assert_eq!(counters(&s), vec![((later / NANOS_PER_DAY, p(15)), 1)]);
    }
}
