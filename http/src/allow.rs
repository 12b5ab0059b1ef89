//! Which push targets a client may name. A push writes on the server's disks or with the
//! server's object-store credentials, at a place a client chose, so the host lists the places
//! it allows (`Builder::push_targets`) and a target must lie under one of them.
//!
//! The check is lexical, on a canonical form: a path must be absolute and free of `.`, `..`
//! and empty components; nothing percent-encoded, no backslash, query or fragment is taken
//! (the set code would read them differently from this check). A target lies under a prefix
//! when the prefix's components are its first components, so `/srv/b` does not allow
//! `/srv/backups`. What the host keeps under its prefixes (symbolic links leading elsewhere)
//! is the host's business.

use axum::http::StatusCode;
use ese_actors::Error;

use crate::errors::ApiError;

/// A target in canonical form: a folder's path components, or an object store's bucket and
/// key components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `/a/b` or `file:///a/b`.
    Dir(Vec<String>),
    /// `s3://bucket/a/b`: the bucket first.
    S3(Vec<String>),
}

impl Place {
    /// Parses a target or a prefix; the reason it is refused otherwise.
    pub fn parse(s: &str) -> Result<Place, String> {
        if let Some(bad) = s
            .chars()
            .find(|c| matches!(c, '%' | '\\' | '?' | '#') || c.is_control())
        {
            return Err(format!("{bad:?} is not allowed in a push target"));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            return components(rest).map(Place::S3);
        }
        let path = s.strip_prefix("file://").unwrap_or(s);
        if s.contains("://") && path == s {
            return Err("a push target is s3://BUCKET/PREFIX, file:///PATH or /PATH".into());
        }
        match path.strip_prefix('/') {
            Some(rest) => components(rest).map(Place::Dir),
            None => Err("a push target's path must be absolute".into()),
        }
    }

    /// Whether `self` lies under (or is) `prefix`.
    pub fn is_under(&self, prefix: &Place) -> bool {
        match (self, prefix) {
            (Place::Dir(t), Place::Dir(p)) | (Place::S3(t), Place::S3(p)) => t.starts_with(p),
            _ => false,
        }
    }

    /// The form `BackupTarget::parse` reads.
    pub fn url(&self) -> String {
        match self {
            Place::Dir(c) => format!("/{}", c.join("/")),
            Place::S3(c) => format!("s3://{}", c.join("/")),
        }
    }
}

/// The components of `a/b/c` (one trailing `/` allowed); `.`, `..` and empty ones refused.
fn components(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err("a push target names no folder or bucket".into());
    }
    rest.split('/')
        .map(|c| match c {
            "" | "." | ".." => Err(format!(
                "{c:?}: a push target has no empty, `.` or `..` component"
            )),
            c => Ok(c.to_string()),
        })
        .collect()
}

/// The canonical place of a client's `target`, if the host allows it: 400 `InvalidPath`
/// (-1023) for a hostile or malformed form, 403 `PermissionDenied` (-1809) for a place
/// outside every allowed prefix, or when the host allows none (push mode is off).
pub fn check(target: &str, allowed: &[Place]) -> Result<Place, ApiError> {
    if allowed.is_empty() {
        return Err(ApiError::new(
            Error::PermissionDenied,
            StatusCode::FORBIDDEN,
            "push mode is off: this server allows no push target",
        ));
    }
    let place = Place::parse(target)
        .map_err(|why| ApiError::new(Error::InvalidPath, StatusCode::BAD_REQUEST, why))?;
    if !allowed.iter().any(|p| place.is_under(p)) {
        return Err(ApiError::new(
            Error::PermissionDenied,
            StatusCode::FORBIDDEN,
            "the target is outside the places this server allows pushes to",
        ));
    }
    Ok(place)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<Place> {
        ["/srv/backups", "s3://bucket/ese/"]
            .iter()
            .map(|s| Place::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn targets_under_an_allowed_prefix_pass_in_canonical_form() {
        for (t, url) in [
            ("/srv/backups", "/srv/backups"),
            ("/srv/backups/nightly/", "/srv/backups/nightly"),
            ("file:///srv/backups/a", "/srv/backups/a"),
            ("s3://bucket/ese/x", "s3://bucket/ese/x"),
        ] {
            assert_eq!(check(t, &allowed()).unwrap().url(), url, "{t}");
        }
    }

    #[test]
    fn targets_elsewhere_are_403() {
        for t in [
            "/srv/backupsx",
            "/srv",
            "/etc/passwd",
            "s3://bucket/other",
            "s3://bucket2/ese",
            "file:///tmp/x",
        ] {
            let e = check(t, &allowed()).unwrap_err();
            assert_eq!(
                (e.status, e.error.code()),
                (StatusCode::FORBIDDEN, -1809),
                "{t}"
            );
        }
    }

    #[test]
    fn hostile_forms_are_400_invalid_path() {
        for t in [
            "/srv/backups/../etc",
            "/srv/backups/./a",
            "/srv/backups//a",
            "/srv/backups/%2e%2e/etc",
            "/srv/backups%2Fa",
            "/srv/backups\\..\\etc",
            "srv/backups",
            "backups",
            "",
            "s3://bucket/ese/../x",
            "s3://",
            "http://example.com/x",
            "/srv/backups/a?x=1",
            "/srv/backups/a\n",
        ] {
            let e = check(t, &allowed()).unwrap_err();
            assert_eq!(
                (e.status, e.error.code()),
                (StatusCode::BAD_REQUEST, -1023),
                "{t:?}"
            );
        }
    }

    #[test]
    fn without_allowed_places_push_is_off() {
        let e = check("/srv/backups", &[]).unwrap_err();
        assert_eq!((e.status, e.error.code()), (StatusCode::FORBIDDEN, -1809));
        assert!(e.message.contains("push mode is off"));
    }
}
