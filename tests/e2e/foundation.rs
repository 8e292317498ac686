//! End-to-end tests of the canister foundation on the compiled wasm: the artifact itself,
//! install and upgrade arguments, ingress inspection, rate limiting, the vault lifecycle
//! endpoints available before payment, and a role matrix for every endpoint.

use candid::Principal;
use livault_backend::model::member_types::*;
use livault_backend::model::records::MemberRole;
use livault_tests::*;
use local_replica::RejectCode;

type R<T> = Result<T, VaultError>;

fn standard_plan() -> PlanSelection {
    PlanSelection {
        tier: Tier::Standard,
        heir_slots: 2,
        witness_slot: true,
    }
}

fn rules(now: u64) -> UnlockRules {
    UnlockRules {
        unlock_after: Some(now + 400 * DAY_NS),
        inactivity_days: Some(180),
        request_wait_days: 7,
        required_heirs: 1,
        required_witness: false,
    }
}

// ---------------------------------------------------------------- the artifact

#[test]
fn wasm_imports_only_ic0_and_exports_exactly_the_did_methods() {
    use wasmparser::{Parser, Payload, TypeRef};
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut metadata = None;
    for payload in Parser::new(0).parse_all(wasm()) {
        match payload.expect("valid wasm") {
            Payload::ImportSection(r) => {
                for i in r {
                    let i = i.unwrap();
                    if let TypeRef::Func(_) = i.ty {
                        imports.push((i.module.to_string(), i.name.to_string()));
                    }
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.unwrap();
                    if e.kind == wasmparser::ExternalKind::Func {
                        exports.push(e.name.to_string());
                    }
                }
            }
            Payload::CustomSection(c) if c.name() == "icp:public candid:service" => {
                metadata = Some(String::from_utf8(c.data().to_vec()).unwrap());
            }
            _ => {}
        }
    }
    assert!(!imports.is_empty());
    for (module, name) in &imports {
        assert_eq!(module, "ic0", "non-ic0 import {module}.{name}");
    }

    // The methods of the .did, as `canister_query m` / `canister_update m`.
    let did_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../candid/livault_backend.did");
    let did = std::fs::read_to_string(did_path).unwrap();
    let (env, actor) = candid_parser::utils::CandidSource::Text(&did)
        .load()
        .expect("the .did parses");
    let actor = actor.expect("the .did has a service");
    let service = env.as_service(&actor).unwrap();
    let mut expected: Vec<String> = service
        .iter()
        .map(|(name, ty)| {
            let f = env.as_func(ty).unwrap();
            if f.is_query() {
                format!("canister_query {name}")
            } else {
                format!("canister_update {name}")
            }
        })
        .collect();
    let hooks = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../candid/hidden_endpoints.txt"
    ))
    .unwrap();
    // ic-wasm's notation for hidden methods is `canister_update:<name>`; the export is
    // `canister_update <name>`.
    expected.extend(
        hooks
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| match l.split_once(':') {
                Some((kind, name)) if kind.starts_with("canister_") => format!("{kind} {name}"),
                _ => l.to_string(),
            }),
    );
    expected.sort();
    exports.sort();
    assert_eq!(exports, expected);
    assert_eq!(
        metadata.as_deref(),
        Some(did.as_str()),
        "candid:service metadata is the .did"
    );
}

// ---------------------------------------------------------------- install / upgrade

#[test]
fn install_with_init_args() {
    let admin2 = user("admin2");
    let mut env = TestEnv::with_init(InitArgs {
        admins: vec![user("admin"), admin2],
        durations: Some(livault_backend::model::config::Durations {
            validity_days: 365,
            ..Default::default()
        }),
        ..Default::default()
    });
    let admins: R<Vec<Principal>> = env.query(admin2, "list_admins", ());
    assert_eq!(admins.unwrap(), vec![user("admin"), admin2]);
    let plans: PlansInfo = env.query(Principal::anonymous(), "get_plans", ());
    assert_eq!(plans.validity_days, 365);
    assert_eq!(plans.tiers.len(), 5);
    assert_eq!(plans.tiers[4].storage_price_e8s, 14_000_000_000);
    assert_eq!(plans.heir_slot_fee_e8s, 20_000_000);
}

#[test]
fn install_without_args_makes_the_installer_admin() {
    let mut host = local_replica::Host::new(local_replica::HostConfig::default());
    let controller = user("controller");
    host.install(
        wasm(),
        candid::encode_one(None::<LiVaultArgs>).unwrap(),
        controller,
    )
    .unwrap();
    let admins: R<Vec<Principal>> = host.query_candid(controller, "list_admins", ()).unwrap();
    assert_eq!(admins.unwrap(), vec![controller]);
}

