//! Install, upgrade and ingress inspection.

use crate::domain::admin_trail;
use crate::domain::ops;
use crate::events::{self, Val};
use crate::model::config::{Config, InitArgs, LiVaultArgs};
use crate::model::records::LAYOUT_VERSION;
use crate::runtime::Runtime;

use super::{arguments, rt, write};

#[ic_cdk::init]
fn init(args: Option<LiVaultArgs>) {
    let rt = rt();
    let installer = rt.caller();
    let now = rt.now();
    let args_text = admin_trail::candid_text(&args);
    let init = match args {
        None => InitArgs::default(),
        Some(LiVaultArgs::Init(a)) => a,
        Some(LiVaultArgs::Upgrade(_)) => ic_cdk::trap("init: expected Init arguments, got Upgrade"),
    };
    let config = Config::from_init(init, installer)
        .unwrap_or_else(|e| ic_cdk::trap(format!("init: invalid arguments: {e:?}")));
    ops::with(|o| {
        *o = ops::Ops {
            installed_at: Some(now),
            ..ops::Ops::default()
        }
    });
    write(|s| {
        s.stamp_layout();
        s.set_config(config);
        ops::reserve_snapshot(s);
        events::emit(
            "canister.installed",
            &[
                ("version", Val::Raw(&ops::VERSION)),
                ("git_commit", Val::Raw(&ops::GIT_COMMIT)),
                ("layout", Val::Raw(&LAYOUT_VERSION)),
            ],
        );
        let outcome = format!("version={} git_commit={}", ops::VERSION, ops::GIT_COMMIT);
        admin_trail::record(s, now, installer, "install", args_text, outcome);
    });
    super::scheduler::arm_timers();
    super::keys::arm_public_key_fetch();
    super::vaults::arm_owner_index_rekey();
}

/// Writes the operational counters (heap) into their reserved pages (`domain::ops`): a
/// bounded snapshot that cannot grow memory, so this hook cannot trap. Everything else
/// already lives in stable structures.
#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    let snapshot = ops::encode_snapshot(&ops::snapshot());
    write(|s| s.write_ops_snapshot(&snapshot));
}

#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<LiVaultArgs>) {
    let rt = rt();
    let now = rt.now();
    let caller = rt.caller();
    let args_text = admin_trail::candid_text(&args);
    write(|s| {
        // Migrations first; a layout written by newer code is refused (the upgrade rolls back).
        let from_layout = match s.migrate() {
            Ok(found) => found,
            Err(e) => ic_cdk::trap(format!("post_upgrade: unsupported stable layout: {e:?}")),
        };
        // Metrics counters for state written before they existed (recounted once).
        crate::domain::metrics::ensure_counters(s, now);
        match args {
            None => {}
            Some(LiVaultArgs::Upgrade(upgrade)) => {
                let next = s.config().apply_upgrade(upgrade).unwrap_or_else(|e| {
                    ic_cdk::trap(format!("post_upgrade: invalid arguments: {e:?}"))
                });
                s.set_config(next);
            }
            Some(LiVaultArgs::Init(_)) => {
                ic_cdk::trap("post_upgrade: expected Upgrade arguments, got Init")
            }
        }
        // The counters since install, carried by the previous module's `pre_upgrade` (none
        // from a module without them: they start now).
        let mut counters = ops::read_snapshot(s).unwrap_or_default();
        counters.upgrades += 1;
        counters.last_upgraded_at = Some(now);
        let upgrades = counters.upgrades;
        ops::with(|o| *o = counters);
        ops::reserve_snapshot(s);
        events::emit(
            "canister.upgraded",
            &[
                ("version", Val::Raw(&ops::VERSION)),
                ("git_commit", Val::Raw(&ops::GIT_COMMIT)),
                ("from_layout", Val::Raw(&from_layout)),
                ("layout", Val::Raw(&LAYOUT_VERSION)),
                ("upgrades", Val::Raw(&upgrades)),
            ],
        );
        let outcome = format!(
            "version={} git_commit={} from_layout={from_layout} upgrades={upgrades}",
            ops::VERSION,
            ops::GIT_COMMIT
        );
        admin_trail::record(s, now, caller, "upgrade", args_text, outcome);
    });
    // Timers do not survive an upgrade: arm them again (with the possibly new interval).
    super::scheduler::arm_timers();
    // A new key name (or a cache written before vetKeys) fetches the public key again.
    super::keys::arm_public_key_fetch();
    // An owner index not yet keyed from the subnet's randomness (created before layout 8,
    // or the install's timer did not get to it) is re-keyed.
    super::vaults::arm_owner_index_rekey();
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
    if method == crate::domain::maintenance::BATCH_METHOD {
        ic_cdk::trap("internal method: only the canister itself calls it");
    }
    let size = ic0::msg_arg_data_size();
    if size > arguments::max_arg_bytes(&method) {
        ic_cdk::trap(format!(
            "argument of {size} bytes exceeds the {} byte limit of {method}",
            arguments::max_arg_bytes(&method)
        ));
    }
    ic_cdk::api::accept_message();
}
