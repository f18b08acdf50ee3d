//! Request paths before routing: dot-segment removal (RFC 3986 §5.2.4), so that `..` can
//! neither select another backend path than the one routed on nor reach a backend verbatim.
//!
//! Decisions (documented in the README's status table):
//! * `%2e` / `%2E` count as `.`: a percent-encoded unreserved character is equivalent to the
//!   character itself (RFC 3986 §2.3, §6.2.2.2), and a backend that decodes before resolving
//!   would otherwise see the `..` the gateway let through. So `/a/%2e%2E/b` is `/b`.
//! * `%2F` is data, not a separator (RFC 3986 §2.2): `..%2F` is an ordinary segment.
//! * The RFC's algorithm silently drops a `..` that would climb above the root
//!   (`/a/../../b` → `/b`); the gateway refuses such a path instead
//!   (400 `PATH_TRAVERSAL`): no legitimate client sends one.
//! * The whole gateway path is normalised, then routed: `/orders/../legacy/x` is routed as
//!   `/legacy/x`, and the rest joined to the backend's path never holds a dot-segment, so a
//!   backend's base path cannot be climbed out of.
//!
//! This module owns no I/O; [`crate::proxy`] calls it and turns the refusal into an answer.

use std::borrow::Cow;

/// A `..` segment would climb above the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AboveRoot;

/// What a segment is, dot-wise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    /// `.` (or `%2e`).
    Current,
    /// `..` (or any mix of `.` and `%2e`).
    Parent,
    /// Anything else.
    Name,
}

/// Classifies one segment without allocating: counts its dots, each `.` or `%2e`.
fn segment(s: &str) -> Segment {
    let b = s.as_bytes();
    let mut dots = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'%' && b.len() >= i + 3 && b[i + 1] == b'2' && (b[i + 2] | 0x20) == b'e'
        {
            i += 3;
        } else {
            return Segment::Name;
        }
        dots += 1;
    }
    match dots {
        1 => Segment::Current,
        2 => Segment::Parent,
        _ => Segment::Name,
    }
}

/// Whether `path` holds a dot-segment. The common case — no `.` or `%` at all — is one byte
/// scan; otherwise each segment is classified in place.
fn has_dot_segment(path: &str) -> bool {
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    path.split('/').any(|s| segment(s) != Segment::Name)
}

/// `path` (origin-form, starting with `/`) with its dot-segments removed. Borrowed, without
/// allocating, when there is none.
///
/// # Errors
/// [`AboveRoot`] when a `..` would climb above the root.
pub(crate) fn remove_dot_segments(path: &str) -> Result<Cow<'_, str>, AboveRoot> {
    if !has_dot_segment(path) {
        return Ok(Cow::Borrowed(path));
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut out: Vec<&str> = Vec::new();
    // A path ending in a dot-segment ends in `/` once resolved (`/a/b/..` → `/a/`).
    let mut trailing_slash = false;
    for s in rest.split('/') {
        trailing_slash = false;
        match segment(s) {
            Segment::Current => trailing_slash = true,
            Segment::Parent => {
                out.pop().ok_or(AboveRoot)?;
                trailing_slash = true;
            }
            Segment::Name => out.push(s),
        }
    }
    let mut joined = String::with_capacity(path.len());
    for s in &out {
        joined.push('/');
        joined.push_str(s);
    }
    if trailing_slash || joined.is_empty() {
        joined.push('/');
    }
    Ok(Cow::Owned(joined))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, AboveRoot> {
        remove_dot_segments(p).map(Cow::into_owned)
    }

    #[test]
    fn paths_without_dot_segments_are_borrowed() {
        // No allocation on the hot path: dots inside names are not dot-segments.
        for p in [
            "/orders/1",
            "/",
            "/.well-known/x",
            "/a/b.json",
            "/a/%41",
            "/a/...",
            "/a/.b",
        ] {
            assert!(
                matches!(remove_dot_segments(p), Ok(Cow::Borrowed(b)) if b == p),
                "{p}"
            );
        }
    }

    #[test]
    fn dot_segments_are_removed_as_rfc_3986_says() {
        // RFC 3986 §5.2.4's own examples, as absolute paths.
        assert_eq!(norm("/a/b/c/./../../g").unwrap(), "/a/g");
        assert_eq!(norm("/orders/../legacy/x").unwrap(), "/legacy/x");
        assert_eq!(norm("/a/./b").unwrap(), "/a/b");
        // A path ending in a dot-segment keeps a trailing slash.
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/.").unwrap(), "/a/");
        assert_eq!(norm("/a/..").unwrap(), "/");
        assert_eq!(norm("/.").unwrap(), "/");
        // Empty segments are kept, and `..` removes one.
        assert_eq!(norm("/a//../b").unwrap(), "/a/b");
    }

    #[test]
    fn percent_encoded_dots_are_dots() {
        assert_eq!(norm("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(norm("/a/.%2e/b").unwrap(), "/b");
        assert_eq!(norm("/a/%2E/b").unwrap(), "/a/b");
        // An encoded slash is data: `..%2F` is a name.
        assert!(matches!(
            remove_dot_segments("/a/..%2Fb"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        assert_eq!(norm("/.."), Err(AboveRoot));
        assert_eq!(norm("/legacy/../../admin"), Err(AboveRoot));
        assert_eq!(norm("/%2e%2e/etc/passwd"), Err(AboveRoot));
        // Down then up stays inside: allowed.
        assert_eq!(norm("/a/b/../../c").unwrap(), "/c");
    }
}
