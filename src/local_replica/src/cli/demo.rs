//! `demo`: placeholder for the guided demo (filled in by the canister's authors).

use super::{Args, Context};
use anyhow::Result;

/// Prints a placeholder message.
pub fn run(ctx: &mut Context, args: Args) -> Result<()> {
    args.finish()?;
    ctx.info("demo: not implemented yet");
    Ok(())
}