#[test]
fn invalid_init_args_fail_the_install() {
    let mut host = local_replica::Host::new(local_replica::HostConfig::default());
    let bad = InitArgs {
        admins: vec![Principal::anonymous()],
        ..Default::default()
    };
    let err = host
        .install(
            wasm(),
            candid::encode_one(Some(LiVaultArgs::Init(bad))).unwrap(),
            user("c"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("invalid arguments"), "{err}");
    assert!(!host.is_installed());
}

#[test]
fn upgrade_args_change_only_what_they_name_and_bad_ones_roll_back() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family");
    let before: PlansInfo = env.query(owner, "get_plans", ());

    let new_admin = user("new-admin");
    env.upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
        admins: Some(vec![new_admin]),
        ..Default::default()
    })))
    .unwrap();
    let admins: R<Vec<Principal>> = env.query(new_admin, "list_admins", ());
    assert_eq!(admins.unwrap(), vec![new_admin]);
    assert_eq!(env.query::<_, PlansInfo>(owner, "get_plans", ()), before);
    assert_eq!(env.get_vault(owner, v.id).unwrap(), v);

    // Init args on upgrade and invalid values are refused; the canister stays as it was.
    let err = env
        .upgrade(Some(LiVaultArgs::Init(InitArgs::default())))
        .unwrap_err();
    assert!(err.contains("expected Upgrade"), "{err}");
    let err = env
        .upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
            admins: Some(vec![Principal::anonymous()]),
            ..Default::default()
        })))
        .unwrap_err();
    assert!(err.contains("invalid arguments"), "{err}");
    let admins: R<Vec<Principal>> = env.query(new_admin, "list_admins", ());
    assert_eq!(admins.unwrap(), vec![new_admin]);
    assert_eq!(env.get_vault(owner, v.id).unwrap(), v);
}

// ---------------------------------------------------------------- ingress and abuse control

#[test]
fn anonymous_updates_are_rejected_by_inspect_message() {
    let mut env = TestEnv::new();
    let args = CreateVaultArgs {
        name: "x".into(),
        plan: standard_plan(),
        owner_age: 40,
        idempotency_key: None,
    };
    let err = env
        .try_update::<_, R<VaultView>>(Principal::anonymous(), "create_vault", (args,))
        .unwrap_err();
    assert!(err.message.contains("anonymous"), "{err:?}");
    // Nothing was created.
    let m: R<Metrics> = env.query(env.admin, "get_metrics", ());
    assert_eq!(m.unwrap().vaults_total, 0);
}

#[test]
fn oversized_arguments_are_rejected_by_inspect_message() {
    let mut env = TestEnv::new();
    let args = CreateVaultArgs {
        name: "x".repeat(20_000),
        plan: standard_plan(),
        owner_age: 40,
        idempotency_key: None,
    };
    let err = env
        .try_update::<_, R<VaultView>>(user("owner"), "create_vault", (args,))
        .unwrap_err();
    assert!(err.message.contains("exceeds"), "{err:?}");
}

#[test]
fn rate_limit_after_a_burst_of_twenty_admins_exempt() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family");
    // 19 more updates in the same second are fine (20 in total) ...
    for _ in 0..19 {
        let r: R<VaultView> = env.update(owner, "update_vault", (update_name(v.id, "n"),));
        r.unwrap();
    }
    // ... the 21st is limited.
    let r: R<VaultView> = env.update(owner, "update_vault", (update_name(v.id, "m"),));
    assert!(
        matches!(
            r,
            Err(VaultError::RateLimited {
                retry_after_secs: 1
            })
        ),
        "{r:?}"
    );
    assert_eq!(env.get_vault(owner, v.id).unwrap().name, "n");
    // A second later one more call goes through.
    env.advance(std::time::Duration::from_secs(1));
    let r: R<VaultView> = env.update(owner, "update_vault", (update_name(v.id, "m"),));
    assert_eq!(r.unwrap().name, "m");
    // Admins are exempt.
    for _ in 0..30 {
        let r: R<()> = env.update(env.admin, "set_paused", (false,));
        r.unwrap();
    }
}

fn update_name(vault_id: VaultId, name: &str) -> UpdateVaultArgs {
    UpdateVaultArgs {
        vault_id,
        name: Some(name.into()),
        unlock_rules: None,
        post_unlock_days: None,
        audit_retention_days: None,
    }
}

// ---------------------------------------------------------------- vault endpoints

