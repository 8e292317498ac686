//! Progress bar (todo).
