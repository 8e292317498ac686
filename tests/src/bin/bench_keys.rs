//! vetKeys benchmark (BENCHMARKS.md, "Key release"): instructions of `derive_vetkey` in the
//! canister (its own executions: the call before the management call and the callback after
//! it; the management canister's work is the subnet's, not the canister's), of the
//! `get_vetkd_public_key` query, the cycles charged per derivation, and the embedded host's
//! wall time to derive one encrypted vetKey.
//!
//! `cargo run -p livault_tests --bin bench_keys` (after `scripts/build.sh`; the dev profile
//! builds ic_bls12_381 at opt-level 2, see Cargo.toml)

use std::time::Instant;

use candid::Principal;
use livault_backend::domain::keys::{DeriveVetKeyArgs, EncryptedVetKeyReply};
use livault_backend::model::keys::VetKdPublicKey;
use livault_backend::model::records::MemberRole;
use livault_tests::*;
use serde_bytes::ByteBuf;

type R<T> = Result<T, VaultError>;

const RUNS: usize = 10;

fn stats(name: &str, mut v: Vec<u64>) {
    v.sort_unstable();
    let mean = v.iter().sum::<u64>() / v.len() as u64;
    println!(
        "{name:<58} min {:>10}  median {:>10}  max {:>10}  mean {:>10}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1],
        mean
    );
}

fn main() {
    let mut env = TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(livault_backend::model::config::Durations {
            timer_interval_secs: 86_400,
            ..Default::default()
        }),
        vetkd: Some(livault_backend::model::config::VetKdConfig {
            owner_derivations_per_day: 1000,
            heir_derivations_per_day: 1000,
            vault_derivations_per_window: 100_000,
            ..Default::default()
        }),
        ..Default::default()
    });
    let (alice, bob) = (user("alice"), user("bob"));
    let v = env.create_vault(alice, "bench").id;
    env.pay_creation(alice, v);
    let now = env.now();
    env.update::<_, R<VaultView>>(
        alice,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: Some(now + 2 * DAY_NS),
                inactivity_days: None,
                request_wait_days: 7,
                required_heirs: 0,
                required_witness: false,
            }),
            post_unlock_days: Some(30),
            audit_retention_days: None,
        },),
    )
    .unwrap();
    env.join(alice, v, MemberRole::Heir, bob);
    env.upload_letter(alice, v, b"sealed", None);
    env.update::<_, R<VaultView>>(alice, "finalize_setup", (v,))
        .unwrap();
    env.advance_days(3);
    let tsk = livault_local::vetkeys_client::transport_key("bench");
    let arg = |share: u8| {
        candid::encode_one(DeriveVetKeyArgs {
            vault_id: v,
            share_index: share,
            transport_public_key: ByteBuf::from(tsk.public_key()),
        })
        .unwrap()
    };

    println!("vetKeys benchmark: key_1 on the embedded host, {RUNS} runs each");
    for (who, share, label) in [(alice, 0u8, "owner"), (bob, 1u8, "heir")] {
        let mut first = Vec::new();
        let mut total = Vec::new();
        let mut cycles = Vec::new();
        let mut wall = Vec::new();
        for _ in 0..RUNS {
            env.advance(std::time::Duration::from_secs(2));
            let before = env.host.cycle_balance();
            let started = Instant::now();
            let reply = env.host.update(who, "derive_vetkey", arg(share)).unwrap();
            wall.push(started.elapsed().as_micros() as u64);
            let r: R<EncryptedVetKeyReply> = candid::decode_one(&reply.bytes).unwrap();
            r.expect("derivation allowed");
            first.push(reply.instructions);
            total.push(reply.total_instructions);
            cycles.push((before - env.host.cycle_balance()) as u64);
        }
        stats(
            &format!("derive_vetkey ({label}): first execution, instructions"),
            first.clone(),
        );
        stats(
            &format!("derive_vetkey ({label}): callback, instructions"),
            total.iter().zip(&first).map(|(t, f)| t - f).collect(),
        );
        stats(
            &format!("derive_vetkey ({label}): canister total, instructions"),
            total,
        );
        stats(&format!("derive_vetkey ({label}): cycles charged"), cycles);
        stats(
            &format!("derive_vetkey ({label}): host wall time of the call, us"),
            wall,
        );
    }
    let mut q = Vec::new();
    for _ in 0..RUNS {
        let reply = env
            .host
            .query(
                Principal::anonymous(),
                "get_vetkd_public_key",
                candid::encode_args(()).unwrap(),
            )
            .unwrap();
        let r: R<VetKdPublicKey> = candid::decode_one(&reply.bytes).unwrap();
        r.expect("cached");
        q.push(reply.instructions);
    }
    stats("get_vetkd_public_key (query), instructions", q);

    // The host's emulation alone: one encrypted vetKey.
    let canister = env.canister;
    let mut times = Vec::new();
    for i in 0..RUNS * 5 {
        let seed = [i as u8; 64];
        let started = Instant::now();
        local_replica::vetkd::derive_encrypted_key(
            "key_1",
            &canister,
            livault_backend::domain::keys::CONTEXT,
            &livault_backend::domain::keys::identity(v, 1),
            &tsk.public_key(),
            &seed,
        )
        .unwrap();
        times.push(started.elapsed().as_micros() as u64);
    }
    stats("host: vetkd_derive_key emulation alone, us", times);
}
