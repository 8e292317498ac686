//! Vault lifecycle operations: create, read, list, update, check in, finalize, delete.
//!
//! Each operation validates everything first and writes only when it will succeed, so an
//! error leaves state untouched. Status changes go through [`transition`], which applies the
//! lifecycle table, keeps the per-status counters and appends the audit event.

use candid::Principal;
use sha2::{Digest, Sha256};

use super::access::{self, Need};
use super::audit::{self, AuditAction};
use super::error::{VaultError, VaultResult};
use super::lifecycle::{self, LifecycleEvent};
use super::pricing;
use super::records::VaultRecord;
use super::scheduler;
use super::types::{
    CreateVaultArgs, Page, PageArgs, PlanSelection, UpdateVaultArgs, UpgradeQuote, VaultId,
    VaultRole, VaultStatus, VaultSummary, VaultView, NANOS_PER_DAY,
};
use super::validation;
use crate::events::Val;
use crate::runtime::Runtime;
use crate::storage::State;

/// Applies `event` to `vault` (in memory), updating counters and the audit chain.
/// The caller persists `vault`.
pub fn transition(
    state: &mut State,
    vault: &mut VaultRecord,
    event: LifecycleEvent,
    now: u64,
    actor: Principal,
) -> VaultResult<()> {
    let from = vault.status;
    let to = lifecycle::next_status(from, event)?;
    let mut header = state.header.get().clone();
    header.status_counts[from.index()] = header.status_counts[from.index()].saturating_sub(1);
    header.status_counts[to.index()] += 1;
    state.header.set(header);
    vault.status = to;
    vault.status_changed_at = now;
    vault.updated_at = now;
    if from == VaultStatus::Draft {
        forget_idempotency(state, vault.id);
    }
    if to == VaultStatus::Deleted {
        // Deleted vaults no longer count against the owner's limit: keep the index to live
        // ones, so `live_vault_count` reads no tombstones (issue #12 M2).
        state.vaults_by_owner.remove(&(vault.owner, vault.id));
    }
    audit::append(
        state,
        vault,
        now,
        actor,
        AuditAction::StatusChanged,
        format!("{} -> {} ({event:?})", from.name(), to.name()),
    );
    scheduler::schedule_for_status(state, vault, now);
    crate::events::emit(
        "vault.status",
        &[
            ("vault", Val::Raw(&vault.id)),
            ("from", Val::Raw(&from.name())),
            ("to", Val::Raw(&to.name())),
            ("cause", Val::Text(&format!("{event:?}"))),
        ],
    );
    Ok(())
}

/// What is still missing before `NeedSetup` can become `SetupComplete`.
pub fn setup_missing(vault: &VaultRecord) -> Vec<String> {
    let mut missing = Vec::new();
    if vault.unlock_rules.is_none() {
        missing.push("unlock_rules".to_string());
    }
    if vault.item_count == 0 {
        missing.push("content".to_string());
    }
    if vault.heir_count == 0 {
        missing.push("heir".to_string());
    }
    missing
}

/// Moves `NeedSetup ↔ SetupComplete` to match the setup conditions (SPEC §3). Called after
/// every change that can affect them, usually after other writes: it cannot fail (both moves
/// are in the lifecycle table for the status they start from; a refusal would be a
/// programming error and traps, rolling the whole message back — issue #12 L5).
pub fn refresh_setup(state: &mut State, vault: &mut VaultRecord, now: u64, actor: Principal) {
    let complete = setup_missing(vault).is_empty();
    let event = match (vault.status, complete) {
        (VaultStatus::NeedSetup, true) => LifecycleEvent::SetupConditionsMet,
        (VaultStatus::SetupComplete, false) => LifecycleEvent::SetupConditionsLost,
        _ => return,
    };
    transition(state, vault, event, now, actor)
        .expect("BUG: the lifecycle table refuses a setup transition");
}

