//! End-to-end tests of encrypted content on the real wasm: uploads of every shape, typed
//! errors that change nothing, resume across an upgrade, delete/replace, downloads.
//!
//! Vaults are paid through the host's ledger model (`TestEnv::pay_creation`). Heir download
//! rules (unlock, daily allowance, recipients) are also covered natively in `domain::content`.

use candid::Principal;
use livault_tests::*;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

type R<T> = Result<T, VaultError>;

const MIB: usize = 1024 * 1024;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1] ^ seed)
        .collect()
}

fn sha(b: &[u8]) -> ByteBuf {
    ByteBuf::from(Sha256::digest(b).to_vec())
}

struct Ctx {
    env: TestEnv,
    owner: Principal,
    vault: VaultId,
}

/// A paid Standard vault (10 MiB) in NeedSetup.
fn ctx() -> Ctx {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let vault = env.create_vault(owner, "Family").id;
    let v = env.pay_creation(owner, vault);
    assert_eq!(v.status, VaultStatus::NeedSetup);
    Ctx { env, owner, vault }
}

impl Ctx {
    fn begin(&mut self, kind: ItemKind, size: u64, sha256: ByteBuf) -> R<UploadView> {
        self.begin_full(kind, size, sha256, None, None)
    }
    fn begin_full(
        &mut self,
        kind: ItemKind,
        size: u64,
        sha256: ByteBuf,
        replaces: Option<u64>,
        key: Option<&str>,
    ) -> R<UploadView> {
        let args = BeginUploadArgs {
            vault_id: self.vault,
            kind,
            size,
            sha256,
            encrypted_meta: ByteBuf::from(vec![42; 4096]),
            recipients: None,
            replaces,
            idempotency_key: key.map(str::to_string),
        };
        self.env.update(self.owner, "begin_upload", (args,))
    }
    fn chunk(&mut self, who: Principal, up: u64, i: u32, b: &[u8]) -> R<UploadView> {
        // Stay under the per-principal rate limit (20 burst, 1/s refill).
        self.env.advance(std::time::Duration::from_secs(1));
        self.env
            .update(who, "upload_chunk", (up, i, ByteBuf::from(b.to_vec())))
    }
    fn finish(&mut self, up: u64) -> R<ItemView> {
        self.env.update(self.owner, "finish_upload", (up,))
    }
    fn put(&mut self, kind: ItemKind, payload: &[u8]) -> ItemView {
        let up = self
            .begin(kind, payload.len() as u64, sha(payload))
            .unwrap();
        for (i, c) in payload.chunks(up.chunk_bytes as usize).enumerate() {
            let owner = self.owner;
            self.chunk(owner, up.upload_id, i as u32, c).unwrap();
        }
        self.finish(up.upload_id).unwrap()
    }
    fn download(&mut self, item: u64) -> Vec<u8> {
        let t: R<DownloadTicket> =
            self.env
                .update(self.owner, "request_download", (self.vault, item));
        let t = t.unwrap();
        let mut out = Vec::new();
        for i in 0..t.chunk_count {
            let c: R<ByteBuf> = self
                .env
                .query(self.owner, "get_download_chunk", (t.ticket_id, i));
            out.extend_from_slice(&c.unwrap());
        }
        assert_eq!(sha(&out), t.sha256);
        assert_eq!(out.len() as u64, t.size);
        out
    }
    fn vault(&mut self) -> VaultView {
        let owner = self.owner;
        self.env.get_vault(owner, self.vault).unwrap()
    }
    fn items(&mut self) -> Vec<ItemView> {
        let p: R<Page<ItemView>> =
            self.env
                .query(self.owner, "list_items", (self.vault, PageArgs::default()));
        p.unwrap().items
    }
    fn fingerprint(&mut self) -> String {
        let v = self.vault();
        let items = self.items();
        format!(
            "{} {} {} {:?}",
            v.item_count,
            v.storage_used_bytes,
            v.status.name(),
            items
        )
    }
}

