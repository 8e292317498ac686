//! The admin trail (issue #15, part 5): every admin and controller action that changed
//! something — `set_treasury`, `set_pricing`, `set_admins`, `set_paused`, `refund_session`,
//! `run_maintenance`, and the install and upgrade arguments — with its caller, time,
//! arguments and outcome, readable by admins (`list_admin_trail`).
//!
//! - **Only carried-out actions.** An action is recorded in the message that applies it,
//!   when it answers `Ok`. A refused one (`Err`) changes nothing (SPEC §14), so it is not
//!   stored; it is counted (`domain::ops`, by endpoint and error) and logged.
//! - **Bounded.** The newest [`CAPACITY`] entries are kept (oldest first out; see
//!   `storage::admin_trail`); `args` are the Candid text of the arguments, cut at
//!   [`MAX_ARGS_BYTES`], `outcome` at [`MAX_OUTCOME_BYTES`].
//! - **Numbered.** Entries are numbered from 1 and never renumbered: a gap at the start of
//!   a page (`first seq > start_after + 1`) means entries were evicted.

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

use super::access::require_admin;
use super::error::{VaultError, VaultResult};
use super::validation;
use crate::events::{self, Val};
use crate::model::types::{Page, PageArgs};
use crate::runtime::Runtime;
use crate::storage::State;

pub use crate::storage::admin_trail::CAPACITY;

/// Logs a refused admin or controller action with its caller (operators want to know who
/// tries; the refusal itself changes nothing, so nothing is stored).
pub fn log_refusal(caller: Principal, action: &str, error: &VaultError) {
    events::emit(
        "admin.refused",
        &[
            ("action", Val::Raw(&action)),
            ("caller", Val::Raw(&caller)),
            ("error", Val::Raw(&error.name())),
        ],
    );
}

/// Longest `args` kept (bytes of Candid text).
pub const MAX_ARGS_BYTES: usize = 3_000;
/// Longest `outcome` kept.
pub const MAX_OUTCOME_BYTES: usize = 512;
/// Longest `action` name.
const MAX_ACTION_BYTES: usize = 32;

// One admin action (`list_admin_trail`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize, Serialize)]
pub struct AdminTrailEntry {
    // Number of the entry (from 1, never reused).
    pub seq: u64,
    // When it was carried out (ns since the epoch).
    pub time: u64,
    // Who did it: an admin, or the controller that installed or upgraded.
    pub caller: Principal,
    // `install`, `upgrade`, or the endpoint's name.
    pub action: String,
    // The arguments as Candid text (cut at 3 000 bytes, ending in `…`).
    pub args: String,
    // What it did (`key=value` words), e.g. a refund's block or a tick's counts.
    pub outcome: String,
}

crate::cbor_storable!(AdminTrailEntry, 1);

/// The Candid text of `value`, on one line, cut at [`MAX_ARGS_BYTES`].
pub fn candid_text<T: CandidType>(value: &T) -> String {
    let mut text = match candid::IDLValue::try_from_candid_type(value) {
        Ok(v) => one_line(&v.to_string()),
        Err(e) => format!("<not printable: {e}>"),
    };
    events::truncate(&mut text, MAX_ARGS_BYTES);
    text
}

/// Joins the pretty printer's lines: a newline and its indentation become one space (text
/// values never hold a raw newline: the printer escapes it).
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.lines().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(if i > 0 { line.trim_start() } else { line });
    }
    out
}

/// Records an action carried out in this message and writes its log line. Returns its
/// number.
pub fn record(
    state: &mut State,
    now: u64,
    caller: Principal,
    action: &str,
    args: String,
    outcome: String,
) -> u64 {
    let mut entry = AdminTrailEntry {
        seq: state.admin_trail.next_seq(),
        time: now,
        caller,
        action: action.to_string(),
        args,
        outcome,
    };
    events::truncate(&mut entry.action, MAX_ACTION_BYTES);
    events::truncate(&mut entry.args, MAX_ARGS_BYTES);
    events::truncate(&mut entry.outcome, MAX_OUTCOME_BYTES);
    let bytes = crate::storage::codec::encode(1, &entry);
    let seq = state.admin_trail.append(&bytes);
    events::emit(
        "admin.action",
        &[
            ("seq", Val::Raw(&seq)),
            ("action", Val::Text(&entry.action)),
            ("caller", Val::Raw(&caller)),
            ("outcome", Val::Text(&entry.outcome)),
            ("args", Val::Text(&entry.args)),
        ],
    );
    seq
}

/// Entries ever recorded (the newest one's number).
pub fn total(state: &State) -> u64 {
    state.admin_trail.next_seq() - 1
}

fn get(state: &State, seq: u64) -> Option<AdminTrailEntry> {
    let bytes = state.admin_trail.get(seq)?;
    Some(crate::storage::codec::decode(
        1,
        "admin trail entry",
        &bytes,
    ))
}

