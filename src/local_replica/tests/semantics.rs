//! The host's ic0 semantics, checked on a hand-written `.wat` canister.

use candid::Principal;
use local_replica::{AccountId, Host, HostConfig, HostError, RejectCode};
use std::time::Duration;

fn wasm() -> Vec<u8> {
    wat::parse_str(include_str!("semantics.wat")).expect("valid wat")
}

fn u64_arg(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn as_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn controller() -> Principal {
    Principal::from_slice(&[7; 29])
}

fn alice() -> Principal {
    Principal::from_slice(&[1; 29])
}

fn host_with(config: HostConfig) -> Host {
    let mut h = Host::new(config);
    h.install(&wasm(), u64_arg(41), controller())
        .expect("install");
    h
}

fn host() -> Host {
    host_with(HostConfig::default())
}

fn upd(h: &mut Host, m: &str, arg: u64) -> u64 {
    as_u64(&h.update(alice(), m, u64_arg(arg)).expect("update").bytes)
}

fn qry(h: &mut Host, m: &str) -> u64 {
    as_u64(&h.query(alice(), m, vec![]).expect("query").bytes)
}

#[test]
fn init_arg_and_reply() {
    let mut h = host();
    assert_eq!(qry(&mut h, "get"), 41);
    assert_eq!(upd(&mut h, "inc", 0), 42);
    assert_eq!(qry(&mut h, "get"), 42);
    let echo = h.update(alice(), "echo", b"hello".to_vec()).expect("echo");
    assert_eq!(echo.bytes, b"hello");
    assert!(echo.instructions > 0);
}

#[test]
fn caller_is_passed() {
    let mut h = host();
    let r = h.update(alice(), "whoami", vec![]).expect("whoami");
    assert_eq!(r.bytes, alice().as_slice());
}

#[test]
fn explicit_reject_is_canister_reject() {
    let mut h = host();
    let e = h.update(alice(), "reject_me", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterReject);
    assert_eq!(e.message, "nope");
}

#[test]
fn trap_rolls_back_heap_globals_stable_and_timer() {
    let mut h = host();
    let stable_before = h.status().unwrap().stable_memory_bytes;
    let e = h.update(alice(), "inc_then_trap", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError);
    assert!(
        e.message.contains("trapped explicitly: boom"),
        "{}",
        e.message
    );
    assert_eq!(qry(&mut h, "get"), 41, "global rolled back");
    assert_eq!(qry(&mut h, "heap_flag"), 0, "heap rolled back");
    let st = h.status().unwrap();
    assert_eq!(
        st.stable_memory_bytes, stable_before,
        "stable grow rolled back"
    );
    assert_eq!(st.global_timer_ns, 0, "timer change rolled back");
}

#[test]
fn query_does_not_persist() {
    let mut h = host();
    assert_eq!(qry(&mut h, "inc_query"), 42);
    assert_eq!(qry(&mut h, "inc_query"), 42);
    assert_eq!(qry(&mut h, "get"), 41);
    assert_eq!(qry(&mut h, "heap_flag"), 0);
}

#[test]
fn missing_method_is_destination_invalid() {
    let mut h = host();
    let e = h.update(alice(), "nope", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::DestinationInvalid);
    let e = h.query(alice(), "nope", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::DestinationInvalid);
}

#[test]
fn context_without_reply_is_rejected() {
    let mut h = host();
    let e = h.update(alice(), "no_reply", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError);
    assert!(
        e.message.contains("did not produce a response"),
        "{}",
        e.message
    );
    assert_eq!(h.open_call_contexts(), 0);
}

#[test]
fn ledger_call_and_reply_callback() {
    let mut h = host();
    let r = h
        .update(alice(), "call_ledger", vec![])
        .expect("call_ledger");
    let fee: candid::Nat = candid::decode_one(&r.bytes).expect("nat");
    assert_eq!(fee, candid::Nat::from(10_000u64));
    assert_eq!(qry(&mut h, "get"), 141, "reply callback state persisted");
    assert_eq!(qry(&mut h, "cleanups"), 0);
    assert!(
        r.total_instructions > r.instructions,
        "callback counted in the tree"
    );
}

#[test]
fn rejected_call_runs_reject_callback() {
    let mut h = host();
    h.fail_next_calls("icrc1_fee", 1, RejectCode::SysTransient, "queue full");
    let r = h
        .update(alice(), "call_ledger", vec![])
        .expect("reject callback replies");
    assert_eq!(as_u64(&r.bytes), 2);
    // Only the next call was affected.
    assert!(h.update(alice(), "call_ledger", vec![]).is_ok());
    assert_eq!(qry(&mut h, "get"), 141);
}

#[test]
fn unknown_outcome_is_sys_unknown() {
    let mut h = host();
    h.unknown_outcome_next_calls("icrc1_fee", 1);
    let r = h
        .update(alice(), "call_ledger", vec![])
        .expect("reject callback replies");
    assert_eq!(as_u64(&r.bytes), 6);
}

#[test]
fn trapping_callback_runs_cleanup_and_rolls_back() {
    let mut h = host();
    let e = h.update(alice(), "call_trap_cb", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError);
    assert!(e.message.contains("boom"), "{}", e.message);
    assert_eq!(qry(&mut h, "get"), 41, "callback's +1000 rolled back");
    assert_eq!(qry(&mut h, "cleanups"), 1, "cleanup ran and persisted");
}

#[test]
fn injected_callback_trap_runs_cleanup() {
    let mut h = host();
    h.trap_next_callbacks(1);
    let e = h.update(alice(), "call_ledger", vec![]).unwrap_err();
    assert!(e.message.contains("injected fault"), "{}", e.message);
    assert_eq!(qry(&mut h, "get"), 41);
    assert_eq!(qry(&mut h, "cleanups"), 1);
}

#[test]
fn trap_after_call_perform_drops_the_call() {
    let mut h = host();
    let e = h.update(alice(), "call_then_trap", vec![]).unwrap_err();
    assert!(e.message.contains("boom"));
    assert_eq!(qry(&mut h, "get"), 41, "no callback ran");
    assert_eq!(h.open_call_contexts(), 0);
}

#[test]
fn ic0_fault_injection() {
    let mut h = host();
    h.trap_on_ic0("msg_reply", 2);
    assert_eq!(upd(&mut h, "inc", 0), 42);
    let e = h.update(alice(), "inc", vec![]).unwrap_err();
    assert!(
        e.message.contains("injected fault: trap at ic0.msg_reply"),
        "{}",
        e.message
    );
    assert_eq!(qry(&mut h, "get"), 42);
}

#[test]
fn held_calls_let_other_messages_run_first() {
    let mut h = host();
    h.hold_calls_to(local_replica::ledger_principal());
    let m1 = h.submit_update(alice(), "call_ledger", vec![]);
    h.run_until_idle();
    assert_eq!(h.held_calls(), 1);
    assert!(matches!(
        h.message_status(m1),
        Some(local_replica::MessageStatus::Pending)
    ));
    assert_eq!(upd(&mut h, "inc", 0), 42, "another message ran meanwhile");
    h.release_held();
    let r = h.await_reply(m1).expect("released");
    assert!(!r.bytes.is_empty());
    assert_eq!(qry(&mut h, "get"), 142);
}

#[test]
fn timer_fires_after_advance_time() {
    let mut h = host();
    upd(&mut h, "set_timer", 3_600_000_000_000); // 1 h
    let deadline = h.status().unwrap().global_timer_ns;
    assert!(deadline > h.now());
    h.advance_time(Duration::from_secs(1800));
    assert_eq!(qry(&mut h, "fired"), 0);
    h.advance_time(Duration::from_secs(1800));
    assert_eq!(qry(&mut h, "fired"), 1);
    assert_eq!(qry(&mut h, "fired_at"), deadline, "fires at the deadline");
    assert_eq!(
        h.status().unwrap().global_timer_ns,
        0,
        "reset before running"
    );
    h.advance_time(Duration::from_secs(86_400));
    assert_eq!(qry(&mut h, "fired"), 1, "one-shot");
}

#[test]
fn upgrade_keeps_stable_and_drops_heap() {
    let mut h = host();
    upd(&mut h, "stable_put", 12345);
    upd(&mut h, "inc", 0);
    upd(&mut h, "set_timer", 1_000_000_000_000);
    h.upgrade(&wasm(), vec![]).expect("upgrade");
    assert_eq!(qry(&mut h, "stable_get"), 12345);
    assert_eq!(
        qry(&mut h, "get"),
        0,
        "heap/globals are fresh (init not run)"
    );
    assert_eq!(h.status().unwrap().global_timer_ns, 0, "timer reset");
    assert_eq!(h.status().unwrap().version, 1);
}

#[test]
fn failed_upgrade_keeps_old_instance() {
    let mut h = host();
    upd(&mut h, "stable_put", 5);
    upd(&mut h, "inc", 0);
    let e = h.upgrade(&wasm(), vec![1]).unwrap_err();
    assert!(
        matches!(e, HostError::Trapped(ref m) if m.contains("boom")),
        "{e}"
    );
    assert_eq!(qry(&mut h, "get"), 42);
    assert_eq!(qry(&mut h, "stable_get"), 5);
    assert_eq!(h.status().unwrap().version, 0);
}

#[test]
fn failed_install_installs_nothing() {
    let bad = wat::parse_str(
        r#"(module (import "ic0" "trap" (func $t (param i32 i32)))
            (memory (export "memory") 1)
            (func (export "canister_init") (call $t (i32.const 0) (i32.const 0))))"#,
    )
    .unwrap();
    let mut h = Host::new(HostConfig::default());
    assert!(matches!(
        h.install(&bad, vec![], controller()),
        Err(HostError::Trapped(_))
    ));
    assert!(!h.is_installed());
}

