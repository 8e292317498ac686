//! End-to-end tests of invites, members, unlock status and the recovery code on the compiled
//! wasm (SPEC §4, §7, §9). Vaults are paid with `TestEnv::pay_creation` (payments feature).
//!
//! The whole unlock journey (request → wait → approvals → `Unlockable`, check-in cancelling a
//! request) is in `journey.rs`; here: everything up to `Active`, the unlock endpoints refusing
//! vaults that are not yet `Active`, and `QuorumNotMet` with its audit entry and the limit
//! of 5 failed attempts per hour (`quorum_not_met_is_audited_and_the_sixth_failure_in_an_hour_is_rate_limited`).

use candid::Principal;
use livault_backend::model::member_types::*;
use livault_backend::model::records::MemberRole;
use livault_tests::*;

type R<T> = Result<T, VaultError>;

fn plan() -> PlanSelection {
    PlanSelection {
        tier: Tier::Standard,
        heir_slots: 2,
        witness_slot: true,
    }
}

/// A paid vault (`NeedSetup`) with rules: 30 days of inactivity, 7 days of request wait,
/// 2 heirs required.
fn paid_vault(env: &mut TestEnv, owner: Principal) -> VaultId {
    let v = env.create_vault(owner, "Family");
    assert_eq!(v.plan, plan());
    let v = env.pay_creation(owner, v.id);
    assert_eq!(v.status, VaultStatus::NeedSetup);
    let r: R<VaultView> = env.update(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v.id,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: None,
                inactivity_days: Some(30),
                request_wait_days: 7,
                required_heirs: 2,
                required_witness: false,
            }),
            post_unlock_days: None,
            audit_retention_days: None,
        },),
    );
    r.unwrap();
    v.id
}

fn invite_args(vault_id: VaultId, role: MemberRole, name: &str) -> GenerateInviteArgs {
    GenerateInviteArgs {
        vault_id,
        role,
        name: name.into(),
        relation: if role == MemberRole::Heir {
            Relation::Son
        } else {
            Relation::Notary
        },
        email_hint: Some(format!("{name}@…")),
        can_trigger_unlock: true,
        count_as_approver: true,
    }
}

fn invite(env: &mut TestEnv, owner: Principal, v: VaultId, role: MemberRole) -> InviteCreated {
    let r: R<InviteCreated> = env.update(owner, "generate_invite", (invite_args(v, role, "m"),));
    r.expect("generate_invite")
}

fn claim(env: &mut TestEnv, who: Principal, token: &str) -> R<MemberView> {
    env.update(who, "claim_invite", (token.to_string(),))
}

fn status(env: &mut TestEnv, who: Principal, v: VaultId) -> R<UnlockStatus> {
    env.query(who, "get_unlock_status", (v,))
}

/// What must not change when a call is refused.
fn fingerprint(env: &mut TestEnv, owner: Principal, v: VaultId) -> String {
    let vault = env.get_vault(owner, v);
    let head: R<AuditHead> = env.query(owner, "get_audit_head", (v,));
    let members: R<Page<MemberView>> = env.query(owner, "list_members", (v, PageArgs::default()));
    let invites: R<Page<InviteView>> = env.query(owner, "list_invites", (v, PageArgs::default()));
    format!("{vault:?}{head:?}{members:?}{invites:?}")
}

