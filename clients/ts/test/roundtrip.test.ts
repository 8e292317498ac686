// Round trip of the TypeScript bindings through the real canister wasm: every argument is
// encoded in Node by the IDL that @icp-sdk/bindgen generated from candid/livault_backend.did,
// executed by the compiled wasm on the local runner (`livault-local call --type raw
// --output raw`: Candid bytes in, Candid bytes out), and every reply is decoded by the same
// IDL. The calls are made by the frontend-style client module (src/livault.ts), unchanged.
//
// Needs (scripts/test.sh sets them): LIVAULT_LOCAL_BIN, the livault-local binary, and
// LIVAULT_WASM, the canister wasm.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { IDL } from "@icp-sdk/core/candid";
import type { ActorSubclass } from "@icp-sdk/core/agent";
import { idlFactory, type _SERVICE } from "../generated/declarations/livault_backend.did";
import { Livault_backend, Tier, VaultStatus, PaymentSessionStatus } from "../generated/livault_backend";
import {
  canisterPrincipal,
  createVault,
  downloadItem,
  ItemKind,
  LiVaultError,
  startPayment,
  uploadItem,
  verifyPayment,
  type LiVault,
} from "../src/livault";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (scripts/test.sh sets it; see the header of this file)`);
  }
  return value;
}

const BIN = required("LIVAULT_LOCAL_BIN");
const WASM = required("LIVAULT_WASM");

/** Runs `livault-local --state DIR --quiet ARGS...`; fails on a non-zero exit. */
function livaultLocal(state: string, args: string[], input?: string): string {
  const run = spawnSync(BIN, ["--state", state, "--quiet", ...args], {
    input,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error) {
    throw run.error;
  }
  if (run.status !== 0) {
    throw new Error(`livault-local ${args.slice(0, 6).join(" ")} failed: ${run.stderr}`);
  }
  return run.stdout.trim();
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

function fromHex(hex: string): Uint8Array {
  assert.match(hex, /^([0-9a-f]{2})+$/, "livault-local --output raw prints hex");
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/**
 * An actor over the generated IDL whose transport is the local runner: what
 * `Actor.createActor(idlFactory, { agent })` does over HTTP, minus the HTTP.
 */
function localActor(state: string, identity: string): ActorSubclass<_SERVICE> {
  const service = idlFactory({ IDL }) as IDL.ServiceClass;
  const methods: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const [name, func] of service._fields) {
    const query = func.annotations.includes("query") || func.annotations.includes("composite_query");
    methods[name] = async (...args: unknown[]) => {
      const arg = IDL.encode(func.argTypes, args);
      const reply = livaultLocal(
        state,
        [
          "call",
          "--as",
          identity,
          query ? "--query" : "--update",
          "--type",
          "raw",
          "--argument-file",
          "-",
          "--output",
          "raw",
          name,
        ],
        toHex(arg),
      );
      const values = IDL.decode(func.retTypes, fromHex(reply));
      return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
    };
  }
  return methods as unknown as ActorSubclass<_SERVICE>;
}

/** Deterministic "ciphertext" of `length` bytes. */
function payload(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    bytes[i] = (i * 131 + (i >> 9)) & 0xff;
  }
  return bytes;
}

test("the generated bindings and the client module drive the real wasm", async () => {
  const dir = mkdtempSync(join(tmpdir(), "livault-ts-"));
  const state = join(dir, "state");
  try {
    const canisterId = livaultLocal(state, ["install", "--wasm", WASM, "--argument", "(null)"]);
    const canister = canisterPrincipal(canisterId);
    livaultLocal(state, ["identity", "new", "alice"]);
    const livault: LiVault = new Livault_backend(localActor(state, "alice"));

    // A query with nested records, vectors and variants.
    const plans = await livault.get_plans();
    assert.ok(plans.tiers.some((t) => t.tier === Tier.Standard && t.max_heirs === 3));

    // create_vault: an Ok reply, and a typed Err for bad input (nothing created).
    const plan = { tier: Tier.Standard, heir_slots: 2, witness_slot: true };
    const vault = await createVault(livault, { name: "Round trip", plan, owner_age: 45 });
    assert.equal(vault.status, VaultStatus.Draft);
    assert.equal(vault.price_e8s, 715_000_000n);
    assert.equal(vault.name, "Round trip");
    await assert.rejects(
      createVault(livault, { name: "", plan, owner_age: 45 }),
      (e: unknown) =>
        e instanceof LiVaultError &&
        e.error.__kind__ === "InvalidInput" &&
        e.error.InvalidInput.field === "name",
    );

    // A payment session: startPayment derives the account identifier and the ICRC-1 text
    // with the SDK's AccountIdentifier and encodeIcrcAccount and compares them with the
    // canister's (it throws on a difference).
    const pay = await startPayment(livault, canister, vault.id, { __kind__: "Create", Create: null });
    assert.equal(pay.amountE8s, 715_000_000n);
    assert.equal(pay.session.status, PaymentSessionStatus.Open);
    assert.equal(pay.session.subaccount.length, 32);
    assert.match(pay.accountIdentifier, /^[0-9a-f]{64}$/);
    assert.ok(pay.icrc1Account.startsWith(`${canisterId}-`), pay.icrc1Account);
    assert.deepEqual(await verifyPayment(livault, pay.sessionId), {
      paid: false,
      receivedE8s: 0n,
      requiredE8s: -1n,
    });

    // A wallet pays the account identifier on the runner's ICP ledger model.
    livaultLocal(state, ["ledger", "fund", "alice", "800000000"]);
    livaultLocal(state, [
      "ledger",
      "transfer",
      "--as",
      "alice",
      "--to",
      pay.accountIdentifier,
      "--amount",
      pay.amountE8s.toString(),
    ]);
    const check = await verifyPayment(livault, pay.sessionId);
    assert.ok(check.paid, "the payment is confirmed");
    assert.equal(check.receipt.vault_status, VaultStatus.NeedSetup);
    assert.equal(check.receipt.session.status, PaymentSessionStatus.Completed);

    // An upload in two chunks (the canister's chunk size is 1 MiB) and its download.
    const ciphertext = payload(1024 * 1024 + 4096);
    const sent: number[] = [];
    const item = await uploadItem(
      livault,
      vault.id,
      ItemKind.File,
      ciphertext,
      new Uint8Array([0xe1, 0xe2, 0xe3]),
      { onProgress: (bytes) => sent.push(bytes) },
    );
    assert.deepEqual(sent, [1024 * 1024, ciphertext.length]);
    assert.equal(item.size, BigInt(ciphertext.length));
    assert.equal(item.chunk_count, 2);
    assert.equal(item.kind, ItemKind.File);
    assert.deepEqual(item.encrypted_meta, new Uint8Array([0xe1, 0xe2, 0xe3]));
    const sha = createHash("sha256").update(ciphertext).digest();
    assert.equal(toHex(item.sha256), sha.toString("hex"));

    const { bytes, ticket } = await downloadItem(livault, vault.id, item.item_id);
    assert.equal(ticket.chunk_count, 2);
    assert.deepEqual(bytes, ciphertext);

    // An out-of-order chunk is a typed error carrying the expected index.
    const upload = await livault.begin_upload({
      vault_id: vault.id,
      kind: ItemKind.Letter,
      size: 3n,
      sha256: new Uint8Array(createHash("sha256").update("abc").digest()),
      encrypted_meta: new Uint8Array([1]),
    });
    assert.equal(upload.__kind__, "Ok");
    if (upload.__kind__ === "Ok") {
      const wrong = await livault.upload_chunk(upload.Ok.upload_id, 1, new Uint8Array([97, 98, 99]));
      assert.deepEqual(wrong, {
        __kind__: "Err",
        Err: { __kind__: "ChunkOutOfOrder", ChunkOutOfOrder: { expected: 0 } },
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
