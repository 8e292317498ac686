//! Native tests of the payment flow with the mock runtime and its in-memory ledger:
//! happy paths, under/over-payment, interleavings, unknown outcomes, retries, refunds.

use std::cell::RefCell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;

use super::account::{account_identifier, session_subaccount};
use super::journal::{self, Attempt};
use super::ledger::{CallFailure, Tokens, TransferError, LEDGER_FEE_E8S as FEE};
use super::*;
use crate::domain::vaults;
use crate::model::config::{Config, InitArgs};
use crate::model::payments::*;
use crate::model::types::{CreateVaultArgs, PlanSelection, Tier, VaultStatus, NANOS_PER_DAY};
use crate::runtime::testing::MockRuntime;
use crate::storage::State;

const T0: u64 = 1_767_225_600_000_000_000;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}

fn admin() -> Principal {
    p(1)
}
fn owner() -> Principal {
    p(2)
}
fn treasury() -> Principal {
    p(9)
}

struct Env {
    store: RefCell<State>,
    rt: MockRuntime,
    vault: VaultId,
}

fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    f.poll(&mut cx)
}

/// Runs a future that must not block (the mock ledger answers at once unless held).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match poll_once(f.as_mut()) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the flow blocked (is the mock ledger held?)"),
    }
}

impl Env {
    fn new() -> Env {
        let mut state = State::open(DefaultMemoryImpl::default());
        let config = Config::from_init(
            InitArgs {
                admins: vec![admin()],
                treasury: Some(crate::model::config::Account {
                    owner: treasury(),
                    subaccount: None,
                }),
                ..Default::default()
            },
            admin(),
        )
        .unwrap();
        state.set_config(config);
        state.stamp_layout();
        let rt = MockRuntime::new(T0, admin());
        rt.as_caller(owner());
        let vault = vaults::create_vault(
            &mut state,
            &rt,
            CreateVaultArgs {
                name: "Family".into(),
                plan: PlanSelection {
                    tier: Tier::Standard,
                    heir_slots: 2,
                    witness_slot: true,
                },
                owner_age: 45,
                idempotency_key: None,
            },
        )
        .unwrap()
        .id;
        Env {
            store: RefCell::new(state),
            rt,
            vault,
        }
    }

    fn init(&self, purpose: PaymentPurpose) -> VaultResult<PaymentSession> {
        self.rt.as_caller(owner());
        init_payment(&mut self.store.borrow_mut(), &self.rt, self.vault, purpose)
    }

    fn session_account(&self, id: SessionId) -> [u8; 32] {
        account_identifier(&self.rt.self_id, Some(session_subaccount(id)))
    }

    fn pay(&self, id: SessionId, e8s: u64) {
        let acc = self.session_account(id);
        self.rt.ledger.borrow_mut().mint(acc, e8s);
    }

    fn verify(&self, id: SessionId) -> VaultResult<PaymentReceipt> {
        self.rt.as_caller(owner());
        run(verify_payment(&self.store, &self.rt, id))
    }

    fn balance_of(&self, account: [u8; 32]) -> u64 {
        self.rt.ledger.borrow().balance(&account)
    }

    fn treasury_balance(&self) -> u64 {
        self.balance_of(account_identifier(&treasury(), None))
    }

    fn owner_balance(&self) -> u64 {
        self.balance_of(account_identifier(&owner(), None))
    }

    fn vault_status(&self) -> VaultStatus {
        self.store.borrow().vaults.get(&self.vault).unwrap().status
    }

    fn transfers(&self) -> usize {
        self.rt
            .ledger
            .borrow()
            .blocks
            .iter()
            .filter(|b| b.from.is_some())
            .count()
    }

    /// Minted = balances + burned fees: nothing created or lost.
    fn assert_conserved(&self) {
        let l = self.rt.ledger.borrow();
        let minted: u64 = l
            .blocks
            .iter()
            .filter(|b| b.from.is_none())
            .map(|b| b.amount)
            .sum();
        let held: u64 = l.balances.values().sum();
        assert_eq!(minted, held + l.burned, "e8s unaccounted");
        // The metrics counters kept along the way agree with the records.
        let st = self.store.borrow();
        let now = self.rt.now.get();
        assert_eq!(
            crate::domain::metrics::current(&st, now),
            crate::domain::metrics::recount(&st, now),
            "metrics counters drifted"
        );
        // So does the storage: indexes, checks, journal and billing (the whole walk).
        crate::storage::model_test::ok(st.check_invariants());
    }
}

