//! The host's vetKD emulation against ic-vetkeys, the client library: the public keys it
//! returns are ic-vetkeys' own canister / context derivation of its master public key, the
//! keys it derives pass `EncryptedVetKey::decrypt_and_verify`, and IBE ciphertexts made with
//! its public key decrypt with them (and only with the right identity's key).

use candid::Principal;
use ic_vetkeys::{
    DerivedPublicKey, EncryptedVetKey, IbeCiphertext, IbeIdentity, IbeSeed, MasterPublicKey,
    TransportSecretKey,
};
use local_replica::vetkd;

const CONTEXT: &[u8] = b"LiVault key release v1";

fn canister() -> Principal {
    Principal::from_text("bkyz2-fmaaa-aaaaa-qaaaq-cai").unwrap()
}

fn tsk(n: u8) -> TransportSecretKey {
    TransportSecretKey::from_seed(vec![n; 32]).unwrap()
}

fn seed(n: u8) -> [u8; 64] {
    [n; 64]
}

#[test]
fn public_keys_are_the_ic_derivation_of_the_master_key() {
    for (name, _) in vetkd::FEES {
        let mpk = MasterPublicKey::deserialize(&vetkd::master_public_key(name).unwrap()).unwrap();
        let canister_key = mpk.derive_canister_key(canister().as_slice());
        assert_eq!(
            vetkd::public_key(name, &canister(), b"").unwrap().to_vec(),
            canister_key.serialize(),
            "{name}: an empty context is the canister key"
        );
        assert_eq!(
            vetkd::public_key(name, &canister(), CONTEXT)
                .unwrap()
                .to_vec(),
            canister_key.derive_sub_key(CONTEXT).serialize(),
            "{name}: context key"
        );
    }
}

#[test]
fn derived_keys_pass_decrypt_and_verify_and_only_for_their_input() {
    for (name, _) in vetkd::FEES {
        let dpk =
            DerivedPublicKey::deserialize(&vetkd::public_key(name, &canister(), CONTEXT).unwrap())
                .unwrap();
        let t = tsk(1);
        let input = b"\x00\x00\x00\x00\x00\x00\x00\x07\x02";
        let ek = vetkd::derive_encrypted_key(
            name,
            &canister(),
            CONTEXT,
            input,
            &t.public_key(),
            &seed(9),
        )
        .unwrap();
        let ek = EncryptedVetKey::deserialize(&ek).unwrap();
        let key = ek.decrypt_and_verify(&t, &dpk, input).expect("verifies");
        // Another input, another transport key, another canister's public key: refused.
        assert!(ek.decrypt_and_verify(&t, &dpk, b"other").is_err());
        assert!(ek.decrypt_and_verify(&tsk(2), &dpk, input).is_err());
        let other = Principal::from_slice(&[9; 10]);
        let other_dpk =
            DerivedPublicKey::deserialize(&vetkd::public_key(name, &other, CONTEXT).unwrap())
                .unwrap();
        assert!(ek.decrypt_and_verify(&t, &other_dpk, input).is_err());
        // Deterministic: another encryption of the same vetKey (other transport key and
        // randomness) decrypts to the same key.
        let t3 = tsk(3);
        let again = vetkd::derive_encrypted_key(
            name,
            &canister(),
            CONTEXT,
            input,
            &t3.public_key(),
            &seed(4),
        )
        .unwrap();
        let key2 = EncryptedVetKey::deserialize(&again)
            .unwrap()
            .decrypt_and_verify(&t3, &dpk, input)
            .unwrap();
        assert_eq!(key.signature_bytes(), key2.signature_bytes());
    }
}

#[test]
fn ibe_ciphertexts_for_the_public_key_open_with_the_derived_key() {
    let name = "test_key_1";
    let dpk =
        DerivedPublicKey::deserialize(&vetkd::public_key(name, &canister(), CONTEXT).unwrap())
            .unwrap();
    let msg = b"a 32-byte data key, for example!";
    let alice_id = b"identity-0".to_vec();
    let bob_id = b"identity-2".to_vec();
    let ct = IbeCiphertext::encrypt(
        &dpk,
        &IbeIdentity::from_bytes(&bob_id),
        msg,
        &IbeSeed::from_bytes(&[5; 32]).unwrap(),
    );
    let t = tsk(7);
    let vetkey = |id: &[u8]| {
        let ek =
            vetkd::derive_encrypted_key(name, &canister(), CONTEXT, id, &t.public_key(), &seed(1))
                .unwrap();
        EncryptedVetKey::deserialize(&ek)
            .unwrap()
            .decrypt_and_verify(&t, &dpk, id)
            .unwrap()
    };
    let ct = IbeCiphertext::deserialize(&ct.serialize()).unwrap();
    assert_eq!(ct.decrypt(&vetkey(&bob_id)).unwrap(), msg.to_vec());
    assert!(ct.decrypt(&vetkey(&alice_id)).is_err());
}

#[test]
fn transport_keys_are_validated_and_fees_are_published_ones() {
    let t = tsk(1);
    assert!(vetkd::is_valid_transport_key(&t.public_key()));
    let mut bad = t.public_key();
    bad[20] ^= 0x55;
    assert!(!vetkd::is_valid_transport_key(&bad));
    assert!(!vetkd::is_valid_transport_key(&[0u8; 48]));
    assert!(!vetkd::is_valid_transport_key(&t.public_key()[..47]));
    assert_eq!(vetkd::fee("key_1"), Some(26_153_846_153));
    assert_eq!(vetkd::fee("test_key_1"), Some(10_000_000_000));
    assert_eq!(vetkd::fee("dfx_test_key"), Some(10_000_000_000));
    assert_eq!(vetkd::fee("key_2"), None);
}
