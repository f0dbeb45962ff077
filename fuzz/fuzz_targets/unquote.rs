//! Go string unquoting never panics; a literal made by quoting any bytes as `\xNN` escapes
//! unquotes back to them.
#![no_main]

use heartbeats::fuzzing::unquote;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Vec<u8>)| {
    let (text, bytes) = input;
    let _ = unquote(text);
    let quoted: String = std::iter::once("\"".to_owned())
        .chain(bytes.iter().map(|b| format!("\\x{b:02x}")))
        .chain(std::iter::once("\"".to_owned()))
        .collect();
    assert_eq!(unquote(&quoted), Some(bytes));
});
