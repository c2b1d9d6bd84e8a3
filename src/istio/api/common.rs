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

/// `google.protobuf.Duration`, written as Go and the CRDs write durations: `5s`, `1.5s`,
/// `100ms`, `1m30s`, `1h`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Duration(pub StdDuration);

impl Duration {
    pub(crate) fn parse(text: &str) -> Option<Duration> {
        if text == "0" {
            return Some(Duration(StdDuration::ZERO));
        }
        let mut rest = text;
        let mut total = 0f64;
        let mut any = false;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let number: f64 = rest[..number_len].parse().ok()?;
            rest = &rest[number_len..];
            let (unit, seconds) = [
                ("ns", 1e-9),
                ("us", 1e-6),
                ("µs", 1e-6),
                ("ms", 1e-3),
                ("s", 1.0),
                ("m", 60.0),
                ("h", 3600.0),
            ]
            .into_iter()
            .find(|(unit, _)| {
                rest.starts_with(unit)
                    // `m` is minutes only when not the start of `ms`.
                    && !(*unit == "m" && rest.starts_with("ms"))
            })?;
            rest = &rest[unit.len()..];
            total += number * seconds;
            any = true;
        }
        (any && total.is_finite()).then(|| Duration(StdDuration::from_secs_f64(total)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> de::Deserialize<'de> for Duration {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).ok_or_else(|| {
            de::Error::invalid_value(
                de::Unexpected::Str(&text),
                &"a duration such as 5s, 1.5s, 100ms or 1m",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        let d = |s: &str| Duration::parse(s).map(|d| d.0);
        assert_eq!(d("5s"), Some(StdDuration::from_secs(5)));
        assert_eq!(d("1.5s"), Some(StdDuration::from_millis(1500)));
        assert_eq!(d("100ms"), Some(StdDuration::from_millis(100)));
        assert_eq!(d("1m30s"), Some(StdDuration::from_secs(90)));
        assert_eq!(d("1h"), Some(StdDuration::from_secs(3600)));
        assert_eq!(d("0"), Some(StdDuration::ZERO));
        for bad in ["", "5", "s", "5x", "-1s", "1.2.3s"] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }
}
