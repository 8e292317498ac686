//! vetKeys endpoints (SPEC §16, docs/keys.md): the vetKD public key of LiVault's context and
//! the derivation of an identity's vetKey for the caller's transport key.
//!
//! The public key is fetched from the management canister once and cached in stable memory:
//! [`arm_public_key_fetch`] (called by `init` and `post_upgrade`) starts a timer that fetches
//! it when the cache does not hold the configured key name, retrying with a growing delay
//! (1 minute doubling up to 1 hour) until it succeeds.

use crate::domain::keys::{self, DeriveVetKeyArgs, EncryptedVetKeyReply};
use crate::model::errors::KeysError;
use crate::model::keys::VetKdPublicKey;

use super::errors::public;
use super::{read, rt, update_async, GlobalState, WhenPaused};

/// Fetches the public key now (in a timer) if the cache lacks it, until it succeeds.
pub fn arm_public_key_fetch() {
    if read(keys::public_key_missing) {
        super::run_until_ok(|| async { keys::refresh_public_key(&GlobalState, &rt()).await });
    }
}

#[ic_cdk::query]
fn get_vetkd_public_key() -> Result<VetKdPublicKey, KeysError> {
    public("get_vetkd_public_key", read(keys::get_public_key))
}

// Allowed while paused: like downloads, key release is read access for heirs.
#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn derive_vetkey(args: DeriveVetKeyArgs) -> Result<EncryptedVetKeyReply, KeysError> {
    public(
        "derive_vetkey",
        update_async("derive_vetkey", WhenPaused::Allow, |rt, _| async move {
            keys::derive_vetkey(&GlobalState, &rt, args).await
        })
        .await,
    )
}