/// The API view of a vault for a viewer with `role`.
pub fn view(state: &State, vault: &VaultRecord, role: VaultRole) -> VaultView {
    let storage_limit_bytes = if vault.status == VaultStatus::Deleted {
        0
    } else {
        state.config().pricing.tier(vault.plan.tier).storage_bytes
    };
    VaultView {
        id: vault.id,
        owner: vault.owner,
        name: vault.name.clone(),
        status: vault.status,
        plan: vault.plan,
        owner_age: vault.owner_age,
        price_e8s: vault.price_e8s,
        unlock_rules: vault.unlock_rules.clone(),
        post_unlock_days: vault.post_unlock_days,
        audit_retention_days: vault.audit_retention_days,
        created_at: vault.created_at,
        updated_at: vault.updated_at,
        status_changed_at: vault.status_changed_at,
        paid_at: vault.paid_at,
        expires_at: vault.expires_at,
        activated_at: vault.activated_at,
        unlocked_at: vault.unlocked_at,
        access_until: vault.access_until,
        deleted_at: vault.deleted_at,
        last_owner_activity: vault.last_owner_activity,
        storage_limit_bytes,
        storage_used_bytes: vault.storage_committed_bytes + vault.storage_reserved_bytes,
        item_count: vault.item_count,
        heir_count: vault.heir_count,
        witness_joined: vault.witness_joined,
        setup_missing: if vault.status == VaultStatus::NeedSetup {
            setup_missing(vault)
        } else {
            Vec::new()
        },
        refund_account: if role == VaultRole::Owner {
            state.refund_accounts.get(&vault.id)
        } else {
            None
        },
        my_role: role,
    }
}

