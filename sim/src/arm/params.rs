//! Template parameters: values from parameters files (`deploymentParameters.json`) and
//! `--parameter name=value` pairs, read per the declared type; defaults that are themselves
//! expressions; `allowedValues`; Key Vault references (unknown until deployment).

use std::sync::Arc;

use serde_json::Value;

use super::error::{ImportError, Location};
use super::eval::{get_ci, Env, Loops};
use super::json;
use super::value::{equal, Pending, Val};

/// Display name used in locations of `--parameter` values.
pub(crate) const CLI_INPUT: &str = "--parameter";

/// One provided parameter value.
#[derive(Clone, Debug)]
pub(crate) struct ProvidedParam {
    pub name: String,
    pub value: ProvidedValue,
    pub at: Location,
}

#[derive(Clone, Debug)]
pub(crate) enum ProvidedValue {
    /// From a parameters file: JSON, checked against the declared type.
    Json(Value),
    /// A Key Vault reference: known only at deployment time.
    Reference,
    /// From `--parameter name=value`: text, read per the declared type.
    Text(String),
    /// Passed to a nested deployment's inline template: evaluated in the parent template.
    Evaluated(Val),
}

/// Every provided value, files first (in order), then command-line pairs (in order); the last
/// one for a name wins, so the command line overrides files.
#[derive(Clone, Debug, Default)]
pub(crate) struct Provided {
    pub entries: Vec<ProvidedParam>,
}

impl Provided {
    /// Adds the values of a parameters file.
    pub fn add_file(&mut self, input: &str, doc: &Value) -> Result<(), ImportError> {
        let Some(ps) = get_ci(doc, "parameters").and_then(Value::as_object) else {
            return Err(ImportError::Invalid {
                at: Location::new(input, ""),
                message: "a parameters file needs a `parameters` object".into(),
            });
        };
        for (k, v) in ps {
            let ptr = json::key("/parameters", k);
            let value = if let Some(x) = get_ci(v, "value") {
                ProvidedValue::Json(x.clone())
            } else if get_ci(v, "reference").is_some() {
                ProvidedValue::Reference
            } else {
                return Err(ImportError::Invalid {
                    at: Location::new(input, ptr),
                    message: format!(
                        "parameter `{k}` needs a `value` (or a Key Vault `reference`)"
                    ),
                });
            };
            let at_ptr = match value {
                ProvidedValue::Reference => json::key(&ptr, "reference"),
                _ => json::key(&ptr, "value"),
            };
            self.entries.push(ProvidedParam {
                name: k.clone(),
                value,
                at: Location::new(input, at_ptr),
            });
        }
        Ok(())
    }

    /// Adds a `name=value` pair from the command line.
    pub fn add_pair(&mut self, pair: &str) -> Result<(), ImportError> {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(ImportError::Invalid {
                at: Location::new(CLI_INPUT, ""),
                message: format!("`{pair}` is not name=value"),
            });
        };
        let name = name.trim();
        self.entries.push(ProvidedParam {
            name: name.to_string(),
            value: ProvidedValue::Text(value.to_string()),
            at: Location::new(CLI_INPUT, json::key("", name)),
        });
        Ok(())
    }

    fn find(&self, name: &str) -> Option<&ProvidedParam> {
        self.entries
            .iter()
            .rev()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// The declared type, lower-cased (`$ref` to `#/definitions/x` followed). Bicep's
/// resource-derived types (Learn, "Resource-derived types in Bicep": `resourceInput<'TYPE@API'>
/// .properties.X`) compile to the property's JSON type plus `metadata.__bicep_resource_derived_type!`
/// naming the source; ARM checks only the JSON type ("Data types in ARM templates"), so a
/// REST-shaped object or array is accepted as given and the mapping reads it as a resource's
/// properties.
fn declared_type(env: &Env<'_>, decl: &Value) -> Option<String> {
    let mut d = decl;
    for _ in 0..8 {
        if let Some(t) = get_ci(d, "type").and_then(Value::as_str) {
            return Some(t.to_ascii_lowercase());
        }
        let r = get_ci(d, "$ref").and_then(Value::as_str)?;
        let name = r.strip_prefix("#/definitions/")?;
        d = get_ci(env.doc, "definitions").and_then(|defs| get_ci(defs, name))?;
    }
    None
}

fn type_ok(ty: &str, v: &Val) -> bool {
    match (ty, v) {
        (_, Val::Unknown(_) | Val::Failed(_)) => true,
        ("string" | "securestring", Val::Str(_)) => true,
        ("int", Val::Int(_)) => true,
        ("bool", Val::Bool(_)) => true,
        ("array", Val::Arr(_)) => true,
        ("object" | "secureobject", Val::Obj(_)) => true,
        ("string" | "securestring" | "int" | "bool" | "array" | "object" | "secureobject", _) => {
            false
        }
        _ => true,
    }
}

fn describe(v: &Val) -> String {
    match v {
        Val::Str(s) => format!("the string {}", Value::String(s.clone())),
        other => format!("{} ({})", other.type_name(), other.to_json()),
    }
}

/// Reads `--parameter` text per the declared type.
fn from_text(ty: Option<&str>, text: &str) -> Result<Val, String> {
    match ty {
        Some("string" | "securestring") => Ok(Val::Str(text.to_string())),
        Some("int") => text
            .trim()
            .parse::<i64>()
            .map(Val::Int)
            .map_err(|_| format!("`{text}`, not an integer")),
        Some("bool") => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Val::Bool(true)),
            "false" => Ok(Val::Bool(false)),
            _ => Err(format!("`{text}`, not true or false")),
        },
        Some(t @ ("array" | "object" | "secureobject")) => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| format!("`{text}`, not JSON ({e})"))?;
            let val = Val::from_json(&v);
            if type_ok(t, &val) {
                Ok(val)
            } else {
                Err(format!("`{text}`, JSON {}", val.type_name()))
            }
        }
        _ => Ok(serde_json::from_str::<Value>(text)
            .map(|v| Val::from_json(&v))
            .unwrap_or_else(|_| Val::Str(text.to_string()))),
    }
}

