//! The prepared canisters (setups) the explorer starts every path from.

use candid::Principal;
use livault_backend::model::config::{Durations, Pricing};
use livault_backend::model::records::MemberRole;
use local_replica::ledger_principal;

use super::{Flow, Setup, R};
use crate::*;

fn durations(validity_days: u32) -> Durations {
    Durations {
        // Daily: the periodic tick never fires during a path (each step moves the clock by
        // 1 ms) unless a `TooOld` release jumps a day, and then it runs once, as a flow.
        timer_interval_secs: 86_400,
        validity_days,
        ..Default::default()
    }
}

fn env_with(validity_days: u32) -> TestEnv {
    TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(ledger_principal()),
        durations: Some(durations(validity_days)),
        ..Default::default()
    })
}

fn init_payment(
    env: &mut TestEnv,
    owner: Principal,
    v: VaultId,
    p: PaymentPurpose,
) -> PaymentSession {
    env.update::<_, R<PaymentSession>>(owner, "init_payment", (v, p))
        .unwrap_or_else(|e| panic!("setup: init_payment({v}, {p:?}): {e:?}"))
}

/// The owner's wallet pays `e8s` to the session's account identifier.
fn pay(env: &mut TestEnv, owner: Principal, s: &PaymentSession, e8s: u64) {
    let wallet = TestEnv::wallet_of(owner);
    env.host
        .fund(AccountId::new(&wallet, None), e8s + LEDGER_FEE);
    let to = AccountId::from_hex(&s.account_identifier).expect("account identifier");
    env.host
        .ledger_transfer_as(&wallet, to, e8s)
        .expect("wallet transfer");
}

/// An `Active` vault (Standard plan, one heir, one letter, far unlock date).
fn active_vault(env: &mut TestEnv, owner: Principal) -> VaultId {
    let v = env.create_vault(owner, "Family").id;
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
    r.expect("setup: update_vault");
    env.join(owner, v, MemberRole::Heir, user("heir"));
    env.upload_letter(owner, v, b"ciphertext", None);
    let r: R<VaultView> = env.update(owner, "finalize_setup", (v,));
    assert_eq!(
        r.expect("setup: finalize_setup").status,
        VaultStatus::Active
    );
    v
}

fn premium() -> PlanSelection {
    PlanSelection {
        tier: Tier::Premium,
        heir_slots: 3,
        witness_slot: true,
    }
}

fn two_session_pool() -> Vec<(Flow, usize)> {
    vec![
        (Flow::Verify(0), 2),
        (Flow::Verify(1), 2),
        (Flow::Tick, 1),
        (Flow::Refund(0), 1),
        (Flow::Refund(1), 1),
        (Flow::Delete, 1),
    ]
}

