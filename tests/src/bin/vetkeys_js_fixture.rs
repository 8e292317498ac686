//! Writes the bytes a real frontend would get from the canister for the JavaScript client
//! check (`tests/js/vetkeys.test.mjs`, run by scripts/test.sh):
//!
//! alice seals a file for her heir bob with the Rust client (ic-vetkeys), the vault unlocks
//! on the real wasm, bob derives his vetKey for a transport key, downloads the payload and
//! the envelope. The JSON holds what the canister returned (public key, identity, encrypted
//! vetKey, envelope, payload), bob's transport secret key, the original plaintext and what
//! the Rust client derived from them (vetKey, data key, symmetric key) for the JS side to
//! reproduce byte for byte.
//!
//! `cargo run -p livault_tests --bin vetkeys_js_fixture -- target/vetkeys-js/fixture.json`

use livault_backend::domain::keys::{DeriveVetKeyArgs, EncryptedVetKeyReply};
use livault_backend::model::keys::VetKdPublicKey;
use livault_backend::model::records::MemberRole;
use livault_tests::client::{self, Envelope};
use livault_tests::*;
use serde_bytes::ByteBuf;

type R<T> = Result<T, VaultError>;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/vetkeys-js/fixture.json".into());
    let mut env = TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(livault_backend::model::config::Durations {
            timer_interval_secs: 86_400,
            ..Default::default()
        }),
        ..Default::default()
    });
    let (alice, bob) = (user("alice"), user("bob"));
    let v = env.create_vault(alice, "Family").id;
    env.pay_creation(alice, v);
    let now = env.now();
    env.update::<_, R<VaultView>>(
        alice,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: Some(now + 2 * DAY_NS),
                inactivity_days: None,
                request_wait_days: 7,
                required_heirs: 0,
                required_witness: false,
            }),
            post_unlock_days: Some(30),
            audit_retention_days: None,
        },),
    )
    .expect("rules");
    let bob_member = env.join(alice, v, MemberRole::Heir, bob);
    let members: Page<livault_backend::model::member_types::MemberView> = env
        .query::<_, R<_>>(alice, "list_members", (v, PageArgs::default()))
        .expect("members");
    let share = members.items[0].share_index;

    let pk: VetKdPublicKey = env
        .query::<_, R<VetKdPublicKey>>(alice, "get_vetkd_public_key", ())
        .expect("public key");
    let dpk = ic_vetkeys::DerivedPublicKey::deserialize(&pk.public_key).expect("G2 point");
    let plaintext = client::test_bytes("a letter for bob, sealed in alice's browser", 5000);
    let sealed = client::seal_item(&dpk, v, &[share, 0], &plaintext, b"letter.txt", "js");
    let item = env.upload_letter_with_meta(
        alice,
        v,
        &sealed.payload,
        sealed.envelope.encode(),
        Some(vec![bob_member]),
    );
    env.update::<_, R<VaultView>>(alice, "finalize_setup", (v,))
        .expect("finalize");
    env.advance_days(3);

    let tsk = client::transport_key("bob's browser session");
    let reply: EncryptedVetKeyReply = env
        .update::<_, R<EncryptedVetKeyReply>>(
            bob,
            "derive_vetkey",
            (DeriveVetKeyArgs {
                vault_id: v,
                share_index: share,
                transport_public_key: ByteBuf::from(tsk.public_key()),
            },),
        )
        .expect("bob derives after the unlock");
    let ticket: DownloadTicket = env
        .update::<_, R<DownloadTicket>>(bob, "request_download", (v, item))
        .expect("ticket");
    let payload: ByteBuf = env
        .query::<_, R<ByteBuf>>(bob, "get_download_chunk", (ticket.ticket_id, 0u32))
        .expect("chunk");
    let items: Page<ItemView> = env
        .query::<_, R<Page<ItemView>>>(bob, "list_items", (v, PageArgs::default()))
        .expect("items");
    let meta = items.items[0].encrypted_meta.clone().into_vec();

    // The Rust client's results, for the byte-for-byte comparison.
    let vetkey = client::open_vetkey(&tsk, &dpk, &reply.identity, &reply.encrypted_key)
        .expect("Rust: vetKey verifies");
    let envelope = Envelope::decode(&meta).expect("envelope");
    let data_key = client::unwrap_key(&vetkey, &envelope, share).expect("Rust: unwrap");
    let decrypted = client::aes_decrypt(&data_key, &payload).expect("Rust: decrypt");
    assert_eq!(decrypted, plaintext, "Rust client round trip");
    let symmetric = vetkey.derive_symmetric_key(client::SYMMETRIC_DOMAIN, 32);

    let h = |b: &[u8]| hex::encode(b);
    let json = format!(
        r#"{{
  "key_name": "{}",
  "context_hex": "{}",
  "public_key_hex": "{}",
  "share_index": {share},
  "identity_hex": "{}",
  "encrypted_key_hex": "{}",
  "transport_secret_key_be_hex": "{}",
  "transport_public_key_hex": "{}",
  "encrypted_meta_hex": "{}",
  "payload_hex": "{}",
  "plaintext_hex": "{}",
  "symmetric_domain": "{}",
  "rust_vetkey_hex": "{}",
  "rust_data_key_hex": "{}",
  "rust_symmetric_key_hex": "{}"
}}
"#,
        pk.key_name,
        h(&pk.context),
        h(&pk.public_key),
        h(&reply.identity),
        h(&reply.encrypted_key),
        // ic-vetkeys serializes the scalar little-endian, @dfinity/vetkeys big-endian.
        h(&tsk.serialize().into_iter().rev().collect::<Vec<u8>>()),
        h(&tsk.public_key()),
        h(&meta),
        h(&payload),
        h(&plaintext),
        client::SYMMETRIC_DOMAIN,
        h(vetkey.signature_bytes()),
        h(&data_key),
        h(&symmetric),
    );
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).expect("create the fixture directory");
    }
    std::fs::write(&out, json).expect("write the fixture");
    println!(
        "wrote {out}: vault {v}, bob's share {share}, {} B payload",
        payload.len()
    );
}
