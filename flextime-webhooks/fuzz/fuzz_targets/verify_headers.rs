//! Every verifier's header parsing and verification on arbitrary header
//! values and bodies: none may panic, and none may accept a forged request.
//! The checks live in ../tests/support/fuzz_check.rs, shared with the
//! corpus regression test.
#![no_main]

include!("../../tests/support/fuzz_check.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
