//! Held calls released one at a time with a chosen outcome, and in-memory snapshots of a
//! quiescent host, checked on the hand-written `.wat` canister of `semantics.rs`.

use candid::{Encode, Principal};
use local_replica::ledger::{
    AccountBalanceArgs, TimeStamp, Tokens, TransferArgs, TransferError, TransferResult,
    PERMITTED_DRIFT_NS, TX_WINDOW_NS,
};
use local_replica::{
    ledger_principal, AccountId, HeldOutcome, Host, HostConfig, LedgerCall, MessageId,
    MessageStatus, RejectCode, ReleaseError, Response,
};
use std::time::Duration;

fn wasm() -> Vec<u8> {
    wat::parse_str(include_str!("semantics.wat")).expect("valid wat")
}

fn alice() -> Principal {
    Principal::from_slice(&[1; 29])
}

fn as_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn qry(h: &mut Host, m: &str) -> u64 {
    as_u64(&h.query(alice(), m, vec![]).expect("query").bytes)
}

/// A host with the `.wat` canister (counter 41) whose default account holds 10 ICP.
fn host() -> Host {
    let mut h = Host::new(HostConfig::default());
    h.install(
        &wasm(),
        41u64.to_le_bytes().to_vec(),
        Principal::from_slice(&[7; 29]),
    )
    .expect("install");
    let me = h.canister_id();
    h.fund(AccountId::new(&me, None), 1_000_000_000);
    h
}

fn raw(method: &str, payload: Vec<u8>) -> Vec<u8> {
    let mut arg = vec![method.len() as u8];
    arg.extend_from_slice(method.as_bytes());
    arg.extend(payload);
    arg
}

fn bob() -> AccountId {
    AccountId::new(&Principal::from_slice(&[2; 29]), None)
}

/// The canister transfers `amount` to bob with `memo` and `created_at_time = now`.
fn submit_transfer(h: &mut Host, memo: u64, amount: u64) -> MessageId {
    let args = TransferArgs {
        memo,
        amount: Tokens { e8s: amount },
        fee: Tokens { e8s: 10_000 },
        from_subaccount: None,
        to: serde_bytes::ByteBuf::from(bob().0.to_vec()),
        created_at_time: Some(TimeStamp {
            timestamp_nanos: h.now(),
        }),
    };
    h.submit_update(
        alice(),
        "call_ledger_raw",
        raw("transfer", Encode!(&args).unwrap()),
    )
}

fn submit_balance(h: &mut Host, account: AccountId) -> MessageId {
    let args = AccountBalanceArgs {
        account: serde_bytes::ByteBuf::from(account.0.to_vec()),
    };
    h.submit_update(
        alice(),
        "call_ledger_raw",
        raw("account_balance", Encode!(&args).unwrap()),
    )
}

fn pending(h: &Host, m: MessageId) -> bool {
    matches!(h.message_status(m), Some(MessageStatus::Pending))
}

fn transfer_reply(h: &Host, m: MessageId) -> TransferResult {
    match h.message_status(m) {
        Some(MessageStatus::Done(Response::Reply(b))) => {
            candid::decode_one(b).expect("a TransferResult")
        }
        other => panic!("message {m}: no reply: {other:?}"),
    }
}

fn reject_code_reply(h: &Host, m: MessageId) -> u64 {
    match h.message_status(m) {
        // The reject callback replies with the reject code as 8 bytes.
        Some(MessageStatus::Done(Response::Reply(b))) if b.len() == 8 => as_u64(b),
        other => panic!("message {m}: not a reject-code reply: {other:?}"),
    }
}

#[test]
fn held_calls_are_listed_with_their_decoded_ledger_request() {
    let mut h = host();
    h.hold_calls_to(ledger_principal());
    let created = h.now();
    let t = submit_transfer(&mut h, 77, 5_000);
    let b = submit_balance(&mut h, bob());
    h.run_until_idle();
    let held = h.list_held_calls();
    assert_eq!(held.len(), 2);
    assert_eq!(h.held_calls(), 2);
    let (first, second) = (&held[0], &held[1]);
    assert_eq!(first.callee, ledger_principal());
    assert_eq!(first.method, "transfer");
    assert_eq!(first.caller_method, "call_ledger_raw");
    assert_eq!(first.message, Some(t));
    assert_eq!(
        first.ledger,
        Some(LedgerCall::Transfer {
            memo: 77,
            amount: 5_000,
            fee: 10_000,
            from_subaccount: None,
            to: bob(),
            created_at_time: Some(created),
        })
    );
    assert_eq!(second.method, "account_balance");
    assert_eq!(second.message, Some(b));
    assert_eq!(
        second.ledger,
        Some(LedgerCall::AccountBalance { account: bob() })
    );
    assert_ne!(first.id, second.id);
}

