//! Fuzzes the bundle decoders (a whole file, one frame): it never panics, and what it decodes round-trips.
#![no_main]

// Each target uses one of the shared checks.
#[allow(dead_code)]
#[path = "../../tests/support/wire_round_trip.rs"]
mod wire_round_trip;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = wire_round_trip::check_bundle(data);
});