fn idempotency_hash(caller: &Principal, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"livault-create-vault");
    h.update([caller.as_slice().len() as u8]);
    h.update(caller.as_slice());
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Vaults of `owner` that are not deleted. The owner index holds only live vaults (deletion
/// removes the entry); the status filter covers entries of vaults deleted before that.
pub fn live_vault_count(state: &State, owner: Principal) -> u64 {
    state
        .vaults_by_owner
        .keys_range((owner, 0)..=(owner, u64::MAX))
        .filter(|(_, id)| {
            state
                .vaults
                .get(id)
                .is_some_and(|v| v.status != VaultStatus::Deleted)
        })
        .count() as u64
}

/// Vaults one principal may create per UTC day, deleted ones included (issue #12 item 2):
/// deleting an unpaid draft frees its place among the owner's live vaults at once, and each
/// create / delete cycle leaves its vault id's directory entry and, once `init_payment` ran,
/// a payment session (financial records are never erased), so without this bound one
/// principal could leave megabytes a day behind at its rate limit.
pub const MAX_VAULT_CREATIONS_PER_DAY: u64 = 20;

/// Most audit events an unpaid `Draft` keeps from its owner's settings (`update_vault`,
/// `set_refund_account`; issue #12 item 2). An owner write that would append more answers
/// `PlanLimit { resource = "draft_audit_events" }`. Payment sessions (at most one per price,
/// `init_payment` reuses it) and vetKD derivations (a canister-wide daily cap for drafts)
/// still log: they are bounded elsewhere, and a capped draft must still be payable. A paid
/// vault's log is bounded by its retention (compaction).
pub const MAX_DRAFT_AUDIT_EVENTS: u64 = 64;

/// Refuses an owner write that would append `adding` events to an unpaid draft's log past
/// [`MAX_DRAFT_AUDIT_EVENTS`]; anything else passes.
pub fn check_draft_audit_room(vault: &VaultRecord, adding: u64) -> VaultResult<()> {
    if vault.status == VaultStatus::Draft
        && adding > 0
        && vault.audit_next_seq.saturating_add(adding) > MAX_DRAFT_AUDIT_EVENTS
    {
        return Err(VaultError::PlanLimit {
            resource: "draft_audit_events".into(),
            limit: MAX_DRAFT_AUDIT_EVENTS,
        });
    }
    Ok(())
}

/// Vaults `who` created on the UTC day of `now`.
fn creations_today(state: &State, who: Principal, now: u64) -> u64 {
    u64::from(
        state
            .vault_creations
            .get(&(now / NANOS_PER_DAY, who))
            .unwrap_or(0),
    )
}

/// Drops at most `max` creation counters of days before `now`'s (they are a prefix of the
/// map: the day comes first). Returns how many went. Run by every scheduler tick.
pub fn collect_creation_counters(state: &mut State, now: u64, max: usize) -> usize {
    let today = now / NANOS_PER_DAY;
    let old: Vec<(u64, Principal)> = state
        .vault_creations
        .keys_range(..(today, Principal::management_canister()))
        .take(max)
        .collect();
    for key in &old {
        state.vault_creations.remove(key);
    }
    old.len()
}

/// Refuses new data past the capacity high-water mark (`limits.stable_memory_high_water_bytes`):
/// `create_vault` and `begin_upload` (with the bytes it would add) call it; everything an
/// existing vault does keeps working.
pub fn check_capacity(state: &State, rt: &impl Runtime, adding: u64) -> VaultResult<()> {
    let mark = state.config().limits.high_water_bytes();
    if rt.stable_memory_bytes().saturating_add(adding) >= mark {
        return Err(VaultError::PlanLimit {
            resource: "canister_storage".into(),
            limit: mark,
        });
    }
    Ok(())
}

/// `create_vault`: a new `Draft` with the price quoted now and frozen in the vault.
/// A retry with the same idempotency key returns the vault of the first call.
pub fn create_vault(
    state: &mut State,
    rt: &impl Runtime,
    args: CreateVaultArgs,
) -> VaultResult<VaultView> {
    let caller = rt.caller();
    let now = rt.now();
    validation::text("name", &args.name, validation::MAX_VAULT_NAME_CHARS)?;
    let idem = match &args.idempotency_key {
        Some(key) => {
            validation::text(
                "idempotency_key",
                key,
                validation::MAX_IDEMPOTENCY_KEY_CHARS,
            )?;
            Some(idempotency_hash(&caller, key))
        }
        None => None,
    };
    if let Some(hash) = idem {
        if let Some(vault) = state
            .idempotency
            .get(&hash)
            .and_then(|id| state.vaults.get(&id))
        {
            return Ok(view(state, &vault, VaultRole::Owner));
        }
    }
    let config = state.config().clone();
    let quote = pricing::quote(&config.pricing, &args.plan, args.owner_age)?;
    let max = u64::from(config.limits.max_vaults_per_owner);
    if live_vault_count(state, caller) >= max {
        return Err(VaultError::PlanLimit {
            resource: "vaults_per_owner".into(),
            limit: max,
        });
    }
    let created = creations_today(state, caller, now);
    if created >= MAX_VAULT_CREATIONS_PER_DAY {
        return Err(VaultError::PlanLimit {
            resource: "vault_creations_per_day".into(),
            limit: MAX_VAULT_CREATIONS_PER_DAY,
        });
    }
    check_capacity(state, rt, 0)?;

    let id = state.next_vault_id();
    let mut vault = VaultRecord {
        id,
        owner: caller,
        name: args.name.trim().to_string(),
        status: VaultStatus::Draft,
        plan: args.plan,
        owner_age: args.owner_age,
        price_e8s: quote.total_e8s,
        unlock_rules: None,
        post_unlock_days: config.durations.default_post_unlock_days,
        audit_retention_days: config.durations.default_audit_retention_days,
        created_at: now,
        updated_at: now,
        status_changed_at: now,
        paid_at: None,
        expires_at: None,
        activated_at: None,
        unlocked_at: None,
        access_until: None,
        deleted_at: None,
        last_owner_activity: now,
        storage_committed_bytes: 0,
        storage_reserved_bytes: 0,
        item_count: 0,
        heir_count: 0,
        witness_joined: false,
        audit_next_seq: 0,
        audit_head: vec![0; 32],
        membership: Default::default(),
    };
    let mut header = state.header.get().clone();
    header.status_counts[VaultStatus::Draft.index()] += 1;
    state.header.set(header);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::VaultCreated,
        format!(
            "plan={:?} heir_slots={} witness_slot={} price_e8s={}",
            args.plan.tier, args.plan.heir_slots, args.plan.witness_slot, quote.total_e8s
        ),
    );
    state.vaults_by_owner.insert((caller, id), ());
    state
        .vault_creations
        .insert((now / NANOS_PER_DAY, caller), created as u32 + 1);
    if let Some(hash) = idem {
        state.idempotency.insert(hash, id);
        state.idempotency_by_vault.insert(id, hash);
    }
    scheduler::schedule_new_vault(state, &vault);
    state.vaults.insert(id, vault.clone());
    Ok(view(state, &vault, VaultRole::Owner))
}

