//! The management canister's vetKD methods (`vetkd_public_key`, `vetkd_derive_key`) with
//! fixed test master keys, as PocketIC does for its test keys.
//!
//! # Test master keys
//!
//! Each supported key name (curve `bls12_381_g2`) has a fixed, documented master secret key
//!
//! ```text
//! msk(name) = hash_to_scalar("livault-local vetKD test master key " ‖ name,
//!                            "livault-local-vetkd-test-master-key")
//! ```
//!
//! (`hash_to_field` with `expand_message_xmd(SHA-256)`, RFC 9380). Anyone can recompute it:
//! these keys protect nothing and exist for tests and local development only. Their public
//! keys differ from mainnet's and PocketIC's: clients take the public key from the canister.
//!
//! | key name       | fee per `vetkd_derive_key` (cycles) | mainnet subnet of the real key |
//! |----------------|-------------------------------------|--------------------------------|
//! | `key_1`        | 26 153 846 153                      | pzp6e, 34 nodes                |
//! | `test_key_1`   | 10 000 000 000                      | fuqsr, 13 nodes                |
//! | `dfx_test_key` | 10 000 000 000 (a 13-node price)    | local development only         |
//!
//! The fees are the IC's published vetKD fees (see [`FEES`]); `ic0.cost_vetkd_derive_key`
//! reports them, `vetkd_derive_key` rejects a call with fewer cycles attached and keeps
//! exactly the fee (the rest is refunded). Any other key name is rejected.
//!
//! # Derivation, as the IC does it
//!
//! With `mpk = g2·msk` and `H(a, b, dst) = hash_to_scalar(len(a) ‖ a ‖ len(b) ‖ b, dst)`
//! (lengths as 8-byte big-endian):
//!
//! 1. canister key: `csk = msk + H(mpk, canister_id, "ic-vetkd-bls12-381-g2-canister-id")`,
//!    `cpk = g2·csk` (= `mpk + g2·H(..)`);
//! 2. context key: `dsk = csk + H(cpk, context, "ic-vetkd-bls12-381-g2-context")`,
//!    `dpk = g2·dsk` (an empty context keeps the canister key);
//! 3. the vetKey of `input` is the BLS signature `k = dsk · H_G1(dpk ‖ input)` with the
//!    augmented hash to G1 (`BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_AUG_`);
//! 4. encrypted under the transport public key `tpk` (a G1 point) with a random `r`:
//!    `(c1, c2, c3) = (g1·r, g2·r, tpk·r + k)`, compressed: 48 + 96 + 48 = 192 bytes.
//!
//! The public side of 1–2 is ic-vetkeys' `MasterPublicKey::derive_canister_key` and
//! `DerivedPublicKey::derive_sub_key`; the host's tests check that the keys derived here
//! pass `EncryptedVetKey::decrypt_and_verify` and open IBE ciphertexts made for them.

use candid::{CandidType, Deserialize, Principal};
use ic_bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve, HashToField};
use ic_bls12_381::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar};

/// The IC's published fee of one `vetkd_derive_key` per key name, in cycles.
pub const FEES: [(&str, u128); 3] = [
    ("key_1", 26_153_846_153),
    ("test_key_1", 10_000_000_000),
    ("dfx_test_key", 10_000_000_000),
];

/// Domain separator of the test master secret keys.
const MASTER_KEY_DST: &str = "livault-local-vetkd-test-master-key";
const CANISTER_DST: &str = "ic-vetkd-bls12-381-g2-canister-id";
const CONTEXT_DST: &str = "ic-vetkd-bls12-381-g2-context";
const AUG_DST: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_AUG_";

/// The fee of `key_name`, or `None` for an unknown key.
pub fn fee(key_name: &str) -> Option<u128> {
    FEES.iter().find(|(n, _)| *n == key_name).map(|(_, f)| *f)
}

/// Why a vetKD request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VetKdError {
    /// No such key (or not on curve bls12_381_g2).
    #[error("Requested unknown or disabled vetKD key: {0}")]
    UnknownKey(String),
    /// The transport public key is not a valid compressed G1 point.
    #[error("The provided transport public key is invalid.")]
    InvalidTransportKey,
    /// The argument does not decode.
    #[error("invalid argument: {0}")]
    BadArgument(String),
}

fn hash_to_scalar(input: &[u8], dst: &str) -> Scalar {
    let mut out = [Scalar::zero()];
    <Scalar as HashToField>::hash_to_field::<ExpandMsgXmd<sha2::Sha256>>(
        input,
        dst.as_bytes(),
        &mut out,
    );
    out[0]
}

