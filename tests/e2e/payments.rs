//! Payments end to end: the real canister wasm on the embedded host, paying through the
//! host's ICP ledger model (legacy transfers to the hex account identifier and ICRC-1
//! transfers to the textual account), with ledger faults injected by the host.
//!
//! Every test ends with [`Books::check`]: all e8s paid into session subaccounts are found
//! again in session balances, the treasury, refunds to owners and ledger fees.

use std::collections::BTreeMap;
use std::time::Duration;

use candid::Principal;
use ic_ledger_types::{AccountIdentifier, Subaccount};
use livault_backend::domain::payments::account::{icrc1_decode, session_subaccount};
use livault_backend::domain::payments::journal::memo;
use livault_tests::*;
use local_replica::ledger::{Account as LedgerAccount, Icrc1TransferArg, Operation};
use local_replica::{ledger_principal, RejectCode};

type R<T> = Result<T, VaultError>;

fn standard_plan() -> PlanSelection {
    PlanSelection {
        tier: Tier::Standard,
        heir_slots: 2,
        witness_slot: true,
    }
}

fn init(
    env: &mut TestEnv,
    owner: Principal,
    vault: VaultId,
    purpose: PaymentPurpose,
) -> PaymentSession {
    env.update::<_, R<PaymentSession>>(owner, "init_payment", (vault, purpose))
        .expect("init_payment")
}

fn verify(env: &mut TestEnv, owner: Principal, session: SessionId) -> R<PaymentReceipt> {
    env.update(owner, "verify_payment", (session,))
}

/// A wallet of `owner` pays `e8s` to the session's hex account identifier (legacy transfer,
/// as NNS dapp / Plug / exchanges do). Funds the wallet first.
fn wallet_pays(env: &mut TestEnv, owner: Principal, session: &PaymentSession, e8s: u64) -> u64 {
    let wallet = TestEnv::wallet_of(owner);
    env.host
        .fund(AccountId::new(&wallet, None), e8s + LEDGER_FEE);
    let to = AccountId::from_hex(&session.account_identifier).unwrap();
    env.host
        .ledger_transfer_as(&wallet, to, e8s)
        .expect("wallet transfer")
}

fn treasury_account(env: &TestEnv) -> AccountId {
    // TestEnv::new installs without a treasury: the first admin's default account.
    AccountId::new(&env.admin, None)
}

fn session_account(env: &TestEnv, id: SessionId) -> AccountId {
    AccountId::new(&env.canister, Some(session_subaccount(id)))
}

fn balance(env: &TestEnv, account: AccountId) -> u64 {
    env.host.ledger().balance(&account)
}

/// Transfers out of the canister's accounts so far.
fn canister_transfers(env: &TestEnv) -> usize {
    let ours = sessions_accounts(env);
    env.host
        .ledger()
        .blocks()
        .iter()
        .filter(|b| matches!(&b.op, Operation::Transfer { from, .. } if ours.contains_key(from)))
        .count()
}

/// Account identifier → session id, for every session of the canister.
fn sessions_accounts(env: &TestEnv) -> BTreeMap<AccountId, SessionId> {
    (1..=64).map(|id| (session_account(env, id), id)).collect()
}

/// The books: sums over the ledger's blocks and balances.
struct Books;

impl Books {
    /// Conservation: paid into sessions = session balances + treasury + refunds + fees, the
    /// treasury holds exactly what was swept, billing agrees with the ledger, and the ledger
    /// itself neither creates nor loses e8s.
    fn check(env: &mut TestEnv) {
        let treasury = treasury_account(env);
        Self::check_with(env, &[treasury]);
    }

    /// [`Books::check`] when sweeps went to several treasuries over time.
    fn check_with(env: &mut TestEnv, treasuries: &[AccountId]) {
        let ledger = env.host.ledger();
        assert_eq!(
            ledger.total_minted(),
            ledger.total_supply() + ledger.fees_burned(),
            "the ledger model lost or created e8s"
        );
        let sessions = sessions_accounts(env);
        let (mut paid_in, mut swept, mut refunded, mut fees) = (0u64, 0u64, 0u64, 0u64);
        for b in ledger.blocks() {
            match &b.op {
                Operation::Mint { to, amount } if sessions.contains_key(to) => paid_in += amount,
                Operation::Transfer {
                    from,
                    to,
                    amount,
                    fee,
                } => {
                    if sessions.contains_key(to) {
                        paid_in += amount;
                    }
                    if sessions.contains_key(from) {
                        fees += fee;
                        if treasuries.contains(to) {
                            swept += amount;
                        } else {
                            refunded += amount;
                        }
                    }
                }
                _ => {}
            }
        }
        let held: u64 = sessions.keys().map(|a| ledger.balance(a)).sum();
        assert_eq!(
            paid_in,
            held + swept + refunded + fees,
            "e8s unaccounted: paid in {paid_in}, held {held}, swept {swept}, refunded {refunded}, fees {fees}"
        );
        let in_treasuries: u64 = treasuries.iter().map(|t| ledger.balance(t)).sum();
        assert_eq!(in_treasuries, swept, "treasuries hold only sweeps");
        let admin = env.admin;
        let bills: R<BillingPage> = env.query(
            admin,
            "list_billing",
            (PageArgs {
                start_after: None,
                limit: Some(100),
            },),
        );
        let bills = bills.unwrap();
        let billed: u64 = bills.items.iter().map(|b| b.treasury_e8s).sum();
        assert_eq!(billed, swept, "billing disagrees with the ledger");
        let billed_refunds: u64 = bills
            .items
            .iter()
            .filter(|b| b.refund_block.is_some())
            .map(|b| b.refund_e8s)
            .sum();
        let session_refunds: u64 = (1..=64u64)
            .filter_map(|id| {
                env.query::<_, R<PaymentSession>>(admin, "get_payment_session", (id,))
                    .ok()
            })
            .map(|s| s.refunded_e8s)
            .sum();
        assert_eq!(
            billed_refunds + session_refunds,
            refunded,
            "refunds disagree"
        );
    }
}

fn new_vault(env: &mut TestEnv, owner: Principal) -> VaultId {
    env.create_vault(owner, "Family").id
}

// ---------------------------------------------------------------- 1. exact payment

#[test]
fn exact_payment_moves_the_vault_to_need_setup() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let price = env.get_vault(owner, v).unwrap().price_e8s;
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    assert_eq!(s.amount_e8s, price);
    assert_eq!(s.status, PaymentSessionStatus::Open);
    assert_eq!(s.expires_at - s.created_at, 1800 * 1_000_000_000);
    assert_eq!(verify(&mut env, owner, s.id), Err(VaultError::NotYetPaid));
    wallet_pays(&mut env, owner, &s, price);
    let reply = env
        .host
        .update(owner, "verify_payment", candid::encode_one(s.id).unwrap())
        .unwrap();
    println!(
        "verify_payment (balance check + sweep + apply): {} instructions in the first \
         execution, {} over all its executions",
        reply.instructions, reply.total_instructions
    );
    let r: R<PaymentReceipt> = candid::decode_one(&reply.bytes).unwrap();
    let r = r.unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(r.session.status, PaymentSessionStatus::Completed);
    assert_eq!(balance(&env, session_account(&env, s.id)), 0);
    assert_eq!(balance(&env, treasury_account(&env)), price - LEDGER_FEE);
    // The billing entry names the ledger block of the sweep.
    let block = r.billing.sweep_block.expect("sweep block");
    let b = &env.host.ledger().blocks()[block as usize];
    assert_eq!(b.memo, memo(s.id, 0));
    assert!(matches!(&b.op, Operation::Transfer { from, to, amount, .. }
        if *from == session_account(&env, s.id) && *to == treasury_account(&env) && *amount == price - LEDGER_FEE));
    let vault = env.get_vault(owner, v).unwrap();
    assert_eq!(vault.status, VaultStatus::NeedSetup);
    assert!(vault.paid_at.is_some());
    // The audit log tells the story.
    let log: R<Page<AuditEventView>> = env.query(owner, "get_audit_log", (v, PageArgs::default()));
    let actions: Vec<String> = log.unwrap().items.into_iter().map(|e| e.action).collect();
    assert!(actions.contains(&"payment.session_opened".to_string()));
    assert!(actions.contains(&"payment.confirmed".to_string()));
    assert_eq!(
        verify(&mut env, owner, s.id),
        Err(VaultError::SessionClosed)
    );
    Books::check(&mut env);
}

