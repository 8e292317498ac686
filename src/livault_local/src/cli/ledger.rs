//! `ledger balance|transfer|fund|account-id` against the host's ICP ledger model.

use super::{identity, Args, Context};
use anyhow::{anyhow, bail, Result};
use local_replica::AccountId;

fn format_icp(e8s: u64) -> String {
    format!("{}.{:08} ICP", e8s / 100_000_000, e8s % 100_000_000)
}

fn parse_e8s(s: &str) -> Result<u64> {
    s.replace('_', "")
        .parse()
        .map_err(|_| anyhow!("invalid amount {s:?} (an integer number of e8s)"))
}

/// `ledger ...`.
pub fn run(ctx: &mut Context, mut args: Args) -> Result<()> {
    let sub = args
        .next_positional()
        .ok_or_else(|| anyhow!("usage: ledger balance|transfer|fund|account-id ..."))?;
    match sub.as_str() {
        "balance" => {
            let account = match args.flag("--of")? {
                Some(name) => {
                    let (_, p) = ctx.identities.resolve(Some(&name))?;
                    AccountId::new(&p, None)
                }
                None => {
                    let Some(hex) = args.next_positional() else {
                        bail!("usage: ledger balance ACCOUNT_ID_HEX | --of NAME");
                    };
                    AccountId::from_hex(&hex)?
                }
            };
            args.finish()?;
            let b = ctx.host.ledger().balance(&account);
            println!("{} ({b} e8s)", format_icp(b));
        }
        "transfer" => {
            let name = args.required("--as")?;
            let to = AccountId::from_hex(&args.required("--to")?)?;
            let amount = parse_e8s(&args.required("--amount")?)?;
            args.finish()?;
            let (_, from) = ctx.identities.resolve(Some(&name))?;
            match ctx.host.ledger_transfer_as(&from, to, amount) {
                Ok(block) => println!("Transfer sent at block height {block}"),
                Err(e) => bail!("transfer failed: {e:?}"),
            }
        }
        "fund" => {
            let (Some(name), Some(amount)) = (args.next_positional(), args.next_positional())
            else {
                bail!("usage: ledger fund NAME E8S");
            };
            args.finish()?;
            let (_, p) = ctx.identities.resolve(Some(&name))?;
            let account = AccountId::new(&p, None);
            let block = ctx.host.fund(account, parse_e8s(&amount)?);
            println!(
                "Minted {} to {name} ({account}) at block {block}",
                format_icp(parse_e8s(&amount)?)
            );
        }
        "account-id" => {
            let Some(name) = args.next_positional() else {
                bail!("usage: ledger account-id NAME");
            };
            args.finish()?;
            let (_, p) = ctx.identities.resolve(Some(&name))?;
            println!("{}", AccountId::new(&p, None));
        }
        other => bail!("unknown ledger subcommand '{other}'"),
    }
    Ok(())
}

/// Account identifier of identity `name`'s default account.
pub fn account_of(name: &str) -> AccountId {
    AccountId::new(&identity::principal_of(name), None)
}