fn hash_two(a: &[u8], b: &[u8], dst: &str) -> Scalar {
    let mut input = Vec::with_capacity(16 + a.len() + b.len());
    input.extend_from_slice(&(a.len() as u64).to_be_bytes());
    input.extend_from_slice(a);
    input.extend_from_slice(&(b.len() as u64).to_be_bytes());
    input.extend_from_slice(b);
    hash_to_scalar(&input, dst)
}

fn g2(s: &Scalar) -> G2Affine {
    G2Affine::from(G2Projective::generator() * s)
}

/// The test master secret key of `key_name`.
fn master_secret(key_name: &str) -> Result<Scalar, VetKdError> {
    if fee(key_name).is_none() {
        return Err(VetKdError::UnknownKey(format!(
            "vetkd:Bls12_381_G2:{key_name}"
        )));
    }
    let msg = format!("livault-local vetKD test master key {key_name}");
    Ok(hash_to_scalar(msg.as_bytes(), MASTER_KEY_DST))
}

/// The master public key of `key_name` (compressed G2).
pub fn master_public_key(key_name: &str) -> Result<[u8; 96], VetKdError> {
    Ok(g2(&master_secret(key_name)?).to_compressed())
}

/// The derived secret key of (`canister`, `context`) and its public key.
fn derived_key(
    key_name: &str,
    canister: &Principal,
    context: &[u8],
) -> Result<(Scalar, G2Affine), VetKdError> {
    let msk = master_secret(key_name)?;
    let mpk = g2(&msk);
    let csk = msk + hash_two(&mpk.to_compressed(), canister.as_slice(), CANISTER_DST);
    let cpk = g2(&csk);
    if context.is_empty() {
        return Ok((csk, cpk));
    }
    let dsk = csk + hash_two(&cpk.to_compressed(), context, CONTEXT_DST);
    Ok((dsk, g2(&dsk)))
}

/// `vetkd_public_key` of `canister` for `context` (compressed G2).
pub fn public_key(
    key_name: &str,
    canister: &Principal,
    context: &[u8],
) -> Result<[u8; 96], VetKdError> {
    Ok(derived_key(key_name, canister, context)?.1.to_compressed())
}

/// Whether `bytes` is a valid transport public key: a compressed G1 point in the prime-order
/// subgroup (the identity is allowed: it yields an unencrypted vetKey, as on the IC).
pub fn is_valid_transport_key(bytes: &[u8]) -> bool {
    parse_transport_key(bytes).is_some()
}

fn parse_transport_key(bytes: &[u8]) -> Option<G1Affine> {
    let arr: &[u8; 48] = bytes.try_into().ok()?;
    G1Affine::from_compressed(arr).into_option()
}

/// `vetkd_derive_key`: the vetKey of `input` for (`canister`, `context`), encrypted under
/// `transport_public_key` with the randomness `r_seed` (64 bytes reduced to a scalar).
pub fn derive_encrypted_key(
    key_name: &str,
    canister: &Principal,
    context: &[u8],
    input: &[u8],
    transport_public_key: &[u8],
    r_seed: &[u8; 64],
) -> Result<[u8; 192], VetKdError> {
    let tpk = parse_transport_key(transport_public_key).ok_or(VetKdError::InvalidTransportKey)?;
    let (dsk, dpk) = derived_key(key_name, canister, context)?;
    let mut msg = Vec::with_capacity(96 + input.len());
    msg.extend_from_slice(&dpk.to_compressed());
    msg.extend_from_slice(input);
    let h = <G1Projective as HashToCurve<ExpandMsgXmd<sha2::Sha256>>>::hash_to_curve(msg, AUG_DST);
    let k = h * dsk;
    let r = Scalar::from_bytes_wide(r_seed);
    let c1 = G1Affine::from(G1Projective::generator() * r);
    let c2 = G2Affine::from(G2Projective::generator() * r);
    let c3 = G1Affine::from(G1Projective::from(tpk) * r + k);
    let mut out = [0u8; 192];
    out[..48].copy_from_slice(&c1.to_compressed());
    out[48..144].copy_from_slice(&c2.to_compressed());
    out[144..].copy_from_slice(&c3.to_compressed());
    Ok(out)
}

// ---------------------------------------------------------------- Candid arguments

/// `vetkd_curve`.
#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VetKdCurve {
    /// The only curve.
    #[serde(rename = "bls12_381_g2")]
    Bls12381G2,
}

