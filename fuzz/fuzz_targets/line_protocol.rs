//! Any bytes given to the line-protocol parser: an error or items, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use server::ingest::parse::{line_protocol, Precision};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for precision in [Precision::Nanoseconds, Precision::Seconds, Precision::Hours] {
            let _ = line_protocol(text, precision);
        }
    }
});