/// Snapshots the prepared `env` as the setup `name` (`about` says what it prepared) of
/// `vault` with its labelled `sessions`.
fn finish_setup(
    (name, about): (&'static str, &'static str),
    mut env: TestEnv,
    owner: Principal,
    vault: VaultId,
    sessions: Vec<(PaymentSession, &'static str)>,
    pool: Vec<(Flow, usize)>,
) -> Setup {
    // Eleven minutes: the scheduler's checks of the sessions (2 and 10 minutes after they
    // were opened) are due, and the owner's rate-limit bucket (20 tokens, 1/s) is full. The
    // daily tick must not have run meanwhile (it would have confirmed the payments).
    let blocks = env.host.ledger().blocks().len();
    env.host.set_time(env.now() + 11 * 60 * 1_000_000_000);
    assert_eq!(
        env.host.ledger().blocks().len(),
        blocks,
        "setup {name}: no payment moved before the snapshot"
    );
    let snap = env.host.snapshot().expect("setup is quiescent");
    let (sessions, labels) = sessions.into_iter().unzip();
    Setup {
        name,
        about,
        snap,
        owner,
        admin: env.admin,
        canister: env.canister,
        vault,
        sessions,
        labels,
        pool,
        treasury: AccountId::new(&env.admin, None),
    }
}

/// Every setup, in a fixed order.
pub fn all_setups() -> Vec<Setup> {
    vec![
        setup_create_excess(),
        setup_upgrade_two(),
        setup_renew_two(),
        setup_upgrade_then_renew(),
    ]
}

/// Draft vault, one session paid with 1 ICP too much (sweep and refund of the excess).
pub fn setup_create_excess() -> Setup {
    let mut env = env_with(3650);
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    let a = init_payment(&mut env, owner, v, PaymentPurpose::Create);
    pay(&mut env, owner, &a, a.amount_e8s + 100_000_000);
    finish_setup(
        ("create-excess", "Draft; session A paid amount + 1 ICP"),
        env,
        owner,
        v,
        vec![(a, "A")],
        vec![
            (Flow::Verify(0), 2),
            (Flow::Tick, 1),
            (Flow::Refund(0), 1),
            (Flow::Delete, 1),
        ],
    )
}

/// Today's prices with every storage price halved (an admin's price cut).
fn halved_prices() -> Pricing {
    let mut p = Pricing::default();
    for t in &mut p.tiers {
        t.storage_price_e8s /= 2;
    }
    p
}

/// The admin cuts the prices, then A expires: the next `init_payment` opens a new session
/// (a new price), and A still applies (its frozen amount is above the current quote).
fn cut_prices_and_expire(env: &mut TestEnv, a: &PaymentSession) {
    let admin = env.admin;
    let r: R<()> = env.update(admin, "set_pricing", (halved_prices(),));
    r.expect("setup: set_pricing");
    env.host.set_time(a.expires_at + 60 * 1_000_000_000);
}

/// Paid vault (NeedSetup), two upgrade sessions to the same plan, both applicable and paid:
/// A, and B opened at a lower price after A expired (issue #12 H2 with two sessions; a draft
/// has a single creation session).
pub fn setup_upgrade_two() -> Setup {
    let mut env = env_with(3650);
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    let a = init_payment(&mut env, owner, v, PaymentPurpose::Upgrade(premium()));
    cut_prices_and_expire(&mut env, &a);
    let b = init_payment(&mut env, owner, v, PaymentPurpose::Upgrade(premium()));
    assert_ne!(a.id, b.id);
    pay(&mut env, owner, &a, a.amount_e8s);
    pay(&mut env, owner, &b, b.amount_e8s);
    finish_setup(
        (
            "upgrade-two",
            "NeedSetup; upgrade-to-Premium sessions A (expired) and B (after a price cut), paid",
        ),
        env,
        owner,
        v,
        vec![(a, "A"), (b, "B")],
        two_session_pool(),
    )
}

/// Vault in GraceMaster, two renewal sessions of the same period, both paid: A, and B opened
/// at a lower price after A expired.
pub fn setup_renew_two() -> Setup {
    let mut env = env_with(30);
    let owner = user("owner");
    let v = active_vault(&mut env, owner);
    env.advance_days(31);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::GraceMaster
    );
    let a = init_payment(&mut env, owner, v, PaymentPurpose::Renew);
    cut_prices_and_expire(&mut env, &a);
    let b = init_payment(&mut env, owner, v, PaymentPurpose::Renew);
    assert_ne!(a.id, b.id);
    pay(&mut env, owner, &a, a.amount_e8s);
    pay(&mut env, owner, &b, b.amount_e8s);
    finish_setup(
        (
            "renew-two",
            "GraceMaster; renewal sessions A (expired) and B (after a price cut), paid",
        ),
        env,
        owner,
        v,
        vec![(a, "A"), (b, "B")],
        two_session_pool(),
    )
}

/// Upgrade session U opened while Active; validity ends (GraceMaster); renewal session R
/// opened; both paid. U's quote is stale: SPEC §6 makes it refund-only once a renewal
/// happened (or while the vault is in GraceMaster).
pub fn setup_upgrade_then_renew() -> Setup {
    let mut env = env_with(30);
    let owner = user("owner");
    let v = active_vault(&mut env, owner);
    env.advance_days(20);
    let u = init_payment(&mut env, owner, v, PaymentPurpose::Upgrade(premium()));
    env.advance_days(11);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::GraceMaster
    );
    let r = init_payment(&mut env, owner, v, PaymentPurpose::Renew);
    pay(&mut env, owner, &u, u.amount_e8s);
    pay(&mut env, owner, &r, r.amount_e8s);
    finish_setup(
        (
            "upgrade-then-renew",
            "GraceMaster; upgrade session U (opened while Active, stale) and renewal R, both paid",
        ),
        env,
        owner,
        v,
        vec![(u, "U"), (r, "R")],
        two_session_pool(),
    )
}