/// `get_vault`: owner and members.
pub fn get_vault(state: &State, rt: &impl Runtime, vault_id: VaultId) -> VaultResult<VaultView> {
    let (vault, access) = access::load(state, vault_id, &rt.caller(), Need::OwnerOrMember)?;
    let role = access.role().ok_or(VaultError::NotAuthorized)?;
    Ok(view(state, &vault, role))
}

/// `list_my_vaults`: vaults the caller owns or belongs to, by ascending id, deleted ones
/// left out. The cursor is the last vault id of the previous page.
pub fn list_my_vaults(
    state: &State,
    rt: &impl Runtime,
    args: PageArgs,
) -> VaultResult<Page<VaultSummary>> {
    let caller = rt.caller();
    let limit = validation::page_limit(args.limit)?;
    let from = args.start_after.map_or(0, |c| c.saturating_add(1));
    let mut owned = state
        .vaults_by_owner
        .keys_range((caller, from)..=(caller, u64::MAX))
        .map(|(_, id)| (id, VaultRole::Owner))
        .peekable();
    let mut joined = state
        .vaults_by_member
        .range((caller, from)..=(caller, u64::MAX))
        .map(|e| {
            let (key, member_id) = e.into_pair();
            (key.1, member_id)
        })
        .peekable();
    let mut items = Vec::new();
    let mut last = None;
    // Scan cap: deleted vaults are skipped, but one call never walks more than this.
    let mut budget = limit * 10;
    while items.len() < limit && budget > 0 {
        budget -= 1;
        let next = match (owned.peek(), joined.peek()) {
            (Some((o, _)), Some((j, _))) if o <= j => owned.next(),
            (Some(_), Some(_)) | (None, Some(_)) => joined.next().map(|(id, member_id)| {
                let role = state
                    .members
                    .get(&(id, member_id))
                    .map_or(VaultRole::Heir, |m| match m.role {
                        super::records::MemberRole::Heir => VaultRole::Heir,
                        super::records::MemberRole::Witness => VaultRole::Witness,
                    });
                (id, role)
            }),
            (Some(_), None) => owned.next(),
            (None, None) => None,
        };
        let Some((id, role)) = next else { break };
        last = Some(id);
        if let Some(v) = state.vaults.get(&id) {
            if v.status != VaultStatus::Deleted {
                items.push(VaultSummary {
                    id,
                    name: v.name,
                    status: v.status,
                    role,
                    owner: v.owner,
                    expires_at: v.expires_at,
                });
            }
        }
    }
    let more = owned.peek().is_some() || joined.peek().is_some();
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}

/// Records owner activity (any authenticated owner update counts, SPEC §4): refreshes
/// `last_owner_activity`, and cancels an open unlock request and clears collected approvals
/// (audit-logged). The caller persists `vault`.
pub fn touch_owner(state: &mut State, vault: &mut VaultRecord, now: u64, actor: Principal) {
    vault.last_owner_activity = now;
    vault.updated_at = now;
    super::unlock::on_owner_activity(state, vault, now, actor);
}

/// Loads a vault for an owner operation that is allowed only in `allowed` states
/// (`NotAuthorized` / `NotFound` from [`access::load`], `InvalidState` otherwise).
pub(crate) fn load_owned(
    state: &State,
    caller: &Principal,
    vault_id: VaultId,
    allowed: impl Fn(VaultStatus) -> bool,
) -> VaultResult<VaultRecord> {
    let (vault, _) = access::load(state, vault_id, caller, Need::Owner)?;
    if !allowed(vault.status) {
        return Err(VaultError::InvalidState {
            current: vault.status,
        });
    }
    Ok(vault)
}

