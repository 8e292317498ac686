//! Stable memory of an empty canister and per idle vault, before and after 1 MiB
//! `MemoryManager` buckets (BENCHMARKS.md, "Stable memory per idle vault").
//!
//!     scripts/build.sh && LIVAULT_OLD_WASM=<module of 3109b55> \
//!         cargo run --release -p livault_tests --bin bench_stable_bytes [N...]
//!
//! For each module (the old one only when `LIVAULT_OLD_WASM` is set, then `LIVAULT_WASM` or
//! `target/livault/`) it installs a fresh canister and prints its stable memory, then
//! creates and pays vaults up to each N (default 1, 100, 1000; one owner principal per
//! vault), runs the maintenance tick and advances the clock a day (so the scheduler ran),
//! and prints the stable memory per vault: physical (what the IC charges for: whole
//! buckets) and live (the bytes the structures hold, `livault_tests::stable_usage`), with
//! the live bytes per vault by memory.

use std::collections::BTreeMap;

use livault_tests::stable_usage::{Category, StableUsage};
use livault_tests::*;

fn usage(env: &TestEnv) -> StableUsage {
    StableUsage::read(env.host.stable_memory().expect("installed"))
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

fn run(label: &str, wasm: &[u8], sizes: &[u64]) {
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
    let tick = |env: &mut TestEnv| {
        env.run_maintenance();
        env.advance_days(1);
    };
    tick(&mut env);
    let empty = usage(&env);
    println!("== {label}");
    println!(
        "empty canister: {} bytes of stable memory ({:.1} MiB), {} live",
        empty.physical,
        empty.physical as f64 / 1_048_576.0,
        empty.used()
    );
    println!(
        "  target: an empty canister holds at most 32 MiB: {}",
        verdict(empty.physical <= 32 * 1_048_576)
    );
    let mut made = 0u64;
    for &n in sizes {
        while made < n {
            let owner = user(&format!("idle-owner-{made}"));
            let v = env.create_vault(owner, "Idle").id;
            env.pay_creation(owner, v);
            made += 1;
        }
        tick(&mut env);
        let now = usage(&env);
        let physical = (now.physical - empty.physical) as f64 / n as f64;
        let live = (now.used() as f64 - empty.used() as f64) / n as f64;
        println!(
            "{n:>6} idle vaults: stable memory {} bytes; per vault: physical {physical:.0} B, live {live:.0} B",
            now.physical
        );
        println!(
            "  target: at most 1 024 live bytes per idle vault: {}",
            verdict(live <= 1_024.0)
        );
        let mut rows: BTreeMap<u8, (&str, f64)> = BTreeMap::new();
        for (id, m) in &now.memories {
            let before = empty.memories.get(id).map_or(0, |e| e.used);
            let per = (m.used as f64 - before as f64) / n as f64;
            if per.abs() >= 0.5 {
                rows.insert(*id, (m.name, per));
            }
        }
        for (id, (name, per)) in rows {
            println!("         {id:>3} {name:<28}{per:>8.0} B/vault");
        }
        for c in Category::ALL {
            let per = (now.of(c) as f64 - empty.of(c) as f64) / n as f64;
            if per.abs() >= 0.5 {
                println!("             {:<32}{per:>8.0} B/vault", c.label());
            }
        }
    }
}

fn main() {
    let mut sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("vault count"))
        .collect();
    if sizes.is_empty() {
        sizes = vec![1, 100, 1_000];
    }
    if let Some(old) = std::env::var_os("LIVAULT_OLD_WASM") {
        let old = std::fs::read(old).expect("read LIVAULT_OLD_WASM");
        run("before: 8 MiB buckets (LIVAULT_OLD_WASM)", &old, &sizes);
    }
    run(
        &format!("after: 1 MiB buckets ({})", wasm_path().display()),
        wasm(),
        &sizes,
    );
}
