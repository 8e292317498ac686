//! Native tests of invites, members, unlock and the recovery code (domain level, MockRuntime
//! over in-memory stable structures), including a property test over random operation
//! sequences with upgrades (state re-opened over the same memory).

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;

use super::error::VaultError;
use super::invites;
use super::lifecycle::LifecycleEvent;
use super::recovery;
use super::unlock;
use super::vault_core;
use super::vaults;
use crate::model::config::{Config, InitArgs};
use crate::model::member_types::{GenerateInviteArgs, InviteCreated, InviteStatus, Relation};
use crate::model::records::{InviteState, MemberRole};
use crate::model::types::{
    CreateVaultArgs, PageArgs, PlanSelection, Tier, UnlockRules, UpdateVaultArgs, VaultId,
    VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC,
};
use crate::runtime::testing::{block_on, MockRuntime};
use crate::runtime::Runtime;
use crate::storage::State;

const T0: u64 = 1_800_000_000 * NANOS_PER_SEC;
const HOUR: u64 = 3600 * NANOS_PER_SEC;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}

fn owner() -> Principal {
    p(1)
}

struct Fx {
    memory: DefaultMemoryImpl,
    st: RefCell<State>,
    rt: MockRuntime,
    vault: VaultId,
}

fn rules(required_heirs: u8, required_witness: bool) -> UnlockRules {
    UnlockRules {
        unlock_after: None,
        inactivity_days: Some(30),
        request_wait_days: 7,
        required_heirs,
        required_witness,
    }
}

impl Fx {
    /// A paid vault (NeedSetup) with rules: 2 heir slots + witness slot, 30 days of
    /// inactivity, 7 days of request wait, quorum 2 heirs.
    fn new() -> Fx {
        Fx::with_rules(rules(2, false))
    }

    fn with_rules(r: UnlockRules) -> Fx {
        let memory = DefaultMemoryImpl::default();
        let mut s = State::open(memory.clone());
        s.set_config(Config::from_init(InitArgs::default(), p(200)).unwrap());
        s.stamp_layout();
        let rt = MockRuntime::new(T0, owner());
        let v = vaults::create_vault(
            &mut s,
            &rt,
            CreateVaultArgs {
                name: "Family".into(),
                plan: PlanSelection {
                    tier: Tier::Standard,
                    heir_slots: 2,
                    witness_slot: true,
                },
                owner_age: 50,
                idempotency_key: None,
            },
        )
        .unwrap();
        vault_core::confirm_creation_payment(&mut s, v.id, T0, owner()).unwrap();
        vaults::update_vault(
            &mut s,
            &rt,
            UpdateVaultArgs {
                vault_id: v.id,
                name: None,
                unlock_rules: Some(r),
                post_unlock_days: Some(100),
                audit_retention_days: None,
            },
        )
        .unwrap();
        Fx {
            memory,
            st: RefCell::new(s),
            rt,
            vault: v.id,
        }
    }

    fn as_(&self, who: Principal) -> &MockRuntime {
        self.rt.as_caller(who)
    }

    fn invite(&self, role: MemberRole) -> Result<InviteCreated, VaultError> {
        self.invite_flags(role, false, false)
    }

    fn invite_flags(
        &self,
        role: MemberRole,
        trigger: bool,
        approver: bool,
    ) -> Result<InviteCreated, VaultError> {
        self.as_(owner());
        block_on(invites::generate_invite(
            &self.st,
            &self.rt,
            GenerateInviteArgs {
                vault_id: self.vault,
                role,
                name: "Ann".into(),
                relation: Relation::Daughter,
                email_hint: Some("a***@example.org".into()),
                can_trigger_unlock: trigger,
                count_as_approver: approver,
            },
        ))
    }

    fn claim(&self, who: Principal, token: &str) -> Result<u32, VaultError> {
        let rt = self.as_(who);
        invites::claim_invite(&mut self.st.borrow_mut(), rt, token).map(|m| m.member_id)
    }

    fn vault(&self) -> crate::model::records::VaultRecord {
        self.st.borrow().vaults.get(&self.vault).unwrap()
    }

    /// The vault, loaded to be changed and saved.
    fn loaded(&self) -> crate::storage::LoadedVault {
        self.st.borrow().vaults.load(self.vault).unwrap()
    }

    /// Sets the content count directly (content is another feature) and refreshes setup.
    fn set_items(&self, n: u32) {
        let mut s = self.st.borrow_mut();
        let mut v = s.vaults.load(self.vault).unwrap();
        v.item_count = n;
        vault_core::refresh_setup(&mut s, &mut v, self.rt.now(), owner());
        s.save_vault(&mut v);
    }

    fn finalize(&self) {
        let rt = self.as_(owner());
        vaults::finalize_setup(&mut self.st.borrow_mut(), rt, self.vault).unwrap();
    }

