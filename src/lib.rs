//! zarr-edge-cache: a shared edge cache for Zarr datasets read through kerchunk references,
//! compiled to WebAssembly as a Cloudflare Worker.
//!
//! # Layout, by layer (each folder's `mod.rs` lists its files)
//! The pure core compiles and tests natively (`cargo test`); only `glue` (wasm32 only) touches
//! the `worker` crate. Lower layers never import higher ones (`scripts/check-layers`).
//! - [`http`]: routing, the endpoints (Zarr, stats, admin, health), conditional requests,
//!   responses and the one error → status mapping.
//! - [`cache`]: the read path for one key (lookup, lock, fetch, write-back) and maintenance
//!   (eviction to capacity, purges, the sweep).
//! - [`source`]: datasets and what their keys are: kerchunk references, the Zarr surface.
//! - [`index`]: the shared index (trait, schema, Upstash implementation, Lua scripts, circuit).
//! - [`store`]: the chunk store trait and what every store shares.
//! - [`origin`]: the origin trait, answer checks, which URLs may be fetched.
//! - [`codec`]: the decoded view's codecs (zlib, gzip, zstd, shuffle, delta, byte order), pure.
//! - [`policy`]: eviction, capacity and admission, pure.
//! - [`platform`]: the one trait naming a deployment's backends (associated types).
//! - [`keys`]: the only place index and storage keys are formatted.
//! - [`upstash`]: the sans-IO Upstash REST protocol (commands, pipelines, base64 replies).
//! - [`config`], [`settings`], [`error`], [`clock`]: configuration from the environment, tuning
//!   values, the crate error, time.
//! - [`contract`]: what the contract suites of the I/O traits share (`index::contract`,
//!   `store::contract` run the same cases against the fakes and the real backends).
//! - `glue` (wasm32 only): the `#[event(fetch)]` and `#[event(scheduled)]` entry points and the
//!   `worker`-backed implementations of the traits (Fetch transport, R2 store, clock).

pub mod cache;
pub mod clock;
pub mod codec;
pub mod config;
pub mod contract;
pub mod error;
pub mod http;
pub mod index;
pub mod keys;
pub mod origin;
pub mod platform;
pub mod policy;
pub mod settings;
pub mod source;
pub mod store;
pub mod upstash;

#[cfg(test)]
mod fakes;

#[cfg(target_arch = "wasm32")]
mod glue;
