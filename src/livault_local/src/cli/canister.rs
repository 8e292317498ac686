//! `install`, `upgrade`, `call` and `status`.

use super::candid_util::{self, Interface, DEFAULT_DID};
use super::time::format_time;
use super::{Args, Context};
use anyhow::{anyhow, bail, Context as _, Result};
use std::path::PathBuf;

fn read_wasm(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading wasm {path}"))
}

fn interface(args: &mut Args) -> Result<(PathBuf, bool)> {
    Ok(match args.flag("--candid")? {
        Some(p) => (PathBuf::from(p), true),
        None => (PathBuf::from(DEFAULT_DID), false),
    })
}

/// Encodes the init/upgrade argument: typed with the interface if available.
fn init_arg(args: &mut Args) -> Result<Vec<u8>> {
    let (did, explicit) = interface(args)?;
    let text = args.flag("--argument")?.unwrap_or_else(|| "()".into());
    if did.is_file() {
        let iface = Interface::load(&did)?;
        iface.encode(&text, &iface.init_args())
    } else if explicit {
        bail!("Candid file {} not found", did.display())
    } else {
        candid_util::encode_untyped(&text)
    }
}

/// `install --wasm PATH [--candid PATH] [--argument TEXT] [--mode install|reinstall|upgrade]`.
pub fn install(ctx: &mut Context, mut args: Args) -> Result<()> {
    let wasm = read_wasm(&args.required("--wasm")?)?;
    let mode = args.flag("--mode")?.unwrap_or_else(|| "install".into());
    let as_name = args.flag("--as")?;
    let arg = init_arg(&mut args)?;
    args.finish()?;
    let (name, controller) = ctx.identities.resolve(as_name.as_deref())?;
    let id = match mode.as_str() {
        "install" => ctx.host.install(&wasm, arg, controller)?,
        "reinstall" => ctx.host.reinstall(&wasm, arg, controller)?,
        "upgrade" => {
            ctx.host.upgrade(&wasm, arg)?;
            ctx.host.canister_id()
        }
        other => bail!("unknown --mode '{other}' (install, reinstall, upgrade)"),
    };
    report_last(ctx);
    ctx.info(format!(
        "Installed code for canister {id} (mode {mode}, controller {name})"
    ));
    println!("{id}");
    Ok(())
}

/// `upgrade --wasm PATH [--argument TEXT]`.
pub fn upgrade(ctx: &mut Context, mut args: Args) -> Result<()> {
    let wasm = read_wasm(&args.required("--wasm")?)?;
    let arg = init_arg(&mut args)?;
    args.finish()?;
    ctx.host.upgrade(&wasm, arg)?;
    report_last(ctx);
    ctx.info(format!("Upgraded canister {}", ctx.host.canister_id()));
    Ok(())
}

fn report_last(ctx: &Context) {
    if let Some(r) = ctx.host.executions().last() {
        ctx.info(format!("{}: {} instructions", r.method, r.instructions));
    }
}

/// `call [--as NAME] [--query|--update] [--candid PATH] [--type idl|raw]
/// [--argument-file PATH|-] [--output idl|raw] METHOD [ARGS]`, printing the reply.
pub fn call(ctx: &mut Context, args: Args) -> Result<()> {
    let out = call_output(ctx, args)?;
    println!("{out}");
    Ok(())
}

/// How `call` takes its argument and shows its reply (dfx's `--type` / `--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Candid text, typed by the interface (`idl`, the default).
    Idl,
    /// Hex-encoded Candid bytes (`raw`): what a client encoded itself, e.g. with the IDL of
    /// the TypeScript bindings, goes to the canister unchanged, and the reply comes back as
    /// the canister's bytes.
    Raw,
}

fn format_flag(args: &mut Args, name: &str) -> Result<Format> {
    match args.flag(name)?.as_deref() {
        None | Some("idl") => Ok(Format::Idl),
        Some("raw") => Ok(Format::Raw),
        Some(other) => bail!("unknown {name} '{other}' (idl, raw)"),
    }
}