#[test]
fn the_harness_pays_a_creation() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let vault = env.pay_creation(owner, v);
    assert_eq!(vault.status, VaultStatus::NeedSetup);
    Books::check(&mut env);
}

// ---------------------------------------------------------------- 2. under / over / late

#[test]
fn underpayment_then_top_up_confirms() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s / 2);
    assert_eq!(
        verify(&mut env, owner, s.id),
        Err(VaultError::Underpaid {
            paid: s.amount_e8s / 2,
            required: s.amount_e8s
        })
    );
    assert_eq!(env.get_vault(owner, v).unwrap().status, VaultStatus::Draft);
    wallet_pays(&mut env, owner, &s, s.amount_e8s - s.amount_e8s / 2);
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(balance(&env, session_account(&env, s.id)), 0);
    Books::check(&mut env);
}

#[test]
fn overpayment_returns_the_excess_minus_the_fee() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    let excess = 250_000_000;
    wallet_pays(&mut env, owner, &s, s.amount_e8s + excess);
    let before = balance(&env, AccountId::new(&owner, None));
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.billing.refund_e8s, excess - LEDGER_FEE);
    assert!(r.billing.refund_block.is_some());
    assert_eq!(
        balance(&env, AccountId::new(&owner, None)) - before,
        excess - LEDGER_FEE
    );
    assert_eq!(balance(&env, session_account(&env, s.id)), 0);
    assert_eq!(r.billing.fees_e8s, 2 * LEDGER_FEE);
    Books::check(&mut env);
}

#[test]
fn payment_after_expiry_still_confirms() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    env.advance(Duration::from_secs(3 * 3600));
    assert!(env.now() > s.expires_at);
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    Books::check(&mut env);
}

/// SPEC §6: the same open (vault, purpose) returns the same session; once it expired,
/// `init_payment` reopens it (same id and subaccount, a new expiry) as long as its frozen
/// amount is still the price and its purpose applies, so a draft only ever has one
/// creation session and one subaccount to watch.
#[test]
fn same_open_purpose_reuses_the_session_and_reopens_it_after_expiry() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let a = init(&mut env, owner, v, PaymentPurpose::Create);
    let b = init(&mut env, owner, v, PaymentPurpose::Create);
    assert_eq!(a, b);
    env.advance(Duration::from_secs(3600));
    let c = init(&mut env, owner, v, PaymentPurpose::Create);
    assert_eq!((c.id, &c.subaccount), (a.id, &a.subaccount));
    assert!(c.expires_at > a.expires_at);
    assert!(c.expires_at > env.now() + 1790 * 1_000_000_000);
    wallet_pays(&mut env, owner, &c, c.amount_e8s);
    verify(&mut env, owner, c.id).unwrap();
    let page: R<PaymentSessionPage> =
        env.query(owner, "list_payment_sessions", (v, PageArgs::default()));
    let ids: Vec<u64> = page.unwrap().items.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![a.id]);
    Books::check(&mut env);
}

/// Late funds: a second payment into a completed session, and a payment into the session of
/// a draft its owner deleted. Neither applies anything; an admin's `refund_session` returns
/// each (minus the fee) to the owner.
#[test]
fn late_funds_for_a_purpose_gone_are_refunded_by_an_admin() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let a = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &a, a.amount_e8s);
    verify(&mut env, owner, a.id).unwrap();
    // The wallet pays the same session again, late.
    wallet_pays(&mut env, owner, &a, a.amount_e8s);
    assert_eq!(
        verify(&mut env, owner, a.id),
        Err(VaultError::SessionClosed)
    );
    let denied: R<PaymentSession> = env.update(owner, "refund_session", (a.id,));
    assert_eq!(denied, Err(VaultError::NotAuthorized));
    let before = balance(&env, AccountId::new(&owner, None));
    let admin = env.admin;
    let s: R<PaymentSession> = env.update(admin, "refund_session", (a.id,));
    let s = s.unwrap();
    assert_eq!(s.status, PaymentSessionStatus::Completed);
    assert_eq!(s.refunded_e8s, a.amount_e8s - LEDGER_FEE);
    assert!(s.refund_block.is_some());
    assert_eq!(
        balance(&env, AccountId::new(&owner, None)) - before,
        a.amount_e8s - LEDGER_FEE
    );
    assert_eq!(balance(&env, session_account(&env, a.id)), 0);

    // A draft deleted by its owner, then its session paid.
    let v2 = new_vault(&mut env, owner);
    let d = init(&mut env, owner, v2, PaymentPurpose::Create);
    let r: R<VaultView> = env.update(owner, "delete_vault", (v2,));
    r.unwrap();
    wallet_pays(&mut env, owner, &d, d.amount_e8s);
    assert_eq!(
        verify(&mut env, owner, d.id),
        Err(VaultError::InvalidState {
            current: VaultStatus::Deleted
        })
    );
    let s: R<PaymentSession> = env.update(admin, "refund_session", (d.id,));
    let s = s.unwrap();
    assert_eq!(s.status, PaymentSessionStatus::Refunded);
    assert_eq!(s.refunded_e8s, d.amount_e8s - LEDGER_FEE);
    assert_eq!(
        verify(&mut env, owner, d.id),
        Err(VaultError::SessionClosed)
    );
    Books::check(&mut env);
}

// ---------------------------------------------------------------- 3. interleaving

#[test]
fn interleaved_verifications_sweep_exactly_once() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    env.host.hold_calls_to(ledger_principal());
    let arg = candid::encode_one(s.id).unwrap();
    let first = env.host.submit_update(owner, "verify_payment", arg.clone());
    let second = env.host.submit_update(owner, "verify_payment", arg);
    env.host.run_until_idle();
    assert_eq!(
        env.host.held_calls(),
        1,
        "only the first reached the ledger"
    );
    let second: R<PaymentReceipt> =
        candid::decode_one(&env.host.await_reply(second).unwrap().bytes).unwrap();
    assert_eq!(second, Err(VaultError::Busy));
    env.host.stop_holding(ledger_principal());
    env.host.release_held();
    let first: R<PaymentReceipt> =
        candid::decode_one(&env.host.await_reply(first).unwrap().bytes).unwrap();
    assert_eq!(first.unwrap().vault_status, VaultStatus::NeedSetup);
    assert_eq!(canister_transfers(&env), 1);
    // And a third, after the fact, sees the completed session.
    assert_eq!(
        verify(&mut env, owner, s.id),
        Err(VaultError::SessionClosed)
    );
    assert_eq!(canister_transfers(&env), 1);
    Books::check(&mut env);
}

/// The audit actions of vault `v` (as its owner sees them), oldest first.
fn audit_actions(env: &mut TestEnv, owner: Principal, v: VaultId) -> Vec<(String, Principal)> {
    env.audit_log(owner, v)
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect()
}

/// The scheduler's last tick, from `get_metrics`.
fn last_tick(env: &mut TestEnv) -> TickReport {
    let admin = env.admin;
    let m: R<Metrics> = env.query(admin, "get_metrics", ());
    m.unwrap().scheduler.last_run.expect("a tick ran")
}

