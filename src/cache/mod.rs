//! The cache layer: the read-through path for one key and what keeps it correct and small.
//!
//! - [`read`]: look up, else lock, fetch, answer, write back.
//! - [`single_flight`]: concurrent misses in one isolate share one fetch.
//! - [`maintenance`]: removing keys (claim, delete unheld objects, drop entries): eviction to
//!   capacity, purges, the scheduled sweep.

pub mod maintenance;
pub mod read;
pub mod single_flight;

pub use read::*;
