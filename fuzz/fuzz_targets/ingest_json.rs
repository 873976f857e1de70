//! Any bytes given to the JSON ingest parser: an error or items, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = server::ingest::parse::json(data);
});