#[test]
fn inspect_message_rejects() {
    let mut h = host();
    let e = h.update(alice(), "Xforbidden", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterReject);
    assert!(e.message.contains("inspect_message"), "{}", e.message);
    // Queries skip inspect_message.
    assert_eq!(qry(&mut h, "get"), 41);
}

#[test]
fn unknown_import_is_a_trapping_stub() {
    let mut h = host();
    let e = h.update(alice(), "unknown", vec![]).unwrap_err();
    assert!(e.message.contains("not supported"), "{}", e.message);
}

/// The IC counts 11 instructions per iteration: br_if(2) + 2×local.get(1) + i64.ge_u(1) +
/// local.get(1) + i64.const(1) + i64.add(1) + local.set(1) + br(2), in two basic blocks (the
/// loop body up to `br_if`, then up to `br`; IC `instrumentation.rs`, `injections`). The
/// host instruments the module with the same rules, so the count per iteration is exact: the
/// difference between n and 2n iterations is 11 n, everything else (argument, exit check,
/// counter read) being the same in both messages.
#[test]
fn instruction_count_of_a_known_loop() {
    let mut h = host();
    let n = 1_000_000u64;
    let counted = upd(&mut h, "loop", n);
    let twice = upd(&mut h, "loop", 2 * n);
    assert_eq!(twice - counted, 11 * n, "{counted} for n, {twice} for 2n");
    assert!(
        counted >= 11 * n && counted - 11 * n < 5_000,
        "constant part: {}",
        counted - 11 * n
    );
    // The host's own count of the message includes the reply after the counter read.
    let r = h.update(alice(), "loop", u64_arg(n)).unwrap();
    assert!(r.instructions >= counted && r.instructions - counted < 5_000);
    eprintln!(
        "loop({n}): performance_counter = {counted}, message = {}",
        r.instructions
    );
}

