//! Durations in config files: a number of seconds (`300`) or units (`5m`, `1h 30m`, `2d`, `45s`).

use std::time::Duration;

/// Parses `"1h 30m"`, `"90s"`, `"5m"`, `"2d"`, `"300"`. Units: s, m, h, d (also sec/min/hour/day
/// spelled out). An error message says what was expected.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad(s));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad(s))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let mult = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86400,
            _ => return Err(bad(s)),
        };
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(Duration::from_secs(total))
}

fn bad(s: &str) -> String {
    format!("`{s}` is not a duration; write seconds (300) or units such as 5m, 1h 30m, 2d")
}

/// Formats like the input syntax: `1h 30m`, `45s`, `0s`.
pub fn format(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            parts.push(format!("{}{unit}", s / len));
            s %= len;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_units() {
        for (s, secs) in [
            ("300", 300),
            ("5m", 300),
            ("1h 30m", 5400),
            ("1h30m", 5400),
            ("2d", 172800),
            ("45s", 45),
            (" 10 min ", 600),
            ("0", 0),
        ] {
            assert_eq!(parse(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for s in [
            "",
            "5x",
            "m5",
            "1.5h",
            "-3",
            "5 m m",
            "99999999999999999999d",
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format(Duration::from_secs(90061)), "1d 1h 1m 1s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