/// SPEC §6: the scheduler's check of an open session while a user's `verify_payment` holds
/// the vault's payment lock (its sweep transfer held by the host). The user's verify has
/// already confirmed the payment when it saw the balance (vault `NeedSetup` before the sweep
/// is answered); the tick's check, due two minutes after the session opened, finds the vault
/// busy and makes no ledger call (`processed 1, applied 0`); the user's verify completes with
/// its receipt once the ledger answers and ends the session's checks. One sweep, one billing
/// entry, one `payment.confirmed`, books balanced.
#[test]
fn a_scheduler_check_during_a_user_verify_sweeps_exactly_once() {
    let mut env = TestEnv::new(); // maintenance timer every 60 s
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    assert_eq!(s.next_check_at, Some(s.created_at + 120 * 1_000_000_000));
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    env.host.hold_calls_to(ledger_principal());
    let user_verify =
        env.host
            .submit_update(owner, "verify_payment", candid::encode_one(s.id).unwrap());
    env.host.run_until_idle();
    assert_eq!(env.host.held_calls(), 1, "account_balance held");
    // Let the balance through: the payment is confirmed, its sweep transfer is held.
    env.host.release_held();
    env.host.run_until_idle();
    assert_eq!(env.host.held_calls(), 1, "the sweep transfer is in flight");
    assert_eq!(canister_transfers(&env), 0);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::NeedSetup,
        "confirmed when the balance was seen"
    );

    // The maintenance timer fires while the sweep is in flight, with the check due.
    env.advance(Duration::from_secs(181));
    let tick = last_tick(&mut env);
    assert!(!tick.manual && tick.skipped.is_none(), "{tick:?}");
    assert_eq!(
        (tick.taken, tick.processed, tick.applied, tick.failed),
        (1, 1, 0, 0),
        "the session check ran and found the vault busy: {tick:?}"
    );
    assert_eq!(env.host.held_calls(), 1, "the tick made no ledger call");
    assert!(matches!(
        env.host.message_status(user_verify),
        Some(local_replica::MessageStatus::Pending)
    ));

    // The ledger answers: the user's verify gets its receipt.
    env.host.stop_holding(ledger_principal());
    env.host.release_held();
    let reply: R<PaymentReceipt> =
        candid::decode_one(&env.host.await_reply(user_verify).unwrap().bytes).unwrap();
    let receipt = reply.expect("the user's verify completes");
    assert_eq!(receipt.vault_status, VaultStatus::NeedSetup);
    assert_eq!(receipt.billing.session_id, s.id);
    assert!(!receipt.billing.sweep_pending);
    assert_eq!(canister_transfers(&env), 1);
    let session: R<PaymentSession> = env.query(owner, "get_payment_session", (s.id,));
    assert_eq!(session.unwrap().next_check_at, None, "no more checks");

    env.advance(Duration::from_secs(3600));
    assert_eq!(last_tick(&mut env).taken, 0, "the check was not re-queued");
    assert_eq!(canister_transfers(&env), 1, "exactly one sweep");
    let confirmed: Vec<_> = audit_actions(&mut env, owner, v)
        .into_iter()
        .filter(|(a, _)| a == "payment.confirmed")
        .collect();
    assert_eq!(confirmed, vec![("payment.confirmed".to_string(), owner)]);
    let vault = env.get_vault(owner, v).unwrap();
    assert_eq!(vault.status, VaultStatus::NeedSetup);
    assert_eq!(vault.paid_at, Some(receipt.session.closed_at.unwrap()));
    let bills: R<BillingPage> = env.query(env.admin, "list_billing", (PageArgs::default(),));
    assert_eq!(bills.unwrap().items.len(), 1, "one billing entry");
    Books::check(&mut env);
}

/// The other order: the maintenance timer's check of the session (due two minutes after it
/// opened) sees the payment and confirms it; its sweep is in flight when the owner presses
/// "verify": the user gets `Busy` (nothing processed twice); the tick completes the sweep and
/// the refund of the excess (actor: the canister), and the user's next verify sees
/// `SessionClosed` while `get_payment_session` shows it completed.
#[test]
fn a_user_verify_during_a_scheduler_check_is_busy_and_the_tick_completes_it() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s + 500_000);
    env.host.hold_calls_to(ledger_principal());
    env.advance(Duration::from_secs(181)); // the timer's tick: its balance check is held
    assert_eq!(env.host.held_calls(), 1);
    env.host.release_held(); // account_balance
    env.host.run_until_idle();
    assert_eq!(env.host.held_calls(), 1, "the tick's sweep is in flight");
    assert_eq!(verify(&mut env, owner, s.id), Err(VaultError::Busy));
    assert_eq!(
        env.host.held_calls(),
        1,
        "the user's verify made no ledger call"
    );
    env.host.stop_holding(ledger_principal());
    env.host.release_held();
    env.host.run_until_idle();
    let report = last_tick(&mut env);
    assert_eq!(
        (report.manual, report.processed, report.applied),
        (false, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        verify(&mut env, owner, s.id),
        Err(VaultError::SessionClosed)
    );
    let session: R<PaymentSession> = env.query(owner, "get_payment_session", (s.id,));
    let session = session.unwrap();
    assert_eq!(session.status, PaymentSessionStatus::Completed);
    assert_eq!(session.next_check_at, None);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::NeedSetup
    );
    assert_eq!(
        canister_transfers(&env),
        2,
        "one sweep and one refund of the excess"
    );
    let confirmed: Vec<_> = audit_actions(&mut env, owner, v)
        .into_iter()
        .filter(|(a, _)| a == "payment.confirmed")
        .collect();
    assert_eq!(
        confirmed,
        vec![("payment.confirmed".to_string(), env.canister)]
    );
    let bills: R<BillingPage> = env.query(env.admin, "list_billing", (PageArgs::default(),));
    let bills = bills.unwrap().items;
    assert_eq!(bills.len(), 1);
    assert_eq!(bills[0].refund_e8s, 500_000 - LEDGER_FEE);
    Books::check(&mut env);
}

// ---------------------------------------------------------------- 4. ledger failures

/// A rejected balance call changes nothing (not even the session's check schedule); once the
/// balance is seen the payment is confirmed, and a rejected sweep is sent again — by the next
/// verify here, by the scheduler otherwise — with the same dedup key.
#[test]
fn ledger_rejects_leave_the_session_as_it_was_and_a_retry_succeeds() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    let head = |env: &mut TestEnv| {
        let h: R<AuditHead> = env.query(owner, "get_audit_head", (v,));
        h.unwrap()
    };
    let before = head(&mut env);
    let stable = env.host.stable_memory().unwrap().to_vec();
    env.host.fail_next_calls(
        "account_balance",
        1,
        RejectCode::SysTransient,
        "ledger unreachable",
    );
    assert!(matches!(
        verify(&mut env, owner, s.id),
        Err(VaultError::LedgerUnavailable { .. })
    ));
    assert_eq!(head(&mut env), before, "nothing changed");
    assert!(
        env.host.stable_memory().unwrap() == &stable[..],
        "stable memory unchanged"
    );
    let session: R<PaymentSession> = env.query(owner, "get_payment_session", (s.id,));
    assert_eq!(session.unwrap(), s);
    // The sweep itself rejected: the payment is confirmed, the sweep pending.
    env.host
        .fail_next_calls("transfer", 1, RejectCode::CanisterError, "ledger trapped");
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert!(r.billing.sweep_pending);
    assert_eq!(canister_transfers(&env), 0);
    let r = verify(&mut env, owner, s.id).unwrap();
    assert!(!r.billing.sweep_pending);
    assert_eq!(canister_transfers(&env), 1);
    Books::check(&mut env);
}

/// A sweep left pending by a call is finished by the scheduler without anyone verifying
/// again (issue #12 L1), with the same dedup key, once the ledger answers.
#[test]
fn the_scheduler_finishes_a_pending_sweep_and_refund() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s + 300_000);
    env.host.unknown_outcome_next_calls("transfer", 3);
    let r = verify(&mut env, owner, s.id).unwrap();
    assert!(r.billing.sweep_pending && r.billing.refund_pending);
    assert_eq!(canister_transfers(&env), 1, "applied once, outcome unknown");
    env.host
        .fail_next_calls("transfer", 2, RejectCode::SysTransient, "down");
    env.advance(Duration::from_secs(30 * 60));
    let b: R<BillingPage> = env.query(env.admin, "list_billing", (PageArgs::default(),));
    let b = &b.unwrap().items[0];
    assert!(!b.sweep_pending && !b.refund_pending, "{b:?}");
    assert_eq!(
        b.sweep_block
            .map(|i| env.host.ledger().blocks()[i as usize].memo),
        Some(memo(s.id, 0))
    );
    assert!(b.refund_block.is_some());
    assert_eq!(canister_transfers(&env), 2, "one sweep, one refund");
    let session: R<PaymentSession> = env.query(owner, "get_payment_session", (s.id,));
    assert_eq!(session.unwrap().next_check_at, None);
    Books::check(&mut env);
}