#[test]
fn exact_payment_confirms_creation() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    let price = env.store.borrow().vaults.get(&env.vault).unwrap().price_e8s;
    assert_eq!(s.amount_e8s, price);
    assert_eq!(s.subaccount.as_slice(), &session_subaccount(s.id));
    assert_eq!(s.account_identifier, hex::encode(env.session_account(s.id)));
    assert_eq!(
        account::icrc1_decode(&s.icrc1_account).unwrap(),
        (env.rt.self_id, Some(session_subaccount(s.id)))
    );
    assert_eq!(env.verify(s.id), Err(VaultError::NotYetPaid));
    env.pay(s.id, price);
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(r.session.status, PaymentSessionStatus::Completed);
    assert_eq!(r.billing.treasury_e8s, price - FEE);
    assert!(r.billing.sweep_block.is_some());
    assert_eq!(r.billing.refund_e8s, 0);
    assert_eq!(env.balance_of(env.session_account(s.id)), 0);
    assert_eq!(env.treasury_balance(), price - FEE);
    let vault = env.store.borrow().vaults.get(&env.vault).unwrap();
    assert_eq!(vault.paid_at, Some(T0));
    // A second verification finds the session closed; no second sweep.
    assert_eq!(env.verify(s.id), Err(VaultError::SessionClosed));
    assert_eq!(env.transfers(), 1);
    env.assert_conserved();
}

/// The stored size of the payment trail of a settled creation (session, its one sweep,
/// its billing entry): the binary records against the CBOR ones they replace; once the
/// sweep is settled its journal entry is folded away and the billing entry is a fixed
/// slot. Run with `--nocapture` to see the numbers.
#[test]
fn a_settled_creation_stores_its_payment_trail_compactly() {
    use crate::storage::binary;
    use ic_stable_structures::Storable;
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    // The sweep's outcome is unknown in the first call: its entry is still there.
    env.rt.ledger.borrow_mut().unknown_transfer = ATTEMPTS_PER_CALL;
    assert!(env.verify(s.id).unwrap().billing.sweep_pending);
    let journal = journal::entries(&env.store.borrow(), s.id);
    assert_eq!(journal.len(), 1);
    let r = env.verify(s.id).unwrap();
    assert!(!r.billing.sweep_pending);
    let st = env.store.borrow();
    // Settled: the entry is folded, its seq stays used.
    assert!(journal::entries(&st, s.id).is_empty());
    assert_eq!(st.payments.next_journal_seq(s.id), 1);
    let session = st.payments.session(s.id).unwrap();
    let billing = st.payments.billing(r.billing.id).unwrap();
    assert_eq!(billing, r.billing);
    let sizes = |cbor: usize, binary: usize, what: &str| {
        println!("{what}: CBOR {cbor} B, binary {binary} B");
        // At most 60 % of the CBOR size (the field names are most of what goes).
        assert!(
            binary * 5 <= cbor * 3,
            "{what}: binary {binary} B, CBOR {cbor} B"
        );
        (cbor, binary)
    };
    let cbor = |bytes: Vec<u8>| bytes.len();
    let stored = binary::encode_stored_session(&session, 1);
    assert_eq!(
        binary::decode_stored_session(&stored[1..]),
        Some((session.clone(), 1))
    );
    assert_eq!(
        stored.len() + session.icrc1_account.len(),
        session.to_bytes().len() + 6,
        "the ICRC-1 text is stored as the canister's principal, a journal base is added"
    );
    let (a, b) = sizes(
        cbor(crate::storage::codec::encode(1, &session)),
        stored.len(),
        "payment session",
    );
    let (c, d) = sizes(
        cbor(crate::storage::codec::encode(1, &journal[0])),
        journal[0].to_bytes().len(),
        "journal entry (settled sweep)",
    );
    let (e, f) = sizes(
        cbor(crate::storage::codec::encode(1, &billing)),
        binary::BILLING_SLOT_BYTES,
        "billing entry (slot)",
    );
    println!(
        "payment trail of a settled creation: CBOR {} B, binary {} B",
        a + c + e,
        b + d + f
    );
}

