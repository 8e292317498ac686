//! `livault-local`: a dfx-like local runner for the LiVault canister (see
//! `livault_local::cli`).

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = livault_local::cli::run(argv) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