// ---------------------------------------------------------------- 5. unknown outcomes, traps

#[test]
fn unknown_sweep_outcome_is_retried_with_the_same_dedup_key() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    // One unknown outcome: resolved by the retry within the same call.
    env.host.unknown_outcome_next_calls("transfer", 1);
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(canister_transfers(&env), 1);
    assert_eq!(
        r.billing
            .sweep_block
            .map(|b| env.host.ledger().blocks()[b as usize].memo),
        Some(memo(s.id, 0))
    );
    Books::check(&mut env);

    // Unknown on every attempt of a call: the payment is confirmed (the balance was seen),
    // the sweep pending; the ledger applied it once and the next call learns the block from
    // TxDuplicate.
    let v2 = new_vault(&mut env, owner);
    let s2 = init(&mut env, owner, v2, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s2, s2.amount_e8s);
    env.host.unknown_outcome_next_calls("transfer", 3);
    let r = verify(&mut env, owner, s2.id).unwrap();
    assert!(r.billing.sweep_pending);
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(canister_transfers(&env), 2);
    let r = verify(&mut env, owner, s2.id).unwrap();
    assert!(!r.billing.sweep_pending);
    assert_eq!(canister_transfers(&env), 2, "no second sweep");
    Books::check(&mut env);
}

#[test]
fn a_trap_after_the_sweep_is_recovered_without_a_second_transfer() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    // Leave the sweep pending (rejected), so the next call's first callback is the
    // transfer's reply.
    env.host
        .fail_next_calls("transfer", 1, RejectCode::SysTransient, "busy");
    assert!(verify(&mut env, owner, s.id).unwrap().billing.sweep_pending);
    env.host.trap_next_callbacks(1);
    let trapped = env.try_update::<_, R<PaymentReceipt>>(owner, "verify_payment", (s.id,));
    assert!(trapped.is_err(), "the reply callback trapped: {trapped:?}");
    assert_eq!(canister_transfers(&env), 1, "the ledger applied the sweep");
    // The lock was released by the cleanup; the next call resends the same key.
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert!(!r.billing.sweep_pending);
    assert_eq!(canister_transfers(&env), 1);
    Books::check(&mut env);
}

// ---------------------------------------------------------------- 7. upgrade mid-flight

#[test]
fn a_canister_upgrade_with_a_pending_sweep_completes_after_it() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s + 1_000_000);
    env.host.unknown_outcome_next_calls("transfer", 3);
    assert!(verify(&mut env, owner, s.id).unwrap().billing.sweep_pending);
    assert_eq!(canister_transfers(&env), 1);
    env.upgrade(None).expect("upgrade");
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    assert_eq!(r.billing.refund_e8s, 1_000_000 - LEDGER_FEE);
    assert_eq!(canister_transfers(&env), 2, "one sweep, one refund");
    Books::check(&mut env);
}

// ---------------------------------------------------------------- 8. accounts

/// Account identifier of session 1 of canister `bkyz2-fmaaa-aaaaa-qaaaq-cai` (the host's
/// canister id), computed once outside this repository with the npm package
/// `@dfinity/ledger-icp` (9.1.0, installed into /tmp):
/// ```js
/// import { AccountIdentifier, SubAccount } from "@dfinity/ledger-icp";
/// import { Principal } from "@icp-sdk/core/principal";
/// const bytes = new Uint8Array(32); bytes[23] = 1; bytes[31] = 1;
/// AccountIdentifier.fromPrincipal({
///   principal: Principal.fromText("bkyz2-fmaaa-aaaaa-qaaaq-cai"),
///   subAccount: SubAccount.fromBytes(bytes),
/// }).toHex();
/// ```
const NPM_SESSION_1_ACCOUNT: &str =
    "74af585687a23137ada0386094196d7ed91428ee5a803213bbcff122fa289d73";

#[test]
fn account_identifiers_and_icrc1_accounts_match_independent_encoders() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    assert_eq!(s.id, 1);
    assert_eq!(env.canister.to_text(), "bkyz2-fmaaa-aaaaa-qaaaq-cai");
    assert_eq!(s.account_identifier, NPM_SESSION_1_ACCOUNT);
    let sub: [u8; 32] = s.subaccount.as_slice().try_into().unwrap();
    assert_eq!(
        s.account_identifier,
        AccountIdentifier::new(&env.canister, &Subaccount(sub)).to_hex()
    );
    assert_eq!(
        s.account_identifier,
        AccountId::new(&env.canister, Some(sub)).to_hex()
    );
    // The ICRC-1 text decodes (checksum checked) to the same account.
    assert_eq!(
        s.icrc1_account,
        format!(
            "{}-{}.10000000000000001",
            env.canister,
            &s.icrc1_account[28..35]
        )
    );
    let (decoded_owner, decoded_sub) = icrc1_decode(&s.icrc1_account).unwrap();
    assert_eq!((decoded_owner, decoded_sub), (env.canister, Some(sub)));
    let mut tampered = s.icrc1_account.clone();
    tampered.pop();
    tampered.push('2');
    assert!(
        icrc1_decode(&tampered).is_err(),
        "checksum must catch a changed digit"
    );

    // An ICRC-1 wallet (Oisy) pays to the decoded account with icrc1_transfer.
    let wallet = TestEnv::wallet_of(owner);
    env.host
        .fund(AccountId::new(&wallet, None), s.amount_e8s + LEDGER_FEE);
    let now = env.now();
    let res = env.host.ledger_mut().icrc1_transfer(
        &wallet,
        &Icrc1TransferArg {
            from_subaccount: None,
            to: LedgerAccount {
                owner: decoded_owner,
                subaccount: decoded_sub.map(|b| serde_bytes::ByteBuf::from(b.to_vec())),
            },
            amount: candid::Nat::from(s.amount_e8s),
            fee: None,
            memo: None,
            created_at_time: None,
        },
        now,
    );
    assert!(matches!(res, Ok(Ok(_))));
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    Books::check(&mut env);
}

// ---------------------------------------------------------------- 9. upgrade and renewal

#[test]
fn plan_upgrade_is_prorated_paid_and_applied() {
    // 1000 days pass: a daily maintenance timer keeps that to 1000 ticks.
    let mut env = TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(livault_backend::model::config::Durations {
            timer_interval_secs: 86_400,
            ..Default::default()
        }),
        ..Default::default()
    });
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    env.pay_creation(owner, v);
    env.advance_days(1000);
    let to = PlanSelection {
        tier: Tier::Deluxe,
        heir_slots: 4,
        witness_slot: true,
    };
    let quote: R<UpgradeQuote> = env.query(owner, "quote_upgrade", (v, to));
    let quote = quote.unwrap();
    assert_eq!(quote.remaining_days, 2650);
    let s = init(&mut env, owner, v, PaymentPurpose::Upgrade(to));
    assert_eq!(s.amount_e8s, quote.amount_e8s);
    assert!(s.amount_e8s < quote.new_price_e8s - quote.old_price_e8s);
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    let r = verify(&mut env, owner, s.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::NeedSetup);
    let vault = env.get_vault(owner, v).unwrap();
    assert_eq!(vault.plan, to);
    assert_eq!(vault.storage_limit_bytes, 100 * 1024 * 1024);
    // Not an upgrade any more.
    let again: R<PaymentSession> = env.update(
        owner,
        "init_payment",
        (v, PaymentPurpose::Upgrade(standard_plan())),
    );
    assert!(matches!(again, Err(VaultError::InvalidInput { .. })));
    Books::check(&mut env);
}