#[test]
fn journey_invites_claims_and_status_visible_to_everyone() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let (h1, h2, w) = (user("heir1"), user("heir2"), user("witness"));
    let v = paid_vault(&mut env, owner);

    let i1 = invite(&mut env, owner, v, MemberRole::Heir);
    let i2 = invite(&mut env, owner, v, MemberRole::Heir);
    let iw = invite(&mut env, owner, v, MemberRole::Witness);
    assert_eq!((i1.share_index, i2.share_index, iw.share_index), (1, 2, 3));
    assert!(i1.token.starts_with("lvi1_") && i1.token.len() == 69);
    // Caps: a third heir and a second witness are refused.
    let r: R<InviteCreated> = env.update(
        owner,
        "generate_invite",
        (invite_args(v, MemberRole::Heir, "x"),),
    );
    assert_eq!(
        r,
        Err(VaultError::PlanLimit {
            resource: "heir_slots".into(),
            limit: 2
        })
    );

    // Anyone can look at an invite, anonymous included.
    let info: R<InviteInfo> = env.query(
        Principal::anonymous(),
        "get_invite_info",
        (i1.token.clone(),),
    );
    let info = info.unwrap();
    assert_eq!(info.vault_name, "Family");
    assert_eq!(info.inviter, owner);
    assert_eq!(info.status, InviteStatus::Open);
    assert_eq!(info.role, MemberRole::Heir);

    let m1 = claim(&mut env, h1, &i1.token).unwrap();
    assert_eq!(m1.share_index, 1);
    // The upgrade keeps everything.
    env.upgrade(None).unwrap();
    claim(&mut env, h2, &i2.token).unwrap();
    claim(&mut env, w, &iw.token).unwrap();
    let vault = env.get_vault(owner, v).unwrap();
    assert_eq!((vault.heir_count, vault.witness_joined), (2, true));
    assert_eq!(vault.status, VaultStatus::NeedSetup);
    assert_eq!(vault.setup_missing, vec!["content".to_string()]);

    // Members see the vault, the member list (without principals) and the unlock status.
    for who in [h1, h2, w] {
        let view = env.get_vault(who, v).unwrap();
        assert_eq!(view.id, v);
        let list: R<Page<MemberView>> = env.query(who, "list_members", (v, PageArgs::default()));
        let list = list.unwrap();
        assert_eq!(list.items.len(), 3);
        assert!(list.items.iter().all(|m| m.member_principal.is_none()));
        let s = status(&mut env, who, v).unwrap();
        assert_eq!((s.heir_approvals, s.heirs_required), (0, 2));
        assert!(!s.time_gate.holds);
    }
    let owner_list: R<Page<MemberView>> =
        env.query(owner, "list_members", (v, PageArgs::default()));
    let owner_list = owner_list.unwrap();
    assert!(owner_list
        .items
        .iter()
        .any(|m| m.member_principal == Some(h1)));
    let s = status(&mut env, owner, v).unwrap();
    assert_eq!(s.my_role, VaultRole::Owner);
    assert_eq!(
        s.time_gate.inactivity_deadline,
        Some(vault.last_owner_activity + 30 * DAY_NS)
    );
    // Outsiders see nothing.
    assert_eq!(
        status(&mut env, user("stranger"), v),
        Err(VaultError::NotAuthorized)
    );

    // The unlock endpoints refuse a vault that is not Active, and record nothing.
    let before = fingerprint(&mut env, owner, v);
    for method in ["trigger_unlock", "approve_unlock"] {
        let r: R<UnlockStatus> = env.update(h1, method, (v,));
        assert_eq!(
            r,
            Err(VaultError::InvalidState {
                current: VaultStatus::NeedSetup
            }),
            "{method}"
        );
    }
    assert_eq!(fingerprint(&mut env, owner, v), before);

    // Audit: the member events, with the claimers as actors.
    let log: R<Page<AuditEventView>> = env.query(owner, "get_audit_log", (v, PageArgs::default()));
    let log = log.unwrap();
    let joined: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.action == "member.joined")
        .map(|e| e.actor)
        .collect();
    assert_eq!(joined, vec![h1, h2, w]);
    assert_eq!(
        log.items
            .iter()
            .filter(|e| e.action == "invite.created")
            .count(),
        3
    );

    // Removing a member frees the slot and updates the counters.
    let r: R<VaultView> = env.update(owner, "remove_member", (v, m1.member_id));
    assert_eq!(r.unwrap().heir_count, 1);
    assert_eq!(env.get_vault(h1, v), Err(VaultError::NotAuthorized));
    let again = invite(&mut env, owner, v, MemberRole::Heir);
    assert_eq!(again.share_index, 4, "share indices are never reused");
}

