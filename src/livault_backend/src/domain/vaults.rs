//! Vault lifecycle operations: create, read, list, update, check in, finalize, delete.
//!
//! Each operation validates everything first and writes only when it will succeed, so an
//! error leaves state untouched. Status changes go through [`transition`], which applies the
//! lifecycle table, keeps the per-status counters and appends the audit event.

use candid::Principal;
use sha2::{Digest, Sha256};

use super::access::{self, Need};
use super::error::{VaultError, VaultResult};
use super::lifecycle::{self, LifecycleEvent};
use super::pricing;
use super::validation;
use super::vault_core::audit::{self, AuditAction};
use super::vault_core::{
    self, check_capacity, forget_idempotency, live_vault_count, load_owned, owner_change,
    refresh_setup, setup_missing, touch_owner, transition, view,
};
use crate::model::records::VaultRecord;
use crate::model::types::{
    CreateVaultArgs, Page, PageArgs, PlanSelection, UpdateVaultArgs, UpgradeQuote, VaultId,
    VaultRole, VaultStatus, VaultSummary, VaultView, NANOS_PER_DAY,
};
use crate::runtime::Runtime;
use crate::storage::{LoadedVault, State, StateAccess};

use super::pricing::upgrade_quote;
use super::vault_core::check_draft_audit_room;

