//! Any schedule text in any zone: parsing never panics, and an accepted schedule's fire times
//! come strictly one after another, after the start, and never stop before ten years (a schedule
//! that cannot fire is refused when parsed).
#![no_main]

use heartbeats::fuzzing::schedule_fires;
use libfuzzer_sys::fuzz_target;

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Africa/Casablanca",
    "Antarctica/Troll",
];

fuzz_target!(|input: (&str, u8, u32)| {
    let (spec, zone, from) = input;
    let zone = ZONES[usize::from(zone) % ZONES.len()];
    if let Some(fires) = schedule_fires(spec, zone, from, 4) {
        assert_eq!(fires.len(), 4, "{spec:?} in {zone} from {from}");
        let mut last = u128::from(from) * 1_000_000_000;
        for fire in fires {
            assert!(fire > last, "{spec:?} in {zone} from {from}: {fire} after {last}");
            last = fire;
        }
    }
});
