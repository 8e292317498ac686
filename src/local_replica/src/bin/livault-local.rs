//! `livault-local`: a dfx-like local runner for the LiVault canister (see
//! `local_replica::cli`).

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = local_replica::cli::run(argv) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
