//! Persistence (todo).