#[test]
fn create_get_list_update_delete_in_draft() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "  Family  ");
    assert_eq!(v.name, "Family");
    assert_eq!(v.status, VaultStatus::Draft);
    assert_eq!(v.my_role, VaultRole::Owner);
    // Standard, 2 heirs, witness, age 45: (6 + 0.4 + 0.1) * 1.10 = 7.15 ICP.
    assert_eq!(v.price_e8s, 715_000_000);
    let q: R<Quote> = env.query(
        Principal::anonymous(),
        "quote",
        (QuoteArgs {
            plan: standard_plan(),
            owner_age: 45,
        },),
    );
    assert_eq!(q.unwrap().total_e8s, v.price_e8s);

    let now = env.now();
    let updated: VaultView = env
        .update::<_, R<VaultView>>(
            owner,
            "update_vault",
            (UpdateVaultArgs {
                vault_id: v.id,
                name: Some("Legacy".into()),
                unlock_rules: Some(rules(now)),
                post_unlock_days: Some(90),
                audit_retention_days: Some(30),
            },),
        )
        .unwrap();
    assert_eq!(updated.name, "Legacy");
    assert_eq!(updated.unlock_rules, Some(rules(now)));
    assert_eq!(updated.post_unlock_days, 90);
    assert_eq!(updated.audit_retention_days, 30);
    assert_eq!(env.get_vault(owner, v.id).unwrap(), updated);

    // Draft: no check-in or finalize before payment.
    let r: R<VaultView> = env.update(owner, "check_in", (v.id,));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
    let r: R<VaultView> = env.update(owner, "finalize_setup", (v.id,));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );

    let page: R<Page<VaultSummary>> = env.query(owner, "list_my_vaults", (PageArgs::default(),));
    let page = page.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].name, "Legacy");
    assert_eq!(page.next_cursor, None);

    let deleted: VaultView = env
        .update::<_, R<VaultView>>(owner, "delete_vault", (v.id,))
        .unwrap();
    assert_eq!(deleted.status, VaultStatus::Deleted);
    assert_eq!(deleted.name, "");
    assert!(deleted.deleted_at.is_some());
    let page: R<Page<VaultSummary>> = env.query(owner, "list_my_vaults", (PageArgs::default(),));
    assert!(page.unwrap().items.is_empty());
    // An unpaid draft is erased (docs/decisions.md, issue #12 M2): nothing left to read,
    // delete again or audit; its id is not reused.
    assert_eq!(env.get_vault(owner, v.id), Err(VaultError::NotFound));
    let log: R<Page<AuditEventView>> =
        env.query(owner, "get_audit_log", (v.id, PageArgs::default()));
    assert_eq!(log, Err(VaultError::NotFound));
    let r: R<VaultView> = env.update(owner, "delete_vault", (v.id,));
    assert_eq!(r, Err(VaultError::NotFound));
    let next = env.create_vault(owner, "Next");
    assert_eq!(next.id, v.id + 1);
}

#[test]
fn idempotency_key_returns_the_same_vault() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let args = CreateVaultArgs {
        name: "Family".into(),
        plan: standard_plan(),
        owner_age: 33,
        idempotency_key: Some("client-uuid-1".into()),
    };
    let a: VaultView = env
        .update::<_, R<VaultView>>(owner, "create_vault", (args.clone(),))
        .unwrap();
    let b: VaultView = env
        .update::<_, R<VaultView>>(owner, "create_vault", (args.clone(),))
        .unwrap();
    assert_eq!(a, b);
    // The same key from another principal is another vault.
    let c: VaultView = env
        .update::<_, R<VaultView>>(user("other"), "create_vault", (args,))
        .unwrap();
    assert_ne!(c.id, a.id);
    let m: R<Metrics> = env.query(env.admin, "get_metrics", ());
    assert_eq!(m.unwrap().vaults_total, 2);
}

