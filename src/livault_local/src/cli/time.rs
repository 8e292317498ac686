//! `time now` and `time advance DURATION` on the host clock (timers fire as it passes).

use super::{Args, Context};
use anyhow::{bail, Result};
use std::time::Duration;

/// Parses `30s`, `15m`, `2h`, `3d` (integer, one unit) or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        Some(_) => (s, 1),
        None => bail!("empty duration"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?} (examples: 30s, 15m, 2h, 3d)"))?;
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| anyhow::anyhow!("duration {s:?} is too large"))
}

/// Formats ns since the epoch as an RFC 3339 UTC timestamp.
pub fn format_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `time now|advance`.
pub fn run(ctx: &mut Context, mut args: Args) -> Result<()> {
    let sub = args.next_positional().unwrap_or_else(|| "now".into());
    match sub.as_str() {
        "now" => {
            args.finish()?;
        }
        "advance" => {
            let Some(d) = args.next_positional() else {
                bail!("usage: time advance DURATION (e.g. 3d)");
            };
            args.finish()?;
            let d = parse_duration(&d)?;
            let before = ctx.host.executions().count();
            ctx.host.advance_time(d);
            let fired = ctx
                .host
                .executions()
                .skip(before)
                .filter(|r| r.kind == local_replica::ic0::ExecKind::Timer)
                .count();
            ctx.info(format!("timer executions: {fired}"));
        }
        other => bail!("unknown time subcommand '{other}' (now, advance)"),
    }
    let now = ctx.host.now();
    println!("{} ({now} ns)", format_time(now));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates() {
        assert_eq!(parse_duration("3d").unwrap(), Duration::from_secs(259_200));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("42").unwrap(), Duration::from_secs(42));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            format_time(local_replica::host::DEFAULT_START_TIME_NS),
            "2026-01-01T00:00:00Z"
        );
    }
}
