//! Values of the template language: JSON plus two states that travel through expressions instead
//! of stopping them — *unknown* (known only at deployment time, or computed by a function vnetsim
//! does not evaluate) and *failed* (an evaluation error, raised only if the value is used).

use std::sync::Arc;

use super::error::ImportError;
use super::limits::Limit;

/// Approximate heap and inline bytes of one member of an array (a `Val`).
pub(crate) const VAL_BYTES: usize = std::mem::size_of::<Val>();
/// Approximate bytes of one member of an object (its key's `String` and its `Val`).
pub(crate) const ENTRY_BYTES: usize = std::mem::size_of::<(String, Val)>();

/// Why a value is unknown, and where the expression that made it unknown is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Input display name.
    pub input: String,
    /// RFC 6901 pointer of the string holding the expression.
    pub pointer: String,
    /// The expression text.
    pub expression: String,
    /// Why it is unknown.
    pub reason: String,
}

/// A template-language value.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    /// A JSON number with a fraction (the template language has none, but literals may).
    Float(f64),
    Str(String),
    Arr(Vec<Val>),
    /// Keys in document order; looked up case-insensitively.
    Obj(Vec<(String, Val)>),
    Unknown(Arc<Pending>),
    Failed(Arc<ImportError>),
}

// === impl Val ===

