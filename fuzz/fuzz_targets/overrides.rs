//! K_CE_OVERRIDES parsing never panics, and every name it accepts is a valid extension name.
#![no_main]

use heartbeats::fuzzing::parse_overrides;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &str| {
    if let Ok((extensions, _ignored)) = parse_overrides(json) {
        for (name, _) in extensions {
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{name:?}");
        }
    }
});
