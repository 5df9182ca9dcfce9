//! Cache management policy, pure: no I/O, no clock of its own.
//!
//! - [`eviction`]: eviction policies and their scores (the index's Lua computes the same).
//! - [`capacity`]: capacity limits, per dataset and for the deployment.
//! - [`admission`]: which misses a dataset stores.
//! - [`listing`]: the keys listing's sort orders, the stats' percentile rule.

pub mod admission;
pub mod capacity;
pub mod eviction;
pub mod listing;