    fn check_in(&self) {
        let rt = self.as_(owner());
        vaults::check_in(&mut self.st.borrow_mut(), rt, self.vault).unwrap();
    }

    fn trigger(&self, who: Principal) -> Result<unlock_status::S, VaultError> {
        let rt = self.as_(who);
        unlock::trigger_unlock(&mut self.st.borrow_mut(), rt, self.vault)
    }

    fn approve(&self, who: Principal) -> Result<unlock_status::S, VaultError> {
        let rt = self.as_(who);
        unlock::approve_unlock(&mut self.st.borrow_mut(), rt, self.vault)
    }

    /// Two heirs (p(10), p(11)) joined, content present, vault Active.
    fn active_with_two_heirs(&self) {
        let a = self.invite(MemberRole::Heir).unwrap();
        let b = self.invite(MemberRole::Heir).unwrap();
        self.claim(p(10), &a.token).unwrap();
        self.claim(p(11), &b.token).unwrap();
        self.set_items(1);
        assert_eq!(self.vault().status, VaultStatus::SetupComplete);
        self.finalize();
        assert_eq!(self.vault().status, VaultStatus::Active);
    }

    fn audit_codes(&self) -> Vec<(Principal, String)> {
        let s = self.st.borrow();
        s.audit
            .events_from(self.vault, 0)
            .map(|e| (e.actor, e.action))
            .collect()
    }
}

mod unlock_status {
    pub type S = crate::model::member_types::UnlockStatus;
}

/// Everything a rejected call must leave untouched.
fn snapshot(s: &State) -> String {
    let mut out = String::new();
    for e in s.vaults.iter() {
        out += &format!("{e:?}");
    }
    for e in s.members.iter() {
        out += &format!("{e:?}");
    }
    for e in s.members.index_entries() {
        out += &format!("{e:?}");
    }
    for e in s.vaults.owner_index() {
        out += &format!("{e:?}");
    }
    for e in s.invites.iter() {
        out += &format!("{e:?}");
    }
    for e in s.invites.token_entries() {
        out += &format!("{e:?}");
    }
    for e in s.recovery_codes.iter() {
        out += &format!("{e:?}");
    }
    out += &format!("{:?}{}", s.header.get(), s.audit.event_count());
    out
}

// ---------------------------------------------------------------- invites

#[test]
fn generate_invite_returns_a_secret_stores_only_its_hash() {
    let fx = Fx::new();
    let inv = fx.invite(MemberRole::Heir).unwrap();
    assert!(inv.token.starts_with("lvi1_") && inv.token.len() == 69);
    assert_eq!(inv.share_index, 1);
    assert_eq!(inv.expires_at, T0 + 86_400 * NANOS_PER_SEC);
    let s = fx.st.borrow();
    let rec = s.invites.get(fx.vault, inv.invite_id).unwrap();
    assert_eq!(rec.token_hash, super::tokens::hash(&inv.token));
    assert_eq!(s.invites.find_by_token(&rec.token_hash), Some(rec.clone()));
    // The token text itself is stored nowhere in the invite record.
    assert!(!format!("{rec:?}").contains(&inv.token[5..]));
    assert!(
        rec.can_trigger_unlock && rec.count_as_approver,
        "heirs always may"
    );
}

#[test]
fn caps_count_joined_members_and_open_invites() {
    let fx = Fx::new();
    let a = fx.invite(MemberRole::Heir).unwrap();
    fx.invite(MemberRole::Heir).unwrap();
    let before = snapshot(&fx.st.borrow());
    assert_eq!(
        fx.invite(MemberRole::Heir),
        Err(VaultError::PlanLimit {
            resource: "heir_slots".into(),
            limit: 2
        })
    );
    assert_eq!(snapshot(&fx.st.borrow()), before);
    // Claiming one keeps the count (member instead of open invite).
    fx.claim(p(10), &a.token).unwrap();
    assert!(matches!(
        fx.invite(MemberRole::Heir),
        Err(VaultError::PlanLimit { .. })
    ));
    // One witness, only one.
    fx.invite(MemberRole::Witness).unwrap();
    assert_eq!(
        fx.invite(MemberRole::Witness),
        Err(VaultError::PlanLimit {
            resource: "witness_slot".into(),
            limit: 1
        })
    );
    // After 24 h the open invites expire and free their slots.
    fx.rt.advance(86_400 * NANOS_PER_SEC);
    fx.invite(MemberRole::Heir).unwrap();
    fx.invite(MemberRole::Witness).unwrap();
}

