//! The HTTP layer: routing, the endpoints, conditional requests and the one error → status
//! mapping. No worker types: the glue converts requests and responses.
//!
//! - [`service`]: the request handler (route, run, CORS, `HEAD`).
//! - [`context`]: what one request may use (backends, isolate state, settings).
//! - [`route`]: method and path to a [`route::Route`].
//! - [`zarr`]: `/zarr/{dataset}/{key}`, the Zarr store endpoint.
//! - [`files`]: `/files/{dataset}/{path}`, block mode (byte ranges of files, cached as blocks).
//! - [`routes`]: `/routes/{dataset}/…`, other routes of a dataset's origin, cached or passed on.
//! - [`datasets`]: `/api/datasets` and `/zarr/{dataset}`, describing datasets.
//! - [`admin`]: the admin API (bearer token): purge, warm, sweep, run-time datasets.
//! - [`stats`]: `/api/stats`, `/api/stats/keys`, `/api/stats/history`.
//! - [`health`]: `/api/health`, probing the index and the chunk store.
//! - [`conditional`]: `Range` and `If-None-Match` for every key.
//! - [`response`]: plain responses and the one error → HTTP status mapping.
//! - [`source_files`]: a source's own files (parquet record files) read through the cache.

pub mod admin;
pub mod conditional;
pub mod context;
pub mod datasets;
pub mod files;
pub mod health;
pub mod response;
pub mod route;
pub mod routes;
pub mod service;
pub mod source_files;
pub mod stats;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod views;
pub mod zarr;