#[test]
fn every_claim_error_is_typed_and_changes_nothing() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = paid_vault(&mut env, owner);
    let (h1, h2) = (user("heir1"), user("heir2"));
    let taken = invite(&mut env, owner, v, MemberRole::Heir);
    claim(&mut env, h1, &taken.token).unwrap();
    let open = invite(&mut env, owner, v, MemberRole::Heir);
    let revoked = invite(&mut env, owner, v, MemberRole::Witness);
    let r: R<InviteView> = env.update(owner, "revoke_invite", (v, revoked.invite_id));
    assert_eq!(r.unwrap().status, InviteStatus::Revoked);
    let unknown = format!("lvi1_{}", "0".repeat(64));

    let cases: Vec<(&str, Principal, String, VaultError)> = vec![
        (
            "claimed by another",
            h2,
            taken.token.clone(),
            VaultError::TokenAlreadyClaimed,
        ),
        (
            "revoked",
            h2,
            revoked.token.clone(),
            VaultError::TokenRevoked,
        ),
        ("unknown", h2, unknown, VaultError::TokenInvalid),
        ("malformed", h2, "hello".into(), VaultError::TokenInvalid),
        (
            "owner",
            owner,
            open.token.clone(),
            VaultError::NotAuthorized,
        ),
        (
            "existing member",
            h1,
            open.token.clone(),
            VaultError::InvalidInput {
                field: "token".into(),
                reason: "the caller is already a member of this vault".into(),
            },
        ),
    ];
    for (what, who, token, expected) in cases {
        let before = fingerprint(&mut env, owner, v);
        assert_eq!(claim(&mut env, who, &token), Err(expected), "{what}");
        assert_eq!(
            fingerprint(&mut env, owner, v),
            before,
            "{what} changed state"
        );
    }
    // Anonymous: refused at ingress (inspect_message) — nothing runs, nothing changes.
    let before = fingerprint(&mut env, owner, v);
    let r = env.try_update::<_, R<MemberView>>(
        Principal::anonymous(),
        "claim_invite",
        (open.token.clone(),),
    );
    assert!(r.is_err(), "anonymous claim must be rejected: {r:?}");
    assert_eq!(fingerprint(&mut env, owner, v), before);
    // Expired after 24 h.
    env.advance_days(1);
    let before = fingerprint(&mut env, owner, v);
    assert_eq!(
        claim(&mut env, h2, &open.token),
        Err(VaultError::TokenExpired)
    );
    assert_eq!(fingerprint(&mut env, owner, v), before);
    let info: R<InviteInfo> = env.query(h2, "get_invite_info", (open.token.clone(),));
    assert_eq!(info.unwrap().status, InviteStatus::Expired);
    // The holder of the claimed token repeating the claim gets the same member.
    let again = claim(&mut env, h1, &taken.token).unwrap();
    assert_eq!(again.share_index, taken.share_index);

    // Regenerate the expired invite: new token and id, same share index.
    let r: R<InviteCreated> = env.update(owner, "regenerate_invite", (v, open.invite_id));
    let fresh = r.unwrap();
    assert_eq!(fresh.share_index, open.share_index);
    assert_ne!(fresh.invite_id, open.invite_id);
    assert_eq!(
        claim(&mut env, h2, &open.token),
        Err(VaultError::TokenExpired)
    );
    claim(&mut env, h2, &fresh.token).unwrap();
    assert_eq!(env.get_vault(owner, v).unwrap().heir_count, 2);
}

#[test]
fn two_interleaved_claims_of_one_token_make_one_member() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = paid_vault(&mut env, owner);
    let inv = invite(&mut env, owner, v, MemberRole::Heir);
    let (a, b) = (user("alice"), user("bob"));
    let arg = candid::encode_one(inv.token.clone()).unwrap();
    let ma = env.host.submit_update(a, "claim_invite", arg.clone());
    let mb = env.host.submit_update(b, "claim_invite", arg);
    let ra: R<MemberView> = candid::decode_one(&env.host.await_reply(ma).unwrap().bytes).unwrap();
    let rb: R<MemberView> = candid::decode_one(&env.host.await_reply(mb).unwrap().bytes).unwrap();
    let oks = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(oks, 1, "{ra:?} {rb:?}");
    assert!(
        ra == Err(VaultError::TokenAlreadyClaimed) || rb == Err(VaultError::TokenAlreadyClaimed)
    );
    let members: R<Page<MemberView>> = env.query(owner, "list_members", (v, PageArgs::default()));
    assert_eq!(members.unwrap().items.len(), 1);
    assert_eq!(env.get_vault(owner, v).unwrap().heir_count, 1);
}