/// Renewal outside `GraceMaster` is refused (the paid renewal from `GraceMaster` is
/// `active_vault_upgrade_then_renewal_from_grace_master_are_paid_and_applied`).
#[test]
fn renewal_outside_grace_master_is_refused() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    env.pay_creation(owner, v);
    let r: R<PaymentSession> = env.update(owner, "init_payment", (v, PaymentPurpose::Renew));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::NeedSetup
        })
    );
    Books::check(&mut env);
}

/// An `Active` vault of `owner` (Standard plan) on a canister whose validity is `validity_days`
/// and whose maintenance timer fires once a day: paid, rules set (a far date, one heir),
/// one heir joined, one letter uploaded, finalized.
fn active_vault(validity_days: u32) -> (TestEnv, Principal, VaultId) {
    use livault_backend::model::records::MemberRole;

    let mut env = TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(livault_backend::model::config::Durations {
            timer_interval_secs: 86_400,
            validity_days,
            ..Default::default()
        }),
        ..Default::default()
    });
    let (owner, heir) = (user("owner"), user("heir"));
    let v = new_vault(&mut env, owner);
    env.pay_creation(owner, v);
    let now = env.now();
    let r: R<VaultView> = env.update(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: Some(now + 3000 * DAY_NS),
                inactivity_days: None,
                request_wait_days: 7,
                required_heirs: 1,
                required_witness: false,
            }),
            post_unlock_days: None,
            audit_retention_days: None,
        },),
    );
    r.unwrap();
    env.join(owner, v, MemberRole::Heir, heir);
    env.upload_letter(owner, v, b"ciphertext", None);
    let r: R<VaultView> = env.update(owner, "finalize_setup", (v,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);
    (env, owner, v)
}

/// SPEC §5/§6 demonstration 9 on an `Active` vault: an upgrade paid at the prorated price
/// (`(new − old) · remaining_days / validity_days`, rounded up) and applied; then validity
/// ends, the scheduler moves the vault to `GraceMaster`, the owner renews at the (upgraded)
/// plan's full price, pays on the ledger, verifies: `Active` again with
/// `expires_at = now + validity`, and the scheduler honours the new deadline. Two billing
/// entries, books balanced.
#[test]
fn active_vault_upgrade_then_renewal_from_grace_master_are_paid_and_applied() {
    const VALIDITY: u32 = 60;
    let (mut env, owner, v) = active_vault(VALIDITY);
    let paid = env.get_vault(owner, v).unwrap();
    let expires = paid.expires_at.unwrap();
    assert_eq!(expires, paid.paid_at.unwrap() + 60 * DAY_NS);

    // Day 20 of 60: upgrade to Premium with 3 heir slots.
    env.advance_days(20);
    let to = PlanSelection {
        tier: Tier::Premium,
        heir_slots: 3,
        witness_slot: true,
    };
    let quote: R<UpgradeQuote> = env.query(owner, "quote_upgrade", (v, to));
    let quote = quote.unwrap();
    assert_eq!(quote.remaining_days, 40);
    let diff = u128::from(quote.new_price_e8s - quote.old_price_e8s);
    let prorated = (diff * 40).div_ceil(u128::from(VALIDITY)) as u64;
    assert_eq!(quote.amount_e8s, prorated);
    let up = init(&mut env, owner, v, PaymentPurpose::Upgrade(to));
    assert_eq!(up.amount_e8s, prorated);
    wallet_pays(&mut env, owner, &up, up.amount_e8s);
    let r = verify(&mut env, owner, up.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::Active);
    assert_eq!(r.billing.amount_e8s, prorated);
    let vault = env.get_vault(owner, v).unwrap();
    assert_eq!(vault.plan, to);
    assert_eq!(vault.storage_limit_bytes, 50 * 1024 * 1024);
    assert_eq!(
        vault.expires_at,
        Some(expires),
        "an upgrade does not extend"
    );

    // Renewal is refused while Active.
    let r: R<PaymentSession> = env.update(owner, "init_payment", (v, PaymentPurpose::Renew));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Active
        })
    );
    // Validity ends: the daily tick moves the vault to GraceMaster.
    env.advance_days(41);
    let vault = env.get_vault(owner, v).unwrap();
    assert_eq!(vault.status, VaultStatus::GraceMaster);
    let renew = init(&mut env, owner, v, PaymentPurpose::Renew);
    assert_eq!(
        renew.amount_e8s, quote.new_price_e8s,
        "renewal: the current (upgraded) plan's full price"
    );
    wallet_pays(&mut env, owner, &renew, renew.amount_e8s);
    let r = verify(&mut env, owner, renew.id).unwrap();
    assert_eq!(r.vault_status, VaultStatus::Active);
    let renewed_at = r.session.closed_at.unwrap();
    let vault = env.get_vault(owner, v).unwrap();
    assert_eq!(vault.status, VaultStatus::Active);
    assert_eq!(vault.expires_at, Some(renewed_at + 60 * DAY_NS));
    assert_eq!(vault.plan, to);
    let bills: R<BillingPage> = env.query(env.admin, "list_billing", (PageArgs::default(),));
    let purposes: Vec<_> = bills.unwrap().items.iter().map(|b| b.purpose).collect();
    assert_eq!(
        purposes,
        vec![
            PaymentPurpose::Create,
            PaymentPurpose::Upgrade(to),
            PaymentPurpose::Renew
        ]
    );
    // The scheduler follows the new deadline: Active until it, GraceMaster after.
    env.advance_days(59);
    assert_eq!(env.get_vault(owner, v).unwrap().status, VaultStatus::Active);
    env.advance_days(2);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::GraceMaster
    );
    Books::check(&mut env);
}

// ---------------------------------------------------------------- admin

#[test]
fn set_treasury_redirects_sweeps_and_billing_pages() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let admin = env.admin;
    let other = Account {
        owner: user("treasury-2"),
        subaccount: Some(serde_bytes::ByteBuf::from(vec![7u8; 32])),
    };
    let denied: R<()> = env.update(owner, "set_treasury", (other.clone(),));
    assert_eq!(denied, Err(VaultError::NotAuthorized));
    let bad = Account {
        owner: user("t"),
        subaccount: Some(serde_bytes::ByteBuf::from(vec![1u8; 3])),
    };
    let bad: R<()> = env.update(admin, "set_treasury", (bad,));
    assert!(matches!(bad, Err(VaultError::InvalidInput { .. })));
    let v1 = new_vault(&mut env, owner);
    env.pay_creation(owner, v1);
    let ok: R<()> = env.update(admin, "set_treasury", (other,));
    ok.unwrap();
    let v2 = new_vault(&mut env, owner);
    let vault = env.pay_creation(owner, v2);
    assert_eq!(
        balance(&env, AccountId::new(&user("treasury-2"), Some([7u8; 32]))),
        vault.price_e8s - LEDGER_FEE
    );
    let page: R<BillingPage> = env.query(
        admin,
        "list_billing",
        (PageArgs {
            start_after: None,
            limit: Some(1),
        },),
    );
    let page = page.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next_cursor, Some(1));
    let page: R<BillingPage> = env.query(
        admin,
        "list_billing",
        (PageArgs {
            start_after: Some(1),
            limit: Some(1),
        },),
    );
    let page = page.unwrap();
    assert_eq!(page.items[0].vault_id, v2);
    assert_eq!(page.next_cursor, None);
    let first = treasury_account(&env);
    Books::check_with(
        &mut env,
        &[first, AccountId::new(&user("treasury-2"), Some([7u8; 32]))],
    );
}

// ---------------------------------------------------------------- issue #12: counterexamples
//
// The interleaving explorer (tests/src/interleave/, tests/e2e/interleavings.rs) found these
// paths on main at 7bad18c. Each test replays one of them as a plain sequence and then checks
// the invariants of issue #12 with `settle_and_check`. They failed on 7bad18c / 0aac3ab and
// pass since the payment-flow fix (a4779ac). Since that fix a draft has one creation session,
// so the two-session races use two upgrade sessions (a price cut opens the second; both
// apply, on the old code and on the new). (The explorer also finds an
// expired upgrade session applied after a renewal, `upgrade-then-renew;d;s0`: that one is
// `a_stale_upgrade_session_paid_after_a_renewal_is_refund_only` below.)

