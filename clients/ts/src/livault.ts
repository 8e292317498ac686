// LiVault client for frontends: a small module over the TypeScript bindings that
// `npx icp-bindgen --did-file candid/livault_backend.did --out-dir generated --declarations-typescript`
// generates from the canister's interface (scripts/test.sh regenerates them, type-checks this
// file with `tsc --strict` for the browser, and runs it against the real canister wasm).
//
// Copy it into a frontend next to the generated bindings; it needs `@icp-sdk/core` and
// `@icp-sdk/canisters` (versions in clients/ts/package.json) and nothing from Node:
//
//   import { HttpAgent } from "@icp-sdk/core/agent";
//   import { connect, createVault, startPayment, uploadItem, downloadItem } from "./livault";
//   const agent = await HttpAgent.create({ identity, host });
//   const livault = connect(canisterId, agent);
//   const vault = await createVault(livault, { name: "Family", ... });
//
// Every update answers `Ok` or a typed `Err` (see candid/livault_backend.did); the helpers
// here turn an `Err` into a thrown `LiVaultError` that keeps the typed error.

import type { Agent } from "@icp-sdk/core/agent";
import { Principal } from "@icp-sdk/core/principal";
import { AccountIdentifier, SubAccount } from "@icp-sdk/canisters/ledger/icp";
import { encodeIcrcAccount } from "@icp-sdk/canisters/ledger/icrc";
import {
  createActor,
  ItemKind,
  type CreateVaultArgs,
  type DownloadTicket,
  type ItemView,
  type Livault_backend,
  type PaymentPurpose,
  type PaymentReceipt,
  type PaymentSession,
  type VaultError,
  type VaultView,
} from "../generated/livault_backend";

export { ItemKind };
export type { CreateVaultArgs, ItemView, PaymentReceipt, VaultError, VaultView };

/** The typed bindings of one LiVault canister. */
export type LiVault = Livault_backend;

/**
 * A refused call (nothing changed). `error` is the endpoint's own small error type (e.g.
 * `ReadError` for queries, `VaultsError` for vault updates); every one is a subset of the
 * `VaultError` union, so one `switch (error.__kind__)` on the case name handles them all.
 */
export class LiVaultError extends Error {
  constructor(
    readonly method: string,
    readonly error: VaultError,
  ) {
    super(`${method}: ${error.__kind__} ${describe(error)}`);
    this.name = "LiVaultError";
  }
}

