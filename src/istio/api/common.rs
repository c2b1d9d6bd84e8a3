//! Types the four kinds share: durations, percentages, port selectors, workload selectors.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration as StdDuration;

use serde::de;

use super::api;

api! {
    /// `PortSelector`: a port by number.
    pub struct PortSelector { pub number: u32 }

    /// `Percent`: 0.0 to 100.0.
    pub struct Percent { pub value: f64 }

    /// `networking.v1alpha3.WorkloadSelector` (ServiceEntry).
    pub struct WorkloadSelector { pub labels: BTreeMap<String, String> }

    /// `type.v1beta1.WorkloadSelector` (DestinationRule).
    pub struct MatchLabelsSelector { pub match_labels: BTreeMap<String, String> }
}

/// `google.protobuf.Duration`, read as Istio reads it (jsonpb hands the text to Go's
/// `time.ParseDuration`): `5s`, `1.5s`, `100ms`, `1m30s`, `-1s`, `1h2m3.5s`, `0`. A whole number
/// of nanoseconds, signed: Istio's rules, not the parser, refuse what is too short.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Duration {
    pub nanos: i64,
}

const NANOS_PER_MILLI: i64 = 1_000_000;

impl Duration {
    /// `time.ParseDuration`: the duration, or Go's own message for the text.
    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        let invalid = || format!("time: invalid duration {text:?}");
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(Duration { nanos: 0 });
        }
        if rest.is_empty() {
            return Err(invalid());
        }
        const LIMIT: u64 = 1 << 63;
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let bytes = rest.as_bytes();
            if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
                return Err(invalid());
            }
            // The integer part.
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let mut whole: u64 = 0;
            for b in &bytes[..digits] {
                if whole > LIMIT / 10 {
                    return Err(invalid());
                }
                whole = whole * 10 + u64::from(b - b'0');
                if whole > LIMIT {
                    return Err(invalid());
                }
            }
            rest = &rest[digits..];
            // The fraction: digits past what a u64 holds are read and dropped, as Go does.
            let mut fraction: u64 = 0;
            let mut scale: f64 = 1.0;
            let mut fraction_digits = 0;
            if rest.starts_with('.') {
                rest = &rest[1..];
                let mut overflow = false;
                for b in rest.bytes().take_while(u8::is_ascii_digit) {
                    fraction_digits += 1;
                    if overflow {
                        continue;
                    }
                    if fraction > (LIMIT - 1) / 10 {
                        overflow = true;
                        continue;
                    }
                    let next = fraction * 10 + u64::from(b - b'0');
                    if next > LIMIT {
                        overflow = true;
                        continue;
                    }
                    fraction = next;
                    scale *= 10.0;
                }
                rest = &rest[fraction_digits..];
            }
            if digits == 0 && fraction_digits == 0 {
                return Err(invalid());
            }
            let unit_len = rest
                .bytes()
                .take_while(|b| !(*b == b'.' || b.is_ascii_digit()))
                .count();
            if unit_len == 0 {
                return Err(format!("time: missing unit in duration {text:?}"));
            }
            let unit_text = &rest[..unit_len];
            rest = &rest[unit_len..];
            let unit: u64 = match unit_text {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => {
                    return Err(format!(
                        "time: unknown unit {unit_text:?} in duration {text:?}"
                    ));
                }
            };
            if whole > LIMIT / unit {
                return Err(invalid());
            }
            let mut value = whole * unit;
            if fraction > 0 {
                // As Go computes it, in floating point.
                value += (fraction as f64 * (unit as f64 / scale)) as u64;
                if value > LIMIT {
                    return Err(invalid());
                }
            }
            total += value;
            if total > LIMIT {
                return Err(invalid());
            }
        }
        if negative {
            // -2^63 is the one negative value without a positive twin.
            Ok(Duration {
                nanos: (total as i128).wrapping_neg() as i64,
            })
        } else if total > LIMIT - 1 {
            Err(invalid())
        } else {
            Ok(Duration {
                nanos: total as i64,
            })
        }
    }

    /// Whole milliseconds, truncated towards zero (Go's `Duration.Milliseconds`).
    pub(crate) fn millis(self) -> i64 {
        self.nanos / NANOS_PER_MILLI
    }

    /// The `nanos` field of the proto message: the part below a second, signed like the whole.
    pub(crate) fn subsecond_nanos(self) -> i64 {
        self.nanos % 1_000_000_000
    }

    /// As a `std` duration; a negative one is zero.
    pub(crate) fn to_std(self) -> StdDuration {
        StdDuration::from_nanos(u64::try_from(self.nanos).unwrap_or(0))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos < 0 {
            write!(
                f,
                "-{:?}",
                StdDuration::from_nanos(self.nanos.unsigned_abs())
            )
        } else {
            write!(f, "{:?}", self.to_std())
        }
    }
}

impl<'de> de::Deserialize<'de> for Duration {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(|go| {
            de::Error::invalid_value(
                de::Unexpected::Str(&text),
                &format!("a duration such as 5s, 1.5s, 100ms or 1m ({go})").as_str(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_reads_them() {
        let d = |s: &str| Duration::parse(s).map(|d| d.nanos);
        assert_eq!(d("5s"), Ok(5_000_000_000));
        assert_eq!(d("1.5s"), Ok(1_500_000_000));
        assert_eq!(d("100ms"), Ok(100_000_000));
        assert_eq!(d("1m30s"), Ok(90_000_000_000));
        assert_eq!(d("1h"), Ok(3_600_000_000_000));
        assert_eq!(d("0"), Ok(0));
        assert_eq!(d("-0"), Ok(0));
        assert_eq!(d("-1s"), Ok(-1_000_000_000));
        assert_eq!(d("+2ms"), Ok(2_000_000));
        assert_eq!(d(".5s"), Ok(500_000_000));
        assert_eq!(d("5.s"), Ok(5_000_000_000));
        assert_eq!(d("1500us"), Ok(1_500_000));
        assert_eq!(d("1\u{b5}s"), Ok(1_000));
        assert_eq!(d("1\u{3bc}s"), Ok(1_000));
        assert_eq!(d("0.1s"), Ok(100_000_000));
        assert_eq!(d("1h2m3s4ms5us6ns"), Ok(3_723_004_005_006));
        assert_eq!(d("2562047h47m16.854775807s"), Ok(i64::MAX));
        assert_eq!(d("-2562047h47m16.854775808s"), Ok(i64::MIN));
        assert_eq!(
            d("2562047h47m16.854775808s"),
            Err("time: invalid duration \"2562047h47m16.854775808s\"".into())
        );
        assert_eq!(d("5"), Err("time: missing unit in duration \"5\"".into()));
        assert_eq!(
            d("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        for bad in ["", "s", "-", ".s", "1.2.3s", "abc", "1S"] {
            assert!(d(bad).is_err(), "{bad:?}");
        }
        let half_ms = Duration::parse("500us").unwrap();
        assert_eq!((half_ms.millis(), half_ms.subsecond_nanos()), (0, 500_000));
        assert_eq!(
            Duration::parse("-1.5s").unwrap().subsecond_nanos(),
            -500_000_000
        );
    }
}
