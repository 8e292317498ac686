//! The deadlines a vault's status starts, in the scheduler's due queue (`SCHEDULER_QUEUE`):
//! one entry per (kind, vault), keyed `(due_ns, kind, id)`. Enqueued here, where deadlines
//! are created; processed by the tick (`domain::scheduler`). Also the unlock time gate,
//! which says when an unlock check is due.

use crate::model::member_types::TimeGateView;
use crate::model::records::VaultRecord;
use crate::model::types::{VaultStatus, NANOS_PER_DAY};
use crate::storage::State;

fn days(d: impl Into<u64>) -> u64 {
    d.into().saturating_mul(NANOS_PER_DAY)
}

/// Due time of parked entries: never reached by a tick.
pub const PARKED_DUE: u64 = u64::MAX;

/// What a queue entry does. The code is stored: never renumber.
///
/// Duties that need no queue entry: invites expire by time (their status is computed from
/// `expires_at` on every read and cap count), and stale uploads are collected by every tick
/// through the uploads' own idle index (`content::collect_stale_uploads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// `Draft` unpaid for `draft_ttl_days` → `Deleted`.
    DraftPurge = 1,
    /// `Active` at `expires_at` → `GraceMaster`.
    ValidityEnd = 2,
    /// `GraceMaster` for `grace_master_days` → `GraceHeir`.
    GraceMasterEnd = 3,
    /// `GraceHeir` for `grace_heir_days` → `Deleted` (payload purged).
    GraceHeirEnd = 4,
    /// `Unlockable` at `access_until` → `Expired` (payload purged).
    AccessEnd = 5,
    /// `Expired` for `tombstone_after_days` → `Deleted` (tombstone).
    TombstoneDue = 6,
    /// Delete audit events older than the vault's retention.
    AuditCompaction = 7,
    /// `Active`: unlock when the time gate opens and the quorum holds (e.g. a pure time
    /// lock at its date); re-enqueued at the next moment the gate can open.
    UnlockCheck = 8,
    /// RETIRED: payment checks have their own queue (`domain::payments::checks`). An entry
    /// of this kind written by an older version is moved there when the tick meets it.
    SessionCheck = 9,
}

impl QueueKind {
    /// Every kind.
    pub const ALL: [QueueKind; 9] = [
        QueueKind::DraftPurge,
        QueueKind::ValidityEnd,
        QueueKind::GraceMasterEnd,
        QueueKind::GraceHeirEnd,
        QueueKind::AccessEnd,
        QueueKind::TombstoneDue,
        QueueKind::AuditCompaction,
        QueueKind::UnlockCheck,
        QueueKind::SessionCheck,
    ];

    /// The stored code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind of a stored code (`None`: written by newer code, which upgrades refuse).
    pub fn from_code(code: u8) -> Option<QueueKind> {
        QueueKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            QueueKind::DraftPurge => "draft_purge",
            QueueKind::ValidityEnd => "validity_end",
            QueueKind::GraceMasterEnd => "grace_master_end",
            QueueKind::GraceHeirEnd => "grace_heir_end",
            QueueKind::AccessEnd => "access_end",
            QueueKind::TombstoneDue => "tombstone_due",
            QueueKind::AuditCompaction => "audit_compaction",
            QueueKind::UnlockCheck => "unlock_check",
            QueueKind::SessionCheck => "session_check",
        }
    }
}

/// Queues `kind` for `id` at `due`, keeping at most one entry per (kind, id): the earliest.
/// An earlier entry stays (processing it re-reads the vault and re-enqueues at the real
/// deadline if it moved); a later one is replaced. So no chain of entries can multiply for a
/// vault (issue #12 M2: each retention change used to start another compaction chain).
pub fn enqueue(state: &mut State, due: u64, kind: QueueKind, id: u64) {
    let due = due.min(PARKED_DUE - 1);
    let existing: Vec<u64> = state.scheduler_queue.dues_of(kind.code(), id).collect();
    if existing.iter().any(|d| *d <= due) {
        return;
    }
    for d in existing {
        state.scheduler_queue.remove(&(d, kind.code(), id));
    }
    state.scheduler_queue.insert((due, kind.code(), id), 0);
}

/// Removes every queued entry of vault `id` (an erased draft).
pub fn unschedule_vault(state: &mut State, id: u64) {
    let entries: Vec<(u8, u64)> = state
        .scheduler_queue
        .entries_of(id)
        .filter(|(code, _)| QueueKind::ALL.iter().any(|k| k.code() == *code))
        .collect();
    for (code, due) in entries {
        state.scheduler_queue.remove(&(due, code, id));
    }
}

