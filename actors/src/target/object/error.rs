//! object_store's errors as ESE errors, each naming the store and the object. The
//! credentials are never in them: object_store's messages carry the request's URL and the
//! server's answer, not the signing key.

use ese::Error;

/// `e`, met doing `what` on `object` (a URL without credentials), as an ESE error: a
/// missing object is `FileNotFound`, a refusal of the credentials `FileAccessDenied`,
/// anything else (endpoint down, unknown bucket, quorum lost, timeouts) `DiskIO`. S3 answers
/// a request into a bucket that does not exist with 404 too, which object_store reports as
/// not found: that is the store's failure, not a missing set or file.
pub(crate) fn store_error(e: object_store::Error, what: &str, object: &str) -> Error {
    let text = without_signing(&plain(&e));
    let no_bucket = text.contains("NoSuchBucket");
    let code = match &e {
        object_store::Error::NotFound { .. } if !no_bucket => Error::FileNotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => Error::FileAccessDenied,
        // object_store reports most S3 refusals as a generic error whose text carries the
        // HTTP status and S3's error code; its status type is not public.
        _ if refused_credentials(&text) => Error::FileAccessDenied,
        _ => Error::DiskIO(ese::IoError::new(std::io::Error::other(text.clone()))),
    };
    let hint = match () {
        _ if no_bucket => " (the bucket does not exist)",
        _ if code == Error::FileAccessDenied => " (the credentials were refused)",
        _ => "",
    };
    code.with_detail(format!("object store: {what} {object}{hint}: {text}"))
}

/// `text` without the parts of an S3 error body that echo the signed request
/// (`SignatureDoesNotMatch` answers carry the canonical request, whose headers may include a
/// session token).
fn without_signing(text: &str) -> String {
    let mut out = text.to_string();
    for tag in [
        "CanonicalRequest",
        "CanonicalRequestBytes",
        "StringToSign",
        "StringToSignBytes",
    ] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut rest = out.as_str();
        let mut kept = String::with_capacity(out.len());
        while let Some(a) = rest.find(&open) {
            kept.push_str(&rest[..a]);
            kept.push_str(&format!("<{tag}>(removed)</{tag}>"));
            rest = match rest[a..].find(&close) {
                Some(b) => &rest[a + b + close.len()..],
                None => "",
            };
        }
        kept.push_str(rest);
        out = kept;
    }
    out
}

/// Whether S3 refused the request's credentials or signature.
fn refused_credentials(text: &str) -> bool {
    [
        "403 Forbidden",
        "401 Unauthorized",
        "<Code>AccessDenied",
        "<Code>InvalidAccessKeyId",
        "<Code>SignatureDoesNotMatch",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// The error and its sources in one line.
fn plain(e: &object_store::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_requests_are_cut_out_of_error_bodies() {
        let body = "403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code><CanonicalRequest>GET\n/\nx-amz-security-token:SECRET-TOKEN</CanonicalRequest><StringToSign>AWS4 SECRET-TOKEN</StringToSign></Error>";
        let clean = without_signing(body);
        assert!(!clean.contains("SECRET-TOKEN"), "{clean}");
        assert!(
            clean.contains("SignatureDoesNotMatch") && clean.contains("(removed)"),
            "{clean}"
        );
        assert!(refused_credentials(&clean));
    }

    #[test]
    fn a_missing_bucket_is_the_stores_failure_a_missing_object_is_not_found() {
        let not_found = |body: &str| object_store::Error::NotFound {
            path: "p/set/manifest.json".into(),
            source: body.to_string().into(),
        };
        let e = store_error(
            not_found("404 Not Found: <Error><Code>NoSuchBucket</Code></Error>"),
            "reading",
            "s3://gone/p/set/manifest.json",
        );
        assert_eq!(e.code(), -1022, "{e}");
        assert!(e.to_string().contains("the bucket does not exist"), "{e}");
        let e = store_error(
            not_found("404 Not Found: <Error><Code>NoSuchKey</Code></Error>"),
            "reading",
            "s3://b/p/set/manifest.json",
        );
        assert_eq!(e.code(), -1811, "{e}");
    }
}
