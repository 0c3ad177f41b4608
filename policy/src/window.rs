//! `--since` and `--until`: RFC 3339 times, turned into the journal's own
//! form (UTC, nine fractional digits) so they compare with record times as
//! text.

use crate::error::{bad, Result};

/// The times a flow must overlap to count; `None` is open.
#[derive(Debug, Default, Clone)]
pub struct Window {
    pub since: Option<String>,
    pub until: Option<String>,
}

impl Window {
    pub fn new(since: Option<&str>, until: Option<&str>) -> Result<Window> {
        let since = since.map(|t| canonical(t).map_err(|e| bad(format!("--since {t:?}: {e}")))).transpose()?;
        let until = until.map(|t| canonical(t).map_err(|e| bad(format!("--until {t:?}: {e}")))).transpose()?;
        if let (Some(s), Some(u)) = (&since, &until) {
            if s > u {
                return Err(bad(format!("--since {s} is after --until {u}")));
            }
        }
        Ok(Window { since, until })
    }

    /// Whether something seen from `first` to `last` (record times) falls in.
    pub fn overlaps(&self, first: &str, last: &str) -> bool {
        self.since.as_deref().is_none_or(|s| last >= s) && self.until.as_deref().is_none_or(|u| first <= u)
    }
}

/// `2026-11-28T10:00:00Z`, `2026-11-28T11:00:00.5+01:00` or a bare date
/// `2026-11-28` as the journal writes times.
pub fn canonical(t: &str) -> std::result::Result<String, String> {
    let t = t.trim();
    let full;
    let t = if t.len() == 10 {
        full = format!("{t}T00:00:00Z");
        &full
    } else {
        t
    };
    let b = t.as_bytes();
    let expect = "expected an RFC 3339 time such as 2026-11-28T10:00:00Z";
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(expect.into());
    }
    let num = |r: std::ops::Range<usize>| {
        t.get(r).filter(|s| s.bytes().all(|c| c.is_ascii_digit())).and_then(|s| s.parse::<i64>().ok())
    };
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19))
    else {
        return Err(expect.into());
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return Err("a field is out of range".into());
    }
    let mut rest = &t[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err("the fraction of a second takes 1 to 9 digits".into());
        }
        nanos = frac[..digits].parse::<u32>().map_err(|_| expect)? * 10u32.pow(9 - digits as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let o = rest.as_bytes();
            if o.len() != 6 || !matches!(o[0], b'+' | b'-') || o[3] != b':' {
                return Err("the time needs a zone: Z or +hh:mm".into());
            }
            let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<i64>().ok()).flatten();
            let (Some(oh @ 0..=23), Some(om @ 0..=59)) = (digits(&rest[1..3]), digits(&rest[4..6])) else {
                return Err("the zone offset is +hh:mm, hours to 23, minutes to 59".into());
            };
            (oh * 60 + om) * 60 * if o[0] == b'-' { -1 } else { 1 }
        }
    };
    let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + s - offset;
    if secs < 0 {
        return Err("before 1970".into());
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos);
    Ok(journal::time::rfc3339(at))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days-from-civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_become_the_journals_form() {
        assert_eq!(canonical("2026-11-28T10:00:00Z").unwrap(), "2026-11-28T10:00:00.000000000Z");
        assert_eq!(canonical("2026-11-28T11:00:00.5+01:00").unwrap(), "2026-11-28T10:00:00.500000000Z");
        assert_eq!(canonical("2024-02-29").unwrap(), "2024-02-29T00:00:00.000000000Z");
        assert_eq!(canonical("2026-12-31T23:30:00-01:00").unwrap(), "2027-01-01T00:30:00.000000000Z");
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-28T10:00:00",
            "2026-11-28T10:00:00+99:99",
            "2026-11-28T10:00:00++9:00",
            "2026-11-28T10:00:00.Z",
        ] {
            assert!(canonical(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn since_after_until_is_bad_input() {
        let e = Window::new(Some("2026-11-28T11:00:00Z"), Some("2026-11-28T10:00:00Z")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("after --until"), "{e}");
    }
}