#[test]
fn underpayment_then_top_up_and_overpayment_refund() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s - 5);
    assert_eq!(
        env.verify(s.id),
        Err(VaultError::Underpaid {
            paid: s.amount_e8s - 5,
            required: s.amount_e8s
        })
    );
    assert_eq!(env.vault_status(), VaultStatus::Draft);
    // Top up 1 ICP more than needed: the excess minus the fee goes back to the owner.
    env.pay(s.id, 100_000_005);
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.billing.refund_e8s, 100_000_000 - FEE);
    assert!(r.billing.refund_block.is_some());
    assert!(!r.billing.refund_pending);
    assert_eq!(env.owner_balance(), 100_000_000 - FEE);
    assert_eq!(env.balance_of(env.session_account(s.id)), 0);
    env.assert_conserved();
}

#[test]
fn excess_up_to_one_fee_stays_as_dust() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s + FEE);
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.billing.refund_e8s, 0);
    assert_eq!(r.billing.dust_e8s, FEE);
    assert_eq!(env.balance_of(env.session_account(s.id)), FEE);
    assert_eq!(env.transfers(), 1);
    env.assert_conserved();
}

#[test]
fn same_open_purpose_returns_the_same_session_and_reopens_it_after_expiry() {
    let env = Env::new();
    let a = env.init(PaymentPurpose::Create).unwrap();
    let b = env.init(PaymentPurpose::Create).unwrap();
    assert_eq!(a, b);
    env.rt.advance(31 * 60 * 1_000_000_000);
    // Expired, same amount, purpose still applies: the same session (and subaccount) is
    // reopened for another session lifetime instead of a new one.
    let c = env.init(PaymentPurpose::Create).unwrap();
    assert_eq!(c.id, a.id);
    assert_eq!(c.subaccount, a.subaccount);
    assert_eq!(c.expires_at, env.rt.now.get() + 1800 * 1_000_000_000);
    assert!(c.next_check_at.is_some_and(|t| t > env.rt.now.get()));
    env.pay(a.id, a.amount_e8s);
    assert_eq!(
        env.verify(a.id).unwrap().vault_status,
        VaultStatus::NeedSetup
    );
    assert_eq!(
        env.init(PaymentPurpose::Create),
        Err(VaultError::InvalidState {
            current: VaultStatus::NeedSetup
        })
    );
    env.assert_conserved();
}

#[test]
fn only_the_owner_opens_and_verifies() {
    let env = Env::new();
    env.rt.as_caller(p(7));
    assert_eq!(
        init_payment(
            &mut env.store.borrow_mut(),
            &env.rt,
            env.vault,
            PaymentPurpose::Create
        ),
        Err(VaultError::NotAuthorized)
    );
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.rt.as_caller(p(7));
    assert_eq!(
        run(verify_payment(&env.store, &env.rt, s.id)),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(
        env.init(PaymentPurpose::Renew),
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
}

#[test]
fn interleaved_verifications_sweep_once() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().hold = true;
    env.rt.as_caller(owner());
    let mut first = pin!(verify_payment(&env.store, &env.rt, s.id));
    assert!(poll_once(first.as_mut()).is_pending());
    // While the first awaits the ledger, a second is refused.
    assert_eq!(
        run(verify_payment(&env.store, &env.rt, s.id)),
        Err(VaultError::Busy)
    );
    env.rt.ledger.borrow_mut().hold = false;
    let r = match poll_once(first.as_mut()) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("still pending"),
    };
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(guard::in_flight(), 0);
    assert_eq!(env.verify(s.id), Err(VaultError::SessionClosed));
    assert_eq!(env.transfers(), 1);
    env.assert_conserved();
}

#[test]
fn ledger_unavailable_changes_nothing_and_a_rejected_sweep_is_sent_again() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().fail_balance = 1;
    let before = env.store.borrow().vaults.get(&env.vault).unwrap();
    assert!(matches!(
        env.verify(s.id),
        Err(VaultError::LedgerUnavailable { .. })
    ));
    assert!(journal::entries(&env.store.borrow(), s.id).is_empty());
    assert_eq!(env.store.borrow().vaults.get(&env.vault).unwrap(), before);
    // The balance is seen: the payment is confirmed at once; the sweep is rejected by the
    // ledger and stays pending (same key), the receipt says so.
    env.rt.ledger.borrow_mut().fail_transfer = 1;
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert!(r.billing.sweep_pending);
    assert_eq!(r.billing.sweep_block, None);
    let entries = journal::entries(&env.store.borrow(), s.id);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome, Outcome::Pending);
    assert_eq!(env.transfers(), 0);
    // The scheduler will send it again; so does the next verify.
    assert!(env
        .store
        .borrow()
        .payments
        .session(s.id)
        .unwrap()
        .next_check_at
        .is_some());
    let r = env.verify(s.id).unwrap();
    assert!(!r.billing.sweep_pending);
    assert_eq!(r.billing.sweep_block, Some(1));
    assert_eq!(env.transfers(), 1);
    assert_eq!(env.verify(s.id), Err(VaultError::SessionClosed));
    env.assert_conserved();
}