#[test]
fn witness_needs_its_slot_and_draft_vaults_issue_nothing() {
    let fx = Fx::new();
    let rt = fx.as_(owner());
    let draft = vaults::create_vault(
        &mut fx.st.borrow_mut(),
        rt,
        CreateVaultArgs {
            name: "NoWitness".into(),
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 1,
                witness_slot: false,
            },
            owner_age: 30,
            idempotency_key: None,
        },
    )
    .unwrap();
    let args = |role| GenerateInviteArgs {
        vault_id: draft.id,
        role,
        name: "W".into(),
        relation: Relation::Lawyer,
        email_hint: None,
        can_trigger_unlock: true,
        count_as_approver: true,
    };
    assert_eq!(
        block_on(invites::generate_invite(&fx.st, rt, args(MemberRole::Heir))),
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
    vault_core::confirm_creation_payment(&mut fx.st.borrow_mut(), draft.id, T0, owner()).unwrap();
    assert_eq!(
        block_on(invites::generate_invite(
            &fx.st,
            rt,
            args(MemberRole::Witness)
        )),
        Err(VaultError::PlanLimit {
            resource: "witness_slot".into(),
            limit: 0
        })
    );
    // Not the owner: NotAuthorized; bad input: InvalidInput.
    let rt = fx.as_(p(9));
    assert_eq!(
        block_on(invites::generate_invite(&fx.st, rt, args(MemberRole::Heir))),
        Err(VaultError::NotAuthorized)
    );
    let rt = fx.as_(owner());
    let mut bad = args(MemberRole::Heir);
    bad.name = "x".repeat(65);
    assert!(matches!(
        block_on(invites::generate_invite(&fx.st, rt, bad)),
        Err(VaultError::InvalidInput { .. })
    ));
}

#[test]
fn claim_joins_once_and_repeats_idempotently() {
    let fx = Fx::new();
    let inv = fx.invite(MemberRole::Heir).unwrap();
    let m = fx.claim(p(10), &inv.token).unwrap();
    assert_eq!(fx.vault().heir_count, 1);
    assert_eq!(fx.claim(p(10), &inv.token), Ok(m));
    assert_eq!(fx.vault().heir_count, 1);
    let s = fx.st.borrow();
    assert_eq!(s.members.member_id_of(p(10), fx.vault), Some(m));
    assert_eq!(s.members.get(fx.vault, m).unwrap().share_index, 1);
    let info = invites::get_invite_info(&s, fx.rt.now(), &inv.token).unwrap();
    assert_eq!(info.status, InviteStatus::Claimed);
    assert_eq!(info.vault_name, "Family");
    assert_eq!(info.inviter, owner());
}

#[test]
fn every_claim_error_is_typed_and_changes_nothing() {
    let fx = Fx::new();
    let claimed = fx.invite(MemberRole::Heir).unwrap();
    fx.claim(p(10), &claimed.token).unwrap();
    let open = fx.invite(MemberRole::Heir).unwrap();
    let revoked = fx.invite(MemberRole::Witness).unwrap();
    {
        let rt = fx.as_(owner());
        invites::revoke_invite(&mut fx.st.borrow_mut(), rt, fx.vault, revoked.invite_id).unwrap();
    }
    let unknown = super::tokens::format(super::tokens::INVITE_PREFIX, &[0xee; 32]);
    let cases: Vec<(Principal, String, VaultError)> = vec![
        (
            p(11),
            claimed.token.clone(),
            VaultError::TokenAlreadyClaimed,
        ),
        (p(11), revoked.token.clone(), VaultError::TokenRevoked),
        (p(11), unknown, VaultError::TokenInvalid),
        (p(11), "lvi1_zz".into(), VaultError::TokenInvalid),
        (owner(), open.token.clone(), VaultError::NotAuthorized),
        (
            Principal::anonymous(),
            open.token.clone(),
            VaultError::NotAuthorized,
        ),
        (
            p(10),
            open.token.clone(),
            VaultError::invalid("token", "the caller is already a member of this vault"),
        ),
    ];
    for (who, token, err) in cases {
        let before = snapshot(&fx.st.borrow());
        assert_eq!(fx.claim(who, &token), Err(err.clone()), "{who} {err:?}");
        assert_eq!(snapshot(&fx.st.borrow()), before, "{err:?} changed state");
    }
    fx.rt.advance(86_400 * NANOS_PER_SEC);
    let before = snapshot(&fx.st.borrow());
    assert_eq!(fx.claim(p(11), &open.token), Err(VaultError::TokenExpired));
    assert_eq!(snapshot(&fx.st.borrow()), before);
}