#[test]
fn releasing_one_call_leaves_the_others_held() {
    let mut h = host();
    h.hold_calls_to(ledger_principal());
    let t = submit_transfer(&mut h, 1, 5_000);
    let b = submit_balance(&mut h, bob());
    h.run_until_idle();
    let held = h.list_held_calls();
    // The later call first.
    h.release_held_call(held[1].id, HeldOutcome::Deliver)
        .unwrap();
    h.run_until_idle();
    let balance: Tokens = match h.message_status(b) {
        Some(MessageStatus::Done(Response::Reply(bytes))) => candid::decode_one(bytes).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(balance.e8s, 0, "the transfer has not happened yet");
    assert!(pending(&h, t));
    assert_eq!(h.list_held_calls().len(), 1);
    assert_eq!(h.list_held_calls()[0].id, held[0].id);
    assert_eq!(
        h.release_held_call(held[1].id, HeldOutcome::Deliver),
        Err(ReleaseError::NotHeld(held[1].id))
    );
    h.release_held_call(held[0].id, HeldOutcome::Deliver)
        .unwrap();
    h.run_until_idle();
    assert!(transfer_reply(&h, t).is_ok());
    assert_eq!(h.ledger().balance(&bob()), 5_000);
    assert_eq!(h.held_calls(), 0);
    assert_eq!(h.open_call_contexts(), 0);
}

#[test]
fn a_rejected_release_never_reaches_the_ledger() {
    let mut h = host();
    h.hold_calls_to(ledger_principal());
    let t = submit_transfer(&mut h, 1, 5_000);
    h.run_until_idle();
    let blocks = h.ledger().blocks().len();
    let id = h.list_held_calls()[0].id;
    h.release_held_call(
        id,
        HeldOutcome::Reject {
            code: RejectCode::SysTransient,
            message: "queue full".into(),
        },
    )
    .unwrap();
    h.run_until_idle();
    assert_eq!(reject_code_reply(&h, t), RejectCode::SysTransient as u64);
    assert_eq!(h.ledger().blocks().len(), blocks, "not applied");
    assert_eq!(h.ledger().balance(&bob()), 0);
    let t2 = submit_transfer(&mut h, 2, 5_000);
    h.run_until_idle();
    let id = h.list_held_calls()[0].id;
    h.release_held_call(
        id,
        HeldOutcome::Reject {
            code: RejectCode::CanisterReject,
            message: "no".into(),
        },
    )
    .unwrap();
    h.run_until_idle();
    assert_eq!(reject_code_reply(&h, t2), RejectCode::CanisterReject as u64);
    assert_eq!(h.ledger().blocks().len(), blocks);
}

#[test]
fn an_applied_release_can_answer_sys_unknown() {
    let mut h = host();
    h.hold_calls_to(ledger_principal());
    let t = submit_transfer(&mut h, 1, 5_000);
    h.run_until_idle();
    let id = h.list_held_calls()[0].id;
    h.release_held_call(id, HeldOutcome::AppliedUnknown)
        .unwrap();
    h.run_until_idle();
    assert_eq!(reject_code_reply(&h, t), RejectCode::SysUnknown as u64);
    assert_eq!(h.ledger().balance(&bob()), 5_000, "the ledger applied it");
    assert_eq!(qry(&mut h, "get"), 41, "no reply callback ran");
}

#[test]
fn an_applied_release_can_trap_the_reply_callback_and_run_its_cleanup() {
    let mut h = host();
    h.hold_calls_to(ledger_principal());
    let t = submit_transfer(&mut h, 1, 5_000);
    h.run_until_idle();
    let id = h.list_held_calls()[0].id;
    h.release_held_call(id, HeldOutcome::AppliedThenTrap)
        .unwrap();
    h.run_until_idle();
    match h.message_status(t) {
        Some(MessageStatus::Done(Response::Reject(code, msg))) => {
            assert_eq!(*code, RejectCode::CanisterError as u32);
            assert!(msg.contains("injected fault"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.ledger().balance(&bob()), 5_000, "the ledger applied it");
    assert_eq!(qry(&mut h, "get"), 41, "the callback's effects rolled back");
    assert_eq!(qry(&mut h, "cleanups"), 1, "the cleanup ran");
    // Only that callback: the next call's callback runs normally.
    h.stop_holding(ledger_principal());
    let t2 = submit_transfer(&mut h, 2, 5_000);
    h.run_until_idle();
    assert!(transfer_reply(&h, t2).is_ok());
    assert_eq!(qry(&mut h, "get"), 141);
}

#[test]
fn a_too_old_release_moves_the_clock_past_the_window_and_applies_nothing() {
    let mut h = host();
    h.hold_calls_to(ledger_principal());
    let t = submit_transfer(&mut h, 1, 5_000);
    let b = submit_balance(&mut h, bob());
    h.run_until_idle();
    let held = h.list_held_calls();
    let created = match &held[0].ledger {
        Some(LedgerCall::Transfer {
            created_at_time, ..
        }) => created_at_time.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        h.release_held_call(held[1].id, HeldOutcome::TooOld),
        Err(ReleaseError::NotATimedTransfer(held[1].id)),
        "account_balance has no dedup window"
    );
    let blocks = h.ledger().blocks().len();
    h.release_held_call(held[0].id, HeldOutcome::TooOld)
        .unwrap();
    assert!(h.now() > created + TX_WINDOW_NS + PERMITTED_DRIFT_NS);
    h.run_until_idle();
    assert_eq!(
        transfer_reply(&h, t),
        Err(TransferError::TxTooOld {
            allowed_window_nanos: TX_WINDOW_NS
        })
    );
    assert_eq!(h.ledger().blocks().len(), blocks, "not applied");
    assert!(pending(&h, b), "the other call is still held");
}

#[test]
fn a_chosen_outcome_overrides_the_fault_rules_which_stay_armed() {
    let mut h = host();
    h.fail_next_calls("transfer", 1, RejectCode::SysTransient, "busy");
    h.hold_calls_to(ledger_principal());
    let t = submit_transfer(&mut h, 1, 5_000);
    h.run_until_idle();
    let id = h.list_held_calls()[0].id;
    h.release_held_call(id, HeldOutcome::Deliver).unwrap();
    h.run_until_idle();
    assert!(transfer_reply(&h, t).is_ok(), "delivered despite the rule");
    h.stop_holding(ledger_principal());
    let t2 = submit_transfer(&mut h, 2, 5_000);
    h.run_until_idle();
    assert_eq!(
        reject_code_reply(&h, t2),
        RejectCode::SysTransient as u64,
        "the rule still applies to the next unheld call"
    );
}

#[test]
fn a_snapshot_restores_canister_ledger_clock_and_messages() {
    let mut h = host();
    h.update(alice(), "inc", vec![]).unwrap();
    h.update(alice(), "stable_put", 99u64.to_le_bytes().to_vec())
        .unwrap();
    h.update(
        alice(),
        "set_timer",
        10_000_000_000u64.to_le_bytes().to_vec(),
    )
    .unwrap();
    let done = h.submit_update(alice(), "inc", vec![]);
    h.run_until_idle();
    let snap = h.snapshot().expect("quiescent");
    let (now, status, supply) = (h.now(), h.status(), h.ledger().total_supply());
    assert!(snap.memory_bytes() > 0);

    // Change everything, and leave work in flight.
    h.update(alice(), "inc", vec![]).unwrap();
    h.update(alice(), "stable_put", 5u64.to_le_bytes().to_vec())
        .unwrap();
    h.fund(bob(), 1);
    h.advance_time(Duration::from_secs(11));
    assert_eq!(qry(&mut h, "fired"), 1);
    h.hold_calls_to(ledger_principal());
    let in_flight = submit_transfer(&mut h, 1, 5_000);
    h.run_until_idle();
    assert_eq!(h.held_calls(), 1);
    assert!(h.snapshot().is_err(), "not quiescent");

    h.restore(&snap).unwrap();
    assert_eq!(h.now(), now);
    assert_eq!(h.status(), status);
    assert_eq!(h.ledger().total_supply(), supply);
    assert_eq!(h.ledger().balance(&bob()), 0);
    assert_eq!(h.held_calls(), 0);
    assert_eq!(h.open_call_contexts(), 0);
    assert_eq!(
        h.message_status(in_flight),
        None,
        "a message after the snapshot"
    );
    assert!(matches!(
        h.message_status(done),
        Some(MessageStatus::Done(Response::Reply(_)))
    ));
    assert_eq!(qry(&mut h, "get"), 43);
    assert_eq!(qry(&mut h, "stable_get"), 99);
    assert_eq!(qry(&mut h, "fired"), 0);
    // Holding was set after the snapshot: calls go through again; the timer is armed.
    let t = submit_transfer(&mut h, 1, 5_000);
    h.run_until_idle();
    assert!(transfer_reply(&h, t).is_ok());
    h.advance_time(Duration::from_secs(11));
    assert_eq!(qry(&mut h, "fired"), 1);
    // Restoring twice gives the same state again.
    h.restore(&snap).unwrap();
    assert_eq!(qry(&mut h, "get"), 43);
    assert_eq!(h.ledger().balance(&bob()), 0);
}

#[test]
fn a_snapshot_restores_across_an_upgrade_and_into_another_host() {
    let mut h = host();
    h.update(alice(), "inc", vec![]).unwrap();
    h.update(alice(), "stable_put", 7u64.to_le_bytes().to_vec())
        .unwrap();
    let snap = h.snapshot().unwrap();
    // An upgrade replaces the instance (the heap counter is lost, stable memory kept).
    h.upgrade(&wasm(), vec![]).unwrap();
    assert_eq!(qry(&mut h, "get"), 0);
    h.restore(&snap).unwrap();
    assert_eq!(qry(&mut h, "get"), 42);
    assert_eq!(qry(&mut h, "stable_get"), 7);
    // A fresh host without a canister takes the snapshot too.
    let mut other = Host::new(HostConfig::default());
    other.restore(&snap).unwrap();
    assert_eq!(qry(&mut other, "get"), 42);
    assert_eq!(qry(&mut other, "stable_get"), 7);
    assert_eq!(other.status(), h.status());
}