#[test]
fn unknown_outcome_is_retried_with_the_same_dedup_key() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    // Applied, but reported unknown on every attempt of this call: the payment is
    // confirmed, the sweep's outcome is not known yet.
    env.rt.ledger.borrow_mut().unknown_transfer = ATTEMPTS_PER_CALL;
    let r = env.verify(s.id).unwrap();
    assert!(r.billing.sweep_pending);
    assert_eq!(env.transfers(), 1, "applied once, deduplicated after");
    assert_eq!(env.vault_status(), VaultStatus::NeedSetup);
    let sweep = journal::entries(&env.store.borrow(), s.id)[0].clone();
    assert_eq!(sweep.attempts, ATTEMPTS_PER_CALL);
    assert_eq!(sweep.memo, journal::memo(s.id, 0));
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.billing.sweep_block, Some(1));
    assert!(!r.billing.sweep_pending);
    assert_eq!(env.transfers(), 1);
    // The one block carries the dedup key written before the first attempt.
    let blocks = env.rt.ledger.borrow().blocks.clone();
    let sent: Vec<_> = blocks.iter().filter(|b| b.from.is_some()).collect();
    assert_eq!(
        (sent[0].memo, sent[0].created_at_time),
        (sweep.memo, Some(sweep.created_at_time))
    );
    // Settled: the journal is folded, the outcome is in the billing entry.
    assert!(journal::entries(&env.store.borrow(), s.id).is_empty());
    assert_eq!(env.store.borrow().payments.next_journal_seq(s.id), 1);
    // One unknown outcome is resolved within the same call.
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().unknown_transfer = 1;
    assert!(!env.verify(s.id).unwrap().billing.sweep_pending);
    assert_eq!(env.transfers(), 1);
    env.assert_conserved();
}

#[test]
fn a_dropped_flow_releases_its_guard_and_the_next_call_resumes() {
    // What a trap in the transfer callback does: the future is dropped after the intent
    // was written.
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().hold = true;
    env.rt.as_caller(owner());
    {
        let mut f = pin!(verify_payment(&env.store, &env.rt, s.id));
        assert!(poll_once(f.as_mut()).is_pending());
        assert_eq!(guard::in_flight(), 1);
    }
    assert_eq!(guard::in_flight(), 0);
    env.rt.ledger.borrow_mut().hold = false;
    // Balance call was held: nothing confirmed yet. Now run until the sweep is applied but
    // "lost" (unknown), then resume.
    assert_eq!(env.vault_status(), VaultStatus::Draft);
    env.rt.ledger.borrow_mut().unknown_transfer = ATTEMPTS_PER_CALL;
    assert!(env.verify(s.id).unwrap().billing.sweep_pending);
    assert!(!env.verify(s.id).unwrap().billing.sweep_pending);
    assert_eq!(env.transfers(), 1);
    env.assert_conserved();
}

#[test]
fn refund_with_unknown_outcome_is_finished_by_the_next_verify() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s + 50_000);
    {
        let mut l = env.rt.ledger.borrow_mut();
        l.pass_transfers = 1; // the sweep goes through
        l.unknown_transfer = ATTEMPTS_PER_CALL; // the refund is applied, reported unknown
    }
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert!(r.billing.refund_pending);
    assert_eq!(r.billing.refund_block, None);
    assert_eq!(env.transfers(), 2);
    // The next verification settles the refund with the same key: no third transfer.
    let r = env.verify(s.id).unwrap();
    assert!(!r.billing.refund_pending);
    assert_eq!(r.billing.refund_block, Some(2));
    assert_eq!(env.transfers(), 2);
    assert_eq!(env.owner_balance(), 40_000);
    assert_eq!(env.treasury_balance(), s.amount_e8s - FEE);
    assert_eq!(env.verify(s.id), Err(VaultError::SessionClosed));
    env.assert_conserved();
}