function describe(error: VaultError): string {
  const detail: unknown = (error as Record<string, unknown>)[error.__kind__];
  return detail === null
    ? ""
    : JSON.stringify(detail, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

// Any reply: its `Err` type is a subset of `VaultError` (see candid/livault_backend.did).
type Result<T> = { __kind__: "Ok"; Ok: T } | { __kind__: "Err"; Err: VaultError };

/** The `Ok` value of a reply, or a thrown `LiVaultError`. */
export function ok<T>(method: string, result: Result<T>): T {
  if (result.__kind__ === "Err") {
    throw new LiVaultError(method, result.Err);
  }
  return result.Ok;
}

/** The bindings for `canisterId`, calling through `agent` (an `HttpAgent` in a browser). */
export function connect(canisterId: string, agent: Agent): LiVault {
  return createActor(canisterId, { agent });
}

/** `create_vault`: a Draft vault with its price frozen (SPEC §3, §5). */
export async function createVault(livault: LiVault, args: CreateVaultArgs): Promise<VaultView> {
  return ok("create_vault", await livault.create_vault(args));
}

/** What a wallet needs to pay a session, checked by this client (see `startPayment`). */
export interface PaymentInstructions {
  sessionId: bigint;
  amountE8s: bigint;
  /** Legacy account identifier (64 hex characters): NNS dapp, Plug, exchanges. */
  accountIdentifier: string;
  /** ICRC-1 textual account: Oisy and ICRC wallets. */
  icrc1Account: string;
  expiresAt: bigint;
  session: PaymentSession;
}

/**
 * `init_payment` (SPEC §6). The canister names a subaccount of itself; before a wallet is shown
 * any address, both of its forms are derived here again with the ICP SDK from the canister id
 * and that subaccount, and must equal what the canister sent.
 */
export async function startPayment(
  livault: LiVault,
  canisterId: Principal,
  vaultId: bigint,
  purpose: PaymentPurpose,
): Promise<PaymentInstructions> {
  const session = ok("init_payment", await livault.init_payment(vaultId, purpose));
  const accountIdentifier = AccountIdentifier.fromPrincipal({
    principal: canisterId,
    subAccount: SubAccount.fromBytes(session.subaccount),
  }).toHex();
  const icrc1Account = encodeIcrcAccount({ owner: canisterId, subaccount: session.subaccount });
  if (accountIdentifier !== session.account_identifier) {
    throw new Error(
      `init_payment: account identifier ${session.account_identifier} is not ${accountIdentifier}`,
    );
  }
  if (icrc1Account !== session.icrc1_account) {
    throw new Error(`init_payment: ICRC-1 account ${session.icrc1_account} is not ${icrc1Account}`);
  }
  return {
    sessionId: session.id,
    amountE8s: session.amount_e8s,
    accountIdentifier,
    icrc1Account,
    expiresAt: session.expires_at,
    session,
  };
}

/** The outcome of `verify_payment`: paid, or still waiting for (more) funds. */
export type PaymentCheck =
  | { paid: true; receipt: PaymentReceipt }
  | { paid: false; receivedE8s: bigint; requiredE8s: bigint };

/** `verify_payment`: `NotYetPaid` and `Underpaid` are answers to show, not failures. */
export async function verifyPayment(livault: LiVault, sessionId: bigint): Promise<PaymentCheck> {
  const result = await livault.verify_payment(sessionId);
  if (result.__kind__ === "Ok") {
    return { paid: true, receipt: result.Ok };
  }
  const error = result.Err;
  if (error.__kind__ === "NotYetPaid") {
    return { paid: false, receivedE8s: 0n, requiredE8s: -1n };
  }
  if (error.__kind__ === "Underpaid") {
    return { paid: false, receivedE8s: error.Underpaid.paid, requiredE8s: error.Underpaid.required };
  }
  throw new LiVaultError("verify_payment", error);
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Options of `uploadItem`. */
export interface UploadOptions {
  /** Heir member ids the item is addressed to (default: all heirs). */
  recipients?: number[];
  /** Called after each chunk with the bytes sent so far. */
  onProgress?: (sentBytes: number, totalBytes: number) => void;
}

/**
 * Uploads ciphertext the client already encrypted (SPEC §8): `begin_upload` with its size and
 * SHA-256, `upload_chunk` in order with the chunk size the canister chose, `finish_upload`
 * (the canister checks size and hash before it commits).
 */
export async function uploadItem(
  livault: LiVault,
  vaultId: bigint,
  kind: ItemKind,
  ciphertext: Uint8Array,
  encryptedMeta: Uint8Array,
  options: UploadOptions = {},
): Promise<ItemView> {
  const upload = ok(
    "begin_upload",
    await livault.begin_upload({
      vault_id: vaultId,
      kind,
      size: BigInt(ciphertext.length),
      sha256: await sha256(ciphertext),
      encrypted_meta: encryptedMeta,
      ...(options.recipients ? { recipients: Uint32Array.from(options.recipients) } : {}),
    }),
  );
  for (let index = 0; index < upload.chunk_count; index++) {
    const start = index * upload.chunk_bytes;
    const chunk = ciphertext.subarray(start, Math.min(start + upload.chunk_bytes, ciphertext.length));
    const progress = ok("upload_chunk", await livault.upload_chunk(upload.upload_id, index, chunk));
    options.onProgress?.(Number(progress.received_bytes), ciphertext.length);
  }
  return ok("finish_upload", await livault.finish_upload(upload.upload_id));
}

/**
 * Downloads an item (SPEC §8): a ticket from `request_download`, then every chunk with the
 * `get_download_chunk` query; the bytes must have the ticket's size and SHA-256.
 */
export async function downloadItem(
  livault: LiVault,
  vaultId: bigint,
  itemId: bigint,
): Promise<{ bytes: Uint8Array; ticket: DownloadTicket }> {
  const ticket = ok("request_download", await livault.request_download(vaultId, itemId));
  const bytes = new Uint8Array(Number(ticket.size));
  let offset = 0;
  for (let index = 0; index < ticket.chunk_count; index++) {
    const chunk = ok(
      "get_download_chunk",
      await livault.get_download_chunk(ticket.ticket_id, index),
    );
    if (offset + chunk.length > bytes.length) {
      throw new Error(`get_download_chunk: more than the ticket's ${ticket.size} bytes`);
    }
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  if (offset !== bytes.length) {
    throw new Error(`download: ${offset} bytes, the ticket says ${ticket.size}`);
  }
  if (!sameBytes(await sha256(bytes), ticket.sha256)) {
    throw new Error("download: the SHA-256 differs from the ticket's");
  }
  return { bytes, ticket };
}

/** The canister's principal from its text id. */
export function canisterPrincipal(canisterId: string): Principal {
  return Principal.fromText(canisterId);
}
