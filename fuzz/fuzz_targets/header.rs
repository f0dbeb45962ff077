//! Header encoding: percent mode round-trips (percent-decode(encode(x)) == x) and emits only
//! visible ASCII; compat mode never emits CR, LF, other controls or edge whitespace, and also
//! decodes back when the input holds no `%`.
#![no_main]

use heartbeats::fuzzing::{HeaderEncoding, encode_header_value};
use libfuzzer_sys::fuzz_target;

/// An independent decoder: the percent-encoding crate.
fn decode(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(text).collect()
}

fuzz_target!(|value: &str| {
    let percent = encode_header_value(value, HeaderEncoding::Percent);
    assert!(percent.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{percent:?}");
    assert_eq!(decode(&percent), value.as_bytes());

    let compat = encode_header_value(value, HeaderEncoding::Compat);
    assert!(compat.bytes().all(|b| b == b'\t' || b >= 0x20 && b != 0x7f), "{compat:?}");
    assert!(!compat.starts_with([' ', '\t']) && !compat.ends_with([' ', '\t']), "{compat:?}");
    if !value.contains('%') {
        assert_eq!(decode(&compat), value.as_bytes());
    }
});
