//! Install, upgrade and ingress inspection.

use crate::domain::config::{Config, InitArgs, LiVaultArgs};
use crate::runtime::Runtime;

use super::{rt, write};

/// Largest argument accepted for ordinary update calls.
pub const MAX_ARG_BYTES: usize = 16 * 1024;

#[ic_cdk::init]
fn init(args: Option<LiVaultArgs>) {
    let installer = rt().caller();
    let init = match args {
        None => InitArgs::default(),
        Some(LiVaultArgs::Init(a)) => a,
        Some(LiVaultArgs::Upgrade(_)) => ic_cdk::trap("init: expected Init arguments, got Upgrade"),
    };
    let config = Config::from_init(init, installer)
        .unwrap_or_else(|e| ic_cdk::trap(format!("init: invalid arguments: {e:?}")));
    write(|s| {
        s.stamp_layout();
        s.set_config(config);
    });
    super::scheduler::arm_timers();
    super::content::warm_up();
    super::keys::arm_public_key_fetch();
}

#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    // Nothing to do: all state already lives in stable structures.
}

#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<LiVaultArgs>) {
    write(|s| {
        // Migrations first; a layout written by newer code is refused (the upgrade rolls back).
        if let Err(e) = s.migrate() {
            ic_cdk::trap(format!("post_upgrade: unsupported stable layout: {e:?}"));
        }
        // Metrics counters for state written before they existed (recounted once).
        crate::domain::metrics::ensure_counters(s, rt().now());
        let upgrade = match args {
            None => return,
            Some(LiVaultArgs::Upgrade(a)) => a,
            Some(LiVaultArgs::Init(_)) => {
                ic_cdk::trap("post_upgrade: expected Upgrade arguments, got Init")
            }
        };
        let next = s
            .config()
            .apply_upgrade(upgrade)
            .unwrap_or_else(|e| ic_cdk::trap(format!("post_upgrade: invalid arguments: {e:?}")));
        s.set_config(next);
    });
    // Timers do not survive an upgrade: arm them again (with the possibly new interval).
    super::scheduler::arm_timers();
    super::content::warm_up();
    // A new key name (or a cache written before vetKeys) fetches the public key again.
    super::keys::arm_public_key_fetch();
}

/// Candid framing around a method's payload (header, type table, ids, lengths).
pub const ARG_OVERHEAD_BYTES: usize = 1024;

/// Argument size limit per method: `upload_chunk` carries up to `max_chunk_bytes`,
/// `begin_upload` up to 4 KiB of encrypted metadata; everything else 16 KiB.
pub fn max_arg_bytes(method: &str) -> usize {
    match method {
        "upload_chunk" => {
            super::read(|s| s.config().limits.max_chunk_bytes as usize) + ARG_OVERHEAD_BYTES
        }
        "begin_upload" => crate::domain::content::MAX_META_BYTES + MAX_ARG_BYTES,
        _ => MAX_ARG_BYTES,
    }
}

/// Ingress filter: anonymous update calls and oversized arguments are rejected before they
/// cost the canister anything. The entry points check the caller again (inter-canister calls
/// skip this hook).
#[ic_cdk::inspect_message]
fn inspect_message() {
    if ic_cdk::api::msg_caller() == candid::Principal::anonymous() {
        ic_cdk::trap("anonymous update calls are not accepted; sign in first");
    }
    let method = ic_cdk::api::msg_method_name();
    if method == super::scheduler::BATCH_METHOD {
        ic_cdk::trap("internal method: only the canister itself calls it");
    }
    let size = ic0::msg_arg_data_size();
    if size > max_arg_bytes(&method) {
        ic_cdk::trap(format!(
            "argument of {size} bytes exceeds the {} byte limit of {method}",
            max_arg_bytes(&method)
        ));
    }
    ic_cdk::api::accept_message();
}