/// `vetkd_key_id`.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VetKdKeyId {
    /// Curve.
    pub curve: VetKdCurve,
    /// Key name.
    pub name: String,
}

/// `vetkd_public_key` argument.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct VetKdPublicKeyArgs {
    /// Default: the caller.
    pub canister_id: Option<Principal>,
    /// Derivation context.
    pub context: serde_bytes::ByteBuf,
    /// Master key.
    pub key_id: VetKdKeyId,
}

/// `vetkd_derive_key` argument.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct VetKdDeriveKeyArgs {
    /// Input (the identity).
    pub input: serde_bytes::ByteBuf,
    /// Derivation context.
    pub context: serde_bytes::ByteBuf,
    /// Transport public key (compressed G1).
    pub transport_public_key: serde_bytes::ByteBuf,
    /// Master key.
    pub key_id: VetKdKeyId,
}

#[derive(CandidType)]
struct PublicKeyReply {
    public_key: serde_bytes::ByteBuf,
}

#[derive(CandidType)]
struct DeriveKeyReply {
    encrypted_key: serde_bytes::ByteBuf,
}

/// Handles `vetkd_public_key` from `caller`: the reply bytes.
pub fn handle_public_key(caller: &Principal, arg: &[u8]) -> Result<Vec<u8>, VetKdError> {
    let args: VetKdPublicKeyArgs =
        candid::decode_one(arg).map_err(|e| VetKdError::BadArgument(e.to_string()))?;
    let canister = args.canister_id.unwrap_or(*caller);
    let pk = public_key(&args.key_id.name, &canister, &args.context)?;
    candid::encode_one(PublicKeyReply {
        public_key: serde_bytes::ByteBuf::from(pk.to_vec()),
    })
    .map_err(|e| VetKdError::BadArgument(e.to_string()))
}

/// The key name of a `vetkd_derive_key` argument (to price the call before running it).
pub fn derive_key_name(arg: &[u8]) -> Result<String, VetKdError> {
    let args: VetKdDeriveKeyArgs =
        candid::decode_one(arg).map_err(|e| VetKdError::BadArgument(e.to_string()))?;
    Ok(args.key_id.name)
}

/// Handles `vetkd_derive_key` from `caller`: the reply bytes.
pub fn handle_derive_key(
    caller: &Principal,
    arg: &[u8],
    r_seed: &[u8; 64],
) -> Result<Vec<u8>, VetKdError> {
    let args: VetKdDeriveKeyArgs =
        candid::decode_one(arg).map_err(|e| VetKdError::BadArgument(e.to_string()))?;
    let key = derive_encrypted_key(
        &args.key_id.name,
        caller,
        &args.context,
        &args.input,
        &args.transport_public_key,
        r_seed,
    )?;
    candid::encode_one(DeriveKeyReply {
        encrypted_key: serde_bytes::ByteBuf::from(key.to_vec()),
    })
    .map_err(|e| VetKdError::BadArgument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_transport_keys_are_refused() {
        let c = Principal::from_slice(&[1; 10]);
        assert!(matches!(
            public_key("nope", &c, b"x"),
            Err(VetKdError::UnknownKey(_))
        ));
        let seed = [7u8; 64];
        let good = G1Affine::generator().to_compressed();
        assert!(derive_encrypted_key("key_1", &c, b"x", b"i", &good, &seed).is_ok());
        let mut bad = good;
        bad[10] ^= 1;
        assert_eq!(
            derive_encrypted_key("key_1", &c, b"x", b"i", &bad, &seed),
            Err(VetKdError::InvalidTransportKey)
        );
        assert_eq!(
            derive_encrypted_key("key_1", &c, b"x", b"i", &good[..47], &seed),
            Err(VetKdError::InvalidTransportKey)
        );
        assert!(matches!(
            derive_encrypted_key("nope", &c, b"x", b"i", &good, &seed),
            Err(VetKdError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_differ_by_name_canister_and_context() {
        let a = Principal::from_slice(&[1; 10]);
        let b = Principal::from_slice(&[2; 10]);
        let k = |n, c: &Principal, ctx: &[u8]| public_key(n, c, ctx).unwrap();
        assert_ne!(k("key_1", &a, b"x"), k("test_key_1", &a, b"x"));
        assert_ne!(k("key_1", &a, b"x"), k("key_1", &b, b"x"));
        assert_ne!(k("key_1", &a, b"x"), k("key_1", &a, b"y"));
        assert_eq!(k("key_1", &a, b"x"), k("key_1", &a, b"x"));
    }
}