#[test]
fn interleaved_invites_for_the_last_slot_are_rechecked_after_the_randomness_await() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = paid_vault(&mut env, owner);
    invite(&mut env, owner, v, MemberRole::Heir);
    // One heir slot left: two generate_invite calls, both past their first check before
    // either gets its randomness.
    let arg = candid::encode_one(invite_args(v, MemberRole::Heir, "last")).unwrap();
    let m1 = env
        .host
        .submit_update(owner, "generate_invite", arg.clone());
    let m2 = env.host.submit_update(owner, "generate_invite", arg);
    let r1: R<InviteCreated> =
        candid::decode_one(&env.host.await_reply(m1).unwrap().bytes).unwrap();
    let r2: R<InviteCreated> =
        candid::decode_one(&env.host.await_reply(m2).unwrap().bytes).unwrap();
    let oks = [&r1, &r2].iter().filter(|r| r.is_ok()).count();
    assert_eq!(oks, 1, "{r1:?} {r2:?}");
    let invites: R<Page<InviteView>> = env.query(owner, "list_invites", (v, PageArgs::default()));
    assert_eq!(invites.unwrap().items.len(), 2);
}

#[test]
fn recovery_code_transfers_ownership_before_any_member_and_is_blocked_after() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = paid_vault(&mut env, owner);
    let r: R<RecoveryCodeIssued> = env.update(owner, "issue_recovery_code", (v, false));
    let code = r.unwrap().code;
    assert!(code.starts_with("lvr1_"));
    let new_device = user("owner-new-device");
    let r: R<VaultView> = env.update(new_device, "use_recovery_code", (code.clone(),));
    assert_eq!(r.unwrap().owner, new_device);
    assert_eq!(env.get_vault(owner, v), Err(VaultError::NotAuthorized));
    let mine: R<Page<VaultSummary>> =
        env.query(new_device, "list_my_vaults", (PageArgs::default(),));
    assert_eq!(mine.unwrap().items[0].id, v);
    // Used up, and forgotten: it reads as an invalid code (issue #12 M2).
    let r: R<VaultView> = env.update(user("thief"), "use_recovery_code", (code,));
    assert_eq!(r, Err(VaultError::TokenInvalid));

    // A new code, then a member joins: the code is revoked.
    let r: R<RecoveryCodeIssued> = env.update(new_device, "issue_recovery_code", (v, false));
    let code = r.unwrap().code;
    let inv = invite(&mut env, new_device, v, MemberRole::Heir);
    claim(&mut env, user("heir"), &inv.token).unwrap();
    let before = fingerprint(&mut env, new_device, v);
    let r: R<VaultView> = env.update(user("thief"), "use_recovery_code", (code,));
    assert_eq!(r, Err(VaultError::RecoveryBlocked));
    assert_eq!(fingerprint(&mut env, new_device, v), before);
    // And no new code while a member is joined.
    let r: R<RecoveryCodeIssued> = env.update(new_device, "issue_recovery_code", (v, true));
    assert_eq!(r, Err(VaultError::RecoveryBlocked));
}

