//! Content benchmark on the real canister wasm (run with `scripts/bench.sh`).
//!
//! Uploads a 24 MiB payload in 1 MiB chunks, downloads it back, and prints from the host's
//! instruction counts (`Reply.instructions`):
//! - instructions per byte of `upload_chunk` and `get_download_chunk`;
//! - dirty stable bytes per uploaded byte: 4 KiB pages whose content changed, found by
//!   diffing the host's stable memory before and after each call (a page rewritten with
//!   identical bytes is not counted; the host does not expose its write journal);
//! - stable bytes per stored byte: growth of stable memory over the whole upload, and the
//!   content layout's own footprint (pages handed out + chunk index entries);
//!
//! Side by side with a baseline measured in the same run: `tests/bench/raw_stable.wat`, which
//! only copies the argument and `stable64_write`s it (and `stable64_read` + reply for reads).
//!
//! The vault reaches `NeedSetup` through a real payment on the host's ledger model
//! (`TestEnv::pay_creation`), so the shipped wasm is what is measured.

use candid::Principal;
use livault_tests::*;
use local_replica::{Host, HostConfig};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
const CHUNKS: usize = 24;

type R<T> = Result<T, VaultError>;

fn dirty_pages(before: &[u8], after: &[u8]) -> u64 {
    const P: usize = 4096;
    let mut n = 0;
    for (i, page) in after.chunks(P).enumerate() {
        // Pages past the old end were zero: they count only if written non-zero.
        let changed = match before.get(i * P..i * P + page.len()) {
            Some(old) => old != page,
            None => page.iter().any(|b| *b != 0),
        };
        if changed {
            n += 1;
        }
    }
    n
}

