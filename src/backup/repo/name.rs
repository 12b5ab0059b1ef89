//! Set names in a repository: `20261202T071500.123Z-full-1a2b`, the time the backup began
//! (UTC, to the millisecond), its kind and four random hex digits. Names sort by time, say
//! what a set is at a glance, and carry their age, which lets [`super::prune`] judge an
//! orphan (a set without a manifest) without asking the store for file times.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::backup::set::BackupKind;

/// A fresh name for a set of `kind` begun at `time_ms` (ms since the epoch).
pub fn new_name(kind: BackupKind, time_ms: u64) -> String {
    format!(
        "{}-{}-{:04x}",
        stamp(time_ms),
        kind_word(kind),
        random() & 0xffff
    )
}

/// The time a set name carries, ms since the epoch; `None` for a name not made by
/// [`new_name`].
pub fn name_time_ms(name: &str) -> Option<u64> {
    let b = name.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = name.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, s, ms) = (
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?,
        digits(16..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as i64, d as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    Some(secs * 1000 + ms)
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `time_ms` as `YYYYMMDDTHHMMSS.mmmZ`.
pub fn stamp(time_ms: u64) -> String {
    let secs = time_ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        time_ms % 1000
    )
}

fn kind_word(kind: BackupKind) -> &'static str {
    match kind {
        BackupKind::Full => "full",
        BackupKind::Incremental => "incremental",
        BackupKind::Copy => "copy",
        BackupKind::Differential => "differential",
    }
}

/// Sixteen unpredictable bits from the standard library's randomly keyed hasher.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Howard Hinnant's days-from-civil: the proleptic Gregorian calendar without a crate.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_time() {
        let t = 1_795_000_000_123; // 2026-11-18
        let n = new_name(BackupKind::Incremental, t);
        assert!(n.starts_with("20261118T"), "{n}");
        assert!(n.contains("-incremental-"), "{n}");
        assert_eq!(name_time_ms(&n), Some(t));
        assert_eq!(stamp(0), "19700101T000000.000Z");
        assert_eq!(
            name_time_ms("20240229T235959.999Z-full-0000"),
            Some(1_709_251_199_999)
        );
    }

    #[test]
    fn other_names_have_no_time() {
        for n in [
            "",
            "set",
            "2026-11-18",
            "20261318T000000.000Z-full",
            "20261118T000000.000X",
        ] {
            assert_eq!(name_time_ms(n), None, "{n}");
        }
    }

    #[test]
    fn names_sort_by_time() {
        let a = new_name(BackupKind::Full, 1_000_000_000_000);
        let b = new_name(BackupKind::Copy, 1_000_000_000_001);
        assert!(a < b);
    }
}
