//! Repositories: typed access to one kind of record with the indexes and counters that go
//! with it, kept by the repository itself (an insert updates its indexes; callers never
//! write an index entry or a header counter by hand). Fields are private; the bytes they
//! write are those of the plain structures they replaced (same memories, same keys, same
//! encodings), so no migration is involved.

pub mod daily_counters;
pub mod header;
pub mod idempotency;
pub mod invites;
pub mod items;
pub mod keys;
pub mod members;
pub mod payments;
pub mod recovery_codes;
pub mod tickets;
pub mod uploads;
pub mod vaults;

pub use daily_counters::DailyCounters;
pub use header::HeaderRepository;
pub use idempotency::IdempotencyRepository;
pub use invites::InviteRepository;
pub use items::ItemRepository;
pub use keys::KeyRepository;
pub use members::MemberRepository;
pub use payments::{PaymentMemories, PaymentRepository};
pub use recovery_codes::RecoveryCodeRepository;
pub use tickets::TicketRepository;
pub use uploads::UploadRepository;
pub use vaults::{LoadedVault, VaultRepository};
