//! The per-vault audit log (SPEC §11): append-only, hash-chained, paginated.
//!
//! `hash(e) = sha256(prev_hash ‖ seq ‖ at ‖ actor ‖ action ‖ details)` with fixed-width
//! big-endian integers and length-prefixed strings, so any edit of a stored event or a removal
//! in the middle breaks the chain up to the head kept in the vault record.

use candid::Principal;

use crate::domain::error::VaultResult;
use crate::domain::validation;
use crate::model::records::{AuditEvent, VaultRecord};
use crate::model::types::{AuditEventView, Page, VaultId};
use crate::storage::State;

/// What happened, as a stable action code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    VaultCreated,
    VaultRenamed,
    UnlockRulesChanged,
    SettingsChanged,
    StatusChanged,
    CheckIn,
    VaultDeleted,
    // ---- members and unlock
    InviteCreated,
    InviteRevoked,
    InviteRegenerated,
    MemberJoined,
    MemberRemoved,
    UnlockRequested,
    UnlockApproved,
    UnlockAttemptFailed,
    UnlockRequestCancelled,
    Unlocked,
    RecoveryIssued,
    RecoveryRevoked,
    RecoveryOwnershipTransferred,
    RecoveryQuorumBypassed,
    /// The scheduler deleted events older than the vault's retention.
    AuditCompacted,
    PaymentSessionOpened,
    PaymentConfirmed,
    PaymentRefunded,
    /// The owner named (or reset) the account refunds of the vault go to.
    RefundAccountSet,
    PlanUpgraded,
    // ---- content
    UploadBegun,
    UploadAborted,
    UploadExpired,
    ItemAdded,
    ItemReplaced,
    ItemDeleted,
    DownloadRequested,
    ItemMetaUpdated,
    // ---- vetKeys
    KeyDerived,
}

impl AuditAction {
    /// The code stored and returned (`action` in `AuditEventView`).
    pub fn code(self) -> &'static str {
        match self {
            AuditAction::VaultCreated => "vault.created",
            AuditAction::VaultRenamed => "vault.renamed",
            AuditAction::UnlockRulesChanged => "vault.unlock_rules_changed",
            AuditAction::SettingsChanged => "vault.settings_changed",
            AuditAction::StatusChanged => "status.changed",
            AuditAction::CheckIn => "owner.check_in",
            AuditAction::VaultDeleted => "vault.deleted",
            AuditAction::InviteCreated => "invite.created",
            AuditAction::InviteRevoked => "invite.revoked",
            AuditAction::InviteRegenerated => "invite.regenerated",
            AuditAction::MemberJoined => "member.joined",
            AuditAction::MemberRemoved => "member.removed",
            AuditAction::UnlockRequested => "unlock.requested",
            AuditAction::UnlockApproved => "unlock.approved",
            AuditAction::UnlockAttemptFailed => "unlock.attempt_failed",
            AuditAction::UnlockRequestCancelled => "unlock.request_cancelled",
            AuditAction::Unlocked => "unlock.completed",
            AuditAction::RecoveryIssued => "recovery.issued",
            AuditAction::RecoveryRevoked => "recovery.revoked",
            AuditAction::RecoveryOwnershipTransferred => "recovery.ownership_transferred",
            AuditAction::RecoveryQuorumBypassed => "recovery.quorum_bypassed",
            AuditAction::AuditCompacted => "audit.compacted",
            AuditAction::PaymentSessionOpened => "payment.session_opened",
            AuditAction::PaymentConfirmed => "payment.confirmed",
            AuditAction::PaymentRefunded => "payment.refunded",
            AuditAction::RefundAccountSet => "payment.refund_account_set",
            AuditAction::PlanUpgraded => "vault.plan_upgraded",
            AuditAction::UploadBegun => "content.upload_begun",
            AuditAction::UploadAborted => "content.upload_aborted",
            AuditAction::UploadExpired => "content.upload_expired",
            AuditAction::ItemAdded => "content.item_added",
            AuditAction::ItemReplaced => "content.item_replaced",
            AuditAction::ItemDeleted => "content.item_deleted",
            AuditAction::DownloadRequested => "content.download_requested",
            AuditAction::ItemMetaUpdated => "content.item_meta_updated",
            AuditAction::KeyDerived => "key.derived",
        }
    }

    /// Whether members (heirs, witness) see events of this kind; they always see their own.
    pub fn visible_to_members(code: &str) -> bool {
        code.starts_with("status.")
            || code == "vault.unlock_rules_changed"
            || code.starts_with("member.")
            || (code.starts_with("unlock.") && code != "unlock.attempt_failed")
    }
}

