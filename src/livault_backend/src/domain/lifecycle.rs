//! The vault lifecycle (SPEC §3) as one transition table.
//!
//! Every status change in the canister goes through [`next_status`]; anything not in the table
//! is refused with `InvalidState { current }`.

use super::error::{VaultError, VaultResult};
use crate::model::types::VaultStatus::{self, *};

/// What happened to a vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The creation payment was confirmed.
    CreationPaid,
    /// Unpaid for the draft TTL (scheduler).
    DraftUnpaidTimeout,
    /// Rules valid, ≥1 item and ≥1 heir joined.
    SetupConditionsMet,
    /// A setup condition stopped holding.
    SetupConditionsLost,
    /// The owner called `finalize_setup`.
    Finalize,
    /// Time gate and quorum hold (on a call or a scheduler tick).
    UnlockRulesMet,
    /// `now ≥ expires_at` (scheduler).
    ValidityEnded,
    /// The owner paid a renewal.
    Renewed,
    /// The owner's grace period ended without renewal.
    GraceMasterElapsed,
    /// Heirs met their quorum during `GraceHeir`.
    GraceHeirQuorumMet,
    /// The heirs' grace period ended without unlock.
    GraceHeirElapsed,
    /// `now ≥ access_until`.
    AccessEnded,
    /// The tombstone delay after expiry passed.
    TombstoneDue,
    /// The owner called `delete_vault`.
    OwnerDelete,
}

impl LifecycleEvent {
    /// Every event, for exhaustive tests.
    pub const ALL: [LifecycleEvent; 14] = [
        LifecycleEvent::CreationPaid,
        LifecycleEvent::DraftUnpaidTimeout,
        LifecycleEvent::SetupConditionsMet,
        LifecycleEvent::SetupConditionsLost,
        LifecycleEvent::Finalize,
        LifecycleEvent::UnlockRulesMet,
        LifecycleEvent::ValidityEnded,
        LifecycleEvent::Renewed,
        LifecycleEvent::GraceMasterElapsed,
        LifecycleEvent::GraceHeirQuorumMet,
        LifecycleEvent::GraceHeirElapsed,
        LifecycleEvent::AccessEnded,
        LifecycleEvent::TombstoneDue,
        LifecycleEvent::OwnerDelete,
    ];
}

/// The transition table: `(from, event, to)`.
pub const TRANSITIONS: &[(VaultStatus, LifecycleEvent, VaultStatus)] = {
    use LifecycleEvent as E;
    &[
        (Draft, E::CreationPaid, NeedSetup),
        (Draft, E::DraftUnpaidTimeout, Deleted),
        (Draft, E::OwnerDelete, Deleted),
        (NeedSetup, E::SetupConditionsMet, SetupComplete),
        (SetupComplete, E::SetupConditionsLost, NeedSetup),
        (SetupComplete, E::Finalize, Active),
        (Active, E::UnlockRulesMet, Unlockable),
        (Active, E::ValidityEnded, GraceMaster),
        (GraceMaster, E::Renewed, Active),
        (GraceMaster, E::GraceMasterElapsed, GraceHeir),
        (GraceHeir, E::GraceHeirQuorumMet, Unlockable),
        (GraceHeir, E::GraceHeirElapsed, Deleted),
        (Unlockable, E::AccessEnded, Expired),
        (Expired, E::TombstoneDue, Deleted),
        (NeedSetup, E::OwnerDelete, Deleted),
        (SetupComplete, E::OwnerDelete, Deleted),
        (Active, E::OwnerDelete, Deleted),
    ]
};

/// The status after `event` in `from`, or `InvalidState { current: from }`.
pub fn next_status(from: VaultStatus, event: LifecycleEvent) -> VaultResult<VaultStatus> {
    TRANSITIONS
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
        .ok_or(VaultError::InvalidState { current: from })
}

/// Owner content writes (upload, replace, delete items) are allowed in these states.
pub fn content_writable(status: VaultStatus) -> bool {
    matches!(status, NeedSetup | SetupComplete | Active)
}

/// Unlock rules may be edited in these states (editing while `Active` is audit-logged).
pub fn rules_editable(status: VaultStatus) -> bool {
    matches!(status, Draft | NeedSetup | SetupComplete | Active)
}

/// The vault is gone or frozen for owner configuration (no renaming, no check-in).
pub fn is_terminal(status: VaultStatus) -> bool {
    matches!(status, Expired | Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_transition() {
        use LifecycleEvent as E;
        let expected = [
            (Draft, E::CreationPaid, NeedSetup),
            (Draft, E::DraftUnpaidTimeout, Deleted),
            (Draft, E::OwnerDelete, Deleted),
            (NeedSetup, E::SetupConditionsMet, SetupComplete),
            (SetupComplete, E::SetupConditionsLost, NeedSetup),
            (SetupComplete, E::Finalize, Active),
            (Active, E::UnlockRulesMet, Unlockable),
            (Active, E::ValidityEnded, GraceMaster),
            (GraceMaster, E::Renewed, Active),
            (GraceMaster, E::GraceMasterElapsed, GraceHeir),
            (GraceHeir, E::GraceHeirQuorumMet, Unlockable),
            (GraceHeir, E::GraceHeirElapsed, Deleted),
            (Unlockable, E::AccessEnded, Expired),
            (Expired, E::TombstoneDue, Deleted),
            (NeedSetup, E::OwnerDelete, Deleted),
            (SetupComplete, E::OwnerDelete, Deleted),
            (Active, E::OwnerDelete, Deleted),
        ];
        for (from, event, to) in expected {
            assert_eq!(next_status(from, event), Ok(to), "{from:?} --{event:?}-->");
        }
        assert_eq!(expected.len(), TRANSITIONS.len());
    }

    #[test]
    fn every_other_pair_is_rejected() {
        let mut rejected = 0;
        for from in VaultStatus::ALL {
            for event in LifecycleEvent::ALL {
                let allowed = TRANSITIONS
                    .iter()
                    .any(|(f, e, _)| *f == from && *e == event);
                if !allowed {
                    assert_eq!(
                        next_status(from, event),
                        Err(VaultError::InvalidState { current: from }),
                        "{from:?} --{event:?}--> must be refused"
                    );
                    rejected += 1;
                }
            }
        }
        assert_eq!(rejected, 9 * 14 - TRANSITIONS.len());
    }

    #[test]
    fn deleted_is_final() {
        for event in LifecycleEvent::ALL {
            assert!(next_status(Deleted, event).is_err());
        }
    }

    #[test]
    fn table_has_no_duplicate_pairs() {
        for (i, (f, e, _)) in TRANSITIONS.iter().enumerate() {
            for (g, d, _) in &TRANSITIONS[i + 1..] {
                assert!(!(f == g && e == d), "duplicate {f:?} {e:?}");
            }
        }
    }

    #[test]
    fn write_permissions_by_state() {
        for s in VaultStatus::ALL {
            assert_eq!(
                content_writable(s),
                matches!(s, NeedSetup | SetupComplete | Active)
            );
            assert_eq!(
                rules_editable(s),
                matches!(s, Draft | NeedSetup | SetupComplete | Active)
            );
            assert_eq!(is_terminal(s), matches!(s, Expired | Deleted));
        }
    }
}
