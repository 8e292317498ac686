//! Per-endpoint instruction costs (BENCHMARKS.md, "Endpoint costs"): one realistic journey on
//! the shipped wasm, and the instructions the host's meter counts for each call of it.
//!
//! The journey: `get_plans`; Alice creates a Standard vault with 2 heir slots and a witness
//! (`create_vault`), pays it (`init_payment`, then a wallet transfer and `verify_payment`),
//! sets inactivity unlock rules (`update_vault`), invites Bob as heir (`generate_invite`,
//! `claim_invite`), checks in (`check_in`), uploads a letter and finalizes; 31 days later Bob
//! approves the unlock (`approve_unlock`). The queries run on the resulting state. Last,
//! `update_vault (7th)`: Carol's paid vault with six audit events gets the rules call whose
//! event is its seventh, which moves the packed audit log to pages (the heaviest update_vault).
//!
//! `cargo run -p livault_tests --bin bench_endpoints_cost` (after `scripts/build.sh`)
//!
//! With `--parts` the journey runs on the benchmark wasm (`scripts/build.sh --bench-seed`)
//! and then prints where the instructions of the metadata queries go (`bench_reply_parts`:
//! argument guard, decoding, domain call, reply encoding, and the reply encoded with a
//! one-case error type for comparison), as Alice on her vault. `LIVAULT_WASM` overrides the
//! wasm in both modes.

use candid::utils::ArgumentEncoder;
use candid::Principal;
use livault_backend::model::config::Durations;
use livault_backend::model::member_types::{
    GenerateInviteArgs, InviteCreated, MemberView, Relation, UnlockStatus,
};
use livault_backend::model::records::MemberRole;
use livault_tests::*;

type R<T> = Result<T, VaultError>;

struct Row {
    name: &'static str,
    kind: &'static str,
    instructions: u64,
    total: u64,
    reply_bytes: usize,
}

/// One call, decoded; records the instructions of its first execution and of its whole
/// call tree.
fn call<A: ArgumentEncoder, T: candid::CandidType + serde::de::DeserializeOwned>(
    env: &mut TestEnv,
    rows: &mut Vec<Row>,
    who: Principal,
    name: &'static str,
    query: bool,
    args: A,
) -> T {
    let bytes = candid::encode_args(args).expect("encode args");
    let reply = if query {
        env.host.query(who, name, bytes)
    } else {
        env.host.update(who, name, bytes)
    }
    .unwrap_or_else(|r| panic!("{name} was rejected: {r:?}"));
    rows.push(Row {
        name,
        kind: if query { "query" } else { "update" },
        instructions: reply.instructions,
        total: reply.total_instructions,
        reply_bytes: reply.bytes.len(),
    });
    candid::decode_one(&reply.bytes).unwrap_or_else(|e| panic!("{name}: bad reply: {e}"))
}