/// Releases (delivered) every held ledger call whose method is `method`, in the order they
/// were made, and runs until idle. Returns how many were released.
fn deliver_held(env: &mut TestEnv, method: &str) -> usize {
    let held: Vec<_> = env
        .host
        .list_held_calls()
        .into_iter()
        .filter(|h| h.method == method)
        .collect();
    for h in &held {
        env.host
            .release_held_call(h.id, local_replica::HeldOutcome::Deliver)
            .expect("held");
    }
    env.host.run_until_idle();
    held.len()
}

/// Stops holding, lets every flow finish and returns their replies.
fn finish_flows(env: &mut TestEnv, flows: &[local_replica::MessageId]) -> Vec<String> {
    env.host.stop_holding(ledger_principal());
    env.host.release_held();
    env.host.run_until_idle();
    flows
        .iter()
        .map(|m| match env.host.message_status(*m) {
            Some(local_replica::MessageStatus::Done(local_replica::Response::Reply(b))) => {
                match candid::decode_one::<R<PaymentReceipt>>(b) {
                    Ok(Ok(r)) => format!(
                        "receipt: session {} billing {} applied = {}",
                        r.session.id, r.billing.id, r.billing.applied
                    ),
                    Ok(Err(e)) => format!("{e:?}"),
                    Err(_) => format!("{} bytes", b.len()),
                }
            }
            other => format!("{other:?}"),
        })
        .collect()
}

/// Issue #12's invariants for the sessions of vault `v`, after its flows ended. Settles as an
/// operator would (every session verified twice, then `refund_session` for every session
/// still holding more than a fee, and the owner must receive balance − fee), then: every
/// sweep to the treasury paid for a purpose applied by its session (billing `applied`),
/// each session swept at most once, each purpose applied at most once, books balanced.
fn settle_and_check(env: &mut TestEnv, owner: Principal, v: VaultId, sessions: &[&PaymentSession]) {
    for _ in 0..2 {
        for s in sessions {
            let _ = verify(env, owner, s.id);
        }
    }
    let admin = env.admin;
    for s in sessions {
        let held = balance(env, session_account(env, s.id));
        if held <= LEDGER_FEE {
            continue;
        }
        let before = balance(env, AccountId::new(&owner, None));
        let r: R<PaymentSession> = env.update(admin, "refund_session", (s.id,));
        assert!(
            r.is_ok(),
            "session {}: {held} e8s stay on its subaccount and refund_session refuses: {r:?}",
            s.id
        );
        assert_eq!(
            balance(env, AccountId::new(&owner, None)) - before,
            held - LEDGER_FEE,
            "session {}: refund_session returns balance − fee to the owner",
            s.id
        );
    }
    let bills: R<BillingPage> = env.query(
        admin,
        "list_billing",
        (PageArgs {
            start_after: None,
            limit: Some(100),
        },),
    );
    let bills: Vec<BillingEntry> = bills
        .unwrap()
        .items
        .into_iter()
        .filter(|b| b.vault_id == v)
        .collect();
    let treasury = treasury_account(env);
    for s in sessions {
        let from = session_account(env, s.id);
        let sweeps = env
            .host
            .ledger()
            .blocks()
            .iter()
            .filter(|b| matches!(&b.op, Operation::Transfer { from: f, to, .. } if *f == from && *to == treasury))
            .count();
        assert!(sweeps <= 1, "session {} swept {sweeps} times", s.id);
        if sweeps == 1 {
            let b = bills
                .iter()
                .find(|b| b.session_id == s.id)
                .unwrap_or_else(|| panic!("session {} swept without a billing entry", s.id));
            let left = balance(env, from);
            let refund: R<PaymentSession> = env.update(admin, "refund_session", (s.id,));
            assert!(
                b.applied,
                "session {}: {} e8s swept to the treasury for {:?} but the billing entry says \
                 applied = false (the subaccount holds {left} e8s; refund_session answers \
                 {refund:?}): the payer's money is in the treasury for nothing",
                s.id, b.treasury_e8s, b.purpose
            );
        }
    }
    let mut applied = BTreeMap::new();
    for b in bills.iter().filter(|b| b.applied) {
        *applied.entry(format!("{:?}", b.purpose)).or_insert(0) += 1;
    }
    for (purpose, n) in applied {
        assert_eq!(n, 1, "purpose {purpose} applied {n} times");
    }
    Books::check(env);
}

/// Today's prices with every storage price halved (a price cut by an admin).
fn halved_prices() -> livault_backend::model::config::Pricing {
    let mut p = livault_backend::model::config::Pricing::default();
    for t in &mut p.tiers {
        t.storage_price_e8s /= 2;
    }
    p
}

/// A paid vault (`NeedSetup`) with two paid upgrade sessions to the same plan that both
/// still apply: A, then — after an admin halved the storage prices and A expired — B at the
/// new price (A's frozen amount is not below the current quote, so A applies too; a draft
/// has only one creation session since the issue #12 fix). Returns (env, owner, vault, A, B).
fn two_paid_upgrade_sessions(
    mut env: TestEnv,
) -> (TestEnv, Principal, VaultId, PaymentSession, PaymentSession) {
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    env.pay_creation(owner, v);
    let to = PlanSelection {
        tier: Tier::Premium,
        heir_slots: 3,
        witness_slot: true,
    };
    let a = init(&mut env, owner, v, PaymentPurpose::Upgrade(to));
    set_pricing(&mut env, halved_prices());
    env.advance(Duration::from_secs(31 * 60));
    let b = init(&mut env, owner, v, PaymentPurpose::Upgrade(to));
    assert!(b.amount_e8s < a.amount_e8s);
    assert_ne!(a.id, b.id, "a new price opens a new session");
    wallet_pays(&mut env, owner, &a, a.amount_e8s);
    wallet_pays(&mut env, owner, &b, b.amount_e8s);
    (env, owner, v, a, b)
}

/// Issue #12 H2 as the issue states it: a Draft, session A opened and expired, then "session
/// B" opened. Since the fix a draft has one creation session: B is A reopened, so two
/// creation payments cannot race; the session paid once and verified twice concurrently
/// (the second is refused `Busy` or finds it closed) is swept once and the creation applied
/// once. Found on 7bad18c by the explorer's then setup `create-two` (two creation sessions):
/// `create-two;v0,v1;s0 s1 r0:deliver r0:deliver r0:deliver r0:deliver` (both swept, B
/// `applied = false`, B empty, `refund_session(B)` `InvalidInput`).
#[test]
fn issue_12_h2_a_draft_reopens_its_expired_session_and_concurrent_verifications_sweep_once() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let a = init(&mut env, owner, v, PaymentPurpose::Create);
    env.advance(Duration::from_secs(31 * 60));
    let b = init(&mut env, owner, v, PaymentPurpose::Create);
    assert_eq!(b.id, a.id, "the expired creation session is reopened");
    assert!(b.expires_at > env.now());
    wallet_pays(&mut env, owner, &b, b.amount_e8s);
    env.host.hold_calls_to(ledger_principal());
    let arg = candid::encode_one(b.id).unwrap();
    let first = env.host.submit_update(owner, "verify_payment", arg.clone());
    let second = env.host.submit_update(owner, "verify_payment", arg);
    env.host.run_until_idle();
    deliver_held(&mut env, "account_balance");
    deliver_held(&mut env, "transfer");
    let replies = finish_flows(&mut env, &[first, second]);
    println!("verify(A) twice: {replies:?}");
    assert_eq!(canister_transfers(&env), 1, "one sweep");
    settle_and_check(&mut env, owner, v, &[&b]);
}

