//! Named identities: principals derived deterministically from the name
//! (self-authenticating form of `sha256(name)`), persisted in `identities.json`.

use super::{Args, Context};
use anyhow::{bail, Context as _, Result};
use candid::Principal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The built-in identity that calls as the anonymous principal `2vxsx-fae` (like dfx's).
pub const ANONYMOUS: &str = "anonymous";

/// The principal of identity `name` ([`ANONYMOUS`] is the anonymous principal).
pub fn principal_of(name: &str) -> Principal {
    if name == ANONYMOUS {
        return Principal::anonymous();
    }
    Principal::self_authenticating(Sha256::digest(name.as_bytes()))
}

/// Known identities and the current one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identities {
    /// Current identity name.
    pub current: String,
    /// All names.
    pub names: Vec<String>,
}

impl Default for Identities {
    fn default() -> Self {
        Identities {
            current: "default".into(),
            names: vec!["default".into()],
        }
    }
}

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        bail!("invalid identity name {name:?} (use letters, digits, '-', '_', '.')");
    }
    Ok(())
}

impl Identities {
    /// Loads `identities.json` from the state directory (default if missing).
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join("identities.json");
        if !p.is_file() {
            return Ok(Self::default());
        }
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
    }

    /// Saves to the state directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let p = dir.join("identities.json");
        std::fs::write(&p, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", p.display()))
    }

    /// Resolves `--as NAME` (or the current identity). Unknown names are an error;
    /// [`ANONYMOUS`] always exists.
    pub fn resolve(&self, name: Option<&str>) -> Result<(String, Principal)> {
        let name = name.unwrap_or(&self.current);
        if name != ANONYMOUS && !self.names.iter().any(|n| n == name) {
            bail!("unknown identity '{name}' (create it with `identity new {name}`)");
        }
        Ok((name.to_string(), principal_of(name)))
    }

    /// Adds an identity (idempotent).
    pub fn add(&mut self, name: &str) -> Result<Principal> {
        valid_name(name)?;
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
        }
        Ok(principal_of(name))
    }
}

/// `identity new|list|use|whoami`.
pub fn run(ctx: &mut Context, mut args: Args) -> Result<()> {
    let sub = args.next_positional().unwrap_or_else(|| "whoami".into());
    match sub.as_str() {
        "new" => {
            let Some(name) = args.next_positional() else {
                bail!("usage: identity new NAME");
            };
            args.finish()?;
            let p = ctx.identities.add(&name)?;
            println!("{name} {p}");
        }
        "list" => {
            args.finish()?;
            for n in &ctx.identities.names {
                let mark = if *n == ctx.identities.current {
                    "*"
                } else {
                    " "
                };
                println!("{mark} {n} {}", principal_of(n));
            }
        }
        "use" => {
            let Some(name) = args.next_positional() else {
                bail!("usage: identity use NAME");
            };
            args.finish()?;
            ctx.identities.resolve(Some(&name))?;
            ctx.identities.current = name;
        }
        "whoami" => {
            args.finish()?;
            let (name, p) = ctx.identities.resolve(None)?;
            println!("{name} {p}");
        }
        other => bail!("unknown identity subcommand '{other}' (new, list, use, whoami)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_is_built_in_and_named_identities_must_exist() {
        let ids = Identities::default();
        let (name, p) = ids.resolve(Some(ANONYMOUS)).unwrap();
        assert_eq!((name.as_str(), p), (ANONYMOUS, Principal::anonymous()));
        assert_eq!(p.to_text(), "2vxsx-fae");
        assert!(ids.resolve(Some("alice")).is_err());
        let mut ids = ids;
        let alice = ids.add("alice").unwrap();
        assert_eq!(ids.resolve(Some("alice")).unwrap().1, alice);
        assert_ne!(alice, Principal::anonymous());
        assert_eq!(ids.add(ANONYMOUS).unwrap(), Principal::anonymous());
    }
}
