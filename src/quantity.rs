//! Kubernetes `resource.Quantity`: the canonical string form the HPA reads, and a parser.
//!
//! Owns the one formatter every served value goes through ([`format`]) and a parser for the
//! grammar of `apimachinery: pkg/api/resource/quantity.go` ([`Quantity::parse`]) used by the
//! static-metrics file, `explain` and the simulated HPA.
//!
//! The HPA reads only `MilliValue()` (ceil(v × 1000), away from zero), so a value is formatted
//! from its milli-units: a whole number prints with `k`/`M`/`G`/… folding (`12000` → `12k`),
//! anything else as `<milli>m` (`1.5` → `1500m`). This is exactly what Go prints for the
//! quantity the HPA will see. NaN and ±Inf have no quantity: [`format`] returns `None`, and the
//! caller treats the value as absent.
//!
//! The milli-value is computed exactly, in integers, from the float's shortest decimal form
//! rounded to Go's nano precision: `v × 1000` in floating point would turn 1e21 into
//! 999999999999999983222784 and -0.009 into -10m, and 0.1 + 0.2 would serve as `301m`.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::ops::{Div, Rem};

use compact_str::CompactString;

/// Decimal SI suffixes above the unit, in steps of 10³.
const DECIMAL_SUFFIXES: [&str; 6] = ["k", "M", "G", "T", "P", "E"];

/// Values at or beyond this magnitude have no quantity. The HPA's int64 milli arithmetic already
/// stops at ~9.2e15; this bound keeps the exact milli-value inside an i128.
pub const MAX_MAGNITUDE: f64 = 1e30;

/// Formats `value` as a canonical DecimalSI quantity string, or `None` for NaN, ±Inf and
/// magnitudes of [`MAX_MAGNITUDE`] or more.
///
/// The text is built inline (a quantity is at most a few dozen bytes), allocating nothing. The
/// adapter keeps values as [`milli`] and prints them into answers with [`write_milli`].
pub fn format(value: f64) -> Option<CompactString> {
    milli(value).map(format_milli)
}

/// The milli-value [`format`] prints for `value`, computed exactly; `None` for NaN, ±Inf and
/// magnitudes of [`MAX_MAGNITUDE`] or more. A value can be kept as this integer and printed
/// when served ([`format_milli`]): the same text, from 16 bytes rather than a string.
pub fn milli(value: f64) -> Option<i128> {
    if !value.is_finite() || value.abs() >= MAX_MAGNITUDE {
        return None;
    }
    if value.abs() < 1e-12 {
        // zero at Go's nano precision; also keeps `{:?}` clear of exponents like e-307
        return Some(0);
    }
    if value.fract() == 0.0 && value.abs() < EXACT_INTEGERS {
        // A whole number that a float holds exactly is its own shortest decimal, so its
        // milli-value needs no text: most served values (request counts, bytes, percentages
        // of whole numbers) are whole, and an adapter reads a couple of hundred thousand a second.
        return Some(value as i128 * 1000);
    }
    milli_by_decimal(value)
}

/// Below this magnitude every whole number is a float exactly (2^53).
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// [`milli`] through the shortest decimal: `{:?}` is the shortest decimal that reads back as the
/// same float, in at most ~24 bytes, parsed exactly and rounded to Go's nano precision.
fn milli_by_decimal(value: f64) -> Option<i128> {
    let exact = Quantity::parse(&compact_str::format_compact!("{value:?}")).ok()?;
    exact.rounded_to_nano().milli_value()
}

/// Prints a milli-value canonically: `<milli>m`, or a whole number with k/M/G/… folding.
pub fn format_milli(milli: i128) -> CompactString {
    printed(milli, |number, suffix| {
        let mut out = CompactString::from(number);
        out.push_str(suffix);
        out
    })
}

