//! Go duration parsing never panics, and what it accepts re-parses to the same value when
//! written back as nanoseconds.
#![no_main]

use heartbeats::fuzzing::parse_duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(nanos) = parse_duration(text) {
        let again = parse_duration(&format!("{nanos}ns"));
        assert_eq!(again, Some(nanos), "{text:?}");
    }
});
