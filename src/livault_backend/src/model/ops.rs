//! The operational metrics view (`get_metrics`); the counters behind it are `domain::ops`.

use candid::{CandidType, Deserialize};

// One update endpoint's outcomes (`get_metrics`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct EndpointCalls {
    pub endpoint: String,
    pub ok: u64,
    pub errors: u64,
}

// Errors of one case from one endpoint (`get_metrics`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ErrorCount {
    pub endpoint: String,
    pub error: String,
    pub count: u64,
}

// ICP ledger calls with one outcome (`get_metrics`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct LedgerCallCount {
    pub method: String,
    pub outcome: String,
    pub count: u64,
}

// The operational part of `get_metrics` (see the module docs: update calls only, since
// install).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct OpsMetrics {
    // Crate version of the running module.
    pub version: String,
    // Git commit the running module was built from (`unknown` without git).
    pub git_commit: String,
    pub installed_at: Option<u64>,
    pub upgrades: u64,
    pub last_upgraded_at: Option<u64>,
    // Update calls by endpoint (`Ok` and `Err` answers), endpoints in name order.
    pub update_calls: Vec<EndpointCalls>,
    // `Err` answers of update calls by endpoint and error case.
    pub errors: Vec<ErrorCount>,
    // ICP ledger calls by method and outcome.
    pub ledger_calls: Vec<LedgerCallCount>,
    pub rate_limit_refusals: u64,
    pub capacity_refusals: u64,
    // Series a full counter map turned away (0 unless something is wrong).
    pub series_dropped: u64,
    // Admin actions ever recorded in the admin trail (the newest entry's number).
    pub admin_actions_total: u64,
}
