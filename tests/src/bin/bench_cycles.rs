//! Cycle costs (BENCHMARKS.md, "Cycle costs per operation and per vault-year"): what the
//! canister pays the IC for each operation and for one vault over its paid period, from the
//! instructions, messages and calls the host counts on the shipped wasm and the IC's published
//! fees of a 13-node application subnet, next to each plan's price.
//!
//! `cargo run -p livault_tests --bin bench_cycles` (after `scripts/build.sh`)
//!
//! What is measured (every execution the operation causes: the ingress message, its
//! inter-canister callbacks, timers and self-calls): instructions, executions, calls made,
//! ingress bytes. What is assumed (printed): the usage profile of a vault-year and a payload
//! allowance per inter-canister call (the host does not expose call sizes; the ledger,
//! `raw_rand` and vetKD requests and replies are all well under it).

use std::time::Duration;

use candid::Principal;
use livault_backend::domain::keys::{DeriveVetKeyArgs, EncryptedVetKeyReply};
use livault_backend::model::config::{Durations, VetKdConfig};
use livault_backend::model::records::MemberRole;
use livault_tests::stable_usage::StableUsage;
use livault_tests::*;
use local_replica::ic0::ExecKind;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

type R<T> = Result<T, VaultError>;

/// The IC's fees on a 13-node application subnet (`rs/config/src/subnet_config.rs`,
/// `CyclesAccountManagerConfig::application_subnet`; the developer docs' "Cycles costs").
mod fee {
    /// Every message execution (ingress, callback, timer).
    pub const EXECUTION: u128 = 5_000_000;
    /// Per instruction (`ten_update_instructions_execution_fee` = 10 per 10 instructions).
    pub const PER_INSTRUCTION: u128 = 1;
    /// Per ingress message received.
    pub const INGRESS: u128 = 1_200_000;
    /// Per ingress byte received.
    pub const INGRESS_BYTE: u128 = 2_000;
    /// Per inter-canister call (request and response).
    pub const XNET_CALL: u128 = 260_000;
    /// Per byte of an inter-canister request or response.
    pub const XNET_BYTE: u128 = 1_000;
    /// Per GiB of memory per second.
    pub const GIB_SECOND: u128 = 127_000;
}

/// Bytes charged per inter-canister call (request + response): an allowance, not a
/// measurement (see the module doc).
const CALL_BYTES_ALLOWANCE: u128 = 1_024;
const SECONDS_PER_YEAR: u128 = 365 * 86_400;
const GIB: u128 = 1 << 30;
const MIB: usize = 1 << 20;
/// 1 XDR = 10^12 cycles.
const CYCLES_PER_XDR: f64 = 1e12;

/// What an operation made the canister do.
#[derive(Clone, Copy, Default, Debug)]
struct Cost {
    executions: u128,
    instructions: u128,
    calls: u128,
    ingress: u128,
    ingress_bytes: u128,
    /// Fees the canister attached (vetKD).
    attached: u128,
}

impl Cost {
    fn cycles(&self) -> u128 {
        self.executions * fee::EXECUTION
            + self.instructions * fee::PER_INSTRUCTION
            + self.calls * (fee::XNET_CALL + CALL_BYTES_ALLOWANCE * fee::XNET_BYTE)
            + self.ingress * fee::INGRESS
            + self.ingress_bytes * fee::INGRESS_BYTE
            + self.attached
    }
    fn times(&self, n: u128) -> Cost {
        Cost {
            executions: self.executions * n,
            instructions: self.instructions * n,
            calls: self.calls * n,
            ingress: self.ingress * n,
            ingress_bytes: self.ingress_bytes * n,
            attached: self.attached * n,
        }
    }
    fn plus(&self, o: &Cost) -> Cost {
        Cost {
            executions: self.executions + o.executions,
            instructions: self.instructions + o.instructions,
            calls: self.calls + o.calls,
            ingress: self.ingress + o.ingress,
            ingress_bytes: self.ingress_bytes + o.ingress_bytes,
            attached: self.attached + o.attached,
        }
    }
}