#[test]
fn share_indices_are_unique_and_never_reused() {
    let fx = Fx::new();
    let a = fx.invite(MemberRole::Heir).unwrap();
    let rt = fx.as_(owner());
    invites::revoke_invite(&mut fx.st.borrow_mut(), rt, fx.vault, a.invite_id).unwrap();
    let b = fx.invite(MemberRole::Heir).unwrap();
    assert_eq!(b.share_index, 2, "a new invite gets a new index");
    // Regenerating the revoked invite keeps its index and metadata, with a new token and id.
    let rt = fx.as_(owner());
    let r = block_on(invites::regenerate_invite(
        &fx.st,
        rt,
        fx.vault,
        a.invite_id,
    ))
    .unwrap();
    assert_eq!(r.share_index, 1);
    assert_ne!(r.invite_id, a.invite_id);
    assert_ne!(r.token, a.token);
    // Once only; open or claimed invites cannot be regenerated.
    assert!(matches!(
        block_on(invites::regenerate_invite(
            &fx.st,
            rt,
            fx.vault,
            a.invite_id
        )),
        Err(VaultError::InvalidInput { .. })
    ));
    assert!(matches!(
        block_on(invites::regenerate_invite(
            &fx.st,
            rt,
            fx.vault,
            b.invite_id
        )),
        Err(VaultError::InvalidInput { .. })
    ));
    // The old token stays revoked; the new one works.
    assert_eq!(fx.claim(p(10), &a.token), Err(VaultError::TokenRevoked));
    fx.claim(p(10), &r.token).unwrap();
    let w = fx.invite(MemberRole::Witness).unwrap();
    assert_eq!(w.share_index, 3);
    let page = invites::list_invites(
        &fx.st.borrow(),
        fx.as_(owner()),
        fx.vault,
        PageArgs::default(),
    )
    .unwrap();
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.items[0].replaced_by, Some(r.invite_id));
}

#[test]
fn remove_member_frees_the_slot_and_drops_approvals() {
    let fx = Fx::new();
    fx.active_with_two_heirs();
    fx.rt.advance(31 * NANOS_PER_DAY);
    let st = fx.approve(p(10)).unwrap();
    assert_eq!(st.heir_approvals, 1);
    let rt = fx.as_(owner());
    let members =
        invites::list_members(&fx.st.borrow(), rt, fx.vault, PageArgs::default()).unwrap();
    let m10 = members
        .items
        .iter()
        .find(|m| m.member_principal == Some(p(10)))
        .unwrap()
        .member_id;
    // Members see the list without principals.
    let seen = invites::list_members(
        &fx.st.borrow(),
        fx.as_(p(11)),
        fx.vault,
        PageArgs::default(),
    )
    .unwrap();
    assert!(seen
        .items
        .iter()
        .all(|m| m.member_principal.is_none() && m.email_hint.is_none()));
    let rt = fx.as_(owner());
    invites::remove_member(&mut fx.st.borrow_mut(), rt, fx.vault, m10).unwrap();
    let v = fx.vault();
    assert_eq!(v.heir_count, 1);
    assert!(v.membership.approvals.is_empty());
    assert!(!fx.st.borrow().members.is_member(p(10), fx.vault));
    fx.invite(MemberRole::Heir).unwrap();
}

#[test]
fn removing_the_last_heir_returns_to_need_setup() {
    let fx = Fx::new();
    let a = fx.invite(MemberRole::Heir).unwrap();
    let m = fx.claim(p(10), &a.token).unwrap();
    fx.set_items(1);
    assert_eq!(fx.vault().status, VaultStatus::SetupComplete);
    let rt = fx.as_(owner());
    invites::remove_member(&mut fx.st.borrow_mut(), rt, fx.vault, m).unwrap();
    assert_eq!(fx.vault().status, VaultStatus::NeedSetup);
    assert_eq!(fx.vault().heir_count, 0);
}

// ---------------------------------------------------------------- unlock

#[test]
fn journey_inactivity_request_wait_approvals_unlock() {
    let fx = Fx::new();
    fx.active_with_two_heirs();
    // Before the gate: approving is refused with when it opens.
    let opens = T0 + 30 * NANOS_PER_DAY;
    assert_eq!(
        fx.approve(p(10)).unwrap_err(),
        VaultError::UnlockConditionsNotMet {
            reason: vault_core::time_gate(&fx.vault(), fx.rt.now()).reason,
            time_gate_opens_at: Some(opens),
        }
    );
    // A heir opens a request (success); it waits 7 days.
    let st = fx.trigger(p(11)).unwrap();
    assert!(st.request.is_some() && !st.time_gate.holds);
    assert_eq!(st.time_gate.opens_at, Some(fx.rt.now() + 7 * NANOS_PER_DAY));
    fx.rt.advance(7 * NANOS_PER_DAY);
    let st = fx.approve(p(10)).unwrap();
    assert!(st.time_gate.holds && !st.quorum_met);
    assert_eq!((st.heir_approvals, st.heirs_required), (1, 2));
    // Idempotent.
    assert_eq!(fx.approve(p(10)).unwrap().heir_approvals, 1);
    let st = fx.approve(p(11)).unwrap();
    assert_eq!(st.status, VaultStatus::Unlockable);
    let v = fx.vault();
    assert_eq!(v.unlocked_at, Some(fx.rt.now()));
    assert_eq!(v.access_until, Some(fx.rt.now() + 100 * NANOS_PER_DAY));
    assert_eq!(fx.approve(p(10)), Err(VaultError::AlreadyUnlocked));
    assert!(fx
        .audit_codes()
        .iter()
        .any(|(a, c)| *a == p(11) && c == "unlock.completed"));
}

