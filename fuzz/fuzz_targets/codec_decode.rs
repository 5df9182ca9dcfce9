//! Fuzz target `codec_decode`: the input format and the invariants it checks are
//! documented on `harness::codec_decode` in `fuzz/harness.rs`.

#![no_main]

#[allow(dead_code)] // each target uses one of the shared harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::codec_decode(data));
