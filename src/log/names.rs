//! ESE's log file names: `<base>.log` is the current generation, `<base>XXXXXXXX.log` an
//! archived one (8 upper-case hex digits; 5 are also read, as older ESE wrote them),
//! `<base>.chk` the checkpoint.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Checks a base name: exactly three ASCII letters or digits.
pub fn check_base_name(base: &str) -> Result<()> {
    if base.len() == 3 && base.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(Error::InvalidParameter)
    }
}

/// `<dir>/<base>.log`.
pub fn current(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.log"))
}

/// `<dir>/<base>XXXXXXXX.log`.
pub fn archived(dir: &Path, base: &str, gen: u32) -> PathBuf {
    dir.join(format!("{base}{gen:08X}.log"))
}

/// `<dir>/<base>tmp.log`: where the next current log is built before it is renamed into place
/// (ESE's `edbtmp.log`).
pub fn temporary(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}tmp.log"))
}

/// `<dir>/<base>.chk`.
pub fn checkpoint(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.chk"))
}

/// The generation of an archived log's file name, if `name` is one for `base`.
pub fn parse_archived(base: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(base)?.strip_suffix(".log")?;
    if !(rest.len() == 5 || rest.len() == 8) || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(rest, 16).ok().filter(|&g| g > 0)
}

/// Archived generations found in `dir`, ascending, with their paths.
pub fn list_archived(
    storage: &dyn crate::io::Storage,
    dir: &Path,
    base: &str,
) -> Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for p in storage.list(dir)? {
        if let Some(g) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| parse_archived(base, n))
        {
            out.push((g, p));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = archived(Path::new("/d"), "edb", 0x1A);
        assert_eq!(p, Path::new("/d/edb0000001A.log"));
        assert_eq!(parse_archived("edb", "edb0000001A.log"), Some(0x1A));
        assert_eq!(parse_archived("edb", "edb0001A.log"), Some(0x1A));
        assert_eq!(parse_archived("edb", "edb.log"), None);
        assert_eq!(parse_archived("edb", "edb001A.log"), None);
        assert_eq!(parse_archived("edb", "abc0000001A.log"), None);
        assert!(check_base_name("ed").is_err());
        assert!(check_base_name("e/b").is_err());
        check_base_name("r01").unwrap();
    }
}
