//! Runs a real ic-cdk 0.20 canister when `LOCAL_REPLICA_CDK_WASM` points to one (a
//! throwaway test canister with `inc`, `get`, `whoami`, `put`/`lookup` on a
//! StableBTreeMap, `boom`, `schedule` (ic-cdk-timers), `pay` (ledger transfer), `rand`
//! (raw_rand), `spin`, `perf`, and an inspect_message refusing `forbidden`). Skipped
//! otherwise: the repository's own canister is exercised by the workspace's e2e tests.

use candid::Principal;
use local_replica::{AccountId, Host, HostConfig, RejectCode};
use std::time::Duration;

fn load() -> Option<Vec<u8>> {
    let path = std::env::var("LOCAL_REPLICA_CDK_WASM").ok()?;
    Some(std::fs::read(path).expect("LOCAL_REPLICA_CDK_WASM readable"))
}

#[test]
fn real_cdk_canister() {
    let Some(wasm) = load() else {
        eprintln!("LOCAL_REPLICA_CDK_WASM not set: skipping");
        return;
    };
    // Every ic0 import of an ic-cdk 0.20 canister is implemented (none hits a stub).
    let info = local_replica::instrument::inspect(&wasm).unwrap();
    let names: Vec<&str> = info.func_imports.iter().map(|(_, n)| n.as_str()).collect();
    eprintln!("imports: {names:?}");
    for (m, n) in &info.func_imports {
        assert_eq!(m, "ic0");
        assert!(
            local_replica::ic0::IMPLEMENTED.contains(&n.as_str()),
            "ic0.{n} not implemented"
        );
    }
    let ctl = Principal::from_slice(&[9; 29]);
    let alice = Principal::from_slice(&[1; 29]);
    let mut h = Host::new(HostConfig::default());
    let id = h
        .install(&wasm, candid::encode_one(5u64).unwrap(), ctl)
        .expect("install");
    let n: u64 = h.update_candid(alice, "inc", ()).unwrap();
    assert_eq!(n, 6);
    let who: Principal = h.query_candid(alice, "whoami", ()).unwrap();
    assert_eq!(who, alice);
    h.update_candid::<_, ()>(alice, "put", (1u64, "one".to_string()))
        .unwrap();
    let v: Option<String> = h.query_candid(alice, "lookup", (1u64,)).unwrap();
    assert_eq!(v.as_deref(), Some("one"));
    let e = h
        .update(alice, "boom", candid::encode_args(()).unwrap())
        .unwrap_err();
    assert!(e.message.contains("boom!"), "{}", e.message);
    let n: u64 = h.query_candid(alice, "get", ()).unwrap();
    assert_eq!(n, 6);
    let e = h
        .update(alice, "forbidden", candid::encode_args(()).unwrap())
        .unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterReject);

    // Timer via ic-cdk-timers (global timer + self-call to the timer executor).
    h.update_candid::<_, ()>(alice, "schedule", (60u64,))
        .unwrap();
    h.advance_time(Duration::from_secs(30));
    let t: u64 = h.query_candid(alice, "ticks", ()).unwrap();
    assert_eq!(t, 0);
    h.advance_time(Duration::from_secs(31));
    let t: u64 = h.query_candid(alice, "ticks", ()).unwrap();
    assert_eq!(t, 1);

    // Ledger transfer from the canister's default account.
    h.fund(AccountId::new(&id, None), 1_000_000);
    let r: Result<u64, String> = h.update_candid(alice, "pay", (alice, 100_000u64)).unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(h.ledger().balance(&AccountId::new(&alice, None)), 100_000);
    assert_eq!(h.ledger().balance(&AccountId::new(&id, None)), 890_000);
    // Insufficient funds.
    let r: Result<u64, String> = h
        .update_candid(alice, "pay", (alice, 10_000_000u64))
        .unwrap();
    assert!(r.unwrap_err().contains("InsufficientFunds"));
    // A trap injected in the callback after a successful transfer: the transfer happened,
    // the canister did not record it.
    h.trap_next_callbacks(1);
    let e = h
        .update(
            alice,
            "pay",
            candid::encode_args((alice, 1_000u64)).unwrap(),
        )
        .unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError);
    assert_eq!(h.ledger().balance(&AccountId::new(&alice, None)), 101_000);

    // raw_rand is deterministic per seed.
    let r1: Vec<u8> = h.update_candid(alice, "rand", ()).unwrap();
    assert_eq!(r1.len(), 32);
    let mut h2 = Host::new(HostConfig::default());
    h2.install(&wasm, candid::encode_one(5u64).unwrap(), ctl)
        .unwrap();
    let r2: Vec<u8> = h2.update_candid(alice, "rand", ()).unwrap();
    assert_eq!(r1, r2);

    // Upgrade keeps the stable map.
    h.upgrade(&wasm, candid::encode_args(()).unwrap()).unwrap();
    let v: Option<String> = h.query_candid(alice, "lookup", (1u64,)).unwrap();
    assert_eq!(v.as_deref(), Some("one"));

    let r = h
        .update(alice, "spin", candid::encode_one(1_000_000u64).unwrap())
        .unwrap();
    eprintln!(
        "spin(1e6): {} instructions; status {:?}",
        r.instructions,
        h.status()
    );
    let p: u64 = h.update_candid(alice, "perf", ()).unwrap();
    eprintln!("perf(): performance_counter = {p}");
    for rec in h
        .executions()
        .filter(|r| r.kind != local_replica::ic0::ExecKind::Query)
    {
        eprintln!(
            "{:?} {} {} {:?}",
            rec.kind, rec.method, rec.instructions, rec.trap
        );
    }
}