/// Runs `f` and returns what every replicated execution it caused cost (queries are free).
fn measure<T>(env: &mut TestEnv, f: impl FnOnce(&mut TestEnv) -> T) -> (T, Cost) {
    // The host keeps the last 1 000 execution records: the new ones are told by their time
    // (the clock moves 1 ns first, so no earlier record has it). Every measured step causes
    // far fewer than 1 000 executions.
    env.advance(Duration::from_nanos(1));
    let t0 = env.now();
    let cycles_before = env.host.cycle_balance();
    let out = f(env);
    let mut c = Cost::default();
    for e in env.host.executions().filter(|e| e.time_ns >= t0) {
        match e.kind {
            ExecKind::Query | ExecKind::Inspect => continue,
            ExecKind::ReplyCallback | ExecKind::RejectCallback => c.calls += 1,
            _ => {}
        }
        c.executions += 1;
        c.instructions += u128::from(e.instructions);
    }
    // Attached cycles the callee kept (vetKD fees); the host charges nothing else.
    c.attached = cycles_before.saturating_sub(env.host.cycle_balance());
    (out, c)
}

/// An ingress update `method(args)` as a measured operation (its argument bytes counted).
fn ingress<
    A: candid::utils::ArgumentEncoder,
    T: candid::CandidType + serde::de::DeserializeOwned,
>(
    env: &mut TestEnv,
    who: Principal,
    method: &str,
    args: A,
) -> (T, Cost) {
    let bytes = candid::encode_args(args).expect("encode args");
    let len = bytes.len() as u128;
    let (reply, mut c) = measure(env, |env| {
        env.host
            .update(who, method, bytes)
            .unwrap_or_else(|r| panic!("{method} rejected: {r:?}"))
    });
    c.ingress = 1;
    c.ingress_bytes = len;
    let value =
        candid::decode_one(&reply.bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"));
    (value, c)
}

fn init(timer_secs: u64) -> TestEnv {
    TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: timer_secs,
            ..Durations::default()
        }),
        vetkd: Some(VetKdConfig {
            owner_derivations_per_day: 1000,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn fmt_cycles(c: u128) -> String {
    if c >= 1_000_000_000_000 {
        format!("{:.3} T", c as f64 / 1e12)
    } else if c >= 1_000_000_000 {
        format!("{:.2} B", c as f64 / 1e9)
    } else {
        format!("{:.2} M", c as f64 / 1e6)
    }
}

struct Setup {
    vault: VaultId,
    owner: Principal,
    one_time: Vec<(&'static str, Cost)>,
}

/// One vault from creation to `Active`: created, paid, rules set, `heirs` heirs and a witness
/// invited and joined, a letter uploaded, finalized. Returns each step's cost.
fn set_up(env: &mut TestEnv, owner: Principal, tier: Tier, heirs: u8) -> Setup {
    let mut one_time = Vec::new();
    let (v, c): (R<VaultView>, _) = ingress(
        env,
        owner,
        "create_vault",
        (CreateVaultArgs {
            name: "Family".into(),
            plan: PlanSelection {
                tier,
                heir_slots: heirs,
                witness_slot: true,
            },
            owner_age: 30,
            idempotency_key: None,
        },),
    );
    one_time.push(("create_vault", c));
    let vault = v.expect("create_vault").id;
    let (s, c): (R<PaymentSession>, _) =
        ingress(env, owner, "init_payment", (vault, PaymentPurpose::Create));
    one_time.push(("init_payment", c));
    let session = s.expect("init_payment");
    let wallet = TestEnv::wallet_of(owner);
    env.host.fund(
        AccountId::new(&wallet, None),
        session.amount_e8s + LEDGER_FEE,
    );
    let to = AccountId::from_hex(&session.account_identifier).expect("account id");
    env.host
        .ledger_transfer_as(&wallet, to, session.amount_e8s)
        .expect("wallet transfer");
    let (r, c): (R<PaymentReceipt>, _) = ingress(env, owner, "verify_payment", (session.id,));
    r.expect("verify_payment");
    one_time.push(("verify_payment (balance + sweep)", c));
    let (r, c): (R<VaultView>, _) = ingress(
        env,
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: vault,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: None,
                inactivity_days: Some(365),
                request_wait_days: 7,
                required_heirs: 1,
                required_witness: false,
            }),
            post_unlock_days: Some(30),
            audit_retention_days: None,
        },),
    );
    r.expect("update_vault");
    one_time.push(("update_vault", c));
    let mut join = Cost::default();
    for i in 0..=heirs {
        let role = if i == heirs {
            MemberRole::Witness
        } else {
            MemberRole::Heir
        };
        let who = user(&format!("{}-member-{i}", owner.to_text()));
        env.advance(Duration::from_secs(2));
        let ((), c) = measure(env, |env| {
            env.join(owner, vault, role, who);
        });
        join = join.plus(&c);
    }
    // `join` makes two ingress messages per member; their argument bytes are small.
    join.ingress = 2 * u128::from(heirs + 1);
    join.ingress_bytes = 200 * u128::from(heirs + 1);
    one_time.push(("invite + claim, each member (all)", join));
    let (_, mut c) = measure(env, |env| {
        env.upload_letter(owner, vault, b"ciphertext of a letter", None)
    });
    c.ingress = 3;
    c.ingress_bytes = 400;
    one_time.push(("upload a letter (3 calls)", c));
    let (r, c): (R<VaultView>, _) = ingress(env, owner, "finalize_setup", (vault,));
    assert_eq!(r.expect("finalize_setup").status, VaultStatus::Active);
    one_time.push(("finalize_setup", c));
    Setup {
        vault,
        owner,
        one_time,
    }
}