#[test]
fn bad_input_gets_typed_errors_and_changes_nothing() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family");
    let head = |env: &mut TestEnv| -> AuditHead {
        env.query::<_, R<AuditHead>>(owner, "get_audit_head", (v.id,))
            .unwrap()
    };
    let before_head = head(&mut env);
    let now = env.now();
    let cases: Vec<(UpdateVaultArgs, &str)> = vec![
        (update_name(v.id, ""), "name"),
        (update_name(v.id, &"x".repeat(65)), "name"),
        (update_name(v.id, "tab\there"), "name"),
        (
            UpdateVaultArgs {
                unlock_rules: Some(UnlockRules {
                    unlock_after: None,
                    inactivity_days: None,
                    ..rules(now)
                }),
                ..update_name(v.id, "ok")
            },
            "unlock_rules",
        ),
        (
            UpdateVaultArgs {
                unlock_rules: Some(UnlockRules {
                    required_heirs: 3,
                    ..rules(now)
                }),
                ..update_name(v.id, "ok")
            },
            "unlock_rules.required_heirs",
        ),
        (
            UpdateVaultArgs {
                post_unlock_days: Some(366),
                ..update_name(v.id, "ok")
            },
            "post_unlock_days",
        ),
        (
            UpdateVaultArgs {
                audit_retention_days: Some(10),
                ..update_name(v.id, "ok")
            },
            "audit_retention_days",
        ),
    ];
    for (args, field) in cases {
        let r: R<VaultView> = env.update(owner, "update_vault", (args,));
        match r {
            Err(VaultError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidInput({field}), got {other:?}"),
        }
        env.advance(std::time::Duration::from_secs(1));
    }
    assert_eq!(env.get_vault(owner, v.id).unwrap().name, "Family");
    assert_eq!(head(&mut env), before_head);

    let bad_creates = [
        (
            CreateVaultArgs {
                name: "".into(),
                plan: standard_plan(),
                owner_age: 40,
                idempotency_key: None,
            },
            "name",
        ),
        (
            CreateVaultArgs {
                name: "a".into(),
                plan: standard_plan(),
                owner_age: 17,
                idempotency_key: None,
            },
            "owner_age",
        ),
        (
            CreateVaultArgs {
                name: "a".into(),
                plan: standard_plan(),
                owner_age: 121,
                idempotency_key: None,
            },
            "owner_age",
        ),
        (
            CreateVaultArgs {
                name: "a".into(),
                plan: PlanSelection {
                    heir_slots: 4,
                    ..standard_plan()
                },
                owner_age: 40,
                idempotency_key: None,
            },
            "plan.heir_slots",
        ),
        (
            CreateVaultArgs {
                name: "a".into(),
                plan: standard_plan(),
                owner_age: 40,
                idempotency_key: Some("k".repeat(65)),
            },
            "idempotency_key",
        ),
    ];
    for (args, field) in bad_creates {
        let r: R<VaultView> = env.update(owner, "create_vault", (args,));
        match r {
            Err(VaultError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidInput({field}), got {other:?}"),
        }
    }
    let m: R<Metrics> = env.query(env.admin, "get_metrics", ());
    assert_eq!(m.unwrap().vaults_total, 1);
    let page: R<Page<VaultSummary>> = env.query(
        owner,
        "list_my_vaults",
        (PageArgs {
            start_after: None,
            limit: Some(101),
        },),
    );
    assert!(matches!(page, Err(VaultError::InvalidInput { .. })));
}

#[test]
fn vaults_per_owner_limit() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    for i in 0..20 {
        env.create_vault(owner, &format!("v{i}"));
        env.advance(std::time::Duration::from_secs(1));
    }
    let r: R<VaultView> = env.update(
        owner,
        "create_vault",
        (CreateVaultArgs {
            name: "one too many".into(),
            plan: standard_plan(),
            owner_age: 40,
            idempotency_key: None,
        },),
    );
    assert_eq!(
        r.unwrap_err(),
        VaultError::PlanLimit {
            resource: "vaults_per_owner".into(),
            limit: 20
        }
    );
    // Pagination over the 20: pages of 7 with a stable cursor.
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page: Page<VaultSummary> = env
            .query::<_, R<Page<VaultSummary>>>(
                owner,
                "list_my_vaults",
                (PageArgs {
                    start_after: cursor,
                    limit: Some(7),
                },),
            )
            .unwrap();
        ids.extend(page.items.iter().map(|s| s.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
}

#[test]
fn pause_blocks_writes_but_not_check_in() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family");
    let r: R<()> = env.update(env.admin, "set_paused", (true,));
    r.unwrap();
    let r: R<VaultView> = env.update(owner, "update_vault", (update_name(v.id, "x"),));
    assert_eq!(r, Err(VaultError::Paused));
    // check_in passes the pause gate (and then fails on the Draft state, not on Paused).
    let r: R<VaultView> = env.update(owner, "check_in", (v.id,));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
    let r: R<()> = env.update(env.admin, "set_paused", (false,));
    r.unwrap();
    let r: R<VaultView> = env.update(owner, "update_vault", (update_name(v.id, "x"),));
    assert_eq!(r.unwrap().name, "x");
}

#[test]
fn a_trap_leaves_state_unchanged() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    // The canister traps when it replies: every write of that message is rolled back.
    env.host.trap_on_ic0("msg_reply", 1);
    let args = CreateVaultArgs {
        name: "Lost".into(),
        plan: standard_plan(),
        owner_age: 40,
        idempotency_key: None,
    };
    let err = env
        .try_update::<_, R<VaultView>>(owner, "create_vault", (args,))
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    let page: R<Page<VaultSummary>> = env.query(owner, "list_my_vaults", (PageArgs::default(),));
    assert!(page.unwrap().items.is_empty());
    // The id was not consumed either.
    let v = env.create_vault(owner, "Kept");
    assert_eq!(v.id, 1);
}