fn payload(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn make_writable(env: &mut TestEnv, owner: Principal, vault: VaultId) {
    env.pay_creation(owner, vault);
}

struct Stats {
    up_instr: u64,
    up_dirty: u64,
    down_instr: u64,
    bytes: u64,
}

fn livault(data: &[u8]) -> (Stats, u64, u64, u64) {
    let mut env = TestEnv::new();
    let owner = user("bench-owner");
    let vault: R<VaultView> = env.update(
        owner,
        "create_vault",
        (CreateVaultArgs {
            name: "bench".into(),
            plan: PlanSelection {
                tier: Tier::Premium,
                heir_slots: 1,
                witness_slot: false,
            },
            owner_age: 30,
            idempotency_key: None,
        },),
    );
    let vault = vault.unwrap().id;
    make_writable(&mut env, owner, vault);
    let up: R<UploadView> = env.update(
        owner,
        "begin_upload",
        (BeginUploadArgs {
            vault_id: vault,
            kind: ItemKind::File,
            size: data.len() as u64,
            sha256: ByteBuf::from(Sha256::digest(data).to_vec()),
            encrypted_meta: ByteBuf::from(vec![1; 200]),
            recipients: None,
            replaces: None,
            idempotency_key: None,
        },),
    );
    let up = up.unwrap();
    assert_eq!(up.chunk_bytes as usize, MIB);
    let stable_before = env.host.status().unwrap().stable_memory_bytes;
    let mut s = Stats {
        up_instr: 0,
        up_dirty: 0,
        down_instr: 0,
        bytes: data.len() as u64,
    };
    for (i, chunk) in data.chunks(MIB).enumerate() {
        let before = env.host.stable_memory().unwrap().to_vec();
        let arg =
            candid::encode_args((up.upload_id, i as u32, ByteBuf::from(chunk.to_vec()))).unwrap();
        // Stay under the per-principal rate limit (20 burst, 1/s refill).
        env.advance(std::time::Duration::from_secs(2));
        let reply = env
            .host
            .update(owner, "upload_chunk", arg)
            .expect("upload_chunk");
        let r: R<UploadView> = candid::decode_one(&reply.bytes).unwrap();
        r.unwrap();
        s.up_instr += reply.instructions;
        s.up_dirty += dirty_pages(&before, env.host.stable_memory().unwrap()) * 4096;
    }
    let finish = candid::encode_one(up.upload_id).unwrap();
    let reply = env.host.update(owner, "finish_upload", finish).unwrap();
    let item: R<ItemView> = candid::decode_one(&reply.bytes).unwrap();
    let item = item.unwrap();
    let finish_instr = reply.instructions;
    let stable_growth = env.host.status().unwrap().stable_memory_bytes - stable_before;
    let ticket: R<DownloadTicket> = env.update(owner, "request_download", (vault, item.item_id));
    let ticket = ticket.unwrap();
    let mut back = Vec::with_capacity(data.len());
    for i in 0..ticket.chunk_count {
        env.advance(std::time::Duration::from_secs(2));
        let arg = candid::encode_args((ticket.ticket_id, i)).unwrap();
        let reply = env.host.query(owner, "get_download_chunk", arg).unwrap();
        let r: R<ByteBuf> = candid::decode_one(&reply.bytes).unwrap();
        back.extend_from_slice(&r.unwrap());
        s.down_instr += reply.instructions;
    }
    assert!(back == data, "downloaded bytes differ");
    // The layout's own footprint: pages handed out (4 KiB each) + chunk index values
    // (4 + 16 bytes per extent) + keys (12 bytes), for this one item.
    let pages = (data.len() as u64).div_ceil(4096);
    let index = CHUNKS as u64 * (12 + 4 + 16);
    (s, stable_growth, pages * 4096 + index, finish_instr)
}

fn baseline(data: &[u8]) -> Stats {
    let wasm = wat::parse_str(include_str!("../../bench/raw_stable.wat")).expect("wat");
    let mut host = Host::new(HostConfig::default());
    let me = user("bench-baseline");
    host.install(&wasm, Vec::new(), me)
        .expect("install baseline");
    let mut s = Stats {
        up_instr: 0,
        up_dirty: 0,
        down_instr: 0,
        bytes: data.len() as u64,
    };
    for chunk in data.chunks(MIB) {
        let before = host.stable_memory().unwrap().to_vec();
        let reply = host.update(me, "write", chunk.to_vec()).expect("write");
        s.up_instr += reply.instructions;
        s.up_dirty += dirty_pages(&before, host.stable_memory().unwrap()) * 4096;
    }
    let mut back = Vec::new();
    for (i, chunk) in data.chunks(MIB).enumerate() {
        let mut arg = ((i * MIB) as u64).to_le_bytes().to_vec();
        arg.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        let reply = host.query(me, "read", arg).expect("read");
        s.down_instr += reply.instructions;
        back.extend_from_slice(&reply.bytes);
    }
    assert!(back == data, "baseline read differs");
    s
}

fn main() {
    let data = payload(CHUNKS * MIB);
    let base = baseline(&data);
    let (lv, growth, layout, finish_instr) = livault(&data);
    let per = |x: u64, s: &Stats| x as f64 / s.bytes as f64;
    println!(
        "content benchmark: {CHUNKS} x 1 MiB chunks ({} bytes), instructions from the host",
        lv.bytes
    );
    println!();
    println!("| metric | LiVault | raw baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    let up = per(lv.up_instr, &lv);
    let up_base = per(base.up_instr, &base);
    println!(
        "| upload_chunk instructions / byte | {up:.3} | {up_base:.3} | {:.2}x | <= 5, <= 1.5x |",
        up / up_base
    );
    let down = per(lv.down_instr, &lv);
    let down_base = per(base.down_instr, &base);
    println!(
        "| get_download_chunk instructions / byte | {down:.3} | {down_base:.3} | {:.2}x | <= 2 |",
        down / down_base
    );
    println!(
        "| dirty stable bytes / uploaded byte (4 KiB page diff) | {:.4} | {:.4} | {:.3}x | |",
        per(lv.up_dirty, &lv),
        per(base.up_dirty, &base),
        per(lv.up_dirty, &lv) / per(base.up_dirty, &base)
    );
    println!(
        "| stable memory growth / stored byte (whole upload) | {:.4} | 1.0000 | | overhead <= 3% |",
        per(growth, &lv)
    );
    println!(
        "| layout footprint / stored byte (pages + index) | {:.4} | 1.0000 | | overhead <= 3% |",
        per(layout, &lv)
    );
    println!();
    println!(
        "finish_upload: {finish_instr} instructions for {} bytes (no re-read: hash is resumable)",
        lv.bytes
    );
    println!(
        "upload_chunk per 1 MiB call: LiVault {} / baseline {} instructions",
        lv.up_instr / CHUNKS as u64,
        base.up_instr / CHUNKS as u64
    );
}
