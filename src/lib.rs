//! zarr-edge-cache: a shared edge cache for Zarr datasets read through kerchunk references,
//! compiled to WebAssembly as a Cloudflare Worker.
//!
//! # Layout
//! The pure core compiles and tests natively (`cargo test`); only `glue` (wasm32 only) touches
//! the `worker` crate.
//! - [`config`]: environment variables and secrets, validated.
//! - [`route`]: method and path to a [`route::Route`].
//! - [`service`]: the request handler, generic over the backends.
//! - [`health`]: `/api/health`, probing the index and the chunk store.
//! - [`backend`]: the I/O traits ([`backend::Index`], [`backend::ChunkStore`],
//!   [`backend::UpstashTransport`], [`backend::Clock`]) and their contracts.
//! - [`index`]: [`index::UpstashIndex`], the index over any Upstash transport.
//! - [`kerchunk`]: kerchunk references (versions 0 and 1, templates, lazy `gen`) in a compact form.
//! - [`upstash`]: the sans-IO Upstash REST protocol (commands, pipelines, base64 replies).
//! - [`response`]: plain responses and the one error → HTTP status mapping.
//! - [`error`]: the crate-level error, grouped by what the caller must do.
//! - `glue` (wasm32 only): the `#[event(fetch)]` entry point and the `worker`-backed
//!   implementations of the traits (Fetch transport, R2 store, clock).

pub mod backend;
pub mod config;
pub mod error;
pub mod health;
pub mod index;
pub mod kerchunk;
pub mod response;
pub mod route;
pub mod service;
pub mod upstash;

#[cfg(test)]
mod fakes;

#[cfg(target_arch = "wasm32")]
mod glue;