/// Upload of `mib` MiB as one file in 1 MiB chunks: the whole cost.
fn upload_file(env: &mut TestEnv, owner: Principal, vault: VaultId, mib: usize) -> Cost {
    let data: Vec<u8> = (0..mib * MIB).map(|i| (i * 31 % 251) as u8).collect();
    let (up, mut total): (R<UploadView>, _) = ingress(
        env,
        owner,
        "begin_upload",
        (BeginUploadArgs {
            vault_id: vault,
            kind: ItemKind::File,
            size: data.len() as u64,
            sha256: ByteBuf::from(Sha256::digest(&data).to_vec()),
            encrypted_meta: ByteBuf::from(vec![1; 200]),
            recipients: None,
            replaces: None,
            idempotency_key: None,
        },),
    );
    let up = up.expect("begin_upload");
    for (i, chunk) in data.chunks(MIB).enumerate() {
        env.advance(Duration::from_secs(2));
        let (r, c): (R<UploadView>, _) = ingress(
            env,
            owner,
            "upload_chunk",
            (up.upload_id, i as u32, ByteBuf::from(chunk.to_vec())),
        );
        r.expect("upload_chunk");
        total = total.plus(&c);
    }
    let (r, c): (R<ItemView>, _) = ingress(env, owner, "finish_upload", (up.upload_id,));
    r.expect("finish_upload");
    total.plus(&c)
}