fn main() {
    let parts = std::env::args().any(|a| a == "--parts");
    // `LIVAULT_WASM` chooses the wasm in both modes (e.g. a benchmark wasm of another commit).
    let wasm = if parts && std::env::var_os("LIVAULT_WASM").is_none() {
        bench_wasm()
    } else {
        wasm()
    };
    let mut env = TestEnv::with_wasm(
        wasm,
        InitArgs {
            admins: vec![user("admin")],
            ledger_canister_id: Some(local_replica::ledger_principal()),
            durations: Some(Durations {
                timer_interval_secs: 86_400,
                ..Durations::default()
            }),
            ..Default::default()
        },
    );
    let (alice, bob) = (user("alice"), user("bob"));
    let mut rows = Vec::new();
    let rows = &mut rows;

    let _: PlansInfo = call(&mut env, rows, alice, "get_plans", true, ());
    let v: R<VaultView> = call(
        &mut env,
        rows,
        alice,
        "create_vault",
        false,
        (CreateVaultArgs {
            name: "Family".into(),
            plan: PlanSelection {
                tier: Tier::Standard,
                heir_slots: 2,
                witness_slot: true,
            },
            owner_age: 45,
            idempotency_key: None,
        },),
    );
    let v = v.expect("create_vault").id;
    let session: R<PaymentSession> = call(
        &mut env,
        rows,
        alice,
        "init_payment",
        false,
        (v, PaymentPurpose::Create),
    );
    let session = session.expect("init_payment");
    let wallet = TestEnv::wallet_of(alice);
    env.host.fund(
        AccountId::new(&wallet, None),
        session.amount_e8s + LEDGER_FEE,
    );
    let to = AccountId::from_hex(&session.account_identifier).expect("account id");
    env.host
        .ledger_transfer_as(&wallet, to, session.amount_e8s)
        .expect("wallet transfer");
    let receipt: R<PaymentReceipt> = env.update(alice, "verify_payment", (session.id,));
    receipt.expect("verify_payment");

    let r: R<VaultView> = call(
        &mut env,
        rows,
        alice,
        "update_vault",
        false,
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: None,
                inactivity_days: Some(30),
                request_wait_days: 7,
                required_heirs: 1,
                required_witness: false,
            }),
            post_unlock_days: Some(30),
            audit_retention_days: None,
        },),
    );
    r.expect("update_vault");
    let inv: R<InviteCreated> = call(
        &mut env,
        rows,
        alice,
        "generate_invite",
        false,
        (GenerateInviteArgs {
            vault_id: v,
            role: MemberRole::Heir,
            name: "Bob".into(),
            relation: Relation::Son,
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
        },),
    );
    let token = inv.expect("generate_invite").token;
    let m: R<MemberView> = call(&mut env, rows, bob, "claim_invite", false, (token,));
    let bob_id = m.expect("claim_invite").member_id;
    let r: R<VaultView> = call(&mut env, rows, alice, "check_in", false, (v,));
    r.expect("check_in");
    env.upload_letter(
        alice,
        v,
        b"ciphertext of a letter for Bob",
        Some(vec![bob_id]),
    );
    let r: R<VaultView> = env.update(alice, "finalize_setup", (v,));
    assert_eq!(r.expect("finalize_setup").status, VaultStatus::Active);
    env.advance_days(31);
    let r: R<UnlockStatus> = call(&mut env, rows, bob, "approve_unlock", false, (v,));
    r.expect("approve_unlock");

    let r: R<VaultView> = call(&mut env, rows, alice, "get_vault", true, (v,));
    r.expect("get_vault");
    let r: R<Page<VaultSummary>> = call(
        &mut env,
        rows,
        alice,
        "list_my_vaults",
        true,
        (PageArgs::default(),),
    );
    assert_eq!(r.expect("list_my_vaults").items.len(), 1);
    let r: R<UnlockStatus> = call(&mut env, rows, bob, "get_unlock_status", true, (v,));
    r.expect("get_unlock_status");
    let _: PlansInfo = call(&mut env, rows, bob, "get_plans", true, ());

    // The heaviest case of update_vault: the call whose event is the vault's seventh, which
    // moves its packed audit log to pages (storage::audit_log). Carol's paid vault has four
    // events; two settings changes make six; the measured call sets the rules.
    let carol = user("carol");
    let c = env.create_vault(carol, "Carol");
    env.pay_creation(carol, c.id);
    let update = |days: Option<u16>, rules: Option<UnlockRules>| UpdateVaultArgs {
        vault_id: c.id,
        name: None,
        unlock_rules: rules,
        post_unlock_days: days,
        audit_retention_days: None,
    };
    for days in [31, 32] {
        let r: R<VaultView> = env.update(carol, "update_vault", (update(Some(days), None),));
        r.expect("update_vault");
    }
    let head: R<AuditHead> = env.query(carol, "get_audit_head", (c.id,));
    assert_eq!(
        head.expect("get_audit_head").next_seq,
        6,
        "six events before the call"
    );
    let r: R<VaultView> = call(
        &mut env,
        rows,
        carol,
        "update_vault",
        false,
        (update(
            Some(30),
            Some(UnlockRules {
                unlock_after: None,
                inactivity_days: Some(30),
                request_wait_days: 7,
                required_heirs: 1,
                required_witness: false,
            }),
        ),),
    );
    r.expect("update_vault");
    rows.last_mut().expect("a row").name = "update_vault (7th)";

    // The reply's bytes cost 50 instructions each on the IC (`msg_reply_data_append`, see
    // `local_replica::costs::TRANSMISSION_PER_BYTE`): shown so the share of the reply is visible.
    println!(
        "{:<20} {:<7} {:>14} {:>14} {:>12}",
        "endpoint", "kind", "instructions", "call tree", "reply bytes"
    );
    for r in rows.iter() {
        println!(
            "{:<20} {:<7} {:>14} {:>14} {:>12}",
            r.name, r.kind, r.instructions, r.total, r.reply_bytes
        );
    }
    if parts {
        let controller = env.controller;
        let r: R<Vec<(String, u64)>> = env.update(controller, "bench_reply_parts", (v, alice));
        println!();
        println!("{:<40} {:>14}", "part (as alice)", "instructions");
        for (name, n) in r.expect("bench_reply_parts") {
            println!("{name:<40} {n:>14}");
        }
    }
}