/// [`format_milli`], written at the end of `out`: integer printing only, a few dozen
/// nanoseconds, for the serving path (a Pods answer prints a thousand of these).
pub fn write_milli(milli: i128, out: &mut Vec<u8>) {
    printed(milli, |number, suffix| {
        out.extend_from_slice(number.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
    })
}

/// Hands `print` the digits and the suffix of `milli`'s canonical text, worked out in 64-bit
/// arithmetic wherever the value fits (|value| < 9.2e15), several times quicker than 128.
fn printed<R>(milli: i128, print: impl FnOnce(&str, &str) -> R) -> R {
    let mut digits = itoa::Buffer::new();
    match i64::try_from(milli) {
        Ok(milli) => {
            let (number, suffix) = canonical(milli);
            print(digits.format(number), suffix)
        }
        Err(_) => {
            let (number, suffix) = canonical(milli);
            print(digits.format(number), suffix)
        }
    }
}

/// The number and suffix a milli-value prints as: itself and `m` unless it is whole; else the
/// whole number with every factor of 1000 folded into a suffix (`12000000` → `12`, `k`).
fn canonical<T>(milli: T) -> (T, &'static str)
where
    T: Copy + PartialEq + From<i16> + Rem<Output = T> + Div<Output = T>,
{
    let (zero, thousand) = (T::from(0), T::from(1000));
    if milli % thousand != zero {
        return (milli, "m");
    }
    let mut whole = milli / thousand;
    let mut suffix = "";
    if whole == zero {
        return (zero, suffix);
    }
    for next in DECIMAL_SUFFIXES {
        if whole % thousand != zero {
            break;
        }
        whole = whole / thousand;
        suffix = next;
    }
    (whole, suffix)
}

/// A parsed quantity, held exactly as `mantissa × 10^exponent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
}

/// Why a quantity string was refused; names the input and the byte where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?} at byte {position}: {reason}")]
pub struct ParseError {
    pub input: String,
    pub position: usize,
    pub reason: &'static str,
}

/// Longest input accepted; Go's own parser allows more, but nothing legitimate comes close.
const MAX_LEN: usize = 64;
/// Significant digits kept; Go rounds to 1e-9 anyway, and i128 holds 38.
const MAX_DIGITS: usize = 30;

impl Quantity {
    /// Parses `[+-]digits[.digits][suffix]` with suffix `n u m k M G T P E`, `Ki … Ei` or `e<int>`/`E<int>`.
    pub fn parse(input: &str) -> Result<Quantity, ParseError> {
        let fail = |position: usize, reason: &'static str| ParseError {
            input: input.chars().take(MAX_LEN).collect(),
            position,
            reason,
        };
        if input.is_empty() {
            return Err(fail(0, "empty"));
        }
        if input.len() > MAX_LEN {
            return Err(fail(MAX_LEN, "too long"));
        }
        let bytes = input.as_bytes();
        let mut pos = 0;
        let negative = match bytes[0] {
            b'-' => {
                pos = 1;
                true
            }
            b'+' => {
                pos = 1;
                false
            }
            _ => false,
        };
        let mut mantissa: i128 = 0;
        let mut exponent: i32 = 0;
        let mut significant = 0usize;
        let mut seen_digit = false;
        let mut seen_point = false;
        while pos < bytes.len() {
            match bytes[pos] {
                b'0'..=b'9' => {
                    seen_digit = true;
                    let digit = i128::from(bytes[pos] - b'0');
                    if significant < MAX_DIGITS {
                        if mantissa != 0 || digit != 0 {
                            significant += 1;
                        }
                        mantissa = mantissa * 10 + digit;
                        if seen_point {
                            exponent -= 1;
                        }
                    } else if !seen_point {
                        // a digit past the precision we keep: drop it, keep the magnitude
                        exponent += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            pos += 1;
        }
        if !seen_digit {
            return Err(fail(pos, "expected a number"));
        }
        let suffix = &input[pos..];
        let scale = match suffix {
            "" => Scale::Decimal(0),
            "n" => Scale::Decimal(-9),
            "u" => Scale::Decimal(-6),
            "m" => Scale::Decimal(-3),
            "k" => Scale::Decimal(3),
            "M" => Scale::Decimal(6),
            "G" => Scale::Decimal(9),
            "T" => Scale::Decimal(12),
            "P" => Scale::Decimal(15),
            "E" => Scale::Decimal(18),
            "Ki" => Scale::Binary(1),
            "Mi" => Scale::Binary(2),
            "Gi" => Scale::Binary(3),
            "Ti" => Scale::Binary(4),
            "Pi" => Scale::Binary(5),
            "Ei" => Scale::Binary(6),
            s if s.starts_with(['e', 'E']) => match s[1..].parse::<i32>() {
                Ok(e) if e.abs() <= 100 => Scale::Decimal(e),
                _ => return Err(fail(pos + 1, "invalid exponent")),
            },
            _ => return Err(fail(pos, "unknown suffix")),
        };
        match scale {
            Scale::Decimal(e) => exponent += e,
            Scale::Binary(power) => {
                for _ in 0..power {
                    mantissa = mantissa
                        .checked_mul(1024)
                        .ok_or_else(|| fail(pos, "too large"))?;
                }
            }
        }
        if negative {
            mantissa = -mantissa;
        }
        Ok(Quantity { mantissa, exponent }.normalized())
    }

    /// Strips trailing zeros from the mantissa so equal quantities compare equal.
    fn normalized(mut self) -> Quantity {
        if self.mantissa == 0 {
            return Quantity {
                mantissa: 0,
                exponent: 0,
            };
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    /// Rounds to 1e-9 (nearest, half away from zero): Go's precision, and below the noise of
    /// float arithmetic.
    fn rounded_to_nano(self) -> Quantity {
        if self.exponent >= -9 {
            return self;
        }
        let Some(divisor) = u32::try_from(-9 - self.exponent)
            .ok()
            .and_then(|shift| 10i128.checked_pow(shift))
        else {
            return Quantity {
                mantissa: 0,
                exponent: 0,
            };
        };
        let quotient = self.mantissa / divisor;
        let remainder = self.mantissa % divisor;
        let rounded = if remainder.abs() * 2 >= divisor {
            quotient + self.mantissa.signum()
        } else {
            quotient
        };
        Quantity {
            mantissa: rounded,
            exponent: -9,
        }
        .normalized()
    }

    /// The value in milli-units rounded away from zero: Go's `MilliValue()` before its int64
    /// clamp. `None` when it does not fit an i128.
    pub fn milli_value(&self) -> Option<i128> {
        let shift = self.exponent + 3;
        if shift >= 0 {
            let factor = 10i128.checked_pow(u32::try_from(shift).ok()?)?;
            self.mantissa.checked_mul(factor)
        } else {
            let divisor = match 10i128.checked_pow(u32::try_from(-shift).ok()?) {
                Some(d) => d,
                // smaller than any milli: rounds away from zero to ±1
                None => return Some(self.mantissa.signum()),
            };
            let quotient = self.mantissa / divisor;
            let rounds_up = self.mantissa % divisor != 0;
            Some(quotient + if rounds_up { self.mantissa.signum() } else { 0 })
        }
    }

    /// The nearest float to the value.
    pub fn as_f64(&self) -> f64 {
        std::format!("{}e{}", self.mantissa, self.exponent)
            .parse()
            .unwrap_or(f64::NAN)
    }
}

enum Scale {
    Decimal(i32),
    Binary(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn milli_values_print_the_same_on_both_sides_of_64_bits() {
        let cases: [(i128, &str); 7] = [
            (1500, "1500m"),
            (12_000, "12"),
            (-5_000_000, "-5k"),
            (i128::from(i64::MAX), "9223372036854775807m"),
            (i128::from(i64::MAX) + 1, "9223372036854775808m"),
            (-5_000_000_000_000_000_000_000, "-5E"),
            (7_000_000_000_000_000_000_000_000, "7000E"),
        ];
        for (milli, text) in cases {
            assert_eq!(format_milli(milli), text, "{milli}");
        }
    }

    #[test]
    fn formats_the_contract_examples() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (0.5, "500m"),
            (1.5, "1500m"),
            (10.5, "10500m"),
            (12.0, "12"),
            (1500.0, "1500"),
            (12000.0, "12k"),
            (2_500_000.0, "2500k"),
            (2e6, "2M"),
            (-0.25, "-250m"),
            (1e18, "1E"),
            (1e21, "1000E"),
            (0.0001, "1m"),
            (-0.0001, "-1m"),
            (0.0015, "2m"),
            (1e-6, "1m"),
            (1e-12, "0"),
            (-0.009, "-9m"),
            (0.1 + 0.2, "300m"),
            (8000.0, "8k"),
            (12_345_678.001, "12345678001m"),
        ];
        for (value, want) in cases {
            assert_eq!(format(value).as_deref(), Some(want), "format({value})");
        }
    }

    #[test]
    fn values_below_nano_precision_are_zero() {
        // found by the quantity fuzz target: 8.6e-307 had no quantity and would have been absent
        for value in [
            8.61670758931707e-307,
            f64::MIN_POSITIVE,
            5e-324,
            -1e-200,
            1e-13,
            4e-10,
        ] {
            assert_eq!(format(value).as_deref(), Some("0"), "{value:e}");
        }
        assert_eq!(format(6e-10).as_deref(), Some("1m"));
    }

    #[test]
    fn nan_and_infinity_have_no_quantity() {
        assert_eq!(format(f64::NAN), None);
        assert_eq!(format(f64::INFINITY), None);
        assert_eq!(format(f64::NEG_INFINITY), None);
        assert_eq!(format(1e40), None);
        // found by the quantity fuzz target: 2.4e35 overflowed the i128 milli-value
        assert_eq!(format(2.4174576258649823e35), None);
        assert!(format(MAX_MAGNITUDE / 10.0).is_some());
    }

    #[test]
    fn parses_every_suffix_form() {
        let cases: [(&str, i128); 16] = [
            ("0", 0),
            ("12", 12_000),
            ("1.5", 1_500),
            (".5", 500),
            ("5.", 5_000),
            ("+7", 7_000),
            ("-250m", -250),
            ("1500u", 2),
            ("-1u", -1),
            ("1n", 1),
            ("12k", 12_000_000),
            ("2M", 2_000_000_000),
            ("1Ki", 1_024_000),
            ("1.5Gi", 1_610_612_736_000),
            ("1e3", 1_000_000),
            ("5E-2", 50),
        ];
        for (input, milli) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.milli_value(), Some(milli), "{input}");
        }
    }

    #[test]
    fn refuses_what_go_refuses() {
        for input in [
            "", "NaN", "Inf", "1,5", "abc", "1.2.3", "1Q", "--1", "1e", "1e+", "m", ".", "1 k",
        ] {
            assert!(Quantity::parse(input).is_err(), "{input:?} should fail");
        }
        let err = Quantity::parse("12x").unwrap_err();
        assert_eq!(err.position, 2);
        assert!(err.to_string().contains("\"12x\""), "{err}");
    }

    /// The canonical-form rules (`docs/contract.md`, Values: canonical quantities), checked on
    /// a formatted string.
    fn assert_canonical(text: &str) {
        assert!(!text.starts_with('+'), "{text}: no plus sign");
        let digits = text.trim_start_matches('-');
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        let (mantissa, suffix) = digits.split_at(end);
        assert!(!mantissa.is_empty(), "{text}: integer mantissa");
        assert!(
            mantissa == "0" || !mantissa.starts_with('0'),
            "{text}: no leading zero"
        );
        if mantissa == "0" {
            assert_eq!(text, "0", "zero prints as 0");
            return;
        }
        assert!(
            ["m", "", "k", "M", "G", "T", "P", "E"].contains(&suffix),
            "{text}: decimal SI suffix"
        );
        // trailing zeros would have been folded into the next suffix up
        if suffix != "E" {
            let trailing = mantissa.len() - mantissa.trim_end_matches('0').len();
            assert!(trailing < 3, "{text}: unfolded zeros");
        }
    }

    /// The HPA's milli-value of `mantissa × 10^exponent`, rounded to nano first, in integers.
    fn exact_milli(mantissa: i64, exponent: i32) -> i128 {
        let mantissa = i128::from(mantissa);
        let nano = if exponent >= -9 {
            mantissa * 10i128.pow((exponent + 9) as u32)
        } else {
            let divisor = 10i128.pow((-9 - exponent) as u32);
            let rounds_away = (mantissa % divisor).abs() * 2 >= divisor;
            mantissa / divisor + if rounds_away { mantissa.signum() } else { 0 }
        };
        let quotient = nano / 1_000_000;
        quotient
            + if nano % 1_000_000 != 0 {
                nano.signum()
            } else {
                0
            }
    }

    proptest! {
        #[test]
        fn whole_numbers_have_the_milli_value_of_their_shortest_decimal(
            whole in -(1i64 << 53)..=(1i64 << 53),
            scale in 0u32..4,
        ) {
            // whole numbers of every size up to 2^53, small ones as often as large ones
            let value = (whole >> (scale * 16)) as f64;
            prop_assert_eq!(milli(value), milli_by_decimal(value), "{}", value);
        }

        #[test]
        fn formatted_values_are_canonical_and_keep_the_hpa_milli_value(
            mantissa in -1_000_000_000i64..1_000_000_000i64,
            exponent in -12i32..12,
        ) {
            // the float nearest to the decimal, as a producer computing it would hold it
            let value: f64 = std::format!("{mantissa}e{exponent}").parse().expect("float");
            let text = format(value).expect("finite");
            assert_canonical(&text);
            let parsed = Quantity::parse(&text).expect("our own output parses");
            prop_assert_eq!(parsed.milli_value(), Some(exact_milli(mantissa, exponent)));
            // formatting what we parsed gives the same string back
            let reformatted = format(parsed.as_f64());
            prop_assert_eq!(reformatted.as_deref(), Some(text.as_str()));
        }

        #[test]
        fn arbitrary_finite_floats_format_canonically(value in -1e15f64..1e15f64) {
            let text = format(value).expect("finite");
            assert_canonical(&text);
            let served = Quantity::parse(&text).expect("parses").as_f64();
            // rounded away from zero to the milli, never by more
            let tolerance = 1e-9 * value.abs().max(1.0);
            prop_assert!(served.abs() + tolerance >= value.abs(), "{value} served as {text}");
            prop_assert!((served - value).abs() <= 1e-3 + tolerance, "{value} served as {text}");
        }

        #[test]
        fn every_finite_float_below_the_bound_has_a_quantity(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            if value.is_finite() && value.abs() < MAX_MAGNITUDE {
                prop_assert!(format(value).is_some(), "{value:e}");
            }
        }

        #[test]
        fn the_parser_never_panics(input in "\\PC{0,40}") {
            let _ = Quantity::parse(&input);
        }

        #[test]
        fn the_parser_agrees_with_float_parsing(whole in 0u32..1_000_000, frac in 0u32..1000) {
            let text = format!("{whole}.{frac:03}");
            let q = Quantity::parse(&text).expect("plain decimal");
            prop_assert_eq!(q.milli_value(), Some(i128::from(whole) * 1000 + i128::from(frac)));
        }
    }
}