#[test]
fn bypass_recovery_code_survives_the_first_member_but_not_for_ownership() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = paid_vault(&mut env, owner);
    let r: R<RecoveryCodeIssued> = env.update(owner, "issue_recovery_code", (v, true));
    let code = r.unwrap().code;
    let inv = invite(&mut env, owner, v, MemberRole::Heir);
    let heir = user("heir");
    claim(&mut env, heir, &inv.token).unwrap();
    // Ownership transfer is blocked once a member joined.
    let r: R<VaultView> = env.update(user("thief"), "use_recovery_code", (code.clone(),));
    assert_eq!(r, Err(VaultError::RecoveryBlocked));
    // The bypass works only on an unlockable-state vault (Active/GraceHeir) and with the time
    // gate; here the vault is still in NeedSetup.
    let r: R<UnlockStatus> = env.update(heir, "approve_unlock_with_recovery", (v, code.clone()));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::NeedSetup
        })
    );
    // Only members may present it.
    let r: R<UnlockStatus> =
        env.update(user("stranger"), "approve_unlock_with_recovery", (v, code));
    assert_eq!(r, Err(VaultError::NotAuthorized));
    // The owner may revoke it.
    let r: R<()> = env.update(owner, "revoke_recovery_code", (v,));
    r.unwrap();
    let r: R<()> = env.update(owner, "revoke_recovery_code", (v,));
    assert_eq!(r, Err(VaultError::NotFound));
}

#[test]
fn invite_and_member_rules_by_state() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    // Draft: no invites.
    let draft = env.create_vault(owner, "Draft");
    let r: R<InviteCreated> = env.update(
        owner,
        "generate_invite",
        (invite_args(draft.id, MemberRole::Heir, "a"),),
    );
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
    // Paid vault: invites work; a stranger cannot list them; members cannot list invites.
    let v = paid_vault(&mut env, owner);
    let inv = invite(&mut env, owner, v, MemberRole::Heir);
    let heir = user("heir");
    claim(&mut env, heir, &inv.token).unwrap();
    let r: R<Page<InviteView>> = env.query(heir, "list_invites", (v, PageArgs::default()));
    assert_eq!(r, Err(VaultError::NotAuthorized));
    let r: R<Page<InviteView>> = env.query(
        owner,
        "list_invites",
        (
            v,
            PageArgs {
                start_after: None,
                limit: Some(101),
            },
        ),
    );
    assert!(matches!(r, Err(VaultError::InvalidInput { .. })));
    // Deleting the vault purges invites and members.
    let r: R<VaultView> = env.update(owner, "delete_vault", (v,));
    r.unwrap();
    let info: R<InviteInfo> = env.query(heir, "get_invite_info", (inv.token.clone(),));
    assert_eq!(info, Err(VaultError::TokenInvalid));
    assert_eq!(env.get_vault(heir, v), Err(VaultError::NotAuthorized));
}

/// Who calls, in the member role matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Owner,
    Heir,
    /// Witness invited without `can_trigger_unlock` and with `count_as_approver`.
    Witness,
    Other,
    Anonymous,
}

const WHO: [Who; 5] = [
    Who::Owner,
    Who::Heir,
    Who::Witness,
    Who::Other,
    Who::Anonymous,
];

