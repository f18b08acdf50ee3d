//! ARM deployment templates: every expression is checked first (syntax, and that each name is an
//! ARM function), parameters are resolved, then resources are expanded — resource `copy` loops,
//! `condition`, nested child resources, `languageVersion` 2.0 symbolic names — into [`Res`]s.

use std::collections::BTreeSet;

use serde_json::Value;

use super::error::{ImportError, Location};
use super::eval::{get_ci, DeployScope, Env, Loops};
use super::expr::{self, classify_string, Template};
use super::json;
use super::limits::Limit;
use super::params::Provided;
use super::resource::{Kind, Res};
use super::value::Val;
use super::IgnoredResource;

/// The resources of one template.
pub(crate) struct Expanded {
    pub resources: Vec<Res>,
    pub ignored: Vec<IgnoredResource>,
    /// `resourceGroup()`/`subscription()` used a stand-in value.
    pub used_defaults: bool,
    /// A null module parameter took its default somewhere.
    pub null_defaults: bool,
    /// Lower-cased declared parameter names.
    pub declared: BTreeSet<String>,
}

/// Expands one template.
pub(crate) fn expand(
    input: &str,
    doc: &Value,
    scope: &DeployScope,
    provided: &Provided,
) -> Result<Expanded, ImportError> {
    counts(input, "", doc)?;
    let env = Env::new(input, doc, scope, provided);
    validate(&env, doc)?;
    let expanded = expand_in(&env, doc);
    // A limit exceeded anywhere in evaluation fails the import, even where the value that
    // exceeded it was never read (or its failure was swallowed by a lenient function).
    if let Some(e) = env.limit_error() {
        return Err(e);
    }
    expanded
}

/// Checks ARM's limits on the number of parameters, variables and outputs ([`Limit`]).
pub(crate) fn counts(input: &str, base: &str, doc: &Value) -> Result<(), ImportError> {
    let sections = [
        ("parameters", Limit::Parameters),
        ("variables", Limit::Variables),
        ("outputs", Limit::Outputs),
    ];
    for (key, limit) in sections {
        let Some((section, o)) = doc.as_object().and_then(|d| {
            d.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(k, v)| Some((k, v.as_object()?)))
        }) else {
            continue;
        };
        // A variable `copy` array declares one variable per element.
        let n: usize = o
            .iter()
            .map(|(k, v)| match v {
                Value::Array(specs) if key == "variables" && k.eq_ignore_ascii_case("copy") => {
                    specs.len()
                }
                _ => 1,
            })
            .sum();
        if n > limit.maximum() {
            return Err(ImportError::LimitExceeded {
                at: Location::new(input, json::key(base, section)),
                limit,
                found: format!("the template declares {n} {key}"),
            });
        }
    }
    Ok(())
}

pub(crate) fn expand_in(env: &Env<'_>, doc: &Value) -> Result<Expanded, ImportError> {
    for name in env.parameter_names() {
        if let Some(Val::Failed(e)) = env.parameter(&name) {
            return Err((*e).clone());
        }
    }
    let mut x = Expander {
        env,
        resources: Vec::new(),
        ignored: Vec::new(),
    };
    if let Some(rs) = get_ci(doc, "resources") {
        x.list(rs, &env.at("/resources"), None, &Loops::default())?;
    }
    Ok(Expanded {
        resources: x.resources,
        ignored: x.ignored,
        used_defaults: env.used_defaults.get(),
        null_defaults: env.null_defaults.get(),
        declared: env
            .parameter_names()
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    })
}

/// Checks every expression of the template for syntax and unknown function names, so a typo
/// is an error wherever it is (even in a branch that is never taken).
fn validate(env: &Env<'_>, doc: &Value) -> Result<(), ImportError> {
    let Some(o) = doc.as_object() else {
        return Ok(());
    };
    for (k, v) in o {
        let lower = k.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "parameters" | "variables" | "resources" | "outputs" | "functions"
        ) {
            walk(env, v, &json::key(&env.base, k))?;
        }
    }
    Ok(())
}