/// `update_vault`: name, unlock rules, post-unlock days, audit retention. Fields left `None`
/// keep their value. Rules are editable up to `Active` (logged); the name while the vault is
/// neither unlockable nor gone.
pub fn update_vault(
    state: &mut State,
    rt: &impl Runtime,
    args: UpdateVaultArgs,
) -> VaultResult<VaultView> {
    let now = rt.now();
    let caller = rt.caller();
    let touches_rules = args.unlock_rules.is_some() || args.post_unlock_days.is_some();
    let mut vault = load_owned(state, &rt.caller(), args.vault_id, |s| {
        if touches_rules {
            lifecycle::rules_editable(s)
        } else {
            !lifecycle::is_terminal(s) && s != VaultStatus::Unlockable
        }
    })?;
    if args.name.is_none()
        && args.unlock_rules.is_none()
        && args.post_unlock_days.is_none()
        && args.audit_retention_days.is_none()
    {
        return Err(VaultError::invalid("args", "nothing to update"));
    }
    if let Some(name) = &args.name {
        validation::text("name", name, validation::MAX_VAULT_NAME_CHARS)?;
    }
    if let Some(rules) = &args.unlock_rules {
        validation::unlock_rules(rules, &vault.plan, now)?;
    }
    if let Some(days) = args.post_unlock_days {
        validation::post_unlock_days(days)?;
    }
    if let Some(days) = args.audit_retention_days {
        validation::audit_retention_days(days)?;
    }
    let renamed = args
        .name
        .as_ref()
        .is_some_and(|n| n.trim() != vault.name.as_str());
    let rules_changed = args
        .unlock_rules
        .as_ref()
        .is_some_and(|r| vault.unlock_rules.as_ref() != Some(r));
    let settings_changed = args
        .post_unlock_days
        .is_some_and(|d| d != vault.post_unlock_days)
        || args
            .audit_retention_days
            .is_some_and(|d| d != vault.audit_retention_days);
    let events = [renamed, rules_changed, settings_changed]
        .iter()
        .filter(|b| **b)
        .count() as u64;
    check_draft_audit_room(&vault, events)?;

    touch_owner(state, &mut vault, now, caller);
    if let Some(name) = args.name {
        let name = name.trim().to_string();
        if name != vault.name {
            vault.name = name;
            audit::append(
                state,
                &mut vault,
                now,
                caller,
                AuditAction::VaultRenamed,
                String::new(),
            );
        }
    }
    if let Some(rules) = args.unlock_rules {
        if vault.unlock_rules.as_ref() != Some(&rules) {
            let details = format!(
                "unlock_after={:?} inactivity_days={:?} request_wait_days={} required_heirs={} required_witness={} while={}",
                rules.unlock_after,
                rules.inactivity_days,
                rules.request_wait_days,
                rules.required_heirs,
                rules.required_witness,
                vault.status.name()
            );
            vault.unlock_rules = Some(rules);
            audit::append(
                state,
                &mut vault,
                now,
                caller,
                AuditAction::UnlockRulesChanged,
                details,
            );
            scheduler::schedule_unlock_check(state, &vault, now);
        }
    }
    let mut settings = Vec::new();
    if let Some(days) = args.post_unlock_days {
        if days != vault.post_unlock_days {
            vault.post_unlock_days = days;
            settings.push(format!("post_unlock_days={days}"));
        }
    }
    let mut retention_changed = false;
    if let Some(days) = args.audit_retention_days {
        if days != vault.audit_retention_days {
            vault.audit_retention_days = days;
            settings.push(format!("audit_retention_days={days}"));
            retention_changed = true;
        }
    }
    if retention_changed {
        scheduler::schedule_compaction(state, &vault, now);
    }
    if !settings.is_empty() {
        audit::append(
            state,
            &mut vault,
            now,
            caller,
            AuditAction::SettingsChanged,
            settings.join(" "),
        );
    }
    refresh_setup(state, &mut vault, now, caller);
    state.vaults.insert(vault.id, vault.clone());
    Ok(view(state, &vault, VaultRole::Owner))
}

