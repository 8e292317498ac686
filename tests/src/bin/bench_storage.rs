//! Storage micro-benchmark on the compiled wasm: instructions per operation of the
//! `StableBTreeMap`s of storage layout 2 and the structures of layout 3 that replaced them
//! (`bench_storage_ops` of the `bench-seed` wasm; see BENCHMARKS.md, "Storage layout 3").
//!
//!     scripts/build.sh --bench-seed && cargo run -p livault_tests --bin bench_storage [N...]
//!
//! For each N (default 1000 and 10000, at most 20000) the endpoint builds both kinds of
//! structure with N records over heap memory inside one message and averages 20 operations;
//! the `stable` rows measure the canister's own layout-3 vault table on stable memory.

use livault_tests::*;

type R<T> = Result<T, VaultError>;

fn main() {
    if std::env::var_os("LIVAULT_WASM").is_none() {
        std::env::set_var(
            "LIVAULT_WASM",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/livault-bench/livault_backend.wasm"
            ),
        );
    }
    let mut sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("record count"))
        .collect();
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000];
    }
    let mut env = TestEnv::new();
    let controller = env.controller;
    let seeded: R<u32> = env.update(controller, "bench_seed_drafts", (0u64, 1_000u32));
    seeded.expect("bench_seed_drafts (build with scripts/build.sh --bench-seed)");
    let mut rows: Vec<(String, Vec<u64>)> = Vec::new();
    for n in &sizes {
        let r: R<Vec<(String, u64)>> = env.update(controller, "bench_storage_ops", (*n,));
        for (i, (name, value)) in r.expect("bench_storage_ops").into_iter().enumerate() {
            if rows.len() <= i {
                rows.push((name, Vec::new()));
            }
            rows[i].1.push(value);
        }
    }
    println!("instructions per operation (average of 20), by records in the structure");
    println!("(btree / dense rows: heap VectorMemory; stable rows: the canister's stable memory)");
    for (name, values) in rows {
        let cells: Vec<String> = values.iter().map(|v| format!("{v:>12}")).collect();
        println!("{name:<42}{}", cells.join(""));
    }
}
