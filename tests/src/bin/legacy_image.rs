//! Writes the fixture of `tests/e2e/legacy_image.rs`: a stable-memory image of the module
//! with 8 MiB `MemoryManager` buckets and what its API answered (see
//! `livault_tests::legacy_image` for what it holds and how to build the old module).
//!
//!     LIVAULT_OLD_WASM=<old module> cargo run -p livault_tests --bin legacy_image

use livault_tests::legacy_image::*;
use livault_tests::stable_usage::buckets;
use livault_tests::TestEnv;

fn main() {
    let path = std::env::var_os("LIVAULT_OLD_WASM")
        .expect("set LIVAULT_OLD_WASM to the module built from commit 3109b55");
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
    assert_eq!(bucket_pages, 128, "not an 8 MiB-bucket layout");
    let image = encode_image(&stable);
    assert_eq!(decode_image(&image), stable);
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).expect("fixture dir");
    std::fs::write(dir.join("stable.img"), &image).expect("write stable.img");
    std::fs::write(dir.join("probes.txt"), encode_probes(at, &probes)).expect("write probes");
    println!(
        "stable memory {} MiB ({count} buckets of 8 MiB), image {} KiB, {} probes, at {at}",
        stable.len() >> 20,
        image.len() >> 10,
        probes.len()
    );
}
