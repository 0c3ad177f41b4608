//! Record times: RFC 3339 in UTC with exactly nine fractional digits
//! (`2026-11-28T07:31:07.123456789Z`), so lines sort as text.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as a record writes it.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil(days as i64);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_nanos())
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// The calendar date of a day number since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's days-to-civil).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_have_nine_digits_and_sort_as_text() {
        let t = UNIX_EPOCH + Duration::new(1_795_851_931, 786_976);
        assert_eq!(rfc3339(t), "2026-11-28T07:45:31.000786976Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // a leap day, and the turn of a year
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_798_761_599)), "2026-12-31T23:59:59.000000000Z");
        let (a, b) = (rfc3339(t), rfc3339(t + Duration::from_nanos(1)));
        assert!(a < b);
    }
}