/// Issue #12 H2 with two sessions of one purpose (two upgrades to the same plan, B opened
/// after a price cut), both paid, verified so that they interleave at the ledger awaits
/// (both balances asked before either sweep). Exactly one applies; the other's funds stay
/// on its subaccount for `refund_session`. Explorer: `upgrade-two;v0,v1;s0 s1 r0:deliver
/// r0:deliver r0:deliver r0:deliver` (on main at 7bad18c: both swept, one `applied = false`).
#[test]
fn issue_12_h2_two_upgrade_sessions_verified_concurrently_apply_one_and_refund_the_other() {
    let (mut env, owner, v, a, b) = two_paid_upgrade_sessions(TestEnv::new());
    env.host.hold_calls_to(ledger_principal());
    let va = env
        .host
        .submit_update(owner, "verify_payment", candid::encode_one(a.id).unwrap());
    let vb = env
        .host
        .submit_update(owner, "verify_payment", candid::encode_one(b.id).unwrap());
    env.host.run_until_idle();
    deliver_held(&mut env, "account_balance");
    deliver_held(&mut env, "transfer");
    let replies = finish_flows(&mut env, &[va, vb]);
    println!("verify(A), verify(B): {replies:?}");
    settle_and_check(&mut env, owner, v, &[&a, &b]);
}

/// Issue #12 H2, second form: the scheduler's session check (the periodic tick checks A, then
/// B) and the owner's `verify_payment(B)` interleave at the ledger awaits; every held call is
/// delivered in the order made. Explorer: `upgrade-two;v1,t;s0 s1 r0:deliver r0:deliver
/// r0:deliver r0:deliver` (on main at 7bad18c: both swept, one `applied = false`).
#[test]
fn issue_12_h2_the_scheduler_check_and_the_owner_verify_of_two_sessions_apply_one() {
    // Maintenance timer every 60 s; the scheduler checks a session 2 and 10 minutes after it
    // was opened.
    let (mut env, owner, v, a, b) = two_paid_upgrade_sessions(TestEnv::new());
    env.host.hold_calls_to(ledger_principal());
    let mut ticks = 0;
    while env.host.held_calls() == 0 && ticks < 15 {
        env.advance(Duration::from_secs(60));
        ticks += 1;
    }
    let first = env.host.list_held_calls();
    assert_eq!(first.len(), 1, "the tick's check awaits the ledger");
    assert_eq!(
        first[0].message, None,
        "made by the timer, not by an ingress message"
    );
    let vb = env
        .host
        .submit_update(owner, "verify_payment", candid::encode_one(b.id).unwrap());
    env.host.run_until_idle();
    for _ in 0..12 {
        if env.host.held_calls() == 0 {
            break;
        }
        let next = env.host.list_held_calls()[0].id;
        env.host
            .release_held_call(next, local_replica::HeldOutcome::Deliver)
            .unwrap();
        env.host.run_until_idle();
    }
    let replies = finish_flows(&mut env, &[vb]);
    println!(
        "verify(B): {replies:?}; last tick: {:?}",
        last_tick(&mut env)
    );
    settle_and_check(&mut env, owner, v, &[&a, &b]);
}

/// Issue #12: `delete_vault` between the balance check and the sweep. On 7bad18c the sweep
/// landed, the billing entry said `applied = false` and nothing could return the money (the
/// session completed and empty; docs/payments.md then called this "settled by hand").
/// Explorer path: `create-excess;v0,d;s0 r0:deliver s1 r0:deliver`. Passes since a4779ac
/// (the purpose is applied in the message that writes the sweep intent).
#[test]
fn issue_12_a_vault_deleted_while_its_creation_sweep_is_in_flight_keeps_the_payment_applied() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let a = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &a, a.amount_e8s);
    env.host.hold_calls_to(ledger_principal());
    let va = env
        .host
        .submit_update(owner, "verify_payment", candid::encode_one(a.id).unwrap());
    env.host.run_until_idle();
    deliver_held(&mut env, "account_balance");
    let deleted: R<VaultView> = env.update(owner, "delete_vault", (v,));
    println!("delete_vault during the sweep: {deleted:?}");
    let replies = finish_flows(&mut env, &[va]);
    println!("verify(A): {replies:?}");
    settle_and_check(&mut env, owner, v, &[&a]);
}

/// Issue #12: B's sweep transfer is rejected by the ledger (its outcome then unknown to the
/// canister); A's verification comes next; then B's again. One upgrade applies, once; the
/// other session's funds are refundable. On 7bad18c (explorer, two creation sessions:
/// `create-two;v1;s0 r0:deliver r0:reject` then the settle phase) B's pending sweep was resent
/// after A had applied the purpose: swept with `applied = false`, unrefundable.
#[test]
fn issue_12_a_pending_sweep_is_not_resent_for_a_purpose_another_session_applied() {
    let (mut env, owner, v, a, b) = two_paid_upgrade_sessions(TestEnv::new());
    env.host.fail_next_calls(
        "transfer",
        1,
        RejectCode::SysTransient,
        "ledger unreachable",
    );
    let first_b = verify(&mut env, owner, b.id);
    println!("verify(B) with its sweep rejected: {first_b:?}");
    let then_a = verify(&mut env, owner, a.id);
    println!("verify(A): {then_a:?}");
    settle_and_check(&mut env, owner, v, &[&a, &b]);
}

// ---------------------------------------------------------------- issue #12 reproductions

/// Today's prices with every storage price doubled (a price rise by an admin).
fn doubled_prices() -> livault_backend::model::config::Pricing {
    let mut p = livault_backend::model::config::Pricing::default();
    for t in &mut p.tiers {
        t.storage_price_e8s *= 2;
    }
    p
}

fn set_pricing(env: &mut TestEnv, pricing: livault_backend::model::config::Pricing) {
    let admin = env.admin;
    let r: R<()> = env.update(admin, "set_pricing", (pricing,));
    r.expect("set_pricing");
}

/// Issue #12 H2 (SPEC §6: exactly one session can apply a vault's purpose; the funds of a
/// session whose purpose was applied meanwhile stay on its subaccount for `refund_session`,
/// never swept). Two renewal sessions of one `GraceMaster` vault — the second opened after a
/// price rise, so it is a new session — are both paid, and their verifications are
/// submitted while the ledger holds every call, then released together. Exactly one renewal
/// applies and is billed; the other session's funds are still on its subaccount, and an
/// admin's `refund_session` returns them (minus the fee) to the owner.
#[test]
fn two_paid_sessions_of_one_purpose_apply_once_and_the_other_stays_refundable() {
    let (mut env, owner, v) = active_vault(30);
    env.advance_days(31);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::GraceMaster
    );
    let a = init(&mut env, owner, v, PaymentPurpose::Renew);
    set_pricing(&mut env, doubled_prices());
    env.advance(Duration::from_secs(3600));
    let b = init(&mut env, owner, v, PaymentPurpose::Renew);
    assert_ne!(a.id, b.id, "a new price opens a new session");
    assert!(b.amount_e8s > a.amount_e8s);
    wallet_pays(&mut env, owner, &a, a.amount_e8s);
    wallet_pays(&mut env, owner, &b, b.amount_e8s);

    env.host.hold_calls_to(ledger_principal());
    let va = env
        .host
        .submit_update(owner, "verify_payment", candid::encode_one(a.id).unwrap());
    let vb = env
        .host
        .submit_update(owner, "verify_payment", candid::encode_one(b.id).unwrap());
    env.host.run_until_idle();
    env.host.stop_holding(ledger_principal());
    env.host.release_held();
    let ra: R<PaymentReceipt> =
        candid::decode_one(&env.host.await_reply(va).unwrap().bytes).unwrap();
    let rb: R<PaymentReceipt> =
        candid::decode_one(&env.host.await_reply(vb).unwrap().bytes).unwrap();
    // Whichever was refused as busy is verified again, now alone.
    let rb = if rb == Err(VaultError::Busy) {
        verify(&mut env, owner, b.id)
    } else {
        rb
    };
    let ra = if ra == Err(VaultError::Busy) {
        verify(&mut env, owner, a.id)
    } else {
        ra
    };
    let applied: Vec<&PaymentReceipt> = [&ra, &rb].into_iter().flatten().collect();
    assert_eq!(
        applied.len(),
        1,
        "exactly one renewal applies: {ra:?} / {rb:?}"
    );
    let winner = applied[0].session.id;
    let loser = if winner == a.id { &b } else { &a };
    let bills: R<BillingPage> = env.query(env.admin, "list_billing", (PageArgs::default(),));
    let renewals: Vec<BillingEntry> = bills
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.purpose == PaymentPurpose::Renew)
        .collect();
    assert_eq!(renewals.len(), 1, "one renewal billed: {renewals:?}");
    assert_eq!(renewals[0].session_id, winner);
    assert_eq!(
        balance(&env, session_account(&env, loser.id)),
        loser.amount_e8s,
        "the other session's funds stay on its subaccount"
    );
    let before = balance(&env, AccountId::new(&owner, None));
    let admin = env.admin;
    let refunded: R<PaymentSession> = env.update(admin, "refund_session", (loser.id,));
    let refunded = refunded.expect("refund_session of the session that did not apply");
    assert_eq!(refunded.refunded_e8s, loser.amount_e8s - LEDGER_FEE);
    assert_eq!(
        balance(&env, AccountId::new(&owner, None)) - before,
        loser.amount_e8s - LEDGER_FEE
    );
    assert_eq!(env.get_vault(owner, v).unwrap().status, VaultStatus::Active);
    Books::check(&mut env);
}

