//! Quantities: parsing never panics; any finite float formats to a string that parses back to a
//! value the HPA reads within one milli-unit.
#![no_main]

use kubemind::quantity::{self, Quantity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, f64)| {
    let (text, value) = input;
    if let Ok(parsed) = Quantity::parse(text) {
        let _ = parsed.milli_value();
        let _ = parsed.as_f64();
    }
    match quantity::format(value) {
        Some(formatted) => {
            let parsed = Quantity::parse(&formatted).expect("our own output parses");
            let served = parsed.as_f64();
            let tolerance = 1e-3 + 1e-9 * value.abs().max(1.0);
            assert!((served - value).abs() <= tolerance, "{value} served as {formatted}");
        }
        None => assert!(
            !value.is_finite() || value.abs() >= quantity::MAX_MAGNITUDE,
            "{value} has no quantity"
        ),
    }
});