// ---------------------------------------------------------------- role matrix

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Owner,
    Other,
    Anonymous,
    Admin,
    Controller,
}

const ROLES: [Role; 5] = [
    Role::Owner,
    Role::Other,
    Role::Anonymous,
    Role::Admin,
    Role::Controller,
];

/// Observable state that no denied call may change.
fn fingerprint(env: &mut TestEnv, owner: Principal, vault: VaultId) -> String {
    let v = env.get_vault(owner, vault);
    let head: R<AuditHead> = env.query(owner, "get_audit_head", (vault,));
    let list: R<Page<VaultSummary>> = env.query(owner, "list_my_vaults", (PageArgs::default(),));
    let admins: R<Vec<Principal>> = env.query(env.admin, "list_admins", ());
    let sessions: R<PaymentSessionPage> =
        env.query(owner, "list_payment_sessions", (vault, PageArgs::default()));
    let billing: R<BillingPage> = env.query(env.admin, "list_billing", (PageArgs::default(),));
    let mut m: Metrics = env
        .query::<_, R<Metrics>>(env.admin, "get_metrics", ())
        .unwrap();
    m.now = 0;
    m.heap_memory_bytes = 0;
    m.rate_limited_principals = 0;
    // Operational counters count every answer, refusals included (issue #15): they are not
    // state a refused call may not change. The admin trail's count stays in.
    m.ops.update_calls.clear();
    m.ops.errors.clear();
    m.ops.rate_limit_refusals = 0;
    format!("{v:?}{head:?}{list:?}{admins:?}{m:?}{sessions:?}{billing:?}")
}

/// Whether the outcome of a call was a denial for this caller.
fn denied(outcome: &Result<String, String>) -> bool {
    match outcome {
        Err(_) => true, // rejected by the system (inspect_message)
        Ok(text) => text.contains("NotAuthorized"),
    }
}

