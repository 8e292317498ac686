//! The benchmark-only endpoints of the `bench-seed` wasm (`scripts/build.sh --bench-seed`):
//! `bench_seed_drafts`, `bench_seed_audit` and `bench_storage_ops` admit only controllers, refuse bad input with a
//! typed error that changes nothing, and do what the benchmarks rely on. (The shipped wasm
//! does not export them: `wasm_imports_only_ic0_and_exports_exactly_the_did_methods`.)

use livault_tests::*;

type R<T> = Result<T, VaultError>;

fn env() -> TestEnv {
    TestEnv::with_wasm(
        bench_wasm(),
        InitArgs {
            admins: vec![user("admin")],
            ledger_canister_id: Some(local_replica::ledger_principal()),
            ..Default::default()
        },
    )
}

fn vault_count(env: &mut TestEnv) -> u64 {
    let admin = env.admin;
    let m: R<Metrics> = env.query(admin, "get_metrics", ());
    m.unwrap().vaults_total
}

/// Every vault as the admin listing shows it (first page of up to 100).
fn all_vaults(env: &mut TestEnv) -> String {
    let admin = env.admin;
    let page: R<Page<AdminVaultSummary>> = env.query(
        admin,
        "list_vaults",
        (PageArgs {
            start_after: None,
            limit: Some(100),
        },),
    );
    format!("{:?}", page.unwrap())
}

#[test]
fn only_controllers_seed_and_bad_input_changes_nothing() {
    let mut env = env();
    let controller = env.controller;
    for who in [env.admin, user("stranger")] {
        let r: R<u32> = env.update(who, "bench_seed_drafts", (0u64, 5u32));
        assert_eq!(r, Err(VaultError::NotAuthorized), "{who}");
        let r: R<Vec<(String, u64)>> = env.update(who, "bench_storage_ops", (100u64,));
        assert_eq!(r, Err(VaultError::NotAuthorized), "{who}");
        let r: R<u64> = env.update(who, "bench_seed_audit", (1u64, 5u32));
        assert_eq!(r, Err(VaultError::NotAuthorized), "{who}");
    }
    // Anonymous updates are refused before they reach the method.
    let anon = candid::Principal::anonymous();
    assert!(env
        .try_update::<_, R<u32>>(anon, "bench_seed_drafts", (0u64, 5u32))
        .is_err());
    let r: R<u32> = env.update(controller, "bench_seed_drafts", (0u64, 2_001u32));
    assert!(matches!(r, Err(VaultError::InvalidInput { .. })), "{r:?}");
    // Nothing seeded yet: the storage benchmark needs a vault to copy.
    let r: R<Vec<(String, u64)>> = env.update(controller, "bench_storage_ops", (100u64,));
    assert!(matches!(r, Err(VaultError::InvalidInput { .. })), "{r:?}");
    assert_eq!(vault_count(&mut env), 0);

    let r: R<u64> = env.update(controller, "bench_seed_audit", (1u64, 5u32));
    assert_eq!(r, Err(VaultError::NotFound), "no vault 1 yet");

    let r: R<u32> = env.update(controller, "bench_seed_drafts", (0u64, 25u32));
    assert_eq!(r, Ok(25));
    assert_eq!(vault_count(&mut env), 25);

    // Audit events: bounded per call; appended to the vault's chain after `vault.created`.
    let r: R<u64> = env.update(controller, "bench_seed_audit", (1u64, 10_001u32));
    assert!(matches!(r, Err(VaultError::InvalidInput { .. })), "{r:?}");
    let r: R<u64> = env.update(controller, "bench_seed_audit", (1u64, 3u32));
    assert_eq!(r, Ok(4));
    let head: R<AuditHead> = env.query(seed_owner(0), "get_audit_head", (1u64,));
    let head = head.unwrap();
    assert_eq!(head.next_seq, 4);
    let log = env.audit_log(seed_owner(0), 1);
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "vault.created",
            "vault.settings_changed",
            "vault.settings_changed",
            "vault.settings_changed"
        ]
    );
    assert_eq!(log[3].hash, head.head_hash, "the chain head");
}

/// The synthetic owner of seeded draft `index` (`api::bench_seed::seed_owner`).
fn seed_owner(index: u64) -> candid::Principal {
    let mut bytes = b"livault-bench".to_vec();
    bytes.extend_from_slice(&(index / 20).to_be_bytes());
    candid::Principal::from_slice(&bytes)
}

#[test]
fn storage_benchmark_reports_every_structure_and_leaves_state_alone() {
    let mut env = env();
    let controller = env.controller;
    let r: R<u32> = env.update(controller, "bench_seed_drafts", (0u64, 30u32));
    assert_eq!(r, Ok(30));
    for n in [19u64, 20_001] {
        let r: R<Vec<(String, u64)>> = env.update(controller, "bench_storage_ops", (n,));
        assert!(
            matches!(r, Err(VaultError::InvalidInput { .. })),
            "{n}: {r:?}"
        );
    }
    let before = all_vaults(&mut env);
    let rows: R<Vec<(String, u64)>> = env.update(controller, "bench_storage_ops", (50u64,));
    let rows = rows.unwrap();
    assert_eq!(rows[0], ("records".to_string(), 50));
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    for op in [
        "vault get",
        "vault insert (overwrite)",
        "queue remove (front)",
        "queue insert",
        "audit append",
    ] {
        for side in ["btree", "dense"] {
            let name = format!("{side} {op}");
            assert!(
                names.contains(&name.as_str()),
                "{name} missing from {names:?}"
            );
        }
    }
    assert!(rows.iter().all(|(_, v)| *v > 0), "{rows:?}");
    // The structures were built over heap memory; the canister's vaults are as they were.
    assert_eq!(vault_count(&mut env), 30);
    assert_eq!(all_vaults(&mut env), before);
}
