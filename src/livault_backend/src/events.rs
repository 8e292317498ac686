//! The canister log: one structured line per notable event, so `dfx canister logs` (and
//! `livault-local logs`) tells what happened.
//!
//! Format: `event=<name> key=value key=value…`. Values with spaces, quotes, `=` or nothing in
//! them are quoted (`"…"`, with `\"`, `\\` and `\n` escaped). A line never holds a vault name,
//! content, a token or a user's principal: vaults and sessions appear by id; only operators
//! (admins, controllers) appear by principal, in admin lines. Lines are capped at
//! [`MAX_LINE_BYTES`].
//!
//! On the IC a line goes to `ic0.debug_print` (kept in the canister log for replicated
//! executions, also when they trap; queries are not logged). Natively (unit tests) the lines
//! are kept in memory ([`take_native`]). This is the one output the domain writes besides
//! the state; it is not state: a refused call may log and still changes nothing.

use std::fmt::{Display, Write};

/// Longest line written (longer ones are cut, ending in `…`).
pub const MAX_LINE_BYTES: usize = 1_024;

/// A field value in a log line.
pub enum Val<'a> {
    /// Written as is (numbers, names from code).
    Raw(&'a dyn Display),
    /// Quoted if needed (free text, e.g. an error reason).
    Text(&'a str),
}

/// Formats one line (see the module docs).
pub fn line(event: &str, fields: &[(&str, Val<'_>)]) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("event=");
    out.push_str(event);
    for (key, value) in fields {
        out.push(' ');
        out.push_str(key);
        out.push('=');
        let text = match value {
            Val::Raw(v) => v.to_string(),
            Val::Text(t) => t.to_string(),
        };
        push_value(&mut out, &text);
    }
    truncate(&mut out, MAX_LINE_BYTES);
    out
}

fn push_value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Cuts `s` to at most `max` bytes on a character boundary, ending in `…` when cut.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

/// Writes one event line to the canister log.
pub fn emit(event: &str, fields: &[(&str, Val<'_>)]) {
    write_line(line(event, fields));
}

#[cfg(target_arch = "wasm32")]
fn write_line(line: String) {
    ic_cdk::api::debug_print(line);
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static NATIVE: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most lines kept natively (the oldest go first).
#[cfg(not(target_arch = "wasm32"))]
const MAX_NATIVE_LINES: usize = 10_000;

#[cfg(not(target_arch = "wasm32"))]
fn write_line(line: String) {
    NATIVE.with(|n| {
        let mut n = n.borrow_mut();
        if n.len() >= MAX_NATIVE_LINES {
            n.remove(0);
        }
        n.push(line);
    });
}

/// The lines written so far on this thread (native builds only), emptying the buffer.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_native() -> Vec<String> {
    NATIVE.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_key_value_with_quoted_text() {
        let l = line(
            "ledger.call",
            &[
                ("method", Val::Raw(&"transfer")),
                ("block", Val::Raw(&42u64)),
                ("reason", Val::Text("the \"ledger\" said\nno = no")),
                ("empty", Val::Text("")),
            ],
        );
        assert_eq!(
            l,
            r#"event=ledger.call method=transfer block=42 reason="the \"ledger\" said\nno = no" empty="""#
        );
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let long = "é".repeat(2 * MAX_LINE_BYTES);
        let l = line("x", &[("v", Val::Text(&long))]);
        assert!(l.len() <= MAX_LINE_BYTES);
        assert!(l.ends_with('…'));
    }

    #[test]
    fn native_lines_are_kept_for_tests() {
        take_native();
        emit("a", &[]);
        emit("b", &[("n", Val::Raw(&1u8))]);
        assert_eq!(take_native(), vec!["event=a", "event=b n=1"]);
        assert!(take_native().is_empty());
    }
}