/// Issue #12 M1 (SPEC §6: a late Upgrade session still applies only if the current prorated
/// quote is not higher and no renewal happened since). An Upgrade session opened in one
/// validity period and paid after the vault was renewed does not apply: it is refund-only.
#[test]
fn a_stale_upgrade_session_paid_after_a_renewal_is_refund_only() {
    let (mut env, owner, v) = active_vault(30);
    env.advance_days(10);
    let to = PlanSelection {
        tier: Tier::Premium,
        heir_slots: 3,
        witness_slot: true,
    };
    let up = init(&mut env, owner, v, PaymentPurpose::Upgrade(to));
    env.advance_days(21);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::GraceMaster
    );
    let renew = init(&mut env, owner, v, PaymentPurpose::Renew);
    wallet_pays(&mut env, owner, &renew, renew.amount_e8s);
    assert_eq!(
        verify(&mut env, owner, renew.id).unwrap().vault_status,
        VaultStatus::Active
    );
    // The old upgrade session is paid now, late.
    wallet_pays(&mut env, owner, &up, up.amount_e8s);
    assert_eq!(
        verify(&mut env, owner, up.id),
        Err(VaultError::SessionExpired),
        "an upgrade priced for the previous period must not apply"
    );
    assert_eq!(env.get_vault(owner, v).unwrap().plan, standard_plan());
    assert_eq!(balance(&env, session_account(&env, up.id)), up.amount_e8s);
    let admin = env.admin;
    let refunded: R<PaymentSession> = env.update(admin, "refund_session", (up.id,));
    assert_eq!(refunded.unwrap().refunded_e8s, up.amount_e8s - LEDGER_FEE);
    Books::check(&mut env);
}

/// Issue #12 M1, the price variant: an expired Upgrade session whose frozen amount is below
/// what the upgrade costs now (prices rose) does not apply at the old price.
#[test]
fn a_stale_upgrade_session_paid_after_a_price_rise_is_refund_only() {
    let (mut env, owner, v) = active_vault(3650);
    let to = PlanSelection {
        tier: Tier::Premium,
        heir_slots: 3,
        witness_slot: true,
    };
    let up = init(&mut env, owner, v, PaymentPurpose::Upgrade(to));
    set_pricing(&mut env, doubled_prices());
    env.advance(Duration::from_secs(3600));
    let quote: R<UpgradeQuote> = env.query(owner, "quote_upgrade", (v, to));
    assert!(quote.unwrap().amount_e8s > up.amount_e8s);
    wallet_pays(&mut env, owner, &up, up.amount_e8s);
    assert_eq!(
        verify(&mut env, owner, up.id),
        Err(VaultError::SessionExpired)
    );
    assert_eq!(env.get_vault(owner, v).unwrap().plan, standard_plan());
    let admin = env.admin;
    let refunded: R<PaymentSession> = env.update(admin, "refund_session", (up.id,));
    assert_eq!(refunded.unwrap().refunded_e8s, up.amount_e8s - LEDGER_FEE);
    Books::check(&mut env);
}

/// Issue #12 M4: payment flows of other principals in flight (sixteen throw-away principals
/// verifying unpaid sessions while the ledger is slow) must not make a paying user's
/// `verify_payment` answer `Busy`: the per-vault lock serializes one vault's flows, it does
/// not block everyone.
#[test]
fn throw_away_principals_in_flight_do_not_make_a_payer_busy() {
    let mut env = TestEnv::new();
    let mut sessions = Vec::new();
    for i in 0..16 {
        let p = user(&format!("throwaway-{i}"));
        let v = new_vault(&mut env, p);
        sessions.push((p, init(&mut env, p, v, PaymentPurpose::Create)));
    }
    let owner = user("owner");
    let v = new_vault(&mut env, owner);
    let s = init(&mut env, owner, v, PaymentPurpose::Create);
    wallet_pays(&mut env, owner, &s, s.amount_e8s);
    env.host.hold_calls_to(ledger_principal());
    let pending: Vec<_> = sessions
        .iter()
        .map(|(p, s)| {
            env.host
                .submit_update(*p, "verify_payment", candid::encode_one(s.id).unwrap())
        })
        .collect();
    env.host.run_until_idle();
    assert_eq!(
        env.host.held_calls(),
        16,
        "sixteen balance checks in flight"
    );
    let mine = env
        .host
        .submit_update(owner, "verify_payment", candid::encode_one(s.id).unwrap());
    env.host.run_until_idle();
    assert!(
        matches!(
            env.host.message_status(mine),
            Some(local_replica::MessageStatus::Pending)
        ),
        "the payer's verify must reach the ledger, not answer Busy: {:?}",
        env.host.message_status(mine)
    );
    env.host.stop_holding(ledger_principal());
    env.host.release_held();
    let r: R<PaymentReceipt> =
        candid::decode_one(&env.host.await_reply(mine).unwrap().bytes).unwrap();
    assert_eq!(r.unwrap().vault_status, VaultStatus::NeedSetup);
    for id in pending {
        let r: R<PaymentReceipt> =
            candid::decode_one(&env.host.await_reply(id).unwrap().bytes).unwrap();
        assert_eq!(r, Err(VaultError::NotYetPaid));
    }
    Books::check(&mut env);
}

/// Issue #12 H3 (SPEC §6: a session that never received funds is not polled after it
/// expires; throw-away principals cannot make the canister call the ledger without limit).
/// A draft with an unpaid session: over two days of maintenance ticks (every 60 s) the
/// canister asks the ledger for its balance a bounded number of times, and never after the
/// session expired.
#[test]
fn an_unpaid_session_is_polled_a_bounded_number_of_times_and_not_after_expiry() {
    let mut env = TestEnv::new();
    let p = user("throwaway");
    let v = new_vault(&mut env, p);
    let s = init(&mut env, p, v, PaymentPurpose::Create);
    let calls = |env: &TestEnv| env.host.ledger().call_count("account_balance");
    assert_eq!(calls(&env), 0);
    env.host.set_time(s.expires_at);
    env.advance(Duration::from_secs(120));
    let during = calls(&env);
    assert!(
        (1..=MAX_CHECKS_OF_AN_UNPAID_SESSION).contains(&during),
        "{during} balance checks during the session's 30 minutes"
    );
    env.advance_days(2);
    assert_eq!(
        calls(&env),
        during,
        "no balance check of a session that never saw funds after it expired"
    );
}

/// The most balance checks the scheduler makes of a session that never receives funds
/// (docs/security.md, cost of an unpaid session).
const MAX_CHECKS_OF_AN_UNPAID_SESSION: u64 = 8;
