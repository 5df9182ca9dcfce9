//! The decoded view's codecs compiled for wasm32, for `bench/codec-cpu` (Node, V8 as in
//! workerd): `decode_chunk(zarray_json, chunk)` decodes one chunk as the worker's decoded view
//! does (`DecodePlan::from_zarray`, then `decode`) and returns the decoded length. Build:
//! `cargo build --release --example codec_cpu --target wasm32-unknown-unknown`, then
//! `wasm-bindgen --target nodejs`. Natively the example is empty (the figures that matter are
//! the runtime's).

#[cfg(target_arch = "wasm32")]
mod wasm {
    use wasm_bindgen::prelude::*;
    use zarr_edge_cache::codec::DecodePlan;

    /// Decodes `chunk` by the `.zarray` `zarray_json` describes; the decoded length, or an
    /// error naming what failed.
    #[wasm_bindgen]
    pub fn decode_chunk(zarray_json: &str, chunk: &[u8]) -> Result<usize, JsError> {
        let zarray: serde_json::Value =
            serde_json::from_str(zarray_json).map_err(|e| JsError::new(&e.to_string()))?;
        let plan = DecodePlan::from_zarray(&zarray).map_err(|e| JsError::new(&e.to_string()))?;
        let decoded = plan
            .decode(chunk)
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(decoded.len())
    }
}
