//! The `livault-local` command line: a dfx-like local runner whose state persists in a
//! directory between invocations (default `.livault-local/`, flag `--state DIR`).
//!
//! Each subcommand lives in its own module with a `run(&mut Context, Args)` function;
//! adding one means adding a module and a line in [`dispatch`].

pub mod args;
pub mod candid_util;
pub mod canister;
pub mod content;
pub mod demo;
pub mod identity;
pub mod ledger;
pub mod time;

use anyhow::{anyhow, Context as _, Result};
pub use args::Args;
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use local_replica::host::{Host, HostConfig};
use local_replica::{CallError, CallKind, Typed};
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// Usage text.
pub const USAGE: &str = "\
livault-local — run the LiVault canister locally with IC semantics

USAGE: livault-local [--state DIR] [--quiet] <command> ...

COMMANDS:
  install --wasm PATH [--candid PATH] [--argument '(candid)'] [--mode install|reinstall|upgrade] [--as NAME]
  upgrade --wasm PATH [--candid PATH] [--argument '(candid)']
  call [--as NAME] [--query|--update] [--candid PATH] METHOD ['(candid args)']
       [--argument-file PATH|-]       the argument from a file (- = standard input)
       [--type idl|raw]               raw: the argument is hex-encoded Candid bytes, sent as is
       [--output idl|raw]             raw: print the reply's Candid bytes in hex
  status
  logs [--tail N]                       the canister log (debug_print of replicated executions),
                                        like `dfx canister logs`
  upload [--as NAME] --vault ID FILE [--kind file|letter|password] [--to ID,ID] [--meta TEXT]
                                        chunked upload with a progress bar (the file is sent as is)
  download [--as NAME] --vault ID --item ID [--out FILE]
                                        chunked download, size and SHA-256 checked
  sha256 FILE                           SHA-256 of a file (hex)
  ledger balance (ACCOUNT_ID_HEX | --of NAME)
  ledger transfer --as NAME --to ACCOUNT_ID_HEX --amount E8S
  ledger fund NAME E8S
  ledger account-id NAME
  time now | time advance DURATION      (e.g. 30s, 15m, 2h, 3d)
  identity new NAME | identity list | identity use NAME | identity whoami
                                        (identity anonymous is built in: principal 2vxsx-fae)
  demo [--wasm PATH]                    narrated journey on the real wasm, every step checked
                                        (needs a fresh --state; default wasm target/livault/livault_backend.wasm)

The state (heap, stable memory, ledger, clock, identities) is kept in --state
(default .livault-local/). Candid arguments use the same syntax as `dfx canister call`;
the interface defaults to candid/livault_backend.did.";

/// Shared state of one invocation.
pub struct Context {
    /// State directory.
    pub state_dir: PathBuf,
    /// The host (loaded from the state directory or new).
    pub host: Host,
    /// Identities.
    pub identities: identity::Identities,
    /// Suppress informational output on stderr.
    pub quiet: bool,
}

impl Context {
    /// Loads the state directory (or starts fresh).
    pub fn open(state_dir: PathBuf, quiet: bool) -> Result<Self> {
        let host = if Host::exists(&state_dir) {
            Host::load(&state_dir)
                .with_context(|| format!("loading state from {}", state_dir.display()))?
        } else {
            Host::new(HostConfig::default())
        };
        let identities = identity::Identities::load(&state_dir)?;
        Ok(Context {
            state_dir,
            host,
            identities,
            quiet,
        })
    }

    /// Saves host and identities.
    pub fn save(&self) -> Result<()> {
        self.host
            .save(&self.state_dir)
            .with_context(|| format!("saving state to {}", self.state_dir.display()))?;
        self.identities.save(&self.state_dir)
    }

    /// Informational message on stderr (unless `--quiet`).
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }
}

/// A typed call through the host's typed call API, its errors as `anyhow` errors naming the
/// method (a reject with its code and message, a reply that does not decode).
pub fn call_typed<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
    host: &mut Host,
    kind: CallKind,
    who: Principal,
    method: &str,
    args: A,
) -> Result<Typed<R>> {
    host.call_typed(kind, who, method, args)
        .map_err(|e| match e {
            CallError::Reject(r) => anyhow!("{method} was rejected: {:?}: {}", r.code, r.message),
            other => anyhow!("{other}"),
        })
}

/// Entry point: parses `argv` (without the program name) and runs the command.
pub fn run(argv: Vec<String>) -> Result<()> {
    let mut args = Args::new(argv);
    if args.switch("--help") || args.switch("-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let state = args
        .flag("--state")?
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".livault-local"));
    let quiet = args.switch("--quiet");
    let Some(cmd) = args.next_positional() else {
        println!("{USAGE}");
        return Ok(());
    };
    let mut ctx = Context::open(state, quiet)?;
    dispatch(&mut ctx, &cmd, args)?;
    ctx.save()
}

/// Routes a command to its module.
pub fn dispatch(ctx: &mut Context, cmd: &str, args: Args) -> Result<()> {
    match cmd {
        "install" => canister::install(ctx, args),
        "upgrade" => canister::upgrade(ctx, args),
        "call" => canister::call(ctx, args),
        "status" => canister::status(ctx, args),
        "logs" => canister::logs(ctx, args),
        "upload" => content::upload(ctx, args),
        "download" => content::download(ctx, args),
        "sha256" => content::sha256(ctx, args),
        "ledger" => ledger::run(ctx, args),
        "time" => time::run(ctx, args),
        "identity" => identity::run(ctx, args),
        "demo" => demo::run(ctx, args),
        other => anyhow::bail!("unknown command '{other}'\n\n{USAGE}"),
    }
}