#[test]
fn journal_classification_and_final_outcomes() {
    assert_eq!(journal::classify(Ok(Ok(7))), Attempt::Done(7));
    assert_eq!(
        journal::classify(Ok(Err(TransferError::TxDuplicate { duplicate_of: 3 }))),
        Attempt::Done(3)
    );
    assert_eq!(
        journal::classify(Ok(Err(TransferError::TxTooOld {
            allowed_window_nanos: 1
        }))),
        Attempt::TooOld
    );
    assert!(matches!(
        journal::classify(Ok(Err(TransferError::InsufficientFunds {
            balance: Tokens { e8s: 1 }
        }))),
        Attempt::Failed(_)
    ));
    assert!(matches!(
        journal::classify(Err(CallFailure {
            unknown: true,
            reason: "t".into()
        })),
        Attempt::Unknown {
            retry_now: true,
            ..
        }
    ));
    assert!(matches!(
        journal::classify(Err(CallFailure {
            unknown: false,
            reason: "r".into()
        })),
        Attempt::Unknown {
            retry_now: false,
            ..
        }
    ));
    assert_eq!(journal::memo(1, 0), 1 << 16);
    assert_eq!(journal::memo(2, 1), (2 << 16) | 1);

    let mut state = State::open(DefaultMemoryImpl::default());
    let intent = |amount| journal::Intent {
        kind: TransferKind::Sweep,
        from_subaccount: session_subaccount(5),
        to: [1; 32],
        to_owner: p(1),
        amount_e8s: amount,
        fee_e8s: FEE,
        balance_before: amount + FEE,
    };
    let a = journal::write_intent(&mut state, 5, intent(100), 10);
    assert_eq!(
        (a.seq, a.created_at_time, a.memo),
        (0, 10, journal::memo(5, 0))
    );
    assert_eq!(journal::pending(&state, 5), Some(a.clone()));
    // The args of every retry are identical (same dedup key).
    assert_eq!(
        a.transfer_args(),
        journal::pending(&state, 5).unwrap().transfer_args()
    );
    journal::settle(&mut state, a.key(), Outcome::Done { block: Some(4) }, 11);
    assert_eq!(journal::pending(&state, 5), None);
    // Outcomes are final.
    let again = journal::settle(
        &mut state,
        a.key(),
        Outcome::Failed { reason: "x".into() },
        12,
    )
    .unwrap();
    assert_eq!(again.outcome, Outcome::Done { block: Some(4) });
    let b = journal::write_intent(&mut state, 5, intent(50), 20);
    assert_eq!(b.seq, 1);
    assert_eq!(journal::sessions_with_pending(&state, 10), vec![5]);
}

#[test]
fn upgrade_is_prorated_paid_and_applied() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.verify(s.id).unwrap();
    env.rt.advance(365 * NANOS_PER_DAY);
    let to = PlanSelection {
        tier: Tier::Premium,
        heir_slots: 3,
        witness_slot: true,
    };
    env.rt.as_caller(owner());
    let quote = vaults::quote_upgrade(&env.store.borrow(), &env.rt, env.vault, to).unwrap();
    let u = env.init(PaymentPurpose::Upgrade(to)).unwrap();
    assert_eq!(u.amount_e8s, quote.amount_e8s);
    assert_eq!(quote.remaining_days, 3650 - 365);
    env.pay(u.id, u.amount_e8s);
    let r = env.verify(u.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(env.store.borrow().vaults.get(&env.vault).unwrap().plan, to);
    // The same upgrade again is no longer an upgrade.
    assert!(env.init(PaymentPurpose::Upgrade(to)).is_err());
    env.assert_conserved();
}

#[test]
fn renewal_from_grace_master() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.verify(s.id).unwrap();
    // No content/members features here: put the vault in Active directly.
    {
        let mut st = env.store.borrow_mut();
        let mut v = st.vaults.load(env.vault).unwrap();
        v.status = VaultStatus::Active;
        st.save_vault(&mut v);
    }
    env.rt.advance(3650 * NANOS_PER_DAY);
    // Not yet due one ns earlier; due now.
    assert!(!expire_validity(&mut env.store.borrow_mut(), env.vault, T0).unwrap());
    assert!(expire_validity(&mut env.store.borrow_mut(), env.vault, env.rt.now.get()).unwrap());
    assert_eq!(env.vault_status(), VaultStatus::GraceMaster);
    let r = env.init(PaymentPurpose::Renew).unwrap();
    let price = env.store.borrow().vaults.get(&env.vault).unwrap().price_e8s;
    assert_eq!(
        r.amount_e8s, price,
        "the plan's full price at today's prices"
    );
    env.pay(r.id, r.amount_e8s);
    let receipt = env.verify(r.id).unwrap();
    assert_eq!(receipt.vault_status, VaultStatus::Active);
    let v = env.store.borrow().vaults.get(&env.vault).unwrap();
    assert_eq!(v.expires_at, Some(env.rt.now.get() + 3650 * NANOS_PER_DAY));
    env.assert_conserved();
}