#[test]
fn uploads_of_every_shape_download_identical() {
    let mut c = ctx();
    let shapes: Vec<(ItemKind, Vec<u8>)> = vec![
        (ItemKind::File, data(1, 1)),
        (ItemKind::File, data(MIB, 2)),
        (ItemKind::File, data(10 * MIB + MIB / 2, 3)),
        (ItemKind::Letter, b"sealed letter ciphertext".to_vec()),
        (ItemKind::Password, data(700, 5)),
    ];
    let mut total = 0u64;
    for (kind, payload) in &shapes {
        if payload.len() > 5 * MIB {
            continue; // the 10.5-chunk upload gets its own Premium vault below
        }
        let item = c.put(*kind, payload);
        assert_eq!(item.kind, *kind);
        assert_eq!(item.encrypted_meta.len(), 4096);
        assert_eq!(&c.download(item.item_id), payload);
        total += payload.len() as u64;
    }
    let v = c.vault();
    assert_eq!(v.item_count, 4);
    assert_eq!(v.storage_used_bytes, total);
    assert!(v.setup_missing.contains(&"heir".to_string()));
    assert!(!v.setup_missing.contains(&"content".to_string()));

    // 10.5 chunks needs more than the 10 MiB of Standard: a Premium vault.
    let mut env = TestEnv::new();
    let owner = user("owner");
    let vault: R<VaultView> = env.update(
        owner,
        "create_vault",
        (CreateVaultArgs {
            name: "big".into(),
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
    env.pay_creation(owner, vault);
    let mut big = Ctx { env, owner, vault };
    let payload = &shapes[2].1;
    let item = big.put(ItemKind::File, payload);
    assert_eq!(item.chunk_count, 11);
    assert_eq!(&big.download(item.item_id), payload);
}

#[test]
fn empty_payload_is_refused() {
    let mut c = ctx();
    let before = c.fingerprint();
    let r = c.begin(ItemKind::Letter, 0, sha(b""));
    assert!(matches!(r, Err(VaultError::InvalidInput { ref field, .. }) if field == "size"));
    assert_eq!(c.fingerprint(), before);
}

#[test]
fn bad_uploads_get_typed_errors_and_commit_nothing() {
    let mut c = ctx();
    let owner = c.owner;
    let payload = data(2 * MIB + 10, 7);
    let up = c
        .begin(ItemKind::File, payload.len() as u64, sha(&payload))
        .unwrap()
        .upload_id;
    c.chunk(owner, up, 0, &payload[..MIB]).unwrap();
    let before = c.fingerprint();
    assert_eq!(
        c.chunk(owner, up, 2, &payload[2 * MIB..]),
        Err(VaultError::ChunkOutOfOrder { expected: 1 })
    );
    assert_eq!(
        c.chunk(owner, up, 0, &payload[MIB..2 * MIB]),
        Err(VaultError::ChunkOutOfOrder { expected: 1 })
    );
    // Identical repeat: accepted.
    assert_eq!(
        c.chunk(owner, up, 0, &payload[..MIB]).unwrap().next_index,
        1
    );
    // Someone else's upload id.
    let stranger = user("stranger");
    assert_eq!(
        c.chunk(stranger, up, 1, &payload[MIB..2 * MIB]),
        Err(VaultError::NotAuthorized)
    );
    // Over the maximum chunk: refused by the canister (argument within the ingress filter's
    // allowance) ...
    assert!(matches!(
        c.chunk(owner, up, 1, &data(MIB + 1, 0)),
        Err(VaultError::InvalidInput { .. })
    ));
    // ... and far over it, by inspect_message before it costs anything.
    let huge = ByteBuf::from(vec![0u8; MIB + 4096]);
    assert!(c
        .env
        .try_update::<_, R<UploadView>>(owner, "upload_chunk", (up, 1u32, huge))
        .is_err());
    // Wrong total size.
    assert_eq!(
        c.finish(up),
        Err(VaultError::SizeMismatch {
            expected: payload.len() as u64,
            actual: MIB as u64
        })
    );
    assert_eq!(c.fingerprint(), before);
    c.chunk(owner, up, 1, &payload[MIB..2 * MIB]).unwrap();
    assert_eq!(
        c.chunk(owner, up, 2, &data(11, 0)),
        Err(VaultError::SizeMismatch {
            expected: payload.len() as u64,
            actual: 2 * MIB as u64 + 11
        })
    );
    // Wrong SHA-256.
    let up2 = c
        .begin(ItemKind::Letter, 5, sha(b"other"))
        .unwrap()
        .upload_id;
    c.chunk(owner, up2, 0, b"hello").unwrap();
    let before = c.fingerprint();
    assert_eq!(c.finish(up2), Err(VaultError::ChecksumMismatch));
    assert_eq!(c.fingerprint(), before);
    let _: R<()> = c.env.update(owner, "abort_upload", (up2,));
    c.chunk(owner, up, 2, &payload[2 * MIB..]).unwrap();
    assert_eq!(c.finish(up).unwrap().size, payload.len() as u64);
    assert_eq!(c.vault().storage_used_bytes, payload.len() as u64);
}

#[test]
fn quota_counts_open_reservations() {
    let mut c = ctx(); // Standard: 10 MiB
    let limit = 10 * MIB as u64;
    let a = c.begin(ItemKind::File, 6 * MIB as u64, sha(b"a")).unwrap();
    let before = c.fingerprint();
    assert_eq!(
        c.begin(ItemKind::File, 6 * MIB as u64, sha(b"b")),
        Err(VaultError::QuotaExceeded {
            requested: 6 * MIB as u64,
            available: limit - 6 * MIB as u64
        })
    );
    assert_eq!(
        c.begin(ItemKind::File, limit + 1, sha(b"b")),
        Err(VaultError::QuotaExceeded {
            requested: limit + 1,
            available: limit - 6 * MIB as u64
        })
    );
    assert_eq!(c.fingerprint(), before);
    let _: R<()> = c.env.update(c.owner, "abort_upload", (a.upload_id,));
    assert_eq!(c.vault().storage_used_bytes, 0);
    assert!(c.begin(ItemKind::File, 6 * MIB as u64, sha(b"b")).is_ok());
}

#[test]
fn an_upload_interrupted_by_an_upgrade_resumes() {
    let mut c = ctx();
    let owner = c.owner;
    let payload = data(3 * MIB + 5, 9);
    let up = c
        .begin_full(
            ItemKind::File,
            payload.len() as u64,
            sha(&payload),
            None,
            Some("resume-me"),
        )
        .unwrap();
    c.chunk(owner, up.upload_id, 0, &payload[..MIB]).unwrap();
    c.chunk(owner, up.upload_id, 1, &payload[MIB..2 * MIB])
        .unwrap();
    c.env.upgrade(None).unwrap();
    // The client asks again with its idempotency key and learns where to continue.
    let again = c
        .begin_full(
            ItemKind::File,
            payload.len() as u64,
            sha(&payload),
            None,
            Some("resume-me"),
        )
        .unwrap();
    assert_eq!(again.upload_id, up.upload_id);
    assert_eq!(again.next_index, 2);
    c.chunk(owner, up.upload_id, 2, &payload[2 * MIB..3 * MIB])
        .unwrap();
    c.chunk(owner, up.upload_id, 3, &payload[3 * MIB..])
        .unwrap();
    let item = c.finish(up.upload_id).unwrap();
    assert_eq!(c.download(item.item_id), payload);
}

#[test]
fn delete_and_replace_free_space() {
    let mut c = ctx();
    let a = c.put(ItemKind::File, &data(2 * MIB, 1));
    let b = c.put(ItemKind::Letter, b"letter v1");
    assert_eq!(c.vault().storage_used_bytes, 2 * MIB as u64 + 9);
    let v2 = b"letter version two".to_vec();
    let up = c
        .begin_full(
            ItemKind::Letter,
            v2.len() as u64,
            sha(&v2),
            Some(b.item_id),
            None,
        )
        .unwrap();
    let owner = c.owner;
    c.chunk(owner, up.upload_id, 0, &v2).unwrap();
    let replaced = c.finish(up.upload_id).unwrap();
    assert_eq!((replaced.item_id, replaced.version), (b.item_id, 2));
    assert_eq!(c.download(b.item_id), v2);
    assert_eq!(
        c.vault().storage_used_bytes,
        2 * MIB as u64 + v2.len() as u64
    );
    let r: R<()> = c.env.update(owner, "delete_item", (c.vault, a.item_id));
    r.unwrap();
    let v = c.vault();
    assert_eq!((v.item_count, v.storage_used_bytes), (1, v2.len() as u64));
    let t: R<DownloadTicket> = c
        .env
        .update(owner, "request_download", (c.vault, a.item_id));
    assert_eq!(t, Err(VaultError::NotFound));
}

#[test]
fn strangers_admins_and_unpaid_vaults_get_nothing() {
    let mut c = ctx();
    let item = c.put(ItemKind::Password, b"secret");
    for who in [user("stranger"), c.env.admin] {
        let t: R<DownloadTicket> = c
            .env
            .update(who, "request_download", (c.vault, item.item_id));
        assert_eq!(t, Err(VaultError::NotAuthorized));
        let l: R<Page<ItemView>> = c
            .env
            .query(who, "list_items", (c.vault, PageArgs::default()));
        assert_eq!(l, Err(VaultError::NotAuthorized));
    }
    let draft = c.env.create_vault(c.owner, "draft").id;
    let args = BeginUploadArgs {
        vault_id: draft,
        kind: ItemKind::File,
        size: 1,
        sha256: sha(b"x"),
        encrypted_meta: ByteBuf::new(),
        recipients: None,
        replaces: None,
        idempotency_key: None,
    };
    let r: R<UploadView> = c.env.update(c.owner, "begin_upload", (args,));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
}
