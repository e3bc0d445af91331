use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

use crate::VcpuError;

/// Longest decimal text accepted; guards the bigint exponent against absurd inputs.
const MAX_DECIMAL_LEN: usize = 64;

/// Parses a non-negative decimal (`"1"`, `"0.75"`, `"1.5"`, `".5"`, `"2."`) into an exact rational.
///
/// Kata's `default_vcpus` is a TOML float; callers pass the number's shortest decimal text so
/// `0.1` means exactly one tenth, not the nearest binary fraction.
pub fn parse_decimal(text: &str) -> Result<BigRational, VcpuError> {
    let bad = || VcpuError::InvalidDecimal {
        text: text.to_string(),
    };
    if text.is_empty() || text.len() > MAX_DECIMAL_LEN {
        return Err(bad());
    }
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !all_digits(frac_part) {
        return Err(bad());
    }
    let digits = format!("{int_part}{frac_part}");
    let numer: BigInt = if digits.is_empty() {
        BigInt::zero()
    } else {
        digits.parse().map_err(|_| bad())?
    };
    let mut denom = BigInt::one();
    for _ in 0..frac_part.len() {
        denom *= 10;
    }
    Ok(BigRational::new(numer, denom))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64, d: i64) -> BigRational {
        BigRational::new(n.into(), d.into())
    }

    #[test]
    fn parses_exact_decimals() {
        let rows = [
            ("1", r(1, 1)),
            ("0", r(0, 1)),
            ("0.75", r(3, 4)),
            ("1.5", r(3, 2)),
            ("0.1", r(1, 10)),
            (".5", r(1, 2)),
            ("2.", r(2, 1)),
            ("0.000001", r(1, 1_000_000)),
        ];
        for (text, want) in rows {
            assert_eq!(parse_decimal(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_non_decimals() {
        for text in [
            "", ".", "-1", "+1", "1e3", "1.2.3", "abc", " 1", "NaN", "inf", "1,5",
        ] {
            assert!(
                matches!(parse_decimal(text), Err(VcpuError::InvalidDecimal { .. })),
                "{text:?} should be rejected"
            );
        }
        assert!(parse_decimal(&"9".repeat(MAX_DECIMAL_LEN + 1)).is_err());
    }
}