#[test]
fn every_endpoint_admits_only_its_roles() {
    type Call = fn(&mut TestEnv, Principal, VaultId) -> Result<String, String>;
    fn show<T: std::fmt::Debug>(r: Result<T, local_replica::Reject>) -> Result<String, String> {
        r.map(|v| format!("{v:?}")).map_err(|e| e.message)
    }
    let endpoints: Vec<(&str, Call, &[Role])> = vec![
        (
            "get_plans",
            |e, p, _| show(e.try_query::<_, PlansInfo>(p, "get_plans", ())),
            &ROLES,
        ),
        (
            "quote",
            |e, p, _| {
                show(e.try_query::<_, R<Quote>>(
                    p,
                    "quote",
                    (QuoteArgs {
                        plan: standard_plan(),
                        owner_age: 50,
                    },),
                ))
            },
            &ROLES,
        ),
        (
            "quote_upgrade",
            |e, p, v| {
                let to = PlanSelection {
                    tier: Tier::Titan,
                    ..standard_plan()
                };
                show(e.try_query::<_, R<UpgradeQuote>>(p, "quote_upgrade", (v, to)))
            },
            &[Role::Owner],
        ),
        (
            "create_vault",
            |e, p, _| {
                let a = CreateVaultArgs {
                    name: "n".into(),
                    plan: standard_plan(),
                    owner_age: 40,
                    idempotency_key: None,
                };
                show(e.try_update::<_, R<VaultView>>(p, "create_vault", (a,)))
            },
            &[Role::Owner, Role::Other, Role::Admin, Role::Controller],
        ),
        (
            "get_vault",
            |e, p, v| show(e.try_query::<_, R<VaultView>>(p, "get_vault", (v,))),
            &[Role::Owner],
        ),
        (
            "list_my_vaults",
            |e, p, _| {
                show(e.try_query::<_, R<Page<VaultSummary>>>(
                    p,
                    "list_my_vaults",
                    (PageArgs::default(),),
                ))
            },
            &ROLES,
        ),
        (
            "update_vault",
            |e, p, v| {
                show(e.try_update::<_, R<VaultView>>(
                    p,
                    "update_vault",
                    (update_name(v, "renamed"),),
                ))
            },
            &[Role::Owner],
        ),
        (
            "check_in",
            |e, p, v| show(e.try_update::<_, R<VaultView>>(p, "check_in", (v,))),
            &[Role::Owner],
        ),
        (
            "finalize_setup",
            |e, p, v| show(e.try_update::<_, R<VaultView>>(p, "finalize_setup", (v,))),
            &[Role::Owner],
        ),
        (
            "delete_vault",
            |e, p, v| show(e.try_update::<_, R<VaultView>>(p, "delete_vault", (v,))),
            &[Role::Owner],
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
            &[Role::Owner],
        ),
        (
            "get_audit_head",
            |e, p, v| show(e.try_query::<_, R<AuditHead>>(p, "get_audit_head", (v,))),
            &[Role::Owner],
        ),
        (
            "get_metrics",
            |e, p, _| show(e.try_query::<_, R<Metrics>>(p, "get_metrics", ())),
            &[Role::Admin],
        ),
        (
            "list_admins",
            |e, p, _| show(e.try_query::<_, R<Vec<Principal>>>(p, "list_admins", ())),
            &[Role::Admin],
        ),
        (
            "set_paused",
            |e, p, _| show(e.try_update::<_, R<()>>(p, "set_paused", (false,))),
            &[Role::Admin],
        ),
        (
            "init_payment",
            |e, p, v| {
                show(e.try_update::<_, R<PaymentSession>>(
                    p,
                    "init_payment",
                    (v, PaymentPurpose::Create),
                ))
            },
            &[Role::Owner],
        ),
        (
            "verify_payment",
            // Session 1 was opened by the owner in the setup (nothing paid yet).
            |e, p, _| show(e.try_update::<_, R<PaymentReceipt>>(p, "verify_payment", (1u64,))),
            &[Role::Owner],
        ),
        (
            "get_payment_session",
            |e, p, _| show(e.try_query::<_, R<PaymentSession>>(p, "get_payment_session", (1u64,))),
            &[Role::Owner, Role::Admin],
        ),
        (
            "list_payment_sessions",
            |e, p, v| {
                show(e.try_query::<_, R<PaymentSessionPage>>(
                    p,
                    "list_payment_sessions",
                    (v, PageArgs::default()),
                ))
            },
            &[Role::Owner],
        ),
        (
            "list_billing",
            |e, p, _| {
                show(e.try_query::<_, R<BillingPage>>(p, "list_billing", (PageArgs::default(),)))
            },
            &[Role::Admin],
        ),
        (
            "refund_session",
            // Allowed for admins: refused with InvalidState (the purpose still applies).
            |e, p, _| show(e.try_update::<_, R<PaymentSession>>(p, "refund_session", (1u64,))),
            &[Role::Admin],
        ),
        (
            "set_refund_account",
            |e, p, v| show(e.try_update::<_, R<()>>(p, "set_refund_account", (v, None::<Account>))),
            &[Role::Owner],
        ),
        (
            "set_treasury",
            |e, p, _| {
                let same = Account {
                    owner: e.admin,
                    subaccount: None,
                };
                show(e.try_update::<_, R<()>>(p, "set_treasury", (same,)))
            },
            &[Role::Admin],
        ),
        (
            "set_admins",
            |e, p, _| {
                let admins = vec![e.admin];
                show(e.try_update::<_, R<()>>(p, "set_admins", (admins,)))
            },
            &[Role::Controller],
        ),
        // ---- members and unlock (the matrix vault is a Draft: the owner gets InvalidState
        // or NotFound where the feature needs a paid vault or a member; heir and witness
        // roles are covered by tests/e2e/members.rs)
        (
            "generate_invite",
            |e, p, v| {
                let a = GenerateInviteArgs {
                    vault_id: v,
                    role: MemberRole::Heir,
                    name: "h".into(),
                    relation: Relation::Son,
                    email_hint: None,
                    can_trigger_unlock: true,
                    count_as_approver: true,
                };
                show(e.try_update::<_, R<InviteCreated>>(p, "generate_invite", (a,)))
            },
            &[Role::Owner],
        ),
        (
            "get_invite_info",
            |e, p, _| {
                let t = format!("lvi1_{}", "a".repeat(64));
                show(e.try_query::<_, R<InviteInfo>>(p, "get_invite_info", (t,)))
            },
            &ROLES,
        ),
        (
            "claim_invite",
            |e, p, _| {
                let t = format!("lvi1_{}", "a".repeat(64));
                show(e.try_update::<_, R<MemberView>>(p, "claim_invite", (t,)))
            },
            &[Role::Owner, Role::Other, Role::Admin, Role::Controller],
        ),
        (
            "revoke_invite",
            |e, p, v| show(e.try_update::<_, R<InviteView>>(p, "revoke_invite", (v, 1u64))),
            &[Role::Owner],
        ),
        (
            "regenerate_invite",
            |e, p, v| show(e.try_update::<_, R<InviteCreated>>(p, "regenerate_invite", (v, 1u64))),
            &[Role::Owner],
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
            &[Role::Owner],
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
            &[Role::Owner],
        ),
        (
            "remove_member",
            |e, p, v| show(e.try_update::<_, R<VaultView>>(p, "remove_member", (v, 1u32))),
            &[Role::Owner],
        ),
        (
            "get_unlock_status",
            |e, p, v| show(e.try_query::<_, R<UnlockStatus>>(p, "get_unlock_status", (v,))),
            &[Role::Owner],
        ),
        (
            "trigger_unlock",
            |e, p, v| show(e.try_update::<_, R<UnlockStatus>>(p, "trigger_unlock", (v,))),
            &[],
        ),
        (
            "approve_unlock",
            |e, p, v| show(e.try_update::<_, R<UnlockStatus>>(p, "approve_unlock", (v,))),
            &[],
        ),
        (
            "approve_unlock_with_recovery",
            |e, p, v| {
                let c = format!("lvr1_{}", "a".repeat(64));
                show(e.try_update::<_, R<UnlockStatus>>(p, "approve_unlock_with_recovery", (v, c)))
            },
            &[],
        ),
        (
            "issue_recovery_code",
            |e, p, v| {
                show(e.try_update::<_, R<RecoveryCodeIssued>>(p, "issue_recovery_code", (v, false)))
            },
            &[Role::Owner],
        ),
        (
            "revoke_recovery_code",
            |e, p, v| show(e.try_update::<_, R<()>>(p, "revoke_recovery_code", (v,))),
            &[Role::Owner],
        ),
        (
            "use_recovery_code",
            |e, p, _| {
                let c = format!("lvr1_{}", "a".repeat(64));
                show(e.try_update::<_, R<VaultView>>(p, "use_recovery_code", (c,)))
            },
            &[Role::Owner, Role::Other, Role::Admin, Role::Controller],
        ),
        // ---- content (the vault is a Draft here: owner calls pass the role check and then
        // meet InvalidState / NotFound, which is not a denial)
        (
            "begin_upload",
            |e, p, v| {
                let a = BeginUploadArgs {
                    vault_id: v,
                    kind: ItemKind::Letter,
                    size: 3,
                    sha256: serde_bytes::ByteBuf::from(vec![0; 32]),
                    encrypted_meta: serde_bytes::ByteBuf::new(),
                    recipients: None,
                    replaces: None,
                    idempotency_key: None,
                };
                show(e.try_update::<_, R<UploadView>>(p, "begin_upload", (a,)))
            },
            &[Role::Owner],
        ),
        (
            "upload_chunk",
            |e, p, _| {
                let b = serde_bytes::ByteBuf::from(vec![1, 2, 3]);
                show(e.try_update::<_, R<UploadView>>(p, "upload_chunk", (1u64, 0u32, b)))
            },
            // No upload exists: everyone gets NotFound, anonymous is refused by inspect.
            &[Role::Owner, Role::Other, Role::Admin, Role::Controller],
        ),
        (
            "finish_upload",
            |e, p, _| show(e.try_update::<_, R<ItemView>>(p, "finish_upload", (1u64,))),
            &[Role::Owner, Role::Other, Role::Admin, Role::Controller],
        ),
        (
            "abort_upload",
            |e, p, _| show(e.try_update::<_, R<()>>(p, "abort_upload", (1u64,))),
            &[Role::Owner, Role::Other, Role::Admin, Role::Controller],
        ),
        (
            "delete_item",
            |e, p, v| show(e.try_update::<_, R<()>>(p, "delete_item", (v, 1u64))),
            &[Role::Owner],
        ),
        (
            "update_item_meta",
            |e, p, v| {
                show(e.try_update::<_, R<ItemView>>(
                    p,
                    "update_item_meta",
                    (UpdateItemMetaArgs {
                        vault_id: v,
                        item_id: 1,
                        encrypted_meta: serde_bytes::ByteBuf::from(vec![1, 2, 3]),
                        recipients: None,
                    },),
                ))
            },
            // The owner of the Draft vault gets InvalidState (content is not writable yet).
            &[Role::Owner],
        ),
        (
            "get_vetkd_public_key",
            |e, p, _| {
                show(
                    e.try_query::<_, R<livault_backend::model::keys::VetKdPublicKey>>(
                        p,
                        "get_vetkd_public_key",
                        (),
                    ),
                )
            },
            &ROLES,
        ),
        (
            "derive_vetkey",
            |e, p, v| {
                // A valid transport public key (a G1 point).
                let tpk = livault_tests::client::transport_key("role matrix").public_key();
                show(
                    e.try_update::<_, R<livault_backend::domain::keys::EncryptedVetKeyReply>>(
                        p,
                        "derive_vetkey",
                        (livault_backend::domain::keys::DeriveVetKeyArgs {
                            vault_id: v,
                            share_index: 0,
                            transport_public_key: serde_bytes::ByteBuf::from(tpk),
                        },),
                    ),
                )
            },
            // Only the owner, for identity 0 (SPEC §16; a Draft is not Deleted).
            &[Role::Owner],
        ),
        (
            "list_items",
            |e, p, v| {
                show(e.try_query::<_, R<Page<ItemView>>>(p, "list_items", (v, PageArgs::default())))
            },
            &[Role::Owner],
        ),
        (
            "request_download",
            |e, p, v| show(e.try_update::<_, R<DownloadTicket>>(p, "request_download", (v, 1u64))),
            &[Role::Owner],
        ),
        (
            "get_download_chunk",
            |e, p, _| {
                show(e.try_query::<_, R<serde_bytes::ByteBuf>>(
                    p,
                    "get_download_chunk",
                    (1u64, 0u32),
                ))
            },
            // No ticket exists: NotFound for everyone (tickets are bound to their holder).
            &ROLES,
        ),
        (
            "run_maintenance",
            |e, p, _| show(e.try_update::<_, R<TickReport>>(p, "run_maintenance", ())),
            &[Role::Admin],
        ),
        (
            "list_vaults",
            |e, p, _| {
                show(e.try_query::<_, R<Page<AdminVaultSummary>>>(
                    p,
                    "list_vaults",
                    (PageArgs::default(),),
                ))
            },
            &[Role::Admin],
        ),
        (
            "list_admin_trail",
            |e, p, _| {
                show(e.try_query::<_, R<Page<livault_backend::domain::admin_trail::AdminTrailEntry>>>(
                    p,
                    "list_admin_trail",
                    (PageArgs::default(),),
                ))
            },
            &[Role::Admin],
        ),
        (
            "set_pricing",
            |e, p, _| {
                let plans: PlansInfo = e.query(p, "get_plans", ());
                let pricing = livault_backend::model::config::Pricing {
                    tiers: plans.tiers,
                    heir_slot_fee_e8s: plans.heir_slot_fee_e8s,
                    witness_fee_e8s: plans.witness_fee_e8s,
                };
                show(e.try_update::<_, R<()>>(p, "set_pricing", (pricing,)))
            },
            &[Role::Admin],
        ),
        (
            "http_request",
            |e, p, _| {
                let req = HttpRequest {
                    method: "GET".into(),
                    url: "/health".into(),
                    headers: vec![],
                    body: serde_bytes::ByteBuf::new(),
                };
                show(e.try_query::<_, HttpResponse>(p, "http_request", (req,)))
            },
            &ROLES,
        ),
    ];

    // Every method of the interface is in the matrix.
    let did = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../candid/livault_backend.did"
    ))
    .unwrap();
    let (cenv, actor) = candid_parser::utils::CandidSource::Text(&did)
        .load()
        .unwrap();
    let mut methods: Vec<String> = cenv
        .as_service(&actor.unwrap())
        .unwrap()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let mut covered: Vec<String> = endpoints.iter().map(|(n, _, _)| n.to_string()).collect();
    methods.sort();
    covered.sort();
    assert_eq!(
        covered, methods,
        "the role matrix must cover every endpoint"
    );

    for (name, call, allowed) in &endpoints {
        for role in ROLES {
            // A fresh canister per (endpoint, role): one vault in Draft with rules set.
            let mut env = TestEnv::new();
            let owner = user("owner");
            let v = env.create_vault(owner, "Family").id;
            let session: R<PaymentSession> =
                env.update(owner, "init_payment", (v, PaymentPurpose::Create));
            assert_eq!(session.expect("init_payment").id, 1);
            let who = match role {
                Role::Owner => owner,
                Role::Other => user("stranger"),
                Role::Anonymous => Principal::anonymous(),
                Role::Admin => env.admin,
                Role::Controller => env.controller,
            };
            env.advance(std::time::Duration::from_secs(2));
            let before = fingerprint(&mut env, owner, v);
            let outcome = call(&mut env, who, v);
            if allowed.contains(&role) {
                assert!(
                    !denied(&outcome),
                    "{name} as {role:?} must be allowed: {outcome:?}"
                );
            } else {
                assert!(
                    denied(&outcome),
                    "{name} as {role:?} must be denied: {outcome:?}"
                );
                assert_eq!(
                    fingerprint(&mut env, owner, v),
                    before,
                    "{name} as {role:?} changed state"
                );
            }
        }
    }
}