impl Val {
    /// Converts parsed JSON (no expressions evaluated).
    pub fn from_json(v: &serde_json::Value) -> Val {
        match v {
            serde_json::Value::Null => Val::Null,
            serde_json::Value::Bool(b) => Val::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Val::Str(s.clone()),
            serde_json::Value::Array(a) => Val::Arr(a.iter().map(Val::from_json).collect()),
            serde_json::Value::Object(o) => Val::Obj(
                o.iter()
                    .map(|(k, v)| (k.clone(), Val::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// JSON text of a known value (unknown parts print as `null`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Null | Val::Unknown(_) | Val::Failed(_) => serde_json::Value::Null,
            Val::Bool(b) => (*b).into(),
            Val::Int(i) => (*i).into(),
            Val::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            Val::Str(s) => s.clone().into(),
            Val::Arr(a) => a.iter().map(Val::to_json).collect(),
            Val::Obj(o) => {
                serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// The template language's name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "a bool",
            Val::Int(_) | Val::Float(_) => "an int",
            Val::Str(_) => "a string",
            Val::Arr(_) => "an array",
            Val::Obj(_) => "an object",
            Val::Unknown(_) => "unknown",
            Val::Failed(_) => "an error",
        }
    }

    /// Whether the value itself (not its members) is unknown or failed.
    pub fn is_pending(&self) -> bool {
        matches!(self, Val::Unknown(_) | Val::Failed(_))
    }

    /// The first unknown or failed value anywhere inside (a failure wins over an unknown).
    pub fn first_pending(&self) -> Option<&Val> {
        match self {
            Val::Unknown(_) | Val::Failed(_) => Some(self),
            Val::Arr(a) => pick(a.iter().filter_map(Val::first_pending)),
            Val::Obj(o) => pick(o.iter().filter_map(|(_, v)| v.first_pending())),
            _ => None,
        }
    }

    /// Member by key, case-insensitively (the last of duplicate keys, as ARM keeps it).
    pub fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Val::Obj(o) => o
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Approximate bytes the value occupies (inline size of each member plus string bytes),
    /// or the limit it exceeds: [`Limit::ValueSize`] once the count passes `max_bytes`,
    /// [`Limit::ValueDepth`] when nested deeper than `max_depth`. Stops at the first excess,
    /// so the walk costs at most `max_bytes` and recurses at most `max_depth` deep.
    pub fn measure(&self, max_bytes: usize, max_depth: usize) -> Result<usize, Limit> {
        let mut total = VAL_BYTES;
        self.measure_into(&mut total, max_bytes, max_depth)?;
        Ok(total)
    }

    fn measure_into(&self, total: &mut usize, max_bytes: usize, depth: usize) -> Result<(), Limit> {
        match self {
            Val::Str(s) => *total += s.len(),
            Val::Arr(a) => {
                let depth = depth.checked_sub(1).ok_or(Limit::ValueDepth)?;
                for v in a {
                    *total += VAL_BYTES;
                    v.measure_into(total, max_bytes, depth)?;
                    if *total > max_bytes {
                        return Err(Limit::ValueSize);
                    }
                }
            }
            Val::Obj(o) => {
                let depth = depth.checked_sub(1).ok_or(Limit::ValueDepth)?;
                for (k, v) in o {
                    *total += ENTRY_BYTES + k.len();
                    v.measure_into(total, max_bytes, depth)?;
                    if *total > max_bytes {
                        return Err(Limit::ValueSize);
                    }
                }
            }
            _ => {}
        }
        if *total > max_bytes {
            return Err(Limit::ValueSize);
        }
        Ok(())
    }

    /// Text of a scalar as `concat`/`format` write it (bools as .NET does: `True`/`False`;
    /// arrays and objects as compact JSON). `None` for unknown or failed values.
    pub fn display_text(&self) -> Option<String> {
        Some(match self {
            Val::Null => String::new(),
            Val::Bool(true) => "True".into(),
            Val::Bool(false) => "False".into(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => f.to_string(),
            Val::Str(s) => s.clone(),
            Val::Arr(_) | Val::Obj(_) => {
                if self.first_pending().is_some() {
                    return None;
                }
                self.to_json().to_string()
            }
            Val::Unknown(_) | Val::Failed(_) => return None,
        })
    }
}

fn pick<'a>(mut it: impl Iterator<Item = &'a Val>) -> Option<&'a Val> {
    let first = it.next()?;
    if matches!(first, Val::Failed(_)) {
        return Some(first);
    }
    Some(it.find(|v| matches!(v, Val::Failed(_))).unwrap_or(first))
}

/// Deep equality as `equals` computes it: strings case-sensitively, object keys
/// case-insensitively. `None` when an unknown or failed value takes part.
pub(crate) fn equal(a: &Val, b: &Val) -> Option<bool> {
    Some(match (a, b) {
        (Val::Unknown(_) | Val::Failed(_), _) | (_, Val::Unknown(_) | Val::Failed(_)) => {
            return None
        }
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Int(x), Val::Float(y)) | (Val::Float(y), Val::Int(x)) => (*x as f64) == *y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Arr(x), Val::Arr(y)) => {
            if x.len() != y.len() {
                return Some(false);
            }
            let mut all = true;
            for (p, q) in x.iter().zip(y) {
                all &= equal(p, q)?;
            }
            all
        }
        (Val::Obj(x), Val::Obj(y)) => {
            if x.len() != y.len() {
                return Some(false);
            }
            let mut all = true;
            for (k, p) in x {
                match b.get(k) {
                    Some(q) => all &= equal(p, q)?,
                    None => return Some(false),
                }
            }
            all
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_deep_and_unknown_aware() {
        let a = Val::from_json(&serde_json::json!({"A": [1, "x"], "b": null}));
        let b = Val::from_json(&serde_json::json!({"a": [1, "x"], "B": null}));
        assert_eq!(equal(&a, &b), Some(true));
        assert_eq!(
            equal(&Val::Str("x".into()), &Val::Str("X".into())),
            Some(false)
        );
        let u = Val::Unknown(Arc::new(Pending {
            input: "t".into(),
            pointer: "/x".into(),
            expression: "reference('a')".into(),
            reason: "deployment".into(),
        }));
        assert_eq!(equal(&u, &Val::Null), None);
        assert!(Val::Arr(vec![Val::Int(1), u]).first_pending().is_some());
    }

    #[test]
    fn measure_stops_at_the_first_excess() {
        let s = Val::Str("x".repeat(100));
        assert_eq!(s.measure(1000, 1), Ok(VAL_BYTES + 100));
        assert_eq!(s.measure(50, 1), Err(Limit::ValueSize));
        let nested = Val::Arr(vec![Val::Arr(vec![Val::Int(1)])]);
        assert_eq!(nested.measure(1000, 2), Ok(3 * VAL_BYTES));
        // Two levels of arrays: allowed at depth 2, refused at depth 1.
        assert_eq!(nested.measure(1000, 1), Err(Limit::ValueDepth));
    }

    #[test]
    fn display_text_follows_dotnet() {
        assert_eq!(Val::Bool(true).display_text().as_deref(), Some("True"));
        let o = Val::from_json(&serde_json::json!({"a": 1}));
        assert_eq!(o.display_text().as_deref(), Some("{\"a\":1}"));
    }
}
