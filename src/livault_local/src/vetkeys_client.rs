//! A LiVault client's key handling, written with ic-vetkeys (docs/keys.md): what a frontend
//! does in the browser, here in Rust so the end-to-end tests and the demo run it against the
//! real wasm. Test randomness is deterministic ([`test_bytes`]); a real client draws it from
//! a CSPRNG.
//!
//! - An item's payload is AES-256-GCM under a random 32-byte data key: `nonce (12) ‖
//!   ciphertext ‖ tag (16)`.
//! - The data key is wrapped by vetKeys IBE to the identity `vault id ‖ share index` of every
//!   recipient and of the owner (share 0), with the canister's vetKD public key.
//! - `encrypted_meta` is the envelope [`Envelope`]: `"LVK1"`, the wraps, then the client's
//!   own metadata encrypted under the data key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use ic_vetkeys::{
    DerivedPublicKey, EncryptedVetKey, IbeCiphertext, IbeIdentity, IbeSeed, TransportSecretKey,
    VetKey,
};
use sha2::{Digest, Sha256};

/// The vetKD context of LiVault (the canister's `domain::keys::CONTEXT`).
pub const CONTEXT: &[u8] = livault_backend::domain::keys::CONTEXT;
/// Magic and version of the `encrypted_meta` envelope.
pub const ENVELOPE_MAGIC: &[u8; 4] = b"LVK1";
/// Domain separator for `VetKey::derive_symmetric_key` when a client keeps a key derived from
/// its vetKey (e.g. to cache unwrapped data keys on the device); Rust and JS must agree.
pub const SYMMETRIC_DOMAIN: &str = "livault-vetkey-cache-v1";

/// Deterministic bytes for tests (SHA-256 in counter mode over `label`).
pub fn test_bytes(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut i = 0u32;
    while out.len() < n {
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update(i.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(n);
    out
}

/// The identity `vault id (8 bytes big-endian) ‖ share index`.
pub fn identity(vault_id: u64, share_index: u8) -> Vec<u8> {
    livault_backend::domain::keys::identity(vault_id, share_index).to_vec()
}

/// A transport key pair from a 32-byte seed.
pub fn transport_key(seed_label: &str) -> TransportSecretKey {
    TransportSecretKey::from_seed(test_bytes(seed_label, 32)).expect("32-byte seed")
}

/// AES-256-GCM: `nonce ‖ ciphertext ‖ tag`.
pub fn aes_encrypt(key: &[u8], nonce: &[u8; 12], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    let ct = cipher
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .expect("AES-GCM encrypt");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Inverse of [`aes_encrypt`].
pub fn aes_decrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() < 28 {
        return Err("ciphertext too short".into());
    }
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?;
    cipher
        .decrypt(Nonce::from_slice(&data[..12]), &data[12..])
        .map_err(|_| "AES-GCM authentication failed".to_string())
}

/// The `encrypted_meta` of an item: the data key wrapped per share index, and the client's
/// metadata encrypted under the data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// `(share index, IBE ciphertext of the data key)`.
    pub wraps: Vec<(u8, Vec<u8>)>,
    /// AES-GCM of the client's metadata (title, file name ...) under the data key.
    pub sealed_meta: Vec<u8>,
}

impl Envelope {
    /// `"LVK1" ‖ n ‖ n × (share ‖ len u16 BE ‖ wrap) ‖ sealed_meta`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = ENVELOPE_MAGIC.to_vec();
        out.push(self.wraps.len() as u8);
        for (share, wrap) in &self.wraps {
            out.push(*share);
            out.extend_from_slice(&(wrap.len() as u16).to_be_bytes());
            out.extend_from_slice(wrap);
        }
        out.extend_from_slice(&self.sealed_meta);
        out
    }

    /// Parses [`Envelope::encode`]'s format.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
        let rest = bytes
            .strip_prefix(ENVELOPE_MAGIC.as_slice())
            .ok_or("not a LiVault envelope")?;
        let (&n, mut rest) = rest.split_first().ok_or("truncated envelope")?;
        let mut wraps = Vec::new();
        for _ in 0..n {
            if rest.len() < 3 {
                return Err("truncated envelope".into());
            }
            let share = rest[0];
            let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
            let wrap = rest.get(3..3 + len).ok_or("truncated envelope")?.to_vec();
            wraps.push((share, wrap));
            rest = &rest[3 + len..];
        }
        Ok(Envelope {
            wraps,
            sealed_meta: rest.to_vec(),
        })
    }

    /// The wrap for `share`.
    pub fn wrap_for(&self, share: u8) -> Option<&[u8]> {
        self.wraps
            .iter()
            .find(|(s, _)| *s == share)
            .map(|(_, w)| w.as_slice())
    }
}

/// An item as the owner's client prepares it.
pub struct SealedItem {
    /// The item's random data key (never leaves the client in clear).
    pub data_key: Vec<u8>,
    /// What is uploaded: AES-256-GCM of the plaintext under the data key.
    pub payload: Vec<u8>,
    /// What goes into `encrypted_meta`.
    pub envelope: Envelope,
}

/// Encrypts `plaintext` and its metadata under a fresh data key (from `label`) and wraps the
/// key by IBE to `shares` of `vault_id` under the vetKD public key `dpk`.
pub fn seal_item(
    dpk: &DerivedPublicKey,
    vault_id: u64,
    shares: &[u8],
    plaintext: &[u8],
    meta: &[u8],
    label: &str,
) -> SealedItem {
    let data_key = test_bytes(&format!("{label}/data-key"), 32);
    let nonce: [u8; 12] = test_bytes(&format!("{label}/nonce"), 12)
        .try_into()
        .unwrap();
    let meta_nonce: [u8; 12] = test_bytes(&format!("{label}/meta-nonce"), 12)
        .try_into()
        .unwrap();
    let payload = aes_encrypt(&data_key, &nonce, plaintext);
    let wraps = shares
        .iter()
        .map(|s| (*s, wrap_key(dpk, vault_id, *s, &data_key, label)))
        .collect();
    SealedItem {
        envelope: Envelope {
            wraps,
            sealed_meta: aes_encrypt(&data_key, &meta_nonce, meta),
        },
        data_key,
        payload,
    }
}

/// The IBE ciphertext of `data_key` for identity (`vault_id`, `share`).
pub fn wrap_key(
    dpk: &DerivedPublicKey,
    vault_id: u64,
    share: u8,
    data_key: &[u8],
    label: &str,
) -> Vec<u8> {
    let seed = IbeSeed::from_bytes(&test_bytes(&format!("{label}/ibe-seed/{share}"), 32))
        .expect("32-byte seed");
    IbeCiphertext::encrypt(
        dpk,
        &IbeIdentity::from_bytes(&identity(vault_id, share)),
        data_key,
        &seed,
    )
    .serialize()
}

/// Decrypts and verifies an encrypted vetKey returned by `derive_vetkey`.
pub fn open_vetkey(
    tsk: &TransportSecretKey,
    dpk: &DerivedPublicKey,
    identity: &[u8],
    encrypted_key: &[u8],
) -> Result<VetKey, String> {
    EncryptedVetKey::deserialize(encrypted_key)?.decrypt_and_verify(tsk, dpk, identity)
}

/// Unwraps the data key of `envelope` for `share` with its vetKey.
pub fn unwrap_key(vetkey: &VetKey, envelope: &Envelope, share: u8) -> Result<Vec<u8>, String> {
    let wrap = envelope.wrap_for(share).ok_or("no wrap for this share")?;
    IbeCiphertext::deserialize(wrap)?.decrypt(vetkey)
}
