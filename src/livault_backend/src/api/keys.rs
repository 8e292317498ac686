//! vetKeys endpoints (SPEC §16, docs/keys.md): the vetKD public key of LiVault's context and
//! the derivation of an identity's vetKey for the caller's transport key.
//!
//! The public key is fetched from the management canister once and cached in stable memory:
//! [`arm_public_key_fetch`] (called by `init` and `post_upgrade`) starts a timer that fetches
//! it when the cache does not hold the configured key name, retrying with a growing delay
//! (1 minute doubling up to 1 hour) until it succeeds.

use std::cell::OnceCell;
use std::time::Duration;

use crate::domain::error::{VaultError, VaultResult};
use crate::domain::keys::{self, DeriveVetKeyArgs, EncryptedVetKeyReply, VetKdPublicKey};

use super::{read, reply, rt, update_async, GlobalState, WhenPaused};

thread_local! {
    /// Header and type table of the two endpoints' reply types (see [`super::reply`]): the
    /// `VaultError` type table costs ~1.5 M instructions per reply otherwise.
    static PUBLIC_KEY_PREFIX: OnceCell<Vec<u8>> = const { OnceCell::new() };
    static DERIVE_PREFIX: OnceCell<Vec<u8>> = const { OnceCell::new() };
}

fn encode_public_key_reply(result: VaultResult<VetKdPublicKey>) -> Vec<u8> {
    PUBLIC_KEY_PREFIX.with(|p| {
        let prefix = p.get_or_init(|| {
            reply::type_prefix::<VaultResult<VetKdPublicKey>>(&Err(VaultError::NotFound))
        });
        reply::encode_with_prefix(prefix, &result)
    })
}

fn encode_derive_reply(result: VaultResult<EncryptedVetKeyReply>) -> Vec<u8> {
    DERIVE_PREFIX.with(|p| {
        let prefix = p.get_or_init(|| {
            reply::type_prefix::<VaultResult<EncryptedVetKeyReply>>(&Err(VaultError::NotFound))
        });
        reply::encode_with_prefix(prefix, &result)
    })
}

/// Builds the reply prefixes once per wasm instance (`init`, `post_upgrade`): a query's heap
/// changes are discarded, so the public-key query could not keep a prefix it built itself.
pub fn warm_up() {
    encode_public_key_reply(Err(VaultError::NotFound));
    encode_derive_reply(Err(VaultError::NotFound));
}

/// First retry delay of the public key fetch.
const RETRY_FIRST: Duration = Duration::from_secs(60);
/// Longest retry delay of the public key fetch.
const RETRY_MAX: Duration = Duration::from_secs(3600);

/// Fetches the public key now (in a timer) if the cache lacks it; builds the reply prefixes.
pub fn arm_public_key_fetch() {
    warm_up();
    if read(keys::public_key_missing) {
        schedule_fetch(Duration::ZERO, RETRY_FIRST);
    }
}

fn schedule_fetch(delay: Duration, next_delay: Duration) {
    ic_cdk_timers::set_timer(delay, async move {
        if keys::refresh_public_key(&GlobalState, &rt()).await.is_err() {
            schedule_fetch(next_delay, (next_delay * 2).min(RETRY_MAX));
        }
    });
}

// `hidden`: with `encode_with` the macro would describe the reply as a blob; the interface is
// declared by `interface` below.
#[ic_cdk::query(encode_with = "encode_public_key_reply", hidden = true)]
fn get_vetkd_public_key() -> VaultResult<VetKdPublicKey> {
    read(keys::get_public_key)
}

// Allowed while paused: like downloads, key release is read access for heirs.
#[ic_cdk::update(
    guard = "crate::api::arguments::within_limits",
    encode_with = "encode_derive_reply",
    hidden = true
)]
async fn derive_vetkey(args: DeriveVetKeyArgs) -> VaultResult<EncryptedVetKeyReply> {
    update_async("derive_vetkey", WhenPaused::Allow, |rt, _| async move {
        keys::derive_vetkey(&GlobalState, &rt, args).await
    })
    .await
}

/// The Candid interface of the two endpoints (their entry points are `hidden`).
#[cfg(test)]
#[allow(dead_code)]
mod interface {
    use super::*;

    #[candid::candid_method(query, rename = "get_vetkd_public_key")]
    fn get_vetkd_public_key() -> VaultResult<VetKdPublicKey> {
        unreachable!("interface declaration only")
    }

    #[candid::candid_method(update, rename = "derive_vetkey")]
    fn derive_vetkey(args: DeriveVetKeyArgs) -> VaultResult<EncryptedVetKeyReply> {
        unreachable!("interface declaration only: {}", args.vault_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::VaultStatus;

    #[test]
    fn cached_prefix_replies_equal_the_typed_encoding() {
        let keys: Vec<VaultResult<VetKdPublicKey>> = vec![
            Ok(VetKdPublicKey {
                key_name: "key_1".into(),
                context: keys::CONTEXT.to_vec(),
                public_key: vec![7; 96],
                fetched_at: 42,
            }),
            Err(VaultError::KeyDerivationUnavailable {
                reason: "not yet".into(),
            }),
        ];
        for v in keys {
            assert_eq!(
                encode_public_key_reply(v.clone()),
                candid::encode_one(&v).unwrap()
            );
        }
        let derived: Vec<VaultResult<EncryptedVetKeyReply>> = vec![
            Ok(EncryptedVetKeyReply {
                vault_id: 3,
                share_index: 2,
                identity: serde_bytes::ByteBuf::from(keys::identity(3, 2).to_vec()),
                encrypted_key: serde_bytes::ByteBuf::from(vec![1; 192]),
                key_name: "test_key_1".into(),
            }),
            Err(VaultError::InvalidState {
                current: VaultStatus::Active,
            }),
            Err(VaultError::RateLimited {
                retry_after_secs: 9,
            }),
        ];
        for v in derived {
            assert_eq!(
                encode_derive_reply(v.clone()),
                candid::encode_one(&v).unwrap()
            );
        }
    }
}