#[test]
fn renew_moves_an_expired_active_vault_to_grace_first() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.verify(s.id).unwrap();
    {
        let mut st = env.store.borrow_mut();
        let mut v = st.vaults.load(env.vault).unwrap();
        v.status = VaultStatus::Active;
        st.save_vault(&mut v);
    }
    assert!(env.init(PaymentPurpose::Renew).is_err());
    env.rt.advance(3651 * NANOS_PER_DAY);
    assert!(env.init(PaymentPurpose::Renew).is_ok());
    assert_eq!(env.vault_status(), VaultStatus::GraceMaster);
}

#[test]
fn admin_refunds_late_funds_of_a_session_whose_purpose_is_gone() {
    let env = Env::new();
    let a = env.init(PaymentPurpose::Create).unwrap();
    // The owner deletes the draft; the session is paid afterwards.
    env.rt.as_caller(owner());
    vaults::delete_vault(&mut env.store.borrow_mut(), &env.rt, env.vault).unwrap();
    env.pay(a.id, a.amount_e8s);
    assert_eq!(
        env.verify(a.id),
        Err(VaultError::InvalidState {
            current: VaultStatus::Deleted
        })
    );
    env.rt.advance(31 * 60 * 1_000_000_000);
    assert_eq!(env.verify(a.id), Err(VaultError::SessionExpired));
    env.rt.as_caller(owner());
    assert_eq!(
        run(refund_session(&env.store, &env.rt, a.id)),
        Err(VaultError::NotAuthorized)
    );
    env.rt.as_caller(admin());
    let s = run(refund_session(&env.store, &env.rt, a.id)).unwrap();
    assert_eq!(s.status, PaymentSessionStatus::Refunded);
    assert_eq!(s.refunded_e8s, a.amount_e8s - FEE);
    assert_eq!(env.owner_balance(), a.amount_e8s - FEE);
    assert_eq!(env.balance_of(env.session_account(a.id)), 0);
    assert_eq!(env.verify(a.id), Err(VaultError::SessionClosed));
    // Nothing left to refund.
    env.rt.as_caller(admin());
    assert!(matches!(
        run(refund_session(&env.store, &env.rt, a.id)),
        Err(VaultError::InvalidInput { .. })
    ));
    env.assert_conserved();
}

#[test]
fn refunds_go_to_the_account_the_owner_named() {
    let env = Env::new();
    let wallet = crate::model::config::Account {
        owner: p(42),
        subaccount: Some(serde_bytes::ByteBuf::from(vec![5u8; 32])),
    };
    env.rt.as_caller(p(7));
    assert_eq!(
        set_refund_account(
            &mut env.store.borrow_mut(),
            &env.rt,
            env.vault,
            Some(wallet.clone())
        ),
        Err(VaultError::NotAuthorized)
    );
    env.rt.as_caller(owner());
    for bad in [
        crate::model::config::Account {
            owner: Principal::anonymous(),
            subaccount: None,
        },
        crate::model::config::Account {
            owner: p(42),
            subaccount: Some(serde_bytes::ByteBuf::from(vec![5u8; 31])),
        },
        crate::model::config::Account {
            owner: env.rt.self_id,
            subaccount: None,
        },
    ] {
        let head = env.store.borrow().vaults.get(&env.vault).unwrap();
        assert!(matches!(
            set_refund_account(&mut env.store.borrow_mut(), &env.rt, env.vault, Some(bad)),
            Err(VaultError::InvalidInput { .. })
        ));
        assert_eq!(env.store.borrow().vaults.get(&env.vault).unwrap(), head);
    }
    set_refund_account(
        &mut env.store.borrow_mut(),
        &env.rt,
        env.vault,
        Some(wallet.clone()),
    )
    .unwrap();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s + 30_000);
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.billing.refund_e8s, 20_000);
    let wallet_account = account_identifier(&p(42), Some([5u8; 32]));
    assert_eq!(env.balance_of(wallet_account), 20_000);
    assert_eq!(env.owner_balance(), 0);
    // Late funds too; and back to the default after a reset.
    env.pay(s.id, 50_000);
    env.rt.as_caller(admin());
    run(refund_session(&env.store, &env.rt, s.id)).unwrap();
    assert_eq!(env.balance_of(wallet_account), 60_000);
    env.rt.as_caller(owner());
    set_refund_account(&mut env.store.borrow_mut(), &env.rt, env.vault, None).unwrap();
    env.pay(s.id, 50_000);
    env.rt.as_caller(admin());
    run(refund_session(&env.store, &env.rt, s.id)).unwrap();
    assert_eq!(env.owner_balance(), 40_000);
    env.assert_conserved();
}