fn idempotency_hash(caller: &Principal, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"livault-create-vault");
    h.update([caller.as_slice().len() as u8]);
    h.update(caller.as_slice());
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Vaults one principal may create per UTC day, deleted ones included (issue #12 item 2):
/// deleting an unpaid draft frees its place among the owner's live vaults at once, and each
/// create / delete cycle leaves its vault id's directory entry and, once `init_payment` ran,
/// a payment session (financial records are never erased), so without this bound one
/// principal could leave megabytes a day behind at its rate limit.
pub const MAX_VAULT_CREATIONS_PER_DAY: u64 = 20;

/// Keys the owner index's hash with 16 bytes of the subnet's randomness, once per canister
/// (run from a timer after install and after each upgrade until it succeeds): the salt the
/// index was created with comes from what a message cannot be told in advance (the time,
/// instruction counters, the cycle balance), which a determined caller could narrow down
/// and then grind principals that all land in one bucket. `Ok(Some(entries re-hashed))`
/// when it re-keyed now, `Ok(None)` when there was nothing to do; `Err` when the
/// randomness could not be had (nothing changed; the timer tries again).
pub async fn strengthen_owner_index(
    st: &impl StateAccess,
    rt: &impl Runtime,
) -> Result<Option<u64>, String> {
    if st.read(|s| s.vaults.owner_salt_is_random()) {
        return Ok(None);
    }
    let random = rt.random_bytes().await?;
    let salt: [u8; 16] = random[..16].try_into().expect("16 bytes");
    // Re-checked after the await: a run that finished meanwhile already keyed it.
    Ok(st.write(|s| {
        if s.vaults.owner_salt_is_random() {
            return None;
        }
        let entries = s.vaults.rekey_owner_index(salt);
        crate::events::emit(
            "owner_index.rekeyed",
            &[("entries", crate::events::Val::Raw(&entries))],
        );
        Some(entries)
    }))
}

/// Drops creation counters of days before `now`'s (see `DailyCounters::collect_before`:
/// all at once when every counter is past, else at most `max` from the front). Returns how
/// many went. Run by every scheduler tick.
pub fn collect_creation_counters(state: &mut State, now: u64, max: usize) -> usize {
    state
        .vault_creations
        .collect_before(now / NANOS_PER_DAY, max)
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
            .lookup(&hash)
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
    let today = now / NANOS_PER_DAY;
    let created = state.vault_creations.get(today, caller);
    if u64::from(created) >= MAX_VAULT_CREATIONS_PER_DAY {
        return Err(VaultError::PlanLimit {
            resource: "vault_creations_per_day".into(),
            limit: MAX_VAULT_CREATIONS_PER_DAY,
        });
    }
    check_capacity(state, rt.stable_memory_bytes(), 0)?;

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
    state.vault_creations.increment_from(today, caller, created);
    if let Some(hash) = idem {
        state.idempotency.bind_vault(hash, id);
    }
    vault_core::schedule_new_vault(state, &vault);
    let vault = state.insert_vault(vault);
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
        .vaults
        .owned_by(caller, from)
        .map(|id| (id, VaultRole::Owner))
        .peekable();
    let mut joined = state.members.vaults_of(caller, from).peekable();
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
                    .get(id, member_id)
                    .map_or(VaultRole::Heir, |m| match m.role {
                        crate::model::records::MemberRole::Heir => VaultRole::Heir,
                        crate::model::records::MemberRole::Witness => VaultRole::Witness,
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
            vault_core::schedule_unlock_check(state, &vault, now);
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
        vault_core::schedule_compaction(state, &vault, now);
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
    state.save_vault(&mut vault);
    Ok(view(state, &vault, VaultRole::Owner))
}

/// `check_in`: proof of life. Allowed from payment until the vault unlocks (and while paused).
pub fn check_in(state: &mut State, rt: &impl Runtime, vault_id: VaultId) -> VaultResult<VaultView> {
    let (now, caller) = (rt.now(), rt.caller());
    let allowed = |s| {
        matches!(
            s,
            VaultStatus::NeedSetup
                | VaultStatus::SetupComplete
                | VaultStatus::Active
                | VaultStatus::GraceMaster
        )
    };
    owner_change(state, caller, vault_id, allowed, |state, vault| {
        touch_owner(state, vault, now, caller);
        audit::append(
            state,
            vault,
            now,
            caller,
            AuditAction::CheckIn,
            String::new(),
        );
        Ok(view(state, vault, VaultRole::Owner))
    })
}

/// `finalize_setup`: `SetupComplete → Active`.
pub fn finalize_setup(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
) -> VaultResult<VaultView> {
    let (now, caller) = (rt.now(), rt.caller());
    let allowed = |s| s == VaultStatus::SetupComplete;
    owner_change(state, caller, vault_id, allowed, |state, vault| {
        // Conditions are kept in sync by refresh_setup; re-check to never activate an
        // incomplete vault.
        let missing = setup_missing(vault);
        if !missing.is_empty() {
            return Err(VaultError::invalid(
                "vault",
                format!("setup incomplete: {}", missing.join(", ")),
            ));
        }
        touch_owner(state, vault, now, caller);
        transition(state, vault, LifecycleEvent::Finalize, now, caller)?;
        vault.activated_at = Some(now);
        Ok(view(state, vault, VaultRole::Owner))
    })
}

/// Purges the payload (content: items, open uploads and their pages) of a vault, keeping its
/// metadata: `Unlockable → Expired`. The caller persists `vault` (the save moves the
/// storage totals).
pub fn purge_payload(state: &mut State, vault: &mut VaultRecord) {
    super::content::free_vault_content(state, vault.id);
    vault.item_count = 0;
    vault.storage_committed_bytes = 0;
    vault.storage_reserved_bytes = 0;
}

/// Removes everything but the tombstone: name, rules, members, invites, recovery code and
/// payload. Payment sessions and billing stay (books). The caller persists `vault`.
pub fn purge_to_tombstone(state: &mut State, vault: &mut VaultRecord) {
    super::invites::purge_vault(state, vault);
    purge_payload(state, vault);
    super::keys::forget_vault(state, vault.id);
    // A vault no member ever joined has none: skip the scan (see `invites::purge_vault`).
    if vault.membership.members_issued != 0 {
        state.members.remove_vault(vault.id);
    }
    vault.name = String::new();
    vault.unlock_rules = None;
    vault.heir_count = 0;
    vault.witness_joined = false;
    vault.item_count = 0;
    vault.storage_committed_bytes = 0;
    vault.storage_reserved_bytes = 0;
}

/// Erases an unpaid `Draft` (owner deletion, or unpaid past `draft_ttl_days`): its record,
/// audit log, queue entries, owner-index, idempotency, refund-account and vetKeys-counter
/// entries. Only its id
/// stays used (ids come from a counter and are never reused). Payment sessions stay: funds
/// paid to one later are refunded by an admin. A draft never held content, members,
/// invites or recovery codes, so nothing else refers to it (issue #12 M2).
pub fn erase_draft(state: &mut State, vault: &LoadedVault) {
    debug_assert_eq!(vault.status, VaultStatus::Draft);
    forget_idempotency(state, vault.id);
    state.payments.clear_refund_account(vault.id);
    vault_core::unschedule_vault(state, vault.id);
    super::keys::forget_vault(state, vault.id);
    state.audit.clear(vault.id);
    state.erase_vault(vault);
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
    state.save_vault(&mut vault);
    Ok(view(state, &vault, VaultRole::Owner))
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

#[cfg(test)]
mod owner_index_rekey_tests {
    use std::cell::RefCell;

    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;
    use crate::model::config::{Config, InitArgs};
    use crate::model::types::{PlanSelection, Tier};
    use crate::runtime::testing::{block_on, MockRuntime};

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    /// Each owner's vault list, read through the index.
    fn lists(s: &State, rt: &MockRuntime) -> Vec<Vec<VaultId>> {
        (1..=12)
            .map(|o| {
                let page = list_my_vaults(
                    s,
                    rt.as_caller(p(o)),
                    PageArgs {
                        start_after: None,
                        limit: Some(100),
                    },
                )
                .unwrap();
                page.items.iter().map(|v| v.id).collect()
            })
            .collect()
    }

    /// The install's (or upgrade's) timer keys the index from the subnet's randomness once:
    /// every owner's list reads the same before and after, the walk holds, an event says
    /// how many entries moved, and a second run does nothing.
    #[test]
    fn the_owner_index_is_rekeyed_once_from_the_subnets_randomness() {
        let mut s = State::open(DefaultMemoryImpl::default());
        s.set_config(Config::from_init(InitArgs::default(), p(200)).unwrap());
        s.stamp_layout();
        let rt = MockRuntime::new(1_000, p(200));
        for o in 1..=12u8 {
            for _ in 0..u32::from(o % 4) + 1 {
                let args = CreateVaultArgs {
                    name: "v".into(),
                    plan: PlanSelection {
                        tier: Tier::Standard,
                        heir_slots: 1,
                        witness_slot: false,
                    },
                    owner_age: 40,
                    idempotency_key: None,
                };
                create_vault(&mut s, rt.as_caller(p(o)), args).unwrap();
            }
        }
        let before = lists(&s, &rt);
        let total: usize = before.iter().map(Vec::len).sum();
        assert_eq!(total, 30);
        assert!(!s.vaults.owner_salt_is_random());

        let st = RefCell::new(s);
        crate::events::take_native();
        assert_eq!(
            block_on(strengthen_owner_index(&st, &rt)),
            Ok(Some(30)),
            "re-keyed now"
        );
        assert_eq!(
            crate::events::take_native(),
            vec!["event=owner_index.rekeyed entries=30".to_string()]
        );
        let s = st.borrow();
        assert!(s.vaults.owner_salt_is_random());
        assert_eq!(lists(&s, &rt), before);
        s.check_invariants().unwrap();
        drop(s);
        assert_eq!(block_on(strengthen_owner_index(&st, &rt)), Ok(None));
        assert!(crate::events::take_native().is_empty());
    }
}