fn failed(e: ImportError) -> Val {
    Val::Failed(Arc::new(e))
}

/// Resolves one declared parameter: given value, else `defaultValue`, else `null` when
/// `nullable`, else [`ImportError::ParameterMissing`]. Then type and `allowedValues` checks.
pub(crate) fn resolve(env: &Env<'_>, name: &str, decl: &Value) -> Val {
    let decl_ptr = json::key(&env.at("/parameters"), name);
    let ty = declared_type(env, decl);
    let nullable = get_ci(decl, "nullable").and_then(Value::as_bool) == Some(true);
    // A module parameter passed as null (Bicep's `.?` on a missing property) takes the
    // parameter's default, as if not passed (ASSUMPTION_NULL_MODULE_PARAMETER).
    let passed = env.provided.find(name).filter(|p| {
        let null_default = matches!(p.value, ProvidedValue::Evaluated(Val::Null))
            && get_ci(decl, "defaultValue").is_some();
        if null_default {
            env.null_defaults.set(true);
        }
        !null_default
    });
    let (value, at) = match passed {
        Some(p) => {
            env.used_params
                .borrow_mut()
                .insert(name.to_ascii_lowercase());
            let v = match &p.value {
                ProvidedValue::Json(j) => Val::from_json(j),
                ProvidedValue::Evaluated(v) => v.clone(),
                ProvidedValue::Reference => Val::Unknown(Arc::new(Pending {
                    input: p.at.input.clone(),
                    pointer: p.at.pointer.clone(),
                    expression: format!("reference for parameter `{name}`"),
                    reason: "a Key Vault reference is resolved at deployment time".into(),
                })),
                ProvidedValue::Text(t) => match from_text(ty.as_deref(), t) {
                    Ok(v) => v,
                    Err(found) => {
                        return failed(ImportError::ParameterType {
                            at: p.at.clone(),
                            name: name.to_string(),
                            expected: ty.unwrap_or_default(),
                            found,
                        })
                    }
                },
            };
            (v, p.at.clone())
        }
        None => match get_ci(decl, "defaultValue") {
            Some(d) => {
                let p = json::key(&decl_ptr, "defaultValue");
                (
                    env.eval_node(d, &p, &Loops::default()),
                    Location::new(env.input, p),
                )
            }
            None if nullable => (Val::Null, Location::new(env.input, decl_ptr.clone())),
            None => {
                return failed(ImportError::ParameterMissing {
                    at: Location::new(env.input, decl_ptr),
                    name: name.to_string(),
                })
            }
        },
    };
    if let Val::Failed(_) = value {
        return value;
    }
    if let Some(t) = &ty {
        let null_ok = matches!(value, Val::Null) && nullable;
        if !null_ok && !type_ok(t, &value) {
            return failed(ImportError::ParameterType {
                at,
                name: name.to_string(),
                expected: t.clone(),
                found: describe(&value),
            });
        }
    }
    if let Some(allowed) = get_ci(decl, "allowedValues").and_then(Value::as_array) {
        let allowed: Vec<Val> = allowed.iter().map(Val::from_json).collect();
        let is_allowed = |v: &Val| -> bool {
            v.is_pending()
                || allowed.iter().any(|a| match (a, v) {
                    (Val::Str(x), Val::Str(y)) => x.eq_ignore_ascii_case(y),
                    _ => equal(a, v) == Some(true),
                })
        };
        let ok = match (&value, ty.as_deref()) {
            (Val::Null, _) if nullable => true,
            (Val::Arr(items), Some("array")) => items.iter().all(is_allowed),
            (v, _) => is_allowed(v),
        };
        if !ok {
            return failed(ImportError::ParameterNotAllowed {
                at,
                name: name.to_string(),
                value: value.to_json().to_string(),
                allowed: Value::Array(allowed.iter().map(Val::to_json).collect()).to_string(),
            });
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_follow_the_declared_type() {
        assert!(matches!(from_text(Some("int"), " 3"), Ok(Val::Int(3))));
        assert!(from_text(Some("int"), "three").is_err());
        assert!(matches!(
            from_text(Some("bool"), "TRUE"),
            Ok(Val::Bool(true))
        ));
        assert!(matches!(from_text(Some("string"), "42"), Ok(Val::Str(s)) if s == "42"));
        assert!(matches!(from_text(Some("array"), "[1,2]"), Ok(Val::Arr(a)) if a.len() == 2));
        assert!(from_text(Some("array"), "{}").is_err());
    }
}
