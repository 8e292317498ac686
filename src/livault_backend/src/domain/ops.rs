//! Operational counters (issue #15, part 5): update calls and errors by endpoint and error
//! case, ICP ledger call outcomes, rate-limit and capacity refusals, scheduler work and
//! failures, upgrades; and the build the module came from.
//!
//! **Where they live.** In the heap ([`with`]), because most of what they count is a refused
//! call, and a refused call changes no stable memory (SPEC §14). They are carried across
//! upgrades: `pre_upgrade` writes one bounded [`Snapshot`] into memory 33
//! ([`crate::storage::memory::OPS_SNAPSHOT`]) and `post_upgrade` reads it back, so they
//! count **since install**. The snapshot's pages are reserved when the canister is installed
//! or upgraded ([`SNAPSHOT_BYTES`]), so writing it cannot grow stable memory, and a snapshot
//! too large for them (impossible with the series cap below) drops its series rather than
//! trapping: `pre_upgrade` cannot trap here.
//!
//! **What is not counted.** Queries: a query's heap changes are discarded, so its errors
//! cannot be counted anywhere (SPEC's queries are reads; their refusals change nothing).
//! Calls that trap (rolled back, counters included) and calls `inspect_message` turns away
//! (a non-replicated check that keeps nothing). An upgrade run with `skip_pre_upgrade`
//! keeps the counters of the previous snapshot.
//!
//! **Bounds.** Series keys are names from the code (endpoint, error case, ledger method and
//! outcome), so their number is bounded by the code (about 35 update endpoints × 28 error
//! cases); [`MAX_SERIES`] caps each map anyway, and [`Ops::series_dropped`] counts what a
//! full map turned away.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Serialize;

use super::error::VaultError;

/// The crate version of this module (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this module was built from: `LIVAULT_GIT_COMMIT` at build time
/// (`scripts/build.sh` sets it from `git`), `unknown` in a tree without git or when the value
/// is not a plain word (so it is always a safe label value).
pub const GIT_COMMIT: &str = checked_commit(option_env!("LIVAULT_GIT_COMMIT"));

const fn checked_commit(v: Option<&'static str>) -> &'static str {
    let Some(s) = v else {
        return "unknown";
    };
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 64 {
        return "unknown";
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' || c == b'+') {
            return "unknown";
        }
        i += 1;
    }
    s
}

/// Most series per map (calls, errors, ledger outcomes).
pub const MAX_SERIES: usize = 2_048;

/// Longest name kept in a series key (names come from the code; longer ones are cut).
pub const MAX_NAME_BYTES: usize = 48;

/// Bytes reserved for the snapshot in memory 33: 4 pages (256 KiB). The code produces at
/// most about 1 000 series of short names (~40 KiB); a snapshot that does not fit (every map
/// at [`MAX_SERIES`] with names of [`MAX_NAME_BYTES`] takes ~0.5 MiB) is written without its
/// series (see [`encode_snapshot`]).
pub const SNAPSHOT_BYTES: u64 = 4 * 65_536;

/// The heap counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Ops {
    /// When this canister was installed (`None`: installed by a version that did not
    /// record it; counting started with the first upgrade to one that does).
    #[serde(default)]
    pub installed_at: Option<u64>,
    /// Upgrades since install.
    #[serde(default)]
    pub upgrades: u64,
    /// When the last upgrade ran.
    #[serde(default)]
    pub last_upgraded_at: Option<u64>,
    /// Update calls answered `Ok`, by endpoint.
    #[serde(default)]
    pub ok: BTreeMap<String, u64>,
    /// Update calls answered `Err`, by (endpoint, error case).
    #[serde(default)]
    pub errors: BTreeMap<(String, String), u64>,
    /// ICP ledger calls by (method, outcome): `ok`, `rejected` (certainly not executed),
    /// `unknown` (may have executed), or the ledger's `TransferError` case.
    #[serde(default)]
    pub ledger: BTreeMap<(String, String), u64>,
    /// Update calls refused by the per-principal token bucket (SPEC §13).
    #[serde(default)]
    pub rate_limit_refusals: u64,
    /// Calls refused at the capacity high-water mark (`PlanLimit { canister_storage }`).
    #[serde(default)]
    pub capacity_refusals: u64,
    /// Maintenance ticks that ran (not skipped).
    #[serde(default)]
    pub scheduler_runs: u64,
    /// Scheduler entries processed.
    #[serde(default)]
    pub scheduler_processed: u64,
    /// Scheduler entries whose processing trapped on their own.
    #[serde(default)]
    pub scheduler_failures: u64,
    /// Of those, entries parked after their last attempt.
    #[serde(default)]
    pub scheduler_parked: u64,
    /// Batch messages that trapped (their entries were then retried one by one).
    #[serde(default)]
    pub scheduler_batch_traps: u64,
    /// Series a full map turned away.
    #[serde(default)]
    pub series_dropped: u64,
}

