//! Writes the fixture of `tests/e2e/legacy_image.rs`: a stable-memory image of the module
//! with 8 MiB `MemoryManager` buckets and what its API answered (see
//! `livault_tests::legacy_image` for what it holds and how to build the old module).
//! With `LIVAULT_FIXTURE=layout_7`, the fixture of `tests/e2e/layout_7_image.rs` instead:
//! the same scenario on the layout-7 module (1 MiB buckets).
//!
//!     LIVAULT_OLD_WASM=<old module> [LIVAULT_FIXTURE=layout_7] \
//!         cargo run -p livault_tests --bin legacy_image

use livault_tests::legacy_image::*;
use livault_tests::stable_usage::buckets;
use livault_tests::TestEnv;

fn main() {
    let layout_7 = std::env::var("LIVAULT_FIXTURE").as_deref() == Ok("layout_7");
    let (commit, dir, want_pages) = if layout_7 {
        ("e38b102", fixture_dir_of(LAYOUT_7_FIXTURE_DIR), 16)
    } else {
        ("3109b55", fixture_dir(), 128)
    };
    let path = std::env::var_os("LIVAULT_OLD_WASM")
        .unwrap_or_else(|| panic!("set LIVAULT_OLD_WASM to the module built from commit {commit}"));
    let old = std::fs::read(&path).expect("read LIVAULT_OLD_WASM");
    let cast = Cast::new();
    let mut env = TestEnv::with_wasm(&old, init_args());
    let world = populate(&mut env, &cast);
    let mut probes = probes(&cast, &world);
    let time = env.now() + 1_000_000;
    env.host.set_time(time);
    let at = env.now();
    ask(&mut env.host, &mut probes);
    // The old pre_upgrade runs, nothing else: what a new module's post_upgrade finds.
    env.host
        .upgrade(&empty_module(), Vec::new())
        .expect("upgrade to the empty module");
    let stable = env.host.stable_memory().expect("installed").to_vec();
    let (bucket_pages, count) = buckets(&stable).expect("a memory manager");
    assert_eq!(bucket_pages, want_pages, "not the fixture's bucket size");
    let image = encode_image(&stable);
    assert_eq!(decode_image(&image), stable);
    std::fs::create_dir_all(&dir).expect("fixture dir");
    std::fs::write(dir.join("stable.img"), &image).expect("write stable.img");
    std::fs::write(dir.join("probes.txt"), encode_probes(at, &probes)).expect("write probes");
    println!(
        "stable memory {} MiB ({count} buckets of {want_pages} pages), image {} KiB, {} probes, at {at}",
        stable.len() >> 20,
        image.len() >> 10,
        probes.len()
    );
}
