//! "Did you mean …?" for unknown names: the known names nearest to a misspelt one by edit
//! distance (Levenshtein, compared case-insensitively, as Azure compares resource names).

/// The largest edit distance still suggested: a third of the name's length, at least 1, at
/// most 3 — close enough to be a typo, not a different name.
fn max_distance(name: &str) -> usize {
    (name.chars().count() / 3).clamp(1, 3)
}

/// Levenshtein distance between two strings, counted in characters, case-insensitive.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: String = b.chars().flat_map(char::to_lowercase).collect();
    bounded_distance(&a, &b, usize::MAX).unwrap_or(usize::MAX)
}

/// Levenshtein distance between `a` and `b` (ASCII-lower-cased by the caller), or `None` when
/// it exceeds `limit` (the row minimum passing `limit` ends the computation early).
pub(crate) fn bounded_distance(a: &[char], b: &str, limit: usize) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        if cur.iter().min().is_some_and(|&m| m > limit) {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= limit).then_some(d)
}

/// The nearest known names (all at the smallest distance, sorted, at most three).
pub(crate) fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let limit = max_distance(name);
    let mut best: Vec<(usize, &str)> = known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .collect();
    let Some(min) = best.iter().map(|(d, _)| *d).min() else {
        return Vec::new();
    };
    best.retain(|(d, _)| *d == min);
    let mut names: Vec<&str> = best.into_iter().map(|(_, k)| k).collect();
    names.sort_unstable();
    names.dedup();
    names.truncate(3);
    names
}

/// ` (did you mean `a` or `b`?)` for an unknown `name`, or an empty string when nothing is near.
pub(crate) fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let near = nearest(name, known);
    if near.is_empty() {
        return String::new();
    }
    let list: Vec<String> = near.iter().map(|n| format!("`{n}`")).collect();
    format!(" (did you mean {}?)", list.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("nsg-web", "NSG-WEB"), 0);
        assert_eq!(edit_distance("nsg-wbe", "nsg-web"), 2);
        assert_eq!(edit_distance("vnet-hub", "vnet-hubb"), 1);
    }

    #[test]
    fn suggestions() {
        let known = ["nsg-web", "nsg-db", "nsg-apim"];
        assert_eq!(nearest("nsg-apin", known), ["nsg-apim"]);
        assert_eq!(
            did_you_mean("nsg-webb", known),
            " (did you mean `nsg-web`?)"
        );
        // Two at the same distance are both named, sorted.
        assert_eq!(
            nearest("nsg-d", ["nsg-a", "nsg-b", "other"]),
            ["nsg-a", "nsg-b"]
        );
        // Nothing near: no suggestion.
        assert_eq!(did_you_mean("firewall", known), "");
        assert_eq!(did_you_mean("x", Vec::<&str>::new()), "");
    }
}
