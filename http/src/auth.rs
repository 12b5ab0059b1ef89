//! Bearer tokens with scopes, loaded from a file of lines `TOKEN scope[,scope...]` (`#` starts
//! a comment line; blank lines are skipped). Tokens are compared in constant time.

use std::collections::BTreeSet;

use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Begin a backup, read its lists and files, seal the logs.
    Read,
    /// See and truncate the logs a backup made redundant (and end with `TRUNCATE_DONE`).
    Truncate,
    /// End or abort a backup.
    End,
    /// Restore-side calls (reserved: none are served yet).
    Restore,
    /// Start a push backup (the server writes a set into a target the host allows, and
    /// truncates the logs the set made redundant) and cancel it.
    Push,
}

impl Scope {
    /// Every scope, in the token file's order.
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Truncate,
        Scope::End,
        Scope::Restore,
        Scope::Push,
    ];

    /// The scope's name in the token file and in answers.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Truncate => "truncate",
            Scope::End => "end",
            Scope::Restore => "restore",
            Scope::Push => "push",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.name() == s)
    }
}

/// A line of the token file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for TokenFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token file line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for TokenFileError {}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token, a malformed header, or an unknown token: 401.
    Unauthenticated,
    /// A known token without the scope: 403.
    MissingScope(Scope),
}

/// The tokens a server accepts.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, BTreeSet<Scope>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl Tokens {
    /// Parses the token file's text.
    pub fn parse(text: &str) -> Result<Tokens, TokenFileError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            entries.push(parse_line(line).map_err(|reason| TokenFileError {
                line: i + 1,
                reason,
            })?);
        }
        Ok(Tokens { entries })
    }

    /// Whether no token is accepted: a server with none refuses every request (401).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the `Authorization` header value grants `scope`. Every token is compared, in
    /// constant time each, so the time taken says nothing about which bytes matched.
    pub fn check(&self, header: Option<&[u8]>, scope: Scope) -> Result<(), Denied> {
        match self.scopes(header) {
            None => Err(Denied::Unauthenticated),
            Some(s) if s.contains(&scope) => Ok(()),
            Some(_) => Err(Denied::MissingScope(scope)),
        }
    }

    /// The scopes the `Authorization` header value's token grants; `None` for no valid token.
    /// Compared as [`Tokens::check`] does.
    pub fn scopes(&self, header: Option<&[u8]>) -> Option<&BTreeSet<Scope>> {
        let presented = header?.strip_prefix(b"Bearer ")?;
        let mut found = None;
        for (token, scopes) in &self.entries {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(scopes);
            }
        }
        found
    }
}

fn parse_line(line: &str) -> Result<(Vec<u8>, BTreeSet<Scope>), String> {
    let mut parts = line.split_whitespace();
    let token = parts.next().ok_or("no token")?;
    let scopes = parts.next().ok_or("no scopes after the token")?;
    if parts.next().is_some() {
        return Err("more than a token and a scope list".into());
    }
    if token.len() < 16 {
        return Err("a token must have at least 16 characters".into());
    }
    let set = scopes
        .split(',')
        .map(|s| Scope::parse(s).ok_or_else(|| format!("unknown scope {s:?}")))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok((token.as_bytes().to_vec(), set))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "# backups\nreader-0123456789abcdef read\n\nadmin-0123456789abcdef read,truncate,end\n";

    #[test]
    fn scopes_are_granted_per_token() {
        let t = Tokens::parse(FILE).unwrap();
        let r = Some(&b"Bearer reader-0123456789abcdef"[..]);
        let a = Some(&b"Bearer admin-0123456789abcdef"[..]);
        assert_eq!(t.check(r, Scope::Read), Ok(()));
        assert_eq!(
            t.check(r, Scope::End),
            Err(Denied::MissingScope(Scope::End))
        );
        assert_eq!(t.check(a, Scope::Truncate), Ok(()));
        assert_eq!(
            t.check(a, Scope::Restore),
            Err(Denied::MissingScope(Scope::Restore))
        );
    }

    #[test]
    fn missing_unknown_and_malformed_tokens_are_unauthenticated() {
        let t = Tokens::parse(FILE).unwrap();
        for h in [
            None,
            Some(&b"reader-0123456789abcdef"[..]),
            Some(&b"Bearer reader-0123456789abcde"[..]),
            Some(&b"Bearer reader-0123456789abcdefg"[..]),
            Some(&b"Bearer "[..]),
            Some(&b"Basic eDp5"[..]),
        ] {
            assert_eq!(t.check(h, Scope::Read), Err(Denied::Unauthenticated));
        }
    }

    #[test]
    fn bad_lines_name_their_number() {
        let e = Tokens::parse("ok-0123456789abcdef read\nshort read\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = Tokens::parse("x-0123456789abcdef read,write\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("write"));
        assert!(Tokens::parse("lonely-0123456789abcdef\n").is_err());
    }
}