#[test]
fn admin_cannot_refund_an_open_session_whose_purpose_applies() {
    let env = Env::new();
    let a = env.init(PaymentPurpose::Create).unwrap();
    env.pay(a.id, a.amount_e8s);
    env.rt.as_caller(admin());
    assert_eq!(
        run(refund_session(&env.store, &env.rt, a.id)),
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
}

#[test]
fn listing_and_billing_pages() {
    let env = Env::new();
    let a = env.init(PaymentPurpose::Create).unwrap();
    env.pay(a.id, a.amount_e8s);
    env.verify(a.id).unwrap();
    let b = env
        .init(PaymentPurpose::Upgrade(PlanSelection {
            tier: Tier::Premium,
            heir_slots: 2,
            witness_slot: true,
        }))
        .unwrap();
    env.pay(b.id, b.amount_e8s);
    env.verify(b.id).unwrap();
    env.rt.as_caller(owner());
    let page = list_payment_sessions(
        &env.store.borrow(),
        &env.rt,
        env.vault,
        PageArgs {
            start_after: None,
            limit: Some(1),
        },
    )
    .unwrap();
    assert_eq!(page.items[0].id, a.id);
    assert_eq!(page.next_cursor, Some(a.id));
    let page = list_payment_sessions(
        &env.store.borrow(),
        &env.rt,
        env.vault,
        PageArgs {
            start_after: page.next_cursor,
            limit: Some(1),
        },
    )
    .unwrap();
    assert_eq!(page.items[0].id, b.id);
    assert_eq!(page.next_cursor, None);
    assert_eq!(
        list_billing(&env.store.borrow(), &env.rt, PageArgs::default()),
        Err(VaultError::NotAuthorized)
    );
    env.rt.as_caller(admin());
    let bills = list_billing(&env.store.borrow(), &env.rt, PageArgs::default()).unwrap();
    assert_eq!(bills.items.len(), 2);
    assert_eq!(bills.items[1].session_id, b.id);
    assert_eq!(
        get_payment_session(&env.store.borrow(), &env.rt, b.id)
            .unwrap()
            .status,
        PaymentSessionStatus::Completed
    );
    env.rt.as_caller(p(7));
    assert_eq!(
        get_payment_session(&env.store.borrow(), &env.rt, b.id),
        Err(VaultError::NotAuthorized)
    );
}

#[test]
fn set_treasury_redirects_future_sweeps_only() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().fail_transfer = 1;
    // Confirmed; its sweep intent to the old treasury is pending.
    assert!(env.verify(s.id).unwrap().billing.sweep_pending);
    env.rt.as_caller(admin());
    let new = crate::model::config::Account {
        owner: p(10),
        subaccount: None,
    };
    set_treasury(&mut env.store.borrow_mut(), &env.rt, new.clone()).unwrap();
    env.rt.as_caller(owner());
    assert!(set_treasury(&mut env.store.borrow_mut(), &env.rt, new).is_err());
    env.verify(s.id).unwrap();
    assert_eq!(env.treasury_balance(), s.amount_e8s - FEE);
    env.assert_conserved();
}

