//! DNS names as the model compares them: syntax checks and normalisation. Resolution (which
//! address a name has from where) belongs to [`crate::dns`]; this module only says whether a
//! name is well formed and how two spellings compare.

/// Whether a DNS name is syntactically valid (labels of letters, digits and hyphens, 1–63 chars,
/// total ≤ 253; a leading `*` label is not allowed here).
pub fn valid_dns_name(name: &str) -> bool {
    let n = name.trim_end_matches('.');
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Normalises a DNS name for comparison: lower case, no trailing dot.
pub fn normalize_dns(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}
