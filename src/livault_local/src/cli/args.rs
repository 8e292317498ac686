//! A tiny argument parser: `--flag value`, `--flag=value`, `--switch`, positionals.

use anyhow::{bail, Result};

/// Remaining command-line arguments.
#[derive(Debug, Clone)]
pub struct Args {
    items: Vec<String>,
}

impl Args {
    /// Wraps the arguments.
    pub fn new(items: Vec<String>) -> Self {
        Args { items }
    }

    /// Removes `--name VALUE` / `--name=VALUE` and returns the value.
    pub fn flag(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        let mut i = 0;
        while i < self.items.len() {
            if self.items[i] == "--" {
                break;
            }
            if self.items[i] == name {
                if i + 1 >= self.items.len() {
                    bail!("{name} needs a value");
                }
                let v = self.items.remove(i + 1);
                self.items.remove(i);
                return Ok(Some(v));
            }
            if let Some(v) = self.items[i].strip_prefix(&prefix) {
                let v = v.to_string();
                self.items.remove(i);
                return Ok(Some(v));
            }
            i += 1;
        }
        Ok(None)
    }

    /// Removes a required flag.
    pub fn required(&mut self, name: &str) -> Result<String> {
        match self.flag(name)? {
            Some(v) => Ok(v),
            None => bail!("missing required {name}"),
        }
    }

    /// Removes `--name` and reports whether it was present.
    pub fn switch(&mut self, name: &str) -> bool {
        match self.items.iter().position(|a| a == name) {
            Some(i) => {
                self.items.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes and returns the next positional argument.
    pub fn next_positional(&mut self) -> Option<String> {
        let i = self
            .items
            .iter()
            .position(|a| !a.starts_with("--") || a == "--")?;
        let v = self.items.remove(i);
        if v == "--" {
            return self.next_positional();
        }
        Some(v)
    }

    /// Fails if anything is left over.
    pub fn finish(self) -> Result<()> {
        if !self.items.is_empty() {
            bail!("unexpected arguments: {}", self.items.join(" "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_positionals() {
        let mut a = Args::new(
            [
                "call",
                "--as",
                "alice",
                "--query",
                "get",
                "(1)",
                "--state=x",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        );
        assert_eq!(a.flag("--state").unwrap().as_deref(), Some("x"));
        assert_eq!(a.flag("--as").unwrap().as_deref(), Some("alice"));
        assert!(a.switch("--query"));
        assert_eq!(a.next_positional().as_deref(), Some("call"));
        assert_eq!(a.next_positional().as_deref(), Some("get"));
        assert_eq!(a.next_positional().as_deref(), Some("(1)"));
        assert!(a.finish().is_ok());
        assert!(Args::new(vec!["--as".into()]).flag("--as").is_err());
    }
}
