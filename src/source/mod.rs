//! The source layer: what a dataset's Zarr keys are and where their bytes come from.
//!
//! - [`datasets`]: dataset configuration and the per-isolate registry of loaded sources.
//! - [`refs`]: where reference files come from (location, fetch trait).
//! - [`kerchunk`]: kerchunk references (versions 0 and 1, templates, lazy `gen`) in a compact form.
//! - [`zarr`]: the Zarr v2 store surface over references (key answers, consolidated metadata,
//!   variables).

pub mod datasets;
pub mod kerchunk;
pub mod refs;
pub mod zarr;