thread_local! {
    static OPS: RefCell<Ops> = RefCell::new(Ops::default());
}

/// Runs `f` on the heap counters.
pub fn with<R>(f: impl FnOnce(&mut Ops) -> R) -> R {
    OPS.with(|o| f(&mut o.borrow_mut()))
}

/// A copy of the heap counters.
pub fn snapshot() -> Ops {
    OPS.with(|o| o.borrow().clone())
}

fn key(name: &str) -> String {
    let mut s = name.to_string();
    crate::events::truncate(&mut s, MAX_NAME_BYTES);
    s
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, k: K, dropped: &mut u64) {
    if let Some(v) = map.get_mut(&k) {
        *v = v.saturating_add(1);
    } else if map.len() < MAX_SERIES {
        map.insert(k, 1);
    } else {
        *dropped = dropped.saturating_add(1);
    }
}

impl Ops {
    /// Counts the outcome of update endpoint `endpoint`.
    pub fn record_call(&mut self, endpoint: &str, error: Option<&VaultError>) {
        match error {
            None => {
                if let Some(v) = self.ok.get_mut(endpoint) {
                    *v = v.saturating_add(1);
                } else {
                    bump(&mut self.ok, key(endpoint), &mut self.series_dropped);
                }
            }
            Some(e) => {
                if is_capacity_refusal(e) {
                    self.capacity_refusals = self.capacity_refusals.saturating_add(1);
                }
                bump(
                    &mut self.errors,
                    (key(endpoint), e.name().to_string()),
                    &mut self.series_dropped,
                );
            }
        }
    }

    /// Counts one ICP ledger call.
    pub fn record_ledger(&mut self, method: &str, outcome: &str) {
        bump(
            &mut self.ledger,
            (key(method), key(outcome)),
            &mut self.series_dropped,
        );
    }
}

/// Whether `e` is the refusal at the capacity high-water mark.
pub fn is_capacity_refusal(e: &VaultError) -> bool {
    matches!(e, VaultError::PlanLimit { resource, .. } if resource == "canister_storage")
}

// ------------------------------------------------------------------ snapshot

/// Magic and format of the snapshot in memory 33.
const MAGIC: &[u8; 4] = b"LVOS";
const FORMAT: u8 = 1;
/// magic (4), format (1), payload length (4).
const HEADER_BYTES: usize = 9;

/// What `pre_upgrade` writes: the counters, CBOR behind a small header.
pub type Snapshot = Vec<u8>;

/// Encodes `ops` for memory 33, at most [`SNAPSHOT_BYTES`]: if the series do not fit, they
/// are left out (the scalar counters always fit), so writing never fails.
pub fn encode_snapshot(ops: &Ops) -> Snapshot {
    let full = frame(ops);
    if full.len() as u64 <= SNAPSHOT_BYTES {
        return full;
    }
    let lean = Ops {
        ok: BTreeMap::new(),
        errors: BTreeMap::new(),
        ledger: BTreeMap::new(),
        series_dropped: ops
            .series_dropped
            .saturating_add((ops.ok.len() + ops.errors.len() + ops.ledger.len()) as u64),
        ..ops.clone()
    };
    frame(&lean)
}