fn main() {
    println!("Cycle costs on a 13-node application subnet (fees: rs/config subnet_config.rs)");
    println!(
        "execution {} / message, {} / instruction, ingress {} + {} / byte, call {} + {} / byte \
         ({} B allowed per call), storage {} / GiB / s",
        fee::EXECUTION,
        fee::PER_INSTRUCTION,
        fee::INGRESS,
        fee::INGRESS_BYTE,
        fee::XNET_CALL,
        fee::XNET_BYTE,
        CALL_BYTES_ALLOWANCE,
        fee::GIB_SECOND
    );

    // 1. Fixed: the maintenance timer of an empty canister at the default 60 s interval.
    let mut env = init(60);
    env.advance(Duration::from_secs(120));
    let ticks = 20u128;
    let ((), tick) = measure(&mut env, |env| {
        for _ in 0..ticks {
            env.advance(Duration::from_secs(60));
        }
    });
    let per_tick = tick.cycles() / ticks;
    let ticks_per_year = SECONDS_PER_YEAR / 60;
    let fixed_year = per_tick * ticks_per_year;
    println!();
    println!(
        "fixed: empty maintenance tick (every 60 s): {} executions, {} instructions -> {} cycles; \
         {} ticks a year -> {} a year for the whole canister",
        tick.executions / ticks,
        tick.instructions / ticks,
        per_tick,
        ticks_per_year,
        fmt_cycles(fixed_year)
    );

    // 2. One vault's one-time operations, its metadata bytes, a year of its own activity.
    // The timer is daily here so the year's ticks are few; the empty ticks are subtracted.
    let mut env = init(86_400);
    env.advance(Duration::from_secs(3_600));
    let owner = user("alice");
    let setup = set_up(&mut env, owner, Tier::Standard, 2);
    // Metadata bytes per vault: the average over `N` more vaults set up the same way (B-tree
    // nodes and slab blocks are allocated in units; see `stable_usage`).
    const N: u64 = 12;
    let usage_before = StableUsage::read(env.host.stable_memory().expect("stable memory"));
    for i in 0..N {
        set_up(&mut env, user(&format!("owner-{i}")), Tier::Standard, 2);
    }
    let usage_after = StableUsage::read(env.host.stable_memory().expect("stable memory"));
    let metadata_bytes = usage_after.used().saturating_sub(usage_before.used()) / N;

    println!();
    println!("| one-time operation (Standard, 2 heirs + witness) | executions | instructions | calls | cycles |");
    println!("|---|---:|---:|---:|---:|");
    let mut one_time_total = Cost::default();
    for (name, c) in &setup.one_time {
        println!(
            "| {name} | {} | {} | {} | {} |",
            c.executions,
            c.instructions,
            c.calls,
            fmt_cycles(c.cycles())
        );
        one_time_total = one_time_total.plus(c);
    }
    println!(
        "| **total** | {} | {} | {} | **{}** |",
        one_time_total.executions,
        one_time_total.instructions,
        one_time_total.calls,
        fmt_cycles(one_time_total.cycles())
    );

    // Per-MiB content: a 4 MiB upload, divided by 4.
    let upload4 = upload_file(&mut env, setup.owner, setup.vault, 4);
    let per_mib_upload = upload4.cycles() / 4;

    // Repeated operations.
    env.advance(Duration::from_secs(60));
    let (r, check_in): (R<VaultView>, _) = ingress(&mut env, owner, "check_in", (setup.vault,));
    r.expect("check_in");
    let tsk = livault_local::vetkeys_client::transport_key("bench");
    env.advance(Duration::from_secs(60));
    let (r, derive): (R<EncryptedVetKeyReply>, _) = ingress(
        &mut env,
        owner,
        "derive_vetkey",
        (DeriveVetKeyArgs {
            vault_id: setup.vault,
            share_index: 0,
            transport_public_key: ByteBuf::from(tsk.public_key()),
        },),
    );
    r.expect("derive_vetkey");

    // A year of the vaults' scheduler work: every owner checks in weekly (their own cost is
    // counted apart); the due items the vaults cause run in `scheduler_run_batch` messages
    // (each a self-call: its execution, its reply callback, the call). Divided by the vaults.
    let owners: Vec<(Principal, VaultId)> = std::iter::once(owner)
        .chain((0..N).map(|i| user(&format!("owner-{i}"))))
        .map(|o| {
            let page: R<Page<VaultSummary>> =
                env.query(o, "list_my_vaults", (PageArgs::default(),));
            (o, page.expect("list_my_vaults").items[0].id)
        })
        .collect();
    let mut methods: std::collections::BTreeMap<String, (u128, u128)> = Default::default();
    let mut batches = Cost::default();
    for day in 0..365u64 {
        env.advance(Duration::from_nanos(1));
        let t0 = env.now();
        if day % 7 == 0 {
            for (o, v) in &owners {
                let r: R<VaultView> = env.update(*o, "check_in", (*v,));
                r.expect("check_in");
            }
        }
        env.advance_days(1);
        for e in env.host.executions().filter(|e| e.time_ns >= t0) {
            let m = methods
                .entry(format!("{:?} {}", e.kind, e.method))
                .or_default();
            m.0 += 1;
            m.1 += u128::from(e.instructions);
            if e.method == "scheduler_run_batch" {
                batches.executions += 2;
                batches.calls += 1;
                batches.instructions += u128::from(e.instructions);
            }
        }
    }
    println!();
    println!(
        "a year of daily ticks with {} vaults, executions by kind and method:",
        owners.len()
    );
    for (m, (n, i)) in &methods {
        println!("  {m}: {n} executions, {i} instructions");
    }
    let vaults = owners.len() as u128;
    let ticks_of_vault = Cost {
        executions: batches.executions.div_ceil(vaults),
        instructions: batches.instructions / vaults,
        calls: batches.calls.div_ceil(vaults),
        ..Cost::default()
    };

    println!();
    println!("| repeated operation | executions | instructions | calls | cycles |");
    println!("|---|---:|---:|---:|---:|");
    for (name, c) in [
        ("check_in", check_in),
        ("derive_vetkey (owner, key_1)", derive),
        ("upload, per MiB (1 MiB chunks)", upload4.times(1)),
        ("the vault's scheduler work, one year", ticks_of_vault),
    ] {
        let cycles = if name.starts_with("upload") {
            per_mib_upload
        } else {
            c.cycles()
        };
        let (e, i, k) = if name.starts_with("upload") {
            (c.executions / 4, c.instructions / 4, c.calls / 4)
        } else {
            (c.executions, c.instructions, c.calls)
        };
        println!("| {name} | {e} | {i} | {k} | {} |", fmt_cycles(cycles));
    }
    println!(
        "metadata of one vault (record, members, invites, session, billing, audit, indexes; \
         average of {N}): {metadata_bytes} stable bytes -> {} a year",
        fmt_cycles(u128::from(metadata_bytes) * fee::GIB_SECOND * SECONDS_PER_YEAR / GIB)
    );

    // 3. Per plan: a vault-year and the paid period (validity, default 3 650 days).
    let plans: PlansInfo = env.query(owner, "get_plans", ());
    let years: u128 = 10;
    let year_ops = check_in
        .times(52)
        .plus(&derive.times(12))
        .plus(&ticks_of_vault);
    println!();
    println!(
        "A vault-year: storage of the full quota and the metadata, 52 check-ins, 12 owner key \
         derivations, its scheduler work; one-time: the operations above and uploading the full \
         quota. Plan price: all heir slots and the witness, owner aged 30 (no uplift). \
         Break-even: the ICP price (in XDR) at which the plan pays its {years}-year cost."
    );
    println!(
        "| plan | storage / year | operations / year | one-time | {years} years | price | break-even |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for t in &plans.tiers {
        let quota = u128::from(t.storage_bytes);
        let storage_year =
            (quota + u128::from(metadata_bytes)) * fee::GIB_SECOND * SECONDS_PER_YEAR / GIB;
        let one_time = one_time_total.cycles() + per_mib_upload * quota.div_ceil(MIB as u128);
        let total = years * (storage_year + year_ops.cycles()) + one_time;
        let price_e8s = u128::from(t.storage_price_e8s)
            + u128::from(t.max_heirs) * u128::from(plans.heir_slot_fee_e8s)
            + u128::from(plans.witness_fee_e8s);
        let price_icp = price_e8s as f64 / 1e8;
        let xdr = total as f64 / CYCLES_PER_XDR;
        println!(
            "| {:?} ({} MiB) | {} | {} | {} | {} ({:.3} XDR) | {:.1} ICP | {:.4} XDR/ICP |",
            t.tier,
            quota / MIB as u128,
            fmt_cycles(storage_year),
            fmt_cycles(year_ops.cycles()),
            fmt_cycles(one_time),
            fmt_cycles(total),
            xdr,
            price_icp,
            xdr / price_icp
        );
    }
    println!(
        "fixed, whole canister: the 60 s maintenance timer, {} a year ({:.3} XDR)",
        fmt_cycles(fixed_year),
        fixed_year as f64 / CYCLES_PER_XDR
    );
}
