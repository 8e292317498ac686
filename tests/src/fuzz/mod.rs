//! Seeded fuzzing of every endpoint of the `.did` on the compiled wasm (see `docs/fuzzing.md`).

pub mod gen;
pub mod interface;
pub mod rng;
pub mod runner;
pub mod world;