fn walk(env: &Env<'_>, v: &Value, pointer: &str) -> Result<(), ImportError> {
    match v {
        Value::String(s) => {
            let Template::Expression(text) = classify_string(s) else {
                return Ok(());
            };
            let e = expr::parse(text).map_err(|e| match e {
                expr::ParseError::Syntax(message) => ImportError::Expression {
                    at: Location::new(env.input, pointer),
                    expression: text.to_string(),
                    message,
                },
                expr::ParseError::Limit { limit, found } => ImportError::LimitExceeded {
                    at: Location::new(env.input, pointer),
                    limit,
                    found,
                },
            })?;
            let mut names = Vec::new();
            expr::calls(&e, &mut names);
            for n in names {
                let known = if n.contains('.') {
                    env.is_user_function(&n)
                } else {
                    expr::classify(&n).is_some()
                };
                if !known {
                    return Err(ImportError::UnknownFunction {
                        at: Location::new(env.input, pointer),
                        name: n,
                        expression: text.to_string(),
                    });
                }
            }
            Ok(())
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(env, x, &json::index(pointer, i))?;
            }
            Ok(())
        }
        Value::Object(o) => {
            for (k, x) in o {
                let p = json::key(pointer, k);
                if k.eq_ignore_ascii_case("template") && super::nested::is_inner_template(v) {
                    // A nested deployment's inner-scope template has its own parameters,
                    // variables and functions: checked with its own environment.
                    let inner = Env::new(env.input, x, env.scope, env.provided).with_base(p);
                    validate(&inner, x)?;
                } else if !k.eq_ignore_ascii_case("metadata") {
                    walk(env, x, &p)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Requires a known value; an unknown one is [`ImportError::Unrepresentable`].
pub(crate) fn known(v: Val, what: impl FnOnce() -> String) -> Result<Val, ImportError> {
    match v {
        Val::Failed(e) => Err((*e).clone()),
        Val::Unknown(p) => Err(ImportError::Unrepresentable {
            at: Location::new(p.input.clone(), p.pointer.clone()),
            what: what(),
            expression: p.expression.clone(),
            reason: p.reason.clone(),
        }),
        v => Ok(v),
    }
}

pub(crate) struct Expander<'e, 'a> {
    pub(crate) env: &'e Env<'a>,
    pub(crate) resources: Vec<Res>,
    pub(crate) ignored: Vec<IgnoredResource>,
}

/// The parent of nested child resources.
pub(crate) struct Parent {
    ty: String,
    name: String,
}

impl Expander<'_, '_> {
    pub(crate) fn list(
        &mut self,
        rs: &Value,
        pointer: &str,
        parent: Option<&Parent>,
        loops: &Loops,
    ) -> Result<(), ImportError> {
        match rs {
            Value::Array(a) => {
                for (i, r) in a.iter().enumerate() {
                    self.resource(r, &json::index(pointer, i), parent, loops)?;
                }
            }
            // languageVersion 2.0: symbolic name → resource.
            Value::Object(o) => {
                for (k, r) in o {
                    self.resource(r, &json::key(pointer, k), parent, loops)?;
                }
            }
            _ => {
                return Err(ImportError::Invalid {
                    at: Location::new(self.env.input, pointer),
                    message: "`resources` must be an array (or an object of symbolic names)".into(),
                })
            }
        }
        Ok(())
    }

    fn string_at(
        &self,
        r: &Value,
        key: &str,
        pointer: &str,
        loops: &Loops,
        what: &dyn Fn() -> String,
    ) -> Result<Option<String>, ImportError> {
        let Some(v) = get_ci(r, key) else {
            return Ok(None);
        };
        match known(self.env.eval_node(v, &json::key(pointer, key), loops), what)? {
            Val::Str(s) => Ok(Some(s)),
            other => Err(ImportError::Invalid {
                at: Location::new(self.env.input, json::key(pointer, key)),
                message: format!("{} must be a string, got {}", what(), other.type_name()),
            }),
        }
    }

    fn resource(
        &mut self,
        r: &Value,
        pointer: &str,
        parent: Option<&Parent>,
        loops: &Loops,
    ) -> Result<(), ImportError> {
        let input = self.env.input;
        let at = Location::new(input, pointer);
        if !r.is_object() {
            return Err(ImportError::Invalid {
                at,
                message: "a resource must be an object".into(),
            });
        }
        let ty = self
            .string_at(r, "type", pointer, loops, &|| "the resource type".into())?
            .ok_or_else(|| ImportError::Invalid {
                at: at.clone(),
                message: "the resource has no `type`".into(),
            })?;
        let full_ty = match parent {
            Some(p) if !ty.split('/').next().unwrap_or("").contains('.') => {
                format!("{}/{}", p.ty, ty)
            }
            _ => ty.clone(),
        };
        let kind = Kind::from_type(&full_ty);
        let existing = get_ci(r, "existing").and_then(Value::as_bool) == Some(true);
        let deployment = full_ty.eq_ignore_ascii_case("Microsoft.Resources/deployments");
        if (kind.is_none() && !deployment) || existing {
            if self.deploys_nothing(r, pointer, loops) {
                return Ok(());
            }
            let name = self.best_effort_name(r, pointer, parent, loops);
            let reason = if existing {
                "an `existing` resource is referenced, not deployed, by this template".to_string()
            } else {
                format!("type `{full_ty}` is not modelled by vnetsim")
            };
            self.ignored.push(IgnoredResource {
                resource_type: full_ty,
                name,
                input: input.to_string(),
                pointer: pointer.to_string(),
                reason,
            });
            return self.within_limits(at);
        }
        let iterations: Vec<Loops> = match get_ci(r, "copy") {
            Some(copy @ Value::Object(_)) => {
                let cptr = json::key(pointer, "copy");
                let name = match get_ci(copy, "name").and_then(Value::as_str) {
                    Some(n) => n.to_string(),
                    None => {
                        return Err(ImportError::Invalid {
                            at: Location::new(input, cptr),
                            message: "a resource copy loop needs a `name`".into(),
                        })
                    }
                };
                let count_v = get_ci(copy, "count").map_or(Val::Null, |c| {
                    self.env.eval_node(c, &json::key(&cptr, "count"), loops)
                });
                let max = Limit::CopyCount.maximum() as i64;
                let count = match known(count_v, || format!("the copy count of loop `{name}`"))? {
                    Val::Int(n) if (0..=max).contains(&n) => n,
                    Val::Int(n) if n > max => {
                        return Err(ImportError::LimitExceeded {
                            at: Location::new(input, json::key(&cptr, "count")),
                            limit: Limit::CopyCount,
                            found: format!("copy loop `{name}` has count {n}"),
                        })
                    }
                    other => {
                        return Err(ImportError::Invalid {
                            at: Location::new(input, json::key(&cptr, "count")),
                            message: format!(
                                "copy count must be an int from 0 to 800, got {}",
                                other.to_json()
                            ),
                        })
                    }
                };
                (0..count)
                    .map(|i| {
                        let mut l = loops.clone();
                        l.resource = Some((name.clone(), i));
                        l
                    })
                    .collect()
            }
            _ => vec![loops.clone()],
        };
        for l in iterations {
            if let Some(c) = get_ci(r, "condition") {
                let cp = json::key(pointer, "condition");
                match known(self.env.eval_node(c, &cp, &l), || {
                    "the resource's condition".into()
                })? {
                    Val::Bool(true) => {}
                    Val::Bool(false) => continue,
                    other => {
                        return Err(ImportError::Invalid {
                            at: Location::new(input, cp),
                            message: format!("condition must be a bool, got {}", other.type_name()),
                        })
                    }
                }
            }
            let name = self
                .string_at(r, "name", pointer, &l, &|| {
                    format!("the name of a {full_ty}")
                })?
                .ok_or_else(|| ImportError::Invalid {
                    at: at.clone(),
                    message: "the resource has no `name`".into(),
                })?;
            if deployment {
                self.nested(r, pointer, &l, &name)?;
                continue;
            }
            let kind = kind.expect("a modelled type (deployments are expanded above)");
            let full_name = match parent {
                Some(p) if name.split('/').count() < full_ty.split('/').count() - 1 => {
                    format!("{}/{}", p.name, name)
                }
                _ => name,
            };
            let mut body = vec![
                ("name".to_string(), Val::Str(full_name.clone())),
                ("type".to_string(), Val::Str(full_ty.clone())),
            ];
            for key in ["location", "sku", "kind", "properties"] {
                if let Some((k, v)) = r
                    .as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
                {
                    body.push((
                        key.to_string(),
                        self.env.eval_node(v, &json::key(pointer, k), &l),
                    ));
                }
            }
            self.resources.push(Res {
                kind,
                ty: full_ty.clone(),
                name: full_name.clone(),
                body: Val::Obj(body),
                at: at.clone(),
                export: false,
                subscription: None,
            });
            self.within_limits(at.clone())?;
            if let Some(children) = get_ci(r, "resources") {
                let p = Parent {
                    ty: full_ty.clone(),
                    name: full_name,
                };
                self.list(children, &json::key(pointer, "resources"), Some(&p), &l)?;
            }
        }
        Ok(())
    }

    /// [`Limit::Resources`] (modelled and ignored resources, copies included), and any limit
    /// evaluation exceeded so far: checked after every resource, so a template over a limit
    /// stops at the resource that went over.
    pub(crate) fn within_limits(&self, at: Location) -> Result<(), ImportError> {
        let n = self.resources.len() + self.ignored.len();
        if n > Limit::Resources.maximum() {
            return Err(ImportError::LimitExceeded {
                at,
                limit: Limit::Resources,
                found: format!("the template has {n} resources (copies included)"),
            });
        }
        match self.env.limit_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether a resource is known to deploy no instance: its copy count is 0, or its
    /// condition is false (for the first instance). Unknown or failing values say no, so the
    /// resource is listed.
    fn deploys_nothing(&self, r: &Value, pointer: &str, loops: &Loops) -> bool {
        let mut l = loops.clone();
        if let Some(copy) = get_ci(r, "copy") {
            let cptr = json::key(pointer, "copy");
            match get_ci(copy, "count")
                .map(|c| self.env.eval_node(c, &json::key(&cptr, "count"), loops))
            {
                Some(Val::Int(0)) => return true,
                Some(Val::Int(_)) => {}
                _ => return false,
            }
            if let Some(n) = get_ci(copy, "name").and_then(Value::as_str) {
                l.resource = Some((n.to_string(), 0));
            }
        }
        get_ci(r, "condition").is_some_and(|c| {
            matches!(
                self.env.eval_node(c, &json::key(pointer, "condition"), &l),
                Val::Bool(false)
            )
        })
    }

    /// The name of an ignored resource for listing: evaluated when possible (first copy index),
    /// else the raw text.
    fn best_effort_name(
        &self,
        r: &Value,
        pointer: &str,
        parent: Option<&Parent>,
        loops: &Loops,
    ) -> String {
        let Some(n) = get_ci(r, "name") else {
            return String::new();
        };
        let mut l = loops.clone();
        if let Some(c) = get_ci(r, "copy")
            .and_then(|c| get_ci(c, "name"))
            .and_then(Value::as_str)
        {
            l.resource = Some((c.to_string(), 0));
        }
        let name = match self.env.eval_node(n, &json::key(pointer, "name"), &l) {
            Val::Str(s) => s,
            _ => n.as_str().map_or_else(|| n.to_string(), str::to_string),
        };
        match parent {
            Some(p) if !name.contains('/') => format!("{}/{name}", p.name),
            _ => name,
        }
    }
}