/// [`call`]'s work: makes the call and returns what `call` prints (Candid text, or the
/// reply's bytes in hex with `--output raw`). A reject is an error.
pub fn call_output(ctx: &mut Context, mut args: Args) -> Result<String> {
    let as_name = args.flag("--as")?;
    let force_query = args.switch("--query");
    let force_update = args.switch("--update");
    let (did, explicit) = interface(&mut args)?;
    let arg_type = format_flag(&mut args, "--type")?;
    let output = format_flag(&mut args, "--output")?;
    let arg_file = args.flag("--argument-file")?;
    let method = args.next_positional().ok_or_else(|| {
        anyhow!(
            "usage: call [--as NAME] [--query] [--type idl|raw] [--output idl|raw] METHOD '(args)'"
        )
    })?;
    let text = match arg_file {
        Some(path) => {
            if args.next_positional().is_some() {
                bail!("give the argument either inline or with --argument-file, not both");
            }
            read_argument_file(&path)?
        }
        None => args.next_positional().unwrap_or_else(|| match arg_type {
            Format::Idl => "()".into(),
            Format::Raw => hex::encode(candid::encode_args(()).expect("empty tuple")),
        }),
    };
    args.finish()?;
    let (_, caller) = ctx.identities.resolve(as_name.as_deref())?;
    if !ctx.host.is_installed() {
        bail!("no canister installed (run `install --wasm PATH` first)");
    }
    let iface = if did.is_file() {
        Some(Interface::load(&did)?)
    } else if explicit {
        bail!("Candid file {} not found", did.display())
    } else {
        None
    };
    let method_types = match &iface {
        Some(i) => Some(i.method(&method)?),
        None => None,
    };
    let bytes = match (arg_type, &iface, &method_types) {
        (Format::Raw, _, _) => hex::decode(text.trim())
            .map_err(|e| anyhow!("--type raw takes hex-encoded Candid bytes: {e}"))?,
        (Format::Idl, Some(i), Some((arg_types, _, _))) => i.encode(&text, arg_types)?,
        (Format::Idl, _, _) => candid_util::encode_untyped(&text)?,
    };
    let is_query = method_types.as_ref().is_some_and(|(_, _, q)| *q);
    let query = (force_query || is_query) && !force_update;
    let result = if query {
        ctx.host.query(caller, &method, bytes)
    } else {
        ctx.host.update(caller, &method, bytes)
    };
    match result {
        Ok(reply) => {
            ctx.info(format!(
                "{} {method}: {} instructions ({} in the whole call tree)",
                if query { "query" } else { "update" },
                reply.instructions,
                reply.total_instructions
            ));
            Ok(match (output, &iface, &method_types) {
                (Format::Raw, _, _) => hex::encode(&reply.bytes),
                (Format::Idl, Some(i), Some((_, rets, _))) => i.decode(&reply.bytes, rets)?,
                (Format::Idl, _, _) => candid_util::decode_untyped(&reply.bytes)?,
            })
        }
        Err(reject) => {
            ctx.info(format!("{} instructions", reject.total_instructions));
            // Save state (an update may have changed it before rejecting), then fail.
            ctx.save()?;
            Err(anyhow!(
                "the call was rejected: reject code {} ({:?}): {}",
                reject.code as u32,
                reject.code,
                reject.message
            ))
        }
    }
}

/// The argument text of `--argument-file PATH` (`-`: standard input), as dfx reads it.
fn read_argument_file(path: &str) -> Result<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the argument from standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading the argument file {path}"))
    }
}

/// `logs [--tail N]`: the canister log, one `[idx. time]: line` per line as
/// `dfx canister logs` prints it.
pub fn logs(ctx: &mut Context, mut args: Args) -> Result<()> {
    let tail = match args.flag("--tail")? {
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| anyhow::anyhow!("--tail {n}: {e}"))?,
        None => usize::MAX,
    };
    args.finish()?;
    let lines: Vec<_> = ctx.host.canister_logs().collect();
    for l in &lines[lines.len().saturating_sub(tail)..] {
        println!("[{}. {}]: {}", l.idx, format_time(l.time_ns), l.content);
    }
    Ok(())
}

/// `status`.
pub fn status(ctx: &mut Context, args: Args) -> Result<()> {
    args.finish()?;
    println!(
        "Clock: {} ({} ns)",
        format_time(ctx.host.now()),
        ctx.host.now()
    );
    let Some(s) = ctx.host.status() else {
        println!("Canister: not installed");
        return Ok(());
    };
    println!("Canister: {}", s.id);
    println!("Module hash: 0x{}", s.module_hash);
    println!(
        "Controllers: {}",
        s.controllers
            .iter()
            .map(|p| p.to_text())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("Version: {}", s.version);
    println!(
        "Heap: {} bytes ({:.1} MiB)",
        s.heap_bytes,
        s.heap_bytes as f64 / 1048576.0
    );
    println!(
        "Stable memory: {} bytes ({:.1} MiB)",
        s.stable_memory_bytes,
        s.stable_memory_bytes as f64 / 1048576.0
    );
    println!("Cycles: {}", s.cycles);
    if s.global_timer_ns == 0 {
        println!("Global timer: not set");
    } else {
        println!("Global timer: {}", format_time(s.global_timer_ns));
    }
    println!("Last executions (instructions):");
    let recs: Vec<_> = ctx.host.executions().collect();
    for r in recs.iter().rev().take(10).rev() {
        println!(
            "  {:>14} {:<14} {}{}",
            r.instructions,
            format!("{:?}", r.kind),
            r.method,
            r.trap
                .as_ref()
                .map(|t| format!("  TRAPPED: {t}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
