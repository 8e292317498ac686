//! Repositories: typed access to one kind of record with the indexes and counters that go
//! with it, kept by the repository itself (an insert updates its indexes; callers never
//! write an index entry or a header counter by hand). Fields are private; the bytes they
//! write are those of the plain structures they replaced (same memories, same keys, same
//! encodings), so no migration is involved.

pub mod header;
pub mod payments;
pub mod uploads;
pub mod vaults;

pub use header::HeaderRepository;
pub use payments::{PaymentMemories, PaymentRepository};
pub use uploads::UploadRepository;
pub use vaults::{LoadedVault, VaultRepository};