/// Hash of an event given the previous head ([`AuditEvent::chain_hash`]).
pub fn event_hash(
    prev: &[u8],
    seq: u64,
    at: u64,
    actor: &Principal,
    action: &str,
    details: &str,
) -> [u8; 32] {
    AuditEvent::chain_hash(prev, seq, at, actor, action, details)
}

/// Appends an event to the vault's log and advances the chain head in `vault`.
/// The caller persists `vault` afterwards.
pub fn append(
    state: &mut State,
    vault: &mut VaultRecord,
    at: u64,
    actor: Principal,
    action: AuditAction,
    details: String,
) {
    let seq = vault.audit_next_seq;
    let hash = event_hash(&vault.audit_head, seq, at, &actor, action.code(), &details);
    state.audit.append_after(
        vault.id,
        &AuditEvent {
            seq,
            at,
            actor,
            action: action.code().to_string(),
            details,
            hash: hash.to_vec(),
        },
        &vault.audit_head,
    );
    vault.audit_next_seq = seq + 1;
    vault.audit_head = hash.to_vec();
    // A tombstone's compaction chain ends once its log is down to one event; an event added
    // later (an admin's late refund) restarts it, or the older event would outlive the
    // retention (model run finding F2). `enqueue` keeps the earliest due time.
    if vault.status == crate::model::types::VaultStatus::Deleted {
        super::deadlines::schedule_compaction(state, vault, at);
    }
}

/// Who reads a vault's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// The owner: every event, as stored.
    Owner,
    /// A member (heir, witness): events about the vault's state and their own actions. The
    /// actor of an event is shown when it is the viewer, the owner or the system (this
    /// canister, or `aaaaa-aa` for lifecycle deadlines); another member's principal is shown
    /// as the anonymous principal `2vxsx-fae`, as `list_members` hides it too (issue #12 L4).
    /// Details name members by member id, never by principal.
    Member {
        principal: Principal,
        owner: Principal,
        system: Principal,
    },
}

/// A page of the vault's log for `viewer`, oldest first, after sequence `start_after`.
pub fn page(
    state: &State,
    vault_id: VaultId,
    viewer: Viewer,
    start_after: Option<u64>,
    limit: Option<u32>,
) -> VaultResult<Page<AuditEventView>> {
    let limit = validation::page_limit(limit)?;
    let from = start_after.map_or(0, |s| s.saturating_add(1));
    // Bound the scan so a member's filtered view cannot walk an unbounded log in one query.
    let scan_cap = limit * 20;
    let mut items = Vec::new();
    let mut last_seen = None;
    for e in state.audit.events_from(vault_id, from).take(scan_cap) {
        last_seen = Some(e.seq);
        let actor = match viewer {
            Viewer::Owner => e.actor,
            Viewer::Member {
                principal,
                owner,
                system,
            } => {
                let own = e.actor == principal;
                if !own && !AuditAction::visible_to_members(&e.action) {
                    continue;
                }
                let shown = own
                    || e.actor == owner
                    || e.actor == system
                    || e.actor == Principal::management_canister();
                if shown {
                    e.actor
                } else {
                    Principal::anonymous()
                }
            }
        };
        items.push(AuditEventView {
            seq: e.seq,
            at: e.at,
            actor,
            action: e.action,
            details: e.details,
            hash: serde_bytes::ByteBuf::from(e.hash),
        });
        if items.len() == limit {
            break;
        }
    }
    let next_cursor = match last_seen {
        Some(seq)
            if {
                let (first, count) = state.audit.bounds(vault_id);
                seq + 1 < first + count
            } =>
        {
            Some(seq)
        }
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// Recomputes the chain of a vault from its first stored event; returns whether it ends in
/// the head recorded in the vault.
pub fn verify_chain(state: &State, vault: &VaultRecord) -> bool {
    let mut prev: Vec<u8> = vec![0; 32];
    let mut first = true;
    for e in state.audit.events_from(vault.id, 0) {
        if first {
            // The log may have been compacted: start from the first kept event's own hash.
            first = false;
            if e.seq != 0 {
                prev = e.hash.clone();
                continue;
            }
        }
        let h = event_hash(&prev, e.seq, e.at, &e.actor, &e.action, &e.details);
        if h.as_slice() != e.hash.as_slice() {
            return false;
        }
        prev = h.to_vec();
    }
    prev == vault.audit_head
}
