pub mod config;
pub mod errors;
pub mod keys;
pub mod member_types;
pub mod ops;
pub mod payments;
pub mod records;
pub mod types;
