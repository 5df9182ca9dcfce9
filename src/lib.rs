//! zarr-edge-cache: a shared edge cache for Zarr datasets read through kerchunk references,
//! compiled to WebAssembly as a Cloudflare Worker.
//!
//! # Layout
//! The pure core compiles and tests natively (`cargo test`); only `glue` (wasm32 only) touches
//! the `worker` crate.
//! - [`config`]: environment variables and secrets, validated.
//! - [`route`]: method and path to a [`route::Route`].
//! - [`service`]: the request handler, generic over the backends.
//! - [`datasets`]: the configured datasets and the per-isolate cache of their references.
//! - [`zarr_store`]: the Zarr v2 store surface (key answers, synthesised `.zmetadata`, variables).
//! - [`origin`]: checking an origin's (ranged) answer: status and exact length; redirects
//!   followed only to allowed hosts.
//! - [`url_policy`]: which URLs may be fetched (one WHATWG parser for the check and the request;
//!   allowed hosts; loopback and private addresses; redaction of URLs in answers and logs).
//! - [`cache_path`]: the read-through cache for a ranged key (hit, miss, single flight,
//!   write-back instructions).
//! - [`circuit`]: the per-isolate circuit breaker in front of the index transport.
//! - [`single_flight`]: concurrent misses in one isolate share one fetch.
//! - [`cache_keys`]: the only place index and storage keys are formatted (content-addressed storage).
//! - [`cache_entry`]: the index schema: entries, dataset counters, what management calls return.
//! - [`index_scripts`]: the index's Lua scripts (lookup, put entry, claim, drop, stats, listing).
//! - [`eviction`]: cache management policy, pure: eviction policies and scores, capacity limits,
//!   admission, listing orders.
//! - [`maintenance`]: removing keys (claim, delete unheld objects, drop entries): eviction to
//!   capacity, purges, the scheduled sweep.
//! - [`admin`]: the admin API (bearer token): purge, warm, sweep, run-time datasets.
//! - [`stats_api`]: `/api/stats`, `/api/stats/keys`, `/api/stats/history`.
//! - [`conditional`]: `Range` and `If-None-Match` for every key.
//! - [`health`]: `/api/health`, probing the index and the chunk store.
//! - [`backend`]: the I/O traits ([`backend::Index`], [`backend::ChunkStore`],
//!   [`backend::UpstashTransport`], [`backend::Clock`]) and their contracts.
//! - [`index`]: [`index::UpstashIndex`], the index over any Upstash transport.
//! - [`kerchunk`]: kerchunk references (versions 0 and 1, templates, lazy `gen`) in a compact form.
//! - [`upstash`]: the sans-IO Upstash REST protocol (commands, pipelines, base64 replies).
//! - [`response`]: plain responses and the one error → HTTP status mapping.
//! - [`error`]: the crate-level error, grouped by what the caller must do.
//! - `glue` (wasm32 only): the `#[event(fetch)]` and `#[event(scheduled)]` entry points and the
//!   `worker`-backed implementations of the traits (Fetch transport, R2 store, clock).

pub mod admin;
pub mod backend;
pub mod cache_entry;
pub mod cache_keys;
pub mod cache_path;
pub mod circuit;
pub mod conditional;
pub mod config;
pub mod datasets;
pub mod error;
pub mod eviction;
pub mod health;
pub mod index;
pub mod index_scripts;
pub mod kerchunk;
pub mod maintenance;
pub mod origin;
pub mod response;
pub mod route;
pub mod service;
pub mod single_flight;
pub mod stats_api;
pub mod upstash;
pub mod url_policy;
pub mod zarr_store;

#[cfg(test)]
mod fakes;

#[cfg(target_arch = "wasm32")]
mod glue;