#[test]
fn too_old_key_is_resolved_from_the_balance() {
    // Applied earlier (outcome unknown), then the key left the window: known done, no block.
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().unknown_transfer = ATTEMPTS_PER_CALL;
    assert!(env.verify(s.id).unwrap().billing.sweep_pending);
    env.rt.ledger.borrow_mut().too_old_transfer = 1;
    let r = env.verify(s.id).unwrap();
    assert_eq!(r.billing.sweep_block, None);
    assert!(!r.billing.sweep_pending);
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(env.transfers(), 1);
    env.assert_conserved();

    // Never applied, then the key left the window: failed, sent again with a fresh key.
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().fail_transfer = 1;
    assert!(env.verify(s.id).unwrap().billing.sweep_pending);
    let first = journal::entries(&env.store.borrow(), s.id);
    assert_eq!(
        first.iter().map(|e| (e.seq, e.memo)).collect::<Vec<_>>(),
        vec![(0, journal::memo(s.id, 0))]
    );
    env.rt.ledger.borrow_mut().too_old_transfer = 1;
    let r = env.verify(s.id).unwrap();
    assert!(r.billing.sweep_block.is_some());
    // Both entries were folded once the second sweep settled; two seqs were used, and the
    // one transfer carries the second key.
    assert!(journal::entries(&env.store.borrow(), s.id).is_empty());
    assert_eq!(env.store.borrow().payments.next_journal_seq(s.id), 2);
    let blocks = env.rt.ledger.borrow().blocks.clone();
    let sent: Vec<_> = blocks.iter().filter(|b| b.from.is_some()).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].memo, journal::memo(s.id, 1));
    assert_eq!(env.transfers(), 1);
    env.assert_conserved();

    // Issue #12 L3: applied earlier, and the payer topped the subaccount up meanwhile, so the
    // balance is not lower than when the sweep was planned. The outcome is ambiguous: taken
    // as applied (a second sweep could take the payer's later funds); the top-up stays
    // refundable.
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.rt.ledger.borrow_mut().unknown_transfer = ATTEMPTS_PER_CALL;
    assert!(env.verify(s.id).unwrap().billing.sweep_pending);
    env.pay(s.id, s.amount_e8s + 5_000);
    env.rt.ledger.borrow_mut().too_old_transfer = 1;
    let r = env.verify(s.id).unwrap();
    assert!(!r.billing.sweep_pending);
    assert_eq!(env.transfers(), 1, "no second sweep");
    assert_eq!(env.treasury_balance(), s.amount_e8s - FEE);
    env.rt.as_caller(admin());
    let refunded = run(refund_session(&env.store, &env.rt, s.id)).unwrap();
    assert_eq!(refunded.refunded_e8s, s.amount_e8s + 5_000 - FEE);
    env.assert_conserved();
}

#[test]
fn too_old_outcome_resolves_ambiguity_in_the_payers_favour() {
    let entry = |kind| JournalEntry {
        session_id: 1,
        seq: 0,
        kind,
        from_subaccount: vec![0; 32],
        to: vec![0; 32],
        to_owner: p(1),
        amount_e8s: 90,
        fee_e8s: 10,
        memo: 0,
        created_at_time: 0,
        balance_before: 100,
        attempts: 1,
        outcome: Outcome::Pending,
        written_at: 0,
        settled_at: None,
    };
    let applied = |kind, balance| {
        matches!(
            too_old_outcome(&entry(kind), balance),
            Outcome::Done { block: None }
        )
    };
    // Lower: applied, whatever the kind. Equal: not applied.
    for kind in [
        TransferKind::Sweep,
        TransferKind::Refund,
        TransferKind::LateRefund,
    ] {
        assert!(applied(kind, 0));
        assert!(!applied(kind, 100));
    }
    // Higher (funds arrived): a sweep counts as applied, a refund as not.
    assert!(applied(TransferKind::Sweep, 150));
    assert!(!applied(TransferKind::Refund, 150));
    assert!(!applied(TransferKind::LateRefund, 150));
}

#[test]
fn refund_session_with_unknown_outcome_is_finished_by_a_second_call() {
    let env = Env::new();
    let s = env.init(PaymentPurpose::Create).unwrap();
    env.pay(s.id, s.amount_e8s);
    env.verify(s.id).unwrap();
    // Extra funds after completion.
    env.pay(s.id, 70_000);
    env.rt.ledger.borrow_mut().unknown_transfer = ATTEMPTS_PER_CALL;
    env.rt.as_caller(admin());
    let first = run(refund_session(&env.store, &env.rt, s.id)).unwrap();
    assert_eq!(first.status, PaymentSessionStatus::Completed);
    assert_eq!(first.refund_block, None);
    let second = run(refund_session(&env.store, &env.rt, s.id)).unwrap();
    assert!(second.refund_block.is_some());
    assert_eq!(second.refunded_e8s, 60_000);
    assert_eq!(env.owner_balance(), 60_000);
    assert_eq!(env.transfers(), 2);
    env.assert_conserved();
}