#[test]
fn owner_activity_cancels_the_request_and_clears_approvals() {
    let fx = Fx::new();
    fx.active_with_two_heirs();
    fx.trigger(p(10)).unwrap();
    fx.rt.advance(8 * NANOS_PER_DAY);
    fx.approve(p(10)).unwrap();
    assert_eq!(fx.vault().membership.approvals.len(), 1);
    fx.check_in();
    let v = fx.vault();
    assert!(v.membership.unlock_request.is_none());
    assert!(v.membership.approvals.is_empty());
    assert!(fx
        .audit_codes()
        .iter()
        .any(|(a, c)| *a == owner() && c == "unlock.request_cancelled"));
    // The gate is closed again.
    assert!(matches!(
        fx.approve(p(11)),
        Err(VaultError::UnlockConditionsNotMet { .. })
    ));
}

#[test]
fn quorum_not_met_is_logged_and_the_sixth_failure_is_rate_limited() {
    let fx = Fx::new();
    fx.active_with_two_heirs();
    fx.trigger(p(10)).unwrap();
    fx.rt.advance(8 * NANOS_PER_DAY);
    fx.approve(p(10)).unwrap();
    for i in 0..5 {
        let audit_before = fx.audit_codes().len();
        assert_eq!(
            fx.trigger(p(10)),
            Err(VaultError::QuorumNotMet { have: 1, need: 2 }),
            "attempt {i}"
        );
        let codes = fx.audit_codes();
        assert_eq!(codes.len(), audit_before + 1);
        assert_eq!(
            codes.last().unwrap(),
            &(p(10), "unlock.attempt_failed".to_string())
        );
        fx.rt.advance(60 * NANOS_PER_SEC);
    }
    let before = snapshot(&fx.st.borrow());
    match fx.trigger(p(10)) {
        Err(VaultError::RateLimited { retry_after_secs }) => {
            assert_eq!(retry_after_secs, 3600 - 5 * 60)
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(
        snapshot(&fx.st.borrow()),
        before,
        "RateLimited changes nothing"
    );
    // Another heir is not limited; after an hour the first one may try again.
    assert!(fx.approve(p(11)).is_ok());
}

#[test]
fn rate_limit_window_slides() {
    let fx = Fx::new();
    fx.active_with_two_heirs();
    for _ in 0..5 {
        assert!(fx.approve(p(10)).is_err());
    }
    assert!(matches!(
        fx.approve(p(10)),
        Err(VaultError::RateLimited { .. })
    ));
    fx.rt.advance(HOUR);
    assert!(matches!(
        fx.approve(p(10)),
        Err(VaultError::UnlockConditionsNotMet { .. })
    ));
}

#[test]
fn roles_for_unlock_calls() {
    let fx = Fx::with_rules(rules(1, true));
    let a = fx.invite(MemberRole::Heir).unwrap();
    let w = fx.invite_flags(MemberRole::Witness, false, true).unwrap();
    fx.claim(p(10), &a.token).unwrap();
    fx.claim(p(20), &w.token).unwrap();
    fx.set_items(1);
    fx.finalize();
    // The witness cannot trigger without the flag; owner and outsiders neither.
    assert_eq!(fx.trigger(p(20)), Err(VaultError::NotAuthorized));
    assert_eq!(fx.trigger(owner()), Err(VaultError::NotAuthorized));
    assert_eq!(fx.trigger(p(99)), Err(VaultError::NotAuthorized));
    assert_eq!(fx.approve(owner()), Err(VaultError::NotAuthorized));
    fx.rt.advance(31 * NANOS_PER_DAY);
    // Heir approves: the witness is still required.
    let st = fx.approve(p(10)).unwrap();
    assert!(!st.quorum_met && st.witness_required && !st.witness_approved);
    let st = fx.approve(p(20)).unwrap();
    assert_eq!(st.status, VaultStatus::Unlockable);
    // Owner and members see the status.
    for who in [owner(), p(10), p(20)] {
        let s = unlock::get_unlock_status(&fx.st.borrow(), fx.as_(who), fx.vault).unwrap();
        assert_eq!(s.status, VaultStatus::Unlockable);
    }
    assert_eq!(
        unlock::get_unlock_status(&fx.st.borrow(), fx.as_(p(99)), fx.vault),
        Err(VaultError::NotAuthorized)
    );
}

#[test]
fn pure_time_lock_unlocks_on_a_tick_at_its_date() {
    let date = T0 + 100 * NANOS_PER_DAY;
    let fx = Fx::with_rules(UnlockRules {
        unlock_after: Some(date),
        inactivity_days: None,
        request_wait_days: 7,
        required_heirs: 0,
        required_witness: false,
    });
    let a = fx.invite(MemberRole::Heir).unwrap();
    fx.claim(p(10), &a.token).unwrap();
    fx.set_items(1);
    fx.finalize();
    fx.rt.now.set(date - 1);
    let eval = unlock::evaluate_unlock(&fx.st.borrow(), &fx.vault(), date - 1);
    assert!(eval.quorum_met && !eval.time_gate.holds && eval.event.is_none());
    assert_eq!(eval.time_gate.opens_at, Some(date));
    let v = fx.loaded();
    assert_eq!(
        unlock::unlock_if_due(&mut fx.st.borrow_mut(), v, date - 1, p(200))
            .map(|e| e.event.is_some()),
        Ok(false)
    );
    let eval = unlock::evaluate_unlock(&fx.st.borrow(), &fx.vault(), date);
    assert_eq!(eval.event, Some(LifecycleEvent::UnlockRulesMet));
    let v = fx.loaded();
    assert_eq!(
        unlock::unlock_if_due(&mut fx.st.borrow_mut(), v, date, p(200)).map(|e| e.event.is_some()),
        Ok(true)
    );
    assert_eq!(fx.vault().status, VaultStatus::Unlockable);
    assert_eq!(fx.vault().unlocked_at, Some(date));
    // A second tick does nothing.
    let v = fx.loaded();
    assert_eq!(
        unlock::unlock_if_due(&mut fx.st.borrow_mut(), v, date + 1, p(200))
            .map(|e| e.event.is_some()),
        Ok(false)
    );
}

#[test]
fn grace_heir_needs_only_the_quorum() {
    let fx = Fx::new();
    fx.active_with_two_heirs();
    {
        let mut s = fx.st.borrow_mut();
        let mut v = s.vaults.load(fx.vault).unwrap();
        let now = fx.rt.now();
        vault_core::transition(&mut s, &mut v, LifecycleEvent::ValidityEnded, now, p(200)).unwrap();
        vault_core::transition(
            &mut s,
            &mut v,
            LifecycleEvent::GraceMasterElapsed,
            now,
            p(200),
        )
        .unwrap();
        s.save_vault(&mut v);
    }
    fx.approve(p(10)).unwrap();
    let st = fx.approve(p(11)).unwrap();
    assert_eq!(st.status, VaultStatus::Unlockable);
}

// ---------------------------------------------------------------- recovery code

fn issue(fx: &Fx, bypass: bool) -> Result<String, VaultError> {
    let rt = fx.as_(owner());
    block_on(recovery::issue_recovery_code(&fx.st, rt, fx.vault, bypass)).map(|r| r.code)
}

#[test]
fn recovery_code_transfers_ownership_before_any_member() {
    let fx = Fx::new();
    let code = issue(&fx, false).unwrap();
    assert!(code.starts_with("lvr1_"));
    let rt = fx.as_(p(50));
    let v = recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, &code).unwrap();
    assert_eq!(v.owner, p(50));
    let s = fx.st.borrow();
    assert!(s.vaults.owned_by(p(50), 0).any(|id| id == fx.vault));
    assert!(!s.vaults.owned_by(owner(), 0).any(|id| id == fx.vault));
    drop(s);
    // Used up, and forgotten: no record stays behind.
    let rt = fx.as_(p(51));
    assert_eq!(
        recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, &code),
        Err(VaultError::TokenInvalid)
    );
    assert!(fx.st.borrow().recovery_codes.is_empty());
    // The old owner lost access.
    assert_eq!(
        vaults::get_vault(&fx.st.borrow(), fx.as_(owner()), fx.vault),
        Err(VaultError::NotAuthorized)
    );
}