/// `check_in`: proof of life. Allowed from payment until the vault unlocks (and while paused).
pub fn check_in(state: &mut State, rt: &impl Runtime, vault_id: VaultId) -> VaultResult<VaultView> {
    let now = rt.now();
    let mut vault = load_owned(state, &rt.caller(), vault_id, |s| {
        matches!(
            s,
            VaultStatus::NeedSetup
                | VaultStatus::SetupComplete
                | VaultStatus::Active
                | VaultStatus::GraceMaster
        )
    })?;
    touch_owner(state, &mut vault, now, rt.caller());
    audit::append(
        state,
        &mut vault,
        now,
        rt.caller(),
        AuditAction::CheckIn,
        String::new(),
    );
    state.vaults.insert(vault.id, vault.clone());
    Ok(view(state, &vault, VaultRole::Owner))
}

/// `finalize_setup`: `SetupComplete → Active`.
pub fn finalize_setup(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
) -> VaultResult<VaultView> {
    let now = rt.now();
    let mut vault = load_owned(state, &rt.caller(), vault_id, |s| {
        s == VaultStatus::SetupComplete
    })?;
    // Conditions are kept in sync by refresh_setup; re-check to never activate an incomplete vault.
    let missing = setup_missing(&vault);
    if !missing.is_empty() {
        return Err(VaultError::invalid(
            "vault",
            format!("setup incomplete: {}", missing.join(", ")),
        ));
    }
    touch_owner(state, &mut vault, now, rt.caller());
    transition(
        state,
        &mut vault,
        LifecycleEvent::Finalize,
        now,
        rt.caller(),
    )?;
    vault.activated_at = Some(now);
    state.vaults.insert(vault.id, vault.clone());
    Ok(view(state, &vault, VaultRole::Owner))
}

/// Purges the payload (content: items, open uploads and their pages) of a vault, keeping its
/// metadata: `Unlockable → Expired`. The caller persists `vault`.
pub fn purge_payload(state: &mut State, vault: &mut VaultRecord) {
    super::content::free_vault_content(state, vault.id);
    let before = super::metrics::storage_of(vault);
    vault.item_count = 0;
    vault.storage_committed_bytes = 0;
    vault.storage_reserved_bytes = 0;
    super::metrics::storage_changed(state, before, vault);
}

/// Removes everything but the tombstone: name, rules, members, invites, recovery code and
/// payload. Payment sessions and billing stay (books). The caller persists `vault`.
pub fn purge_to_tombstone(state: &mut State, vault: &mut VaultRecord) {
    super::invites::purge_vault(state, vault);
    purge_payload(state, vault);
    super::keys::forget_vault(state, vault.id);
    // A vault no member ever joined has none: skip the scan (see `invites::purge_vault`).
    let members: Vec<_> = if vault.membership.members_issued == 0 {
        Vec::new()
    } else {
        state
            .members
            .range((vault.id, 0)..=(vault.id, u32::MAX))
            .map(|e| e.into_pair())
            .collect()
    };
    for ((vault_id, member_id), m) in members {
        state.members.remove(&(vault_id, member_id));
        state.vaults_by_member.remove(&(m.principal, vault_id));
    }
    vault.name = String::new();
    vault.unlock_rules = None;
    vault.heir_count = 0;
    vault.witness_joined = false;
    vault.item_count = 0;
    vault.storage_committed_bytes = 0;
    vault.storage_reserved_bytes = 0;
}

/// Drops the idempotency entries of a vault that leaves `Draft` (paid or erased): a create
/// retry only matters while the draft exists.
fn forget_idempotency(state: &mut State, vault_id: VaultId) {
    if let Some(hash) = state.idempotency_by_vault.remove(&vault_id) {
        state.idempotency.remove(&hash);
    }
}

/// Erases an unpaid `Draft` (owner deletion, or unpaid past `draft_ttl_days`): its record,
/// audit log, queue entries, owner-index, idempotency, refund-account and vetKeys-counter
/// entries. Only its id
/// stays used (ids come from a counter and are never reused). Payment sessions stay: funds
/// paid to one later are refunded by an admin. A draft never held content, members,
/// invites or recovery codes, so nothing else refers to it (issue #12 M2).
pub fn erase_draft(state: &mut State, vault: &VaultRecord) {
    debug_assert_eq!(vault.status, VaultStatus::Draft);
    let mut header = state.header.get().clone();
    header.status_counts[VaultStatus::Draft.index()] =
        header.status_counts[VaultStatus::Draft.index()].saturating_sub(1);
    state.header.set(header);
    state.vaults_by_owner.remove(&(vault.owner, vault.id));
    forget_idempotency(state, vault.id);
    state.refund_accounts.remove(&vault.id);
    scheduler::unschedule_vault(state, vault.id);
    super::keys::forget_vault(state, vault.id);
    state.audit.clear(vault.id);
    state.vaults.remove(&vault.id);
}