#[test]
fn member_endpoints_admit_only_their_roles() {
    type Call = fn(&mut TestEnv, Principal, VaultId) -> Result<String, String>;
    fn show<T: std::fmt::Debug>(r: Result<T, local_replica::Reject>) -> Result<String, String> {
        r.map(|v| format!("{v:?}")).map_err(|e| e.message)
    }
    let rows: Vec<(&str, Call, &[Who])> = vec![
        (
            "get_vault",
            |e, p, v| show(e.try_query::<_, R<VaultView>>(p, "get_vault", (v,))),
            &[Who::Owner, Who::Heir, Who::Witness],
        ),
        (
            "list_members",
            |e, p, v| {
                show(e.try_query::<_, R<Page<MemberView>>>(
                    p,
                    "list_members",
                    (v, PageArgs::default()),
                ))
            },
            &[Who::Owner, Who::Heir, Who::Witness],
        ),
        (
            "get_unlock_status",
            |e, p, v| show(e.try_query::<_, R<UnlockStatus>>(p, "get_unlock_status", (v,))),
            &[Who::Owner, Who::Heir, Who::Witness],
        ),
        (
            "list_invites",
            |e, p, v| {
                show(e.try_query::<_, R<Page<InviteView>>>(
                    p,
                    "list_invites",
                    (v, PageArgs::default()),
                ))
            },
            &[Who::Owner],
        ),
        (
            "generate_invite",
            |e, p, v| {
                show(e.try_update::<_, R<InviteCreated>>(
                    p,
                    "generate_invite",
                    (invite_args(v, MemberRole::Heir, "z"),),
                ))
            },
            &[Who::Owner],
        ),
        (
            "revoke_invite",
            |e, p, v| show(e.try_update::<_, R<InviteView>>(p, "revoke_invite", (v, 1u64))),
            &[Who::Owner],
        ),
        (
            "regenerate_invite",
            |e, p, v| show(e.try_update::<_, R<InviteCreated>>(p, "regenerate_invite", (v, 1u64))),
            &[Who::Owner],
        ),
        (
            "remove_member",
            |e, p, v| show(e.try_update::<_, R<VaultView>>(p, "remove_member", (v, 99u32))), /* no such member: keep the heir */
            &[Who::Owner],
        ),
        (
            "trigger_unlock",
            |e, p, v| show(e.try_update::<_, R<UnlockStatus>>(p, "trigger_unlock", (v,))),
            &[Who::Heir],
        ),
        (
            "approve_unlock",
            |e, p, v| show(e.try_update::<_, R<UnlockStatus>>(p, "approve_unlock", (v,))),
            &[Who::Heir, Who::Witness],
        ),
        (
            "approve_unlock_with_recovery",
            |e, p, v| {
                show(e.try_update::<_, R<UnlockStatus>>(
                    p,
                    "approve_unlock_with_recovery",
                    (v, format!("lvr1_{}", "b".repeat(64))),
                ))
            },
            &[Who::Heir, Who::Witness],
        ),
        (
            "issue_recovery_code",
            |e, p, v| {
                show(e.try_update::<_, R<RecoveryCodeIssued>>(p, "issue_recovery_code", (v, true)))
            },
            &[Who::Owner],
        ),
        (
            "revoke_recovery_code",
            |e, p, v| show(e.try_update::<_, R<()>>(p, "revoke_recovery_code", (v,))),
            &[Who::Owner],
        ),
        (
            "check_in",
            |e, p, v| show(e.try_update::<_, R<VaultView>>(p, "check_in", (v,))),
            &[Who::Owner],
        ),
        (
            "get_audit_log",
            |e, p, v| {
                show(e.try_query::<_, R<Page<AuditEventView>>>(
                    p,
                    "get_audit_log",
                    (v, PageArgs::default()),
                ))
            },
            &[Who::Owner, Who::Heir, Who::Witness],
        ),
    ];
    // One canister: a paid vault with an heir and a witness; denied calls must not change it.
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = paid_vault(&mut env, owner);
    let ih = invite(&mut env, owner, v, MemberRole::Heir);
    let mut wa = invite_args(v, MemberRole::Witness, "w");
    wa.can_trigger_unlock = false;
    let iw: R<InviteCreated> = env.update(owner, "generate_invite", (wa,));
    let (heir, witness) = (user("heir"), user("witness"));
    claim(&mut env, heir, &ih.token).unwrap();
    claim(&mut env, witness, &iw.unwrap().token).unwrap();
    for (name, call, allowed) in &rows {
        for who in WHO {
            let p = match who {
                Who::Owner => owner,
                Who::Heir => heir,
                Who::Witness => witness,
                Who::Other => user("stranger"),
                Who::Anonymous => Principal::anonymous(),
            };
            // Stay clear of the per-principal token bucket.
            env.advance(std::time::Duration::from_secs(1));
            let before = fingerprint(&mut env, owner, v);
            let outcome = call(&mut env, p, v);
            let denied = match &outcome {
                Err(_) => true,
                Ok(text) => text.contains("NotAuthorized"),
            };
            if allowed.contains(&who) {
                assert!(!denied, "{name} as {who:?} must be allowed: {outcome:?}");
            } else {
                assert!(denied, "{name} as {who:?} must be denied: {outcome:?}");
                assert_eq!(
                    fingerprint(&mut env, owner, v),
                    before,
                    "{name} as {who:?} changed state"
                );
            }
        }
    }
}