fn frame(ops: &Ops) -> Vec<u8> {
    let mut payload = Vec::new();
    // Writing plain data into a Vec cannot fail.
    ciborium::into_writer(ops, &mut payload).expect("BUG: ops counters serialization");
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Reads a snapshot written by [`encode_snapshot`]. `None` for memory that holds none
/// (a first upgrade from a version without counters) or one this code cannot read: the
/// counters then start from zero; an upgrade never fails because of them.
pub fn decode_snapshot(bytes: &[u8]) -> Option<Ops> {
    if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC || bytes[4] != FORMAT {
        return None;
    }
    let len = u32::from_le_bytes(bytes[5..9].try_into().ok()?) as usize;
    let payload = bytes.get(HEADER_BYTES..HEADER_BYTES.checked_add(len)?)?;
    ciborium::from_reader(payload).ok()
}

/// Length of the snapshot whose first [`HEADER_BYTES`] are `head` (to read only that much).
pub fn snapshot_len(head: &[u8]) -> Option<usize> {
    if head.len() < HEADER_BYTES || &head[..4] != MAGIC || head[4] != FORMAT {
        return None;
    }
    let len = u32::from_le_bytes(head[5..9].try_into().ok()?) as usize;
    Some(HEADER_BYTES + len)
}

/// Size of a snapshot's header.
pub const SNAPSHOT_HEADER_BYTES: usize = HEADER_BYTES;

/// Reserves the snapshot's pages ([`SNAPSHOT_BYTES`]) in stable memory (`init`, `post_upgrade`).
pub fn reserve_snapshot(state: &mut crate::storage::State) {
    state.reserve_ops_snapshot(SNAPSHOT_BYTES);
}

/// The counters of the stored snapshot (`post_upgrade`); `None` if there is none or this
/// code cannot read it.
pub fn read_snapshot(state: &crate::storage::State) -> Option<Ops> {
    let bytes = state.read_ops_snapshot(SNAPSHOT_HEADER_BYTES, snapshot_len)?;
    decode_snapshot(&bytes)
}

// ------------------------------------------------------------------ metrics view

use crate::model::ops::{EndpointCalls, ErrorCount, LedgerCallCount, OpsMetrics};

impl Ops {
    /// The `get_metrics` view.
    pub fn view(&self, admin_actions_total: u64) -> OpsMetrics {
        let mut calls: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (endpoint, n) in &self.ok {
            calls.entry(endpoint).or_default().0 += n;
        }
        for ((endpoint, _), n) in &self.errors {
            let e = calls.entry(endpoint).or_default();
            e.1 = e.1.saturating_add(*n);
        }
        OpsMetrics {
            version: VERSION.to_string(),
            git_commit: GIT_COMMIT.to_string(),
            installed_at: self.installed_at,
            upgrades: self.upgrades,
            last_upgraded_at: self.last_upgraded_at,
            update_calls: calls
                .into_iter()
                .map(|(endpoint, (ok, errors))| EndpointCalls {
                    endpoint: endpoint.to_string(),
                    ok,
                    errors,
                })
                .collect(),
            errors: self
                .errors
                .iter()
                .map(|((endpoint, error), count)| ErrorCount {
                    endpoint: endpoint.clone(),
                    error: error.clone(),
                    count: *count,
                })
                .collect(),
            ledger_calls: self
                .ledger
                .iter()
                .map(|((method, outcome), count)| LedgerCallCount {
                    method: method.clone(),
                    outcome: outcome.clone(),
                    count: *count,
                })
                .collect(),
            rate_limit_refusals: self.rate_limit_refusals,
            capacity_refusals: self.capacity_refusals,
            series_dropped: self.series_dropped,
            admin_actions_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> Ops {
        let mut o = Ops {
            installed_at: Some(5),
            upgrades: 2,
            last_upgraded_at: Some(9),
            rate_limit_refusals: 3,
            scheduler_failures: 4,
            ..Ops::default()
        };
        o.record_call("create_vault", None);
        o.record_call("create_vault", None);
        o.record_call("create_vault", Some(&VaultError::NotAuthorized));
        o.record_call(
            "begin_upload",
            Some(&VaultError::PlanLimit {
                resource: "canister_storage".into(),
                limit: 1,
            }),
        );
        o.record_ledger("transfer", "ok");
        o.record_ledger("transfer", "unknown");
        o.record_ledger("transfer", "ok");
        o
    }

    #[test]
    fn calls_errors_and_ledger_outcomes_are_counted_by_name() {
        let o = busy();
        assert_eq!(o.ok["create_vault"], 2);
        assert_eq!(
            o.errors[&("create_vault".into(), "NotAuthorized".into())],
            1
        );
        assert_eq!(o.capacity_refusals, 1);
        assert_eq!(o.ledger[&("transfer".into(), "ok".into())], 2);
        let v = o.view(7);
        assert_eq!(
            v.update_calls,
            vec![
                EndpointCalls {
                    endpoint: "begin_upload".into(),
                    ok: 0,
                    errors: 1
                },
                EndpointCalls {
                    endpoint: "create_vault".into(),
                    ok: 2,
                    errors: 1
                },
            ]
        );
        assert_eq!(v.admin_actions_total, 7);
        assert_eq!((v.version.as_str(), v.upgrades), (VERSION, 2));
    }

    #[test]
    fn the_snapshot_round_trips_and_junk_reads_as_none() {
        let o = busy();
        let bytes = encode_snapshot(&o);
        assert_eq!(
            snapshot_len(&bytes[..SNAPSHOT_HEADER_BYTES]),
            Some(bytes.len())
        );
        let mut padded = bytes.clone();
        padded.resize(SNAPSHOT_BYTES as usize, 0);
        assert_eq!(decode_snapshot(&padded), Some(o));
        assert_eq!(decode_snapshot(&[]), None);
        assert_eq!(decode_snapshot(&[0; 64]), None);
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 1);
        assert_eq!(decode_snapshot(&cut), None);
    }

    /// Full maps with the longest names: the snapshot still fits its reserved pages (the
    /// series are left out) and the scalar counters survive.
    #[test]
    fn an_oversized_snapshot_keeps_its_scalars_and_fits() {
        let mut o = busy();
        let long = "x".repeat(MAX_NAME_BYTES);
        for i in 0..MAX_SERIES {
            let name = format!("{i:05}{}", &long[5..]);
            o.ok.insert(name.clone(), u64::MAX);
            o.errors.insert((name.clone(), name.clone()), u64::MAX);
            o.ledger.insert((name.clone(), name), u64::MAX);
        }
        let series = (o.ok.len() + o.errors.len() + o.ledger.len()) as u64;
        assert_eq!(series, 3 * MAX_SERIES as u64 + 5, "busy() adds 5 series");
        let bytes = encode_snapshot(&o);
        assert!(bytes.len() as u64 <= SNAPSHOT_BYTES);
        let back = decode_snapshot(&bytes).unwrap();
        assert_eq!((back.upgrades, back.scheduler_failures), (2, 4));
        assert!(back.errors.is_empty());
        assert_eq!(back.series_dropped, series);
    }

    #[test]
    fn full_maps_count_what_they_turn_away() {
        let mut o = Ops::default();
        for i in 0..MAX_SERIES + 5 {
            o.record_call(&format!("e{i}"), None);
        }
        assert_eq!(o.ok.len(), MAX_SERIES);
        assert_eq!(o.series_dropped, 5);
        // An existing series still counts.
        o.record_call("e0", None);
        assert_eq!(o.ok["e0"], 2);
    }

    #[test]
    fn the_commit_label_is_a_plain_word() {
        assert_eq!(checked_commit(None), "unknown");
        assert_eq!(checked_commit(Some("")), "unknown");
        assert_eq!(checked_commit(Some("a\"b")), "unknown");
        assert_eq!(checked_commit(Some("0123abc-dirty")), "0123abc-dirty");
        assert!(GIT_COMMIT
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._+".contains(&c)));
    }
}