#[test]
fn recovery_code_is_revoked_when_the_first_member_joins() {
    let fx = Fx::new();
    let code = issue(&fx, false).unwrap();
    let a = fx.invite(MemberRole::Heir).unwrap();
    fx.claim(p(10), &a.token).unwrap();
    let before = snapshot(&fx.st.borrow());
    let rt = fx.as_(p(50));
    assert_eq!(
        recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, &code),
        Err(VaultError::RecoveryBlocked)
    );
    assert_eq!(snapshot(&fx.st.borrow()), before);
    assert_eq!(issue(&fx, true), Err(VaultError::RecoveryBlocked));
    let rt = fx.as_(p(50));
    assert_eq!(
        recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, "lvr1_nope"),
        Err(VaultError::TokenInvalid)
    );
}

#[test]
fn bypass_code_satisfies_the_quorum_but_never_the_time_gate() {
    let fx = Fx::new();
    let code = issue(&fx, true).unwrap();
    fx.active_with_two_heirs();
    // Ownership transfer is blocked now that members joined.
    let rt = fx.as_(p(50));
    assert_eq!(
        recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, &code),
        Err(VaultError::RecoveryBlocked)
    );
    let rt = fx.as_(p(10));
    assert!(matches!(
        unlock::approve_unlock_with_recovery(&mut fx.st.borrow_mut(), rt, fx.vault, &code),
        Err(VaultError::UnlockConditionsNotMet { .. })
    ));
    let wrong = super::tokens::format(super::tokens::RECOVERY_PREFIX, &[7; 32]);
    assert_eq!(
        unlock::approve_unlock_with_recovery(&mut fx.st.borrow_mut(), rt, fx.vault, &wrong),
        Err(VaultError::TokenInvalid)
    );
    fx.rt.advance(31 * NANOS_PER_DAY);
    let st =
        unlock::approve_unlock_with_recovery(&mut fx.st.borrow_mut(), rt, fx.vault, &code).unwrap();
    assert_eq!(st.status, VaultStatus::Unlockable);
    assert_eq!(st.heir_approvals, 0, "no heir approval was needed");
}