/// SPEC §4 demonstration 5 on an `Active` vault (2 heirs required, time gate open after 31
/// days of owner inactivity): a heir's `trigger_unlock` with the request open and one
/// approval is refused with `QuorumNotMet { have: 1, need: 2 }` and audited as
/// `unlock.attempt_failed` with that heir as actor; after 5 such failures the 6th call within
/// the hour is `RateLimited` and changes nothing; the other heir is not limited; an hour
/// later the first heir's attempts are evaluated again.
#[test]
fn quorum_not_met_is_audited_and_the_sixth_failure_in_an_hour_is_rate_limited() {
    // A daily maintenance timer keeps 31 days to 31 ticks.
    let mut env = TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(livault_backend::model::config::Durations {
            timer_interval_secs: 86_400,
            ..Default::default()
        }),
        ..Default::default()
    });
    let (owner, h1, h2) = (user("owner"), user("heir1"), user("heir2"));
    let v = paid_vault(&mut env, owner);
    for h in [h1, h2] {
        let inv = invite(&mut env, owner, v, MemberRole::Heir);
        claim(&mut env, h, &inv.token).unwrap();
    }
    env.upload_letter(owner, v, b"ciphertext", None);
    let r: R<VaultView> = env.update(owner, "finalize_setup", (v,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);

    env.advance_days(31);
    let failures = |env: &mut TestEnv| -> Vec<(Principal, String)> {
        env.audit_log(owner, v)
            .into_iter()
            .filter(|e| e.action == "unlock.attempt_failed")
            .map(|e| (e.actor, e.details))
            .collect()
    };
    // Opening the request and approving are not failures.
    let r: R<UnlockStatus> = env.update(h1, "trigger_unlock", (v,));
    assert!(r.unwrap().request.is_some());
    let r: R<UnlockStatus> = env.update(h1, "approve_unlock", (v,));
    assert_eq!(r.unwrap().heir_approvals, 1);
    assert!(failures(&mut env).is_empty());

    for n in 1..=5u32 {
        let r: R<UnlockStatus> = env.update(h1, "trigger_unlock", (v,));
        assert_eq!(r, Err(VaultError::QuorumNotMet { have: 1, need: 2 }));
        let f = failures(&mut env);
        assert_eq!(f.len(), n as usize);
        let (actor, details) = f.last().unwrap();
        assert_eq!(*actor, h1, "the audit entry names the caller");
        assert!(details.contains("QuorumNotMet"), "{details}");
        assert_eq!(
            status(&mut env, h1, v)
                .unwrap()
                .my_failed_attempts_last_hour,
            n
        );
        env.advance(std::time::Duration::from_secs(60));
    }
    // The 6th within the hour: RateLimited, nothing recorded or changed.
    let before = fingerprint(&mut env, owner, v);
    let r: R<UnlockStatus> = env.update(h1, "trigger_unlock", (v,));
    match r {
        // The first failure was 5 minutes ago: 55 minutes to wait.
        Err(VaultError::RateLimited { retry_after_secs }) => {
            assert_eq!(retry_after_secs, 3600 - 5 * 60)
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    let r: R<UnlockStatus> = env.update(h1, "approve_unlock", (v,));
    assert!(matches!(r, Err(VaultError::RateLimited { .. })), "{r:?}");
    assert_eq!(fingerprint(&mut env, owner, v), before);
    assert_eq!(failures(&mut env).len(), 5);

    // The other heir is not limited by heir 1's failures (a failure of their own counts).
    let r: R<UnlockStatus> = env.update(h2, "trigger_unlock", (v,));
    assert_eq!(r, Err(VaultError::QuorumNotMet { have: 1, need: 2 }));
    assert_eq!(failures(&mut env).last().unwrap().0, h2);

    // An hour after the first failure heir 1 is evaluated again.
    env.advance(std::time::Duration::from_secs(3600 - 5 * 60));
    let r: R<UnlockStatus> = env.update(h1, "trigger_unlock", (v,));
    assert_eq!(r, Err(VaultError::QuorumNotMet { have: 1, need: 2 }));
    assert_eq!(failures(&mut env).len(), 7);
    // And the second approval completes the quorum.
    let r: R<UnlockStatus> = env.update(h2, "approve_unlock", (v,));
    assert_eq!(r.unwrap().status, VaultStatus::Unlockable);
}
