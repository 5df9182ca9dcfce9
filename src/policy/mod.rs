//! Cache management policy, pure: no I/O, no clock of its own.
//!
//! - [`eviction`]: eviction policies and scores, capacity limits, admission, listing orders.

pub mod eviction;