#[test]
fn instruction_limit_traps_like_the_ic() {
    let mut h = host_with(HostConfig {
        update_limit: 1_000_000,
        ..HostConfig::default()
    });
    let e = h.update(alice(), "loop", u64_arg(1_000_000)).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError);
    assert!(
        e.message
            .contains("Canister exceeded the instruction limit for single message execution"),
        "{}",
        e.message
    );
    assert!(upd(&mut h, "loop", 1_000) < 1_000_000);
}

#[test]
fn memory_grow_is_charged_flat() {
    let mut h = host();
    let small = upd(&mut h, "grow", 1);
    let big = upd(&mut h, "grow", 100);
    // 100 pages = 6.5 MB would cost 6.5M under per-byte charging.
    assert!(big < 10_000 && small < 10_000, "{small} {big}");
    assert!(h.status().unwrap().heap_bytes >= 102 * 65_536);
}

#[test]
fn deep_recursion_does_not_overflow_the_native_stack() {
    let mut h = host();
    assert_eq!(upd(&mut h, "recurse", 50_000), 50_000);
}

#[test]
fn ledger_transfer_and_funding() {
    let mut h = host();
    let a = AccountId::new(&alice(), None);
    let b = AccountId::new(&controller(), None);
    h.fund(a, 1_000_000);
    let blk = h
        .ledger_transfer_as(&alice(), b, 500_000)
        .expect("transfer");
    assert_eq!(blk, 1);
    assert_eq!(h.ledger().balance(&a), 490_000);
    assert_eq!(h.ledger().balance(&b), 500_000);
    assert_eq!(h.ledger().fees_burned(), 10_000);
    assert_eq!(
        h.ledger().total_supply() + h.ledger().fees_burned(),
        h.ledger().total_minted()
    );
}