/// `list_admin_trail` (admins): entries by ascending number after `start_after` (from the
/// oldest kept); `next_cursor` is the last number of the page when more follow.
pub fn list(
    state: &State,
    rt: &impl Runtime,
    args: PageArgs,
) -> VaultResult<Page<AdminTrailEntry>> {
    require_admin(state, &rt.caller())?;
    let limit = validation::page_limit(args.limit)?;
    let first = state.admin_trail.first_seq();
    let next = state.admin_trail.next_seq();
    let from = args
        .start_after
        .map_or(first, |c| c.saturating_add(1).max(first));
    let to = from.saturating_add(limit as u64).min(next);
    let items: Vec<AdminTrailEntry> = (from..to).filter_map(|seq| get(state, seq)).collect();
    let next_cursor = match items.last() {
        Some(last) if last.seq + 1 < next => Some(last.seq),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::VaultError;
    use crate::model::config::{Config, InitArgs, LiVaultArgs, Pricing};
    use crate::runtime::testing::MockRuntime;
    use ic_stable_structures::DefaultMemoryImpl;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn state(admin: Principal) -> State {
        let mut s = State::open(DefaultMemoryImpl::default());
        s.set_config(
            Config::from_init(
                InitArgs {
                    admins: vec![admin],
                    ..InitArgs::default()
                },
                admin,
            )
            .unwrap(),
        );
        s
    }

    #[test]
    fn candid_text_names_fields_and_principals_on_one_line() {
        let t = candid_text(&vec![p(1), p(2)]);
        assert_eq!(
            t,
            format!("vec {{ principal \"{}\"; principal \"{}\"; }}", p(1), p(2))
        );
        let pricing = Pricing::default();
        let t = candid_text(&pricing);
        assert!(t.starts_with("record {"), "{t}");
        assert!(t.contains("heir_slot_fee_e8s = "), "{t}");
        assert!(!t.contains('\n'));
        // Install arguments with every field.
        let t = candid_text(&Some(LiVaultArgs::Init(InitArgs::default())));
        assert!(t.starts_with("opt variant { Init = record {"), "{t}");
        assert!(t.len() <= MAX_ARGS_BYTES);
    }

    #[test]
    fn entries_round_trip_are_paged_and_bounded() {
        let admin = p(1);
        let mut s = state(admin);
        let rt = MockRuntime::new(1_000, admin);
        for i in 0..5u64 {
            record(
                &mut s,
                1_000 + i,
                admin,
                "set_paused",
                candid_text(&(i % 2 == 0)),
                String::new(),
            );
        }
        // Largest entry: every field at its bound.
        let big = record(
            &mut s,
            2_000,
            admin,
            &"a".repeat(100),
            "é".repeat(MAX_ARGS_BYTES),
            "o".repeat(10 * MAX_OUTCOME_BYTES),
        );
        assert_eq!(big, 6);
        assert_eq!(total(&s), 6);
        let page = list(
            &s,
            &rt,
            PageArgs {
                start_after: None,
                limit: Some(4),
            },
        )
        .unwrap();
        assert_eq!(
            page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(page.next_cursor, Some(4));
        assert_eq!(page.items[0].args, "true");
        assert_eq!(page.items[1].args, "false");
        assert_eq!(page.items[1].time, 1_001);
        let rest = list(
            &s,
            &rt,
            PageArgs {
                start_after: page.next_cursor,
                limit: Some(4),
            },
        )
        .unwrap();
        assert_eq!(rest.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(rest.next_cursor, None);
        let last = &rest.items[1];
        assert!(last.args.len() <= MAX_ARGS_BYTES && last.args.ends_with('…'));
        assert!(last.outcome.len() <= MAX_OUTCOME_BYTES);
        assert!(last.action.len() <= MAX_ACTION_BYTES);
        // Past the end: empty.
        let none = list(
            &s,
            &rt,
            PageArgs {
                start_after: Some(6),
                limit: None,
            },
        )
        .unwrap();
        assert!(none.items.is_empty() && none.next_cursor.is_none());
        // The log line of each action.
        let lines = crate::events::take_native();
        assert!(lines[0].starts_with("event=admin.action seq=1 action=set_paused caller="));
    }

    #[test]
    fn only_admins_read_it_and_page_sizes_are_checked() {
        let admin = p(1);
        let s = state(admin);
        let rt = MockRuntime::new(1_000, admin);
        let args = |limit| PageArgs {
            start_after: None,
            limit,
        };
        for who in [p(2), Principal::anonymous()] {
            rt.as_caller(who);
            assert_eq!(list(&s, &rt, args(Some(0))), Err(VaultError::NotAuthorized));
            assert_eq!(list(&s, &rt, args(None)), Err(VaultError::NotAuthorized));
        }
        rt.as_caller(admin);
        for bad in [0, 101] {
            assert!(matches!(
                list(&s, &rt, args(Some(bad))),
                Err(VaultError::InvalidInput { .. })
            ));
        }
        assert_eq!(list(&s, &rt, args(Some(100))).unwrap().items, vec![]);
    }
}
