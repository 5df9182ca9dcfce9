//! Fuzz target `parquet_record`: the input format and the invariants it checks are
//! documented on `harness::parquet_record` in `fuzz/harness.rs`.

#![no_main]

#[allow(dead_code)] // each target uses one of the shared harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::parquet_record(data));
