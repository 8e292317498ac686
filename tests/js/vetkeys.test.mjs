// LiVault's frontend key handling with @dfinity/vetkeys in node, on the bytes the canister
// returned (docs/keys.md). The fixture comes from `cargo run -p livault_tests --bin
// vetkeys_js_fixture` (scripts/test.sh runs both): the vetKD public key, bob's identity and
// encrypted vetKey, the item's envelope and payload, bob's transport secret key, and what the
// Rust client (ic-vetkeys) derived from the same bytes.
//
//   VETKEYS_FIXTURE=target/vetkeys-js/fixture.json node --test tests/js/vetkeys.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import {
  DerivedPublicKey,
  EncryptedVetKey,
  IbeCiphertext,
  TransportSecretKey,
} from "@dfinity/vetkeys";

const path = process.env.VETKEYS_FIXTURE ?? "target/vetkeys-js/fixture.json";
const fx = JSON.parse(readFileSync(path, "utf8"));
const bytes = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
const hex = (u8) => Buffer.from(u8).toString("hex");

// The envelope of docs/keys.md: "LVK1" ‖ n ‖ n × (share ‖ len u16 BE ‖ IBE ciphertext) ‖ meta.
function parseEnvelope(meta) {
  assert.equal(new TextDecoder().decode(meta.subarray(0, 4)), "LVK1", "envelope magic");
  const wraps = new Map();
  let at = 5;
  for (let i = 0; i < meta[4]; i++) {
    const share = meta[at];
    const len = (meta[at + 1] << 8) | meta[at + 2];
    wraps.set(share, meta.subarray(at + 3, at + 3 + len));
    at += 3 + len;
  }
  return { wraps, sealedMeta: meta.subarray(at) };
}

// AES-256-GCM, nonce (12) ‖ ciphertext ‖ tag (16), with WebCrypto as in a browser.
async function aesDecrypt(key, data) {
  const k = await webcrypto.subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
  const pt = await webcrypto.subtle.decrypt(
    { name: "AES-GCM", iv: data.subarray(0, 12) },
    k,
    data.subarray(12),
  );
  return new Uint8Array(pt);
}

const dpk = DerivedPublicKey.deserialize(bytes(fx.public_key_hex));
// The same transport secret key as bob's Rust session (ic-vetkeys serializes the scalar
// little-endian, @dfinity/vetkeys big-endian: the fixture holds the big-endian form).
const tsk = TransportSecretKey.deserialize(bytes(fx.transport_secret_key_be_hex));
const identity = bytes(fx.identity_hex);
const encryptedKey = EncryptedVetKey.deserialize(bytes(fx.encrypted_key_hex));

test("the transport key is the one bob's derivation was encrypted for", () => {
  assert.equal(hex(tsk.publicKeyBytes()), fx.transport_public_key_hex);
});

test("the context and identity are LiVault's", () => {
  assert.equal(new TextDecoder().decode(bytes(fx.context_hex)), "LiVault key release v1");
  assert.equal(identity.length, 9);
  assert.equal(identity[8], fx.share_index);
});

test("the encrypted vetKey decrypts and verifies against the canister's public key", () => {
  const vetKey = encryptedKey.decryptAndVerify(tsk, dpk, identity);
  assert.equal(hex(vetKey.signatureBytes()), fx.rust_vetkey_hex, "same vetKey as the Rust client");
});

test("it does not verify for another identity or another transport key", () => {
  const other = identity.slice();
  other[8] ^= 1;
  assert.throws(() => encryptedKey.decryptAndVerify(tsk, dpk, other));
  assert.throws(() => encryptedKey.decryptAndVerify(TransportSecretKey.random(), dpk, identity));
});

test("bob unwraps the data key and decrypts the payload: the original plaintext", async () => {
  const vetKey = encryptedKey.decryptAndVerify(tsk, dpk, identity);
  const { wraps, sealedMeta } = parseEnvelope(bytes(fx.encrypted_meta_hex));
  assert.ok(wraps.has(fx.share_index), "a wrap for bob's share");
  assert.ok(wraps.has(0), "a wrap for the owner");
  const dataKey = IbeCiphertext.deserialize(wraps.get(fx.share_index)).decrypt(vetKey);
  assert.equal(hex(dataKey), fx.rust_data_key_hex, "same data key as the Rust client");
  const plaintext = await aesDecrypt(dataKey, bytes(fx.payload_hex));
  assert.equal(hex(plaintext), fx.plaintext_hex, "decrypted payload equals the original");
  const meta = await aesDecrypt(dataKey, sealedMeta);
  assert.equal(new TextDecoder().decode(meta), "letter.txt");
  // The owner's wrap is not bob's: his vetKey does not open it.
  assert.throws(() => IbeCiphertext.deserialize(wraps.get(0)).decrypt(vetKey));
});

test("Rust and JS derive the same symmetric key from the vetKey", () => {
  const vetKey = encryptedKey.decryptAndVerify(tsk, dpk, identity);
  const key = vetKey.deriveSymmetricKey(fx.symmetric_domain, 32);
  assert.equal(hex(key), fx.rust_symmetric_key_hex);
});