#[test]
fn save_and_load_round_trip() {
    let dir = std::env::temp_dir().join(format!("lr-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut h = host();
    upd(&mut h, "inc", 0);
    upd(&mut h, "stable_put", 99);
    upd(&mut h, "set_timer", 10_000_000_000);
    let a = AccountId::new(&alice(), None);
    h.fund(a, 123);
    h.save(&dir).expect("save");
    let mut h2 = Host::load(&dir).expect("load");
    assert_eq!(h2.now(), h.now());
    assert_eq!(h2.status(), h.status());
    assert_eq!(qry(&mut h2, "get"), 42, "globals restored, init not re-run");
    assert_eq!(qry(&mut h2, "stable_get"), 99);
    assert_eq!(h2.ledger().balance(&a), 123);
    h2.advance_time(Duration::from_secs(11));
    assert_eq!(qry(&mut h2, "fired"), 1, "timer survives persistence");
    assert_eq!(upd(&mut h2, "inc", 0), 43);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn held_best_effort_call_times_out_with_sys_unknown() {
    let mut h = host();
    h.hold_calls_to(local_replica::ledger_principal());
    let m = h.submit_update(alice(), "call_ledger_best_effort", vec![]);
    h.run_until_idle();
    assert!(matches!(
        h.message_status(m),
        Some(local_replica::MessageStatus::Pending)
    ));
    h.advance_time(Duration::from_secs(5));
    assert!(matches!(
        h.message_status(m),
        Some(local_replica::MessageStatus::Pending)
    ));
    h.advance_time(Duration::from_secs(6));
    let r = h.await_reply(m).expect("reject callback replies");
    assert_eq!(as_u64(&r.bytes), 6, "SYS_UNKNOWN");
    assert_eq!(h.open_call_contexts(), 0);
    // Releasing executes the request at the callee; the late response is dropped.
    h.release_held();
    h.run_until_idle();
    assert_eq!(h.held_calls(), 0);
    assert_eq!(qry(&mut h, "get"), 41, "no reply callback ran");
}

#[test]
fn stable_write_tracking_records_written_pages() {
    let mut h = host();
    assert_eq!(h.take_stable_dirty_pages(), None, "off until asked for");
    h.track_stable_writes();
    assert_eq!(upd(&mut h, "stable_put", 5), 0);
    assert_eq!(h.take_stable_dirty_pages(), Some(vec![0]));
    assert_eq!(h.take_stable_dirty_pages(), Some(vec![]), "taking resets");
    // A query and a trapping update write too (then roll back): their pages are recorded.
    h.update(alice(), "inc_then_trap", vec![]).unwrap_err();
    assert_eq!(h.take_stable_dirty_pages(), Some(vec![0]));
    assert_eq!(qry(&mut h, "stable_get"), 5);
    assert_eq!(
        h.take_stable_dirty_pages(),
        Some(vec![]),
        "reads are not writes"
    );
}

#[test]
fn snapshot_restores_state_clock_and_ledger_and_keeps_write_tracking() {
    let mut h = host();
    h.track_stable_writes();
    upd(&mut h, "stable_put", 9);
    let snap = h.snapshot().expect("quiescent");
    let (t0, acct) = (h.now(), AccountId::new(&alice(), None));
    h.fund(acct, 500);
    assert_eq!(upd(&mut h, "inc", 0), 42);
    upd(&mut h, "stable_put", 10);
    h.advance_time(Duration::from_secs(60));
    h.restore(&snap).expect("restore");
    assert_eq!(h.now(), t0);
    assert_eq!(h.ledger().balance(&acct), 0);
    assert_eq!(qry(&mut h, "get"), 41, "heap global back");
    assert_eq!(qry(&mut h, "stable_get"), 9, "stable back");
    assert_eq!(
        h.take_stable_dirty_pages(),
        Some(vec![]),
        "tracking stays on, emptied"
    );
    // The host keeps working from the snapshot, records its writes, and can go back again
    // (the second restore copies back only what was written since the first).
    assert_eq!(upd(&mut h, "inc", 0), 42);
    upd(&mut h, "stable_put", 11);
    assert_eq!(h.take_stable_dirty_pages(), Some(vec![0]));
    h.restore(&snap).expect("restore again");
    assert_eq!(qry(&mut h, "get"), 41);
    assert_eq!(
        qry(&mut h, "stable_get"),
        9,
        "stable back after an incremental restore"
    );
    assert_eq!(h.take_stable_dirty_pages(), Some(vec![]));
}

#[test]
fn answered_update_messages_are_not_kept() {
    let mut h = host();
    let first = h.submit_update(alice(), "echo", vec![1]);
    h.run_until_idle();
    // `update` answers with the result; its message is not kept (its id is internal).
    h.update(alice(), "echo", vec![2; 1000]).expect("echo");
    let last = h.submit_update(alice(), "echo", vec![3]);
    h.run_until_idle();
    for id in [first, last] {
        assert!(
            matches!(
                h.message_status(id),
                Some(local_replica::MessageStatus::Done(_))
            ),
            "submitted messages stay queryable"
        );
    }
    assert!(last > first + 1);
    for id in first + 1..last {
        assert_eq!(h.message_status(id), None, "id {id}");
    }
}

/// A canister whose `post_upgrade` sets the global timer due at once; the timer counts its
/// runs in a global (`fired` replies it).
fn timer_on_upgrade() -> Vec<u8> {
    wat::parse_str(
        r#"(module
            (import "ic0" "global_timer_set" (func $set (param i64) (result i64)))
            (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
            (import "ic0" "msg_reply" (func $reply))
            (memory (export "memory") 1)
            (global $fired (mut i64) (i64.const 0))
            (func (export "canister_post_upgrade") (drop (call $set (i64.const 1))))
            (func (export "canister_global_timer")
                (global.set $fired (i64.add (global.get $fired) (i64.const 1))))
            (func (export "canister_query fired")
                (i64.store (i32.const 0) (global.get $fired))
                (call $append (i32.const 0) (i32.const 8))
                (call $reply)))"#,
    )
    .expect("valid wat")
}

#[test]
fn a_held_upgrade_leaves_the_timer_post_upgrade_set_for_later() {
    let fired = |h: &mut Host| as_u64(&h.query(alice(), "fired", vec![]).expect("fired").bytes);
    let mut h = Host::new(HostConfig::default());
    h.install(&timer_on_upgrade(), vec![], controller())
        .expect("install");
    h.upgrade(&timer_on_upgrade(), vec![]).expect("upgrade");
    assert_eq!(
        fired(&mut h),
        1,
        "an upgrade runs until idle: the timer ran"
    );
    h.upgrade_held(&timer_on_upgrade(), vec![])
        .expect("held upgrade");
    assert_eq!(fired(&mut h), 0, "held: not yet");
    h.run_until_idle();
    assert_eq!(fired(&mut h), 1);
}