/// Enqueues the deadline that the vault's current status starts. Called by
/// [`transition`] after every status change, so every path into a timed status is
/// covered.
pub fn schedule_for_status(state: &mut State, vault: &VaultRecord, now: u64) {
    let d = state.config().durations.clone();
    match vault.status {
        VaultStatus::Active => {
            if let Some(expires_at) = vault.expires_at {
                enqueue(state, expires_at, QueueKind::ValidityEnd, vault.id);
            }
            schedule_unlock_check(state, vault, now);
        }
        VaultStatus::GraceMaster => enqueue(
            state,
            now.saturating_add(days(d.grace_master_days)),
            QueueKind::GraceMasterEnd,
            vault.id,
        ),
        VaultStatus::GraceHeir => {
            enqueue(
                state,
                now.saturating_add(days(d.grace_heir_days)),
                QueueKind::GraceHeirEnd,
                vault.id,
            );
            // The time gate holds in GraceHeir (SPEC §4): a quorum already met — or none
            // required — unlocks at the next tick without anyone calling.
            enqueue(state, now, QueueKind::UnlockCheck, vault.id);
        }
        VaultStatus::Unlockable => {
            enqueue(state, access_until(vault), QueueKind::AccessEnd, vault.id)
        }
        VaultStatus::Expired => enqueue(
            state,
            now.saturating_add(days(d.tombstone_after_days)),
            QueueKind::TombstoneDue,
            vault.id,
        ),
        VaultStatus::Draft
        | VaultStatus::NeedSetup
        | VaultStatus::SetupComplete
        | VaultStatus::Deleted => {}
    }
}

/// Enqueues an unlock check for an `Active` vault at the next moment its time gate can open
/// (now, if it holds already). Called on activation, when the rules change and when an
/// unlock request opens; owner activity only moves the inactivity deadline later, so an
/// earlier entry finds nothing due and re-enqueues itself.
pub fn schedule_unlock_check(state: &mut State, vault: &VaultRecord, now: u64) {
    if vault.status != VaultStatus::Active || vault.unlock_rules.is_none() {
        return;
    }
    let gate = time_gate(vault, now);
    if gate.holds {
        enqueue(state, now, QueueKind::UnlockCheck, vault.id);
    } else if let Some(at) = gate.opens_at {
        enqueue(state, at.max(now), QueueKind::UnlockCheck, vault.id);
    }
}

/// Enqueues the deadlines of a new `Draft`: its purge and its first audit compaction.
pub fn schedule_new_vault(state: &mut State, vault: &VaultRecord) {
    let d = state.config().durations.clone();
    enqueue(
        state,
        vault.created_at.saturating_add(days(d.draft_ttl_days)),
        QueueKind::DraftPurge,
        vault.id,
    );
    enqueue(
        state,
        vault
            .created_at
            .saturating_add(days(vault.audit_retention_days)),
        QueueKind::AuditCompaction,
        vault.id,
    );
}

/// Enqueues an audit compaction for when the vault's oldest event ages out (called when the
/// owner changes the retention).
pub fn schedule_compaction(state: &mut State, vault: &VaultRecord, now: u64) {
    let oldest = state.audit.first(vault.id).map_or(now, |e| e.at);
    let due = oldest
        .saturating_add(days(vault.audit_retention_days))
        .max(now);
    enqueue(state, due, QueueKind::AuditCompaction, vault.id);
}

/// End of the heirs' access window: `access_until`, or (if the unlock did not set it)
/// `unlocked_at` / the status change plus `post_unlock_days`.
pub fn access_until(vault: &VaultRecord) -> u64 {
    vault.access_until.unwrap_or_else(|| {
        vault
            .unlocked_at
            .unwrap_or(vault.status_changed_at)
            .saturating_add(days(vault.post_unlock_days))
    })
}

/// The time gate of `vault` at `now` (SPEC §4).
pub fn time_gate(vault: &VaultRecord, now: u64) -> TimeGateView {
    let rules = vault.unlock_rules.as_ref();
    let unlock_after = rules.and_then(|r| r.unlock_after);
    let inactivity_deadline = rules
        .and_then(|r| r.inactivity_days)
        .map(|d| vault.last_owner_activity.saturating_add(days(d)));
    let request_deadline = match (rules, &vault.membership.unlock_request) {
        (Some(r), Some(req)) => Some(req.opened_at.saturating_add(days(r.request_wait_days))),
        _ => None,
    };
    let mut held = Vec::new();
    if vault.status == VaultStatus::GraceHeir {
        held.push("vault is in GraceHeir");
    }
    if unlock_after.is_some_and(|t| now >= t) {
        held.push("unlock_after reached");
    }
    if inactivity_deadline.is_some_and(|t| now >= t) {
        held.push("owner inactive for inactivity_days");
    }
    if request_deadline.is_some_and(|t| now >= t) {
        held.push("unlock request waited request_wait_days");
    }
    if !held.is_empty() {
        return TimeGateView {
            holds: true,
            reason: held.join("; "),
            opens_at: None,
            unlock_after,
            inactivity_deadline,
            request_deadline,
        };
    }
    let opens_at = [unlock_after, inactivity_deadline, request_deadline]
        .into_iter()
        .flatten()
        .min();
    let reason = if rules.is_none() {
        "no unlock rules set".to_string()
    } else {
        let mut waiting = Vec::new();
        if let Some(t) = unlock_after {
            waiting.push(format!("unlock_after at {t}"));
        }
        if let Some(t) = inactivity_deadline {
            waiting.push(format!("owner inactivity until {t}"));
        }
        match request_deadline {
            Some(t) => waiting.push(format!("unlock request wait until {t}")),
            None => waiting.push("no open unlock request".to_string()),
        }
        format!("time gate not reached: {}", waiting.join("; "))
    };
    TimeGateView {
        holds: false,
        reason,
        opens_at,
        unlock_after,
        inactivity_deadline,
        request_deadline,
    }
}