#[test]
fn revoke_recovery_code_blocks_it() {
    let fx = Fx::new();
    let code = issue(&fx, false).unwrap();
    let rt = fx.as_(owner());
    recovery::revoke_recovery_code(&mut fx.st.borrow_mut(), rt, fx.vault).unwrap();
    assert_eq!(
        recovery::revoke_recovery_code(&mut fx.st.borrow_mut(), rt, fx.vault),
        Err(VaultError::NotFound)
    );
    // A code the owner revoked is forgotten: it reads as an invalid code.
    let rt = fx.as_(p(50));
    assert_eq!(
        recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, &code),
        Err(VaultError::TokenInvalid)
    );
    // A new code replaces (and forgets) the old one: one record per vault, however many
    // codes are issued.
    let c1 = issue(&fx, false).unwrap();
    let c2 = issue(&fx, false).unwrap();
    assert_eq!(fx.st.borrow().recovery_codes.len(), 1);
    let rt = fx.as_(p(50));
    assert_eq!(
        recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, &c1),
        Err(VaultError::TokenInvalid)
    );
    assert!(recovery::use_recovery_code(&mut fx.st.borrow_mut(), rt, &c2).is_ok());
}

// ---------------------------------------------------------------- property test

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Invite(bool),
        Claim { invite: usize, who: u8 },
        Revoke(usize),
        Regenerate(usize),
        Remove(usize),
        Trigger(u8),
        Approve(u8),
        CheckIn,
        Advance(u64),
        SetItems(u32),
        Finalize,
        Upgrade,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<bool>().prop_map(Op::Invite),
            4 => (0usize..8, 10u8..16).prop_map(|(invite, who)| Op::Claim { invite, who }),
            1 => (0usize..8).prop_map(Op::Revoke),
            1 => (0usize..8).prop_map(Op::Regenerate),
            1 => (0usize..4).prop_map(Op::Remove),
            2 => (10u8..16).prop_map(Op::Trigger),
            3 => (10u8..16).prop_map(Op::Approve),
            1 => Just(Op::CheckIn),
            3 => prop_oneof![Just(HOUR), Just(NANOS_PER_DAY), Just(8 * NANOS_PER_DAY), Just(31 * NANOS_PER_DAY)]
                .prop_map(Op::Advance),
            1 => (0u32..2).prop_map(Op::SetItems),
            1 => Just(Op::Finalize),
            1 => Just(Op::Upgrade),
        ]
    }

    fn check_invariants(fx: &Fx, unlock_ok_at: &mut Option<bool>) {
        let s = fx.st.borrow();
        let v = s.vaults.get(&fx.vault).unwrap();
        let members: Vec<_> = s.members.of_vault(fx.vault, 0).collect();
        let heirs = members
            .iter()
            .filter(|m| m.role == MemberRole::Heir)
            .count();
        let witnesses = members.len() - heirs;
        // Counters match the members; members within caps.
        assert_eq!(heirs as u32, v.heir_count);
        assert_eq!(witnesses == 1, v.witness_joined);
        assert!(heirs <= usize::from(v.plan.heir_slots) && witnesses <= 1);
        // Plus open invites within caps too.
        let now = fx.rt.now();
        let open_heirs = v
            .membership
            .open_invites
            .iter()
            .filter(|o| o.expires_at > now && o.role == MemberRole::Heir)
            .count();
        assert!(heirs + open_heirs <= usize::from(v.plan.heir_slots));
        // Unique share indices among members and live (not replaced) invites.
        let mut seen = std::collections::BTreeSet::new();
        for i in s.invites.of_vault(fx.vault, 0) {
            if i.replaced_by.is_none() {
                assert!(
                    seen.insert(i.share_index),
                    "share index {} twice",
                    i.share_index
                );
            }
            // Index entries point back.
            assert_eq!(
                s.invites
                    .find_by_token(&i.token_hash)
                    .map(|f| (f.vault_id, f.invite_id)),
                Some((fx.vault, i.invite_id))
            );
            if let InviteState::Claimed { by, member_id, .. } = i.state {
                if let Some(m) = s.members.get(fx.vault, member_id) {
                    assert_eq!(m.principal, by);
                    assert_eq!(m.share_index, i.share_index);
                }
            }
        }
        for m in &members {
            assert_eq!(
                s.members.member_id_of(m.principal, fx.vault),
                Some(m.member_id)
            );
            assert_ne!(m.principal, v.owner);
        }
        // Approvals only from current members.
        for a in &v.membership.approvals {
            assert!(members.iter().any(|m| m.member_id == a.member_id));
        }
        // Unlockable only with gate and quorum at the transition (checked when it happened).
        if v.status == VaultStatus::Unlockable {
            assert_eq!(*unlock_ok_at, Some(true), "Unlockable without its rules");
        }
        assert!(super::vault_core::audit::verify_chain(&s, &v));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn random_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
            let mut fx = Fx::new();
            let mut tokens: Vec<(u64, String)> = Vec::new();
            // Whether the rules held just before the transition to Unlockable.
            let mut unlock_ok: Option<bool> = None;
            for op in ops {
                let before = fx.vault();
                match op {
                    Op::Invite(heir) => {
                        let role = if heir { MemberRole::Heir } else { MemberRole::Witness };
                        if let Ok(c) = fx.invite_flags(role, true, true) {
                            tokens.push((c.invite_id, c.token));
                        }
                    }
                    Op::Claim { invite, who } => {
                        if let Some((_, t)) = tokens.get(invite) {
                            let _ = fx.claim(p(who), t);
                        }
                    }
                    Op::Revoke(i) => {
                        if let Some((id, _)) = tokens.get(i) {
                            let rt = fx.as_(owner());
                            let _ = invites::revoke_invite(&mut fx.st.borrow_mut(), rt, fx.vault, *id);
                        }
                    }
                    Op::Regenerate(i) => {
                        if let Some((id, _)) = tokens.get(i) {
                            let rt = fx.as_(owner());
                            if let Ok(c) = block_on(invites::regenerate_invite(&fx.st, rt, fx.vault, *id)) {
                                tokens.push((c.invite_id, c.token));
                            }
                        }
                    }
                    Op::Remove(i) => {
                        let rt = fx.as_(owner());
                        let ids: Vec<u32> = fx.st.borrow().members
                            .of_vault(fx.vault, 0)
                            .map(|m| m.member_id).collect();
                        if let Some(id) = ids.get(i) {
                            let _ = invites::remove_member(&mut fx.st.borrow_mut(), rt, fx.vault, *id);
                        }
                    }
                    Op::Trigger(w) => { let _ = fx.trigger(p(w)); }
                    Op::Approve(w) => { let _ = fx.approve(p(w)); }
                    Op::CheckIn => {
                        let rt = fx.as_(owner());
                        let _ = vaults::check_in(&mut fx.st.borrow_mut(), rt, fx.vault);
                    }
                    Op::Advance(ns) => fx.rt.advance(ns),
                    Op::SetItems(n) => fx.set_items(n),
                    Op::Finalize => {
                        let rt = fx.as_(owner());
                        let _ = vaults::finalize_setup(&mut fx.st.borrow_mut(), rt, fx.vault);
                    }
                    Op::Upgrade => {
                        // Drop the state and open it again over the same memory.
                        let memory = fx.memory.clone();
                        fx.st = RefCell::new(State::open(memory));
                        fx.st.borrow_mut().migrate().unwrap();
                    }
                }
                let after = fx.vault();
                if before.status != VaultStatus::Unlockable && after.status == VaultStatus::Unlockable {
                    // The transition happened in this op: the rules must hold now, with the
                    // approvals as they stand after it (the completing approval included).
                    let mut with_after = before.clone();
                    with_after.membership.approvals = after.membership.approvals.clone();
                    let eval_after = unlock::evaluate_unlock(&fx.st.borrow(), &with_after, fx.rt.now());
                    unlock_ok = Some(eval_after.time_gate.holds && eval_after.quorum_met);
                }
                check_invariants(&fx, &mut unlock_ok);
            }
        }
    }
}
