//! Entry points of the maintenance scheduler (SPEC §10): the timer armed by `init` and
//! `post_upgrade`, the hidden batch method the tick calls on itself, and the admins'
//! `run_maintenance`. Each checks its caller and delegates to `domain::maintenance` (the
//! tick, over the IC runtime and the global state); the due-entry duties are in
//! `domain::scheduler`.

use crate::domain::access;
use crate::domain::admin_trail;
use crate::domain::error::{VaultError, VaultResult};
use crate::domain::maintenance::{self, BatchReply};
use crate::domain::scheduler::QueueKey;
use crate::model::types::TickReport;
use crate::runtime::Runtime;

use super::{read, rt, update_async, write, GlobalState, WhenPaused};

/// Arms the periodic maintenance timer. Called by `init` and `post_upgrade`.
pub fn arm_timers() {
    maintenance::arm(GlobalState, rt());
}

/// Internal: processes due queue entries in this message. Only the canister itself may call
/// it (from the tick); it is not part of the `.did`. The guard bounds what another canister's
/// argument costs to decode before the caller check.
#[ic_cdk::update(guard = "crate::api::arguments::within_limits", hidden = true)]
fn scheduler_run_batch(keys: Vec<QueueKey>) -> VaultResult<BatchReply> {
    let rt = rt();
    if rt.caller() != rt.canister_id() {
        return Err(VaultError::NotAuthorized);
    }
    maintenance::run_batch(&GlobalState, &rt, &keys)
}

/// Admins: runs one maintenance tick now and returns its report (also while paused).
#[ic_cdk::update]
async fn run_maintenance() -> VaultResult<TickReport> {
    update_async(
        "run_maintenance",
        WhenPaused::Allow,
        |rt, caller| async move {
            read(|s| access::require_admin(s, &caller))?;
            let report = maintenance::tick(&GlobalState, &rt, true).await;
            write(|s| {
                let outcome = format!(
                    "taken={} processed={} applied={} failed={} skipped={}",
                    report.taken,
                    report.processed,
                    report.applied,
                    report.failed,
                    report.skipped.as_deref().unwrap_or("no")
                );
                admin_trail::record(
                    s,
                    rt.now(),
                    caller,
                    "run_maintenance",
                    String::new(),
                    outcome,
                )
            });
            Ok(report)
        },
    )
    .await
    .inspect_err(|e| admin_trail::log_refusal(rt().caller(), "run_maintenance", e))
}