/// `delete_vault`: owner deletes a vault in `Draft`..`Active` (no refund). A paid vault's
/// payload is purged at once and a tombstone stays; an unpaid draft is erased
/// ([`erase_draft`]) and its view is returned one last time.
pub fn delete_vault(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
) -> VaultResult<VaultView> {
    let now = rt.now();
    let caller = rt.caller();
    let mut vault = load_owned(state, &rt.caller(), vault_id, |s| {
        lifecycle::next_status(s, LifecycleEvent::OwnerDelete).is_ok()
    })?;
    if vault.status == VaultStatus::Draft {
        erase_draft(state, &vault);
        vault.name = String::new();
        vault.status = VaultStatus::Deleted;
        vault.status_changed_at = now;
        vault.deleted_at = Some(now);
        return Ok(view(state, &vault, VaultRole::Owner));
    }
    transition(state, &mut vault, LifecycleEvent::OwnerDelete, now, caller)?;
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::VaultDeleted,
        String::new(),
    );
    vault.deleted_at = Some(now);
    purge_to_tombstone(state, &mut vault);
    state.vaults.insert(vault.id, vault.clone());
    Ok(view(state, &vault, VaultRole::Owner))
}

/// Applies a confirmed creation payment: `Draft → NeedSetup`, `paid_at`, `expires_at`.
/// Used by the payment flow.
pub fn confirm_creation_payment(
    state: &mut State,
    vault_id: VaultId,
    now: u64,
    actor: Principal,
) -> VaultResult<VaultRecord> {
    let mut vault = state.vaults.get(&vault_id).ok_or(VaultError::NotFound)?;
    let validity = u64::from(state.config().durations.validity_days);
    transition(state, &mut vault, LifecycleEvent::CreationPaid, now, actor)?;
    vault.paid_at = Some(now);
    vault.expires_at = Some(now.saturating_add(validity * NANOS_PER_DAY));
    refresh_setup(state, &mut vault, now, actor);
    state.vaults.insert(vault.id, vault.clone());
    Ok(vault)
}

/// `quote_upgrade`: what moving the vault to `to` costs now (owner only, paid vaults).
pub fn quote_upgrade(
    state: &State,
    rt: &impl Runtime,
    vault_id: VaultId,
    to: PlanSelection,
) -> VaultResult<UpgradeQuote> {
    let vault = load_owned(state, &rt.caller(), vault_id, |s| {
        matches!(
            s,
            VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
        )
    })?;
    upgrade_quote(state, &vault, to, rt.now())
}

/// What moving `vault` to `to` costs at `now`: `InvalidInput` when `to` is not an upgrade.
/// The current plan is priced at today's prices too, so a price change is not billed.
pub fn upgrade_quote(
    state: &State,
    vault: &VaultRecord,
    to: PlanSelection,
    now: u64,
) -> VaultResult<UpgradeQuote> {
    if !pricing::is_upgrade(&vault.plan, &to) {
        return Err(VaultError::invalid(
            "plan",
            "an upgrade needs a higher tier or more slots, and never fewer",
        ));
    }
    let config = state.config();
    let new = pricing::quote(&config.pricing, &to, vault.owner_age)?;
    let old = pricing::quote(&config.pricing, &vault.plan, vault.owner_age)?;
    let validity = config.durations.validity_days;
    let remaining = pricing::remaining_days(now, vault.expires_at.unwrap_or(0), validity);
    let amount = pricing::prorate(old.total_e8s, new.total_e8s, remaining, validity)?;
    Ok(UpgradeQuote {
        vault_id: vault.id,
        from: vault.plan,
        to,
        old_price_e8s: old.total_e8s,
        new_price_e8s: new.total_e8s,
        remaining_days: remaining,
        amount_e8s: amount,
    })
}
