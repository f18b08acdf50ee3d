//! `reference(…)` of a nested deployment: its `outputs`, evaluated from the template and its
//! parameters, so a parent that passes one module's output into another (Bicep's
//! `vnetModule.outputs.subnetResourceId`) gets the value instead of an unknown.
//!
//! Sources (Learn):
//! - "Resource functions for ARM templates", `reference(resourceName or resourceIdentifier,
//!   [apiVersion], ['Full'])`: a resource of the same template may be named by its name; a
//!   `languageVersion` 2.0 template may name it by its symbolic name (a module in a loop:
//!   `'symbol[i]'`); `'Full'` returns the whole resource object, its state under `properties`.
//! - "Using linked and nested templates when deploying Azure resources", section "Get values
//!   from linked template": a parent reads a nested deployment's output as
//!   `reference('name').outputs.X.value`; with `inner` scope the outputs are evaluated with the
//!   nested template's own parameters, variables and functions, with `outer` scope in the
//!   parent's.
//! - "Outputs in ARM templates": an output has a `type` and a `value`, or a `copy` (`count`,
//!   `input`, see "Output iteration in ARM templates": at most 800); `condition` false leaves
//!   the output out; at most 64 outputs ([`Limit::Outputs`]).
//! - "Outputs in Bicep", section "Secure outputs": a secure (`securestring`/`secureObject`)
//!   output is not stored with the deployment; a parent reads it with
//!   `listOutputsWithSecureValues()` (a `list*` function, unknown here), so through
//!   `reference()` its value stays unknown.
//!
//! A deployment is looked up among the top-level resources of the template whose expression
//! reads it (inside a module, the module's own modules; not those of an `outer`-scope nested
//! template). What stays unknown, with the usual subject so `--set` can supply it: an output whose value
//! truly needs the deployment (`reference(<resource>).ipAddress`, `list*()`), a deployment with
//! a linked template (`templateLink`) or one that is not among the inputs, and any runtime
//! property of a deployment other than `outputs`. A deployment whose outputs depend on
//! themselves is an error naming it; the recursion is bounded by [`Limit::EvaluationDepth`].

use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value;

use super::super::error::{ImportError, Location};
use super::super::eval::{get_ci, Cx, Env, Loops};
use super::super::expr::Expr;
use super::super::json;
use super::super::limits::Limit;
use super::super::template::counts;
use super::super::value::Val;
use super::{is_inner_template, module_inputs};

/// The type of a nested deployment.
const DEPLOYMENTS: &str = "Microsoft.Resources/deployments";

/// One deployment instance of a template, by its evaluated name (for `reference(name)` and
/// `reference(resourceId(…))`).
pub(crate) struct Named<'a> {
    /// The name, as evaluated.
    name: String,
    /// Resource group and subscription it deploys to.
    resource_group: String,
    subscription: String,
    r: &'a Value,
    pointer: String,
    loops: Loops,
}

/// A template's deployments by name, built on the first lookup.
#[derive(Default)]
pub(crate) enum Index<'a> {
    #[default]
    NotBuilt,
    /// Being built: a deployment's name refers to a deployment (an error, not a recursion).
    Building,
    Built(Rc<Vec<Named<'a>>>),
}

/// What `reference()`'s first argument names.
enum Target<'a> {
    /// A deployment instance of this template.
    Deployment {
        r: &'a Value,
        pointer: String,
        loops: Loops,
    },
    /// A resource that is not a deployment, or a name no resource of this template has (an
    /// existing resource): its runtime state needs the deployment.
    Other,
    /// A deployment that is not among the inputs: why.
    Missing(String),
    Failed(Val),
}

/// Whether `x.name` reads a runtime property of `reference(…)` other than `outputs` (a
/// resource's `ipAddress`, a deployment's `provisioningState`; with `'Full'`, anything but
/// `properties`): unknown without evaluating.
pub(crate) fn is_runtime_member(x: &Expr, name: &str) -> bool {
    match x {
        Expr::Call(f, args) if f.eq_ignore_ascii_case("reference") => {
            let state = if args.len() < 3 {
                "outputs"
            } else {
                "properties"
            };
            !name.eq_ignore_ascii_case(state)
        }
        _ => false,
    }
}

/// `name[i]` → (`name`, `Some(i)`).
fn split_index(s: &str) -> (&str, Option<i64>) {
    if let Some(body) = s.strip_suffix(']') {
        if let Some((sym, i)) = body.rsplit_once('[') {
            if let Ok(i) = i.trim().parse::<i64>() {
                return (sym, Some(i));
            }
        }
    }
    (s, None)
}

fn is_deployment(r: &Value) -> bool {
    get_ci(r, "type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case(DEPLOYMENTS))
}

/// A deployment's resource id split: (subscription, resource group, name), when `id` is one
/// (`…/providers/Microsoft.Resources/deployments/NAME` at a subscription or resource group).
fn deployment_id(id: &str) -> Option<(Option<String>, Option<String>, String)> {
    let lower = id.to_ascii_lowercase();
    let marker = "/providers/microsoft.resources/deployments/";
    let at = lower.rfind(marker)?;
    let name = &id[at + marker.len()..];
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let scope: Vec<&str> = id[..at].trim_matches('/').split('/').collect();
    let mut sub = None;
    let mut rg = None;
    let mut i = 0;
    while i + 1 < scope.len() {
        match scope[i].to_ascii_lowercase().as_str() {
            "subscriptions" => sub = Some(scope[i + 1].to_string()),
            "resourcegroups" => rg = Some(scope[i + 1].to_string()),
            // A deployment extending a resource or a management group: not one of ours.
            _ => return None,
        }
        i += 2;
    }
    Some((sub, rg, name.to_string()))
}

// === impl Env ===

impl<'a> Env<'a> {
    /// `reference(target, [apiVersion], ['Full'])` with its arguments evaluated.
    pub(crate) fn reference_call(&self, name: &str, args: &[Val], cx: &Cx<'_>) -> Val {
        if args.is_empty() || args.len() > 3 {
            return self.fail(cx, format!("{name}() takes 1 to 3 arguments"));
        }
        if let Some(p) = args.iter().find(|a| a.is_pending()) {
            return p.clone();
        }
        let Val::Str(target) = &args[0] else {
            let t = args[0].type_name();
            return self.fail(
                cx,
                format!("argument 1 of {name}() must be a string, got {t}"),
            );
        };
        let full = match args.get(2) {
            None => false,
            Some(Val::Str(s)) if s.eq_ignore_ascii_case("Full") => true,
            Some(other) => {
                let t = other.to_json();
                return self.fail(
                    cx,
                    format!("argument 3 of {name}() must be 'Full', got {t}"),
                );
            }
        };
        match self.find_target(target) {
            Target::Deployment { r, pointer, loops } => {
                let outputs = self.deployment_outputs(r, &pointer, &loops);
                if outputs.is_pending() {
                    return outputs;
                }
                let state = Val::Obj(vec![("outputs".into(), outputs)]);
                if full {
                    Val::Obj(vec![("properties".into(), state)])
                } else {
                    state
                }
            }
            Target::Other => self.unknown(cx, "`reference()` is known only at deployment time"),
            Target::Missing(why) => self.unknown(cx, format!("`reference()`: {why}")),
            Target::Failed(v) => v,
        }
    }

    /// Finds what `target` names among this template's resources.
    fn find_target(&self, target: &str) -> Target<'a> {
        let resources = get_ci(self.doc, "resources");
        // languageVersion 2.0: a symbolic name, `symbol[i]` for an instance of a loop.
        if let Some(Value::Object(o)) = resources {
            let (sym, index) = split_index(target);
            if let Some((k, r)) = o.iter().find(|(k, _)| k.eq_ignore_ascii_case(sym)) {
                if !is_deployment(r) {
                    return Target::Other;
                }
                let pointer = json::key(&self.at("/resources"), k);
                return self.symbolic(r, pointer, index, target);
            }
        }
        let (sub, rg, name) = if target.starts_with('/') {
            match deployment_id(target) {
                Some(parts) => parts,
                None => return Target::Other,
            }
        } else {
            (None, None, target.to_string())
        };
        let index = match self.deployment_index() {
            Ok(i) => i,
            Err(v) => return Target::Failed(v),
        };
        let found = index.iter().find(|d| {
            d.name.eq_ignore_ascii_case(&name)
                && rg
                    .as_ref()
                    .is_none_or(|g| g.eq_ignore_ascii_case(&d.resource_group))
                && sub
                    .as_ref()
                    .is_none_or(|s| s.eq_ignore_ascii_case(&d.subscription))
        });
        match found {
            Some(d) => Target::Deployment {
                r: d.r,
                pointer: d.pointer.clone(),
                loops: d.loops.clone(),
            },
            // A bare name may be any resource's (an existing one's); an id of a deployment is
            // a deployment's.
            None if !target.starts_with('/') => Target::Missing(format!(
                "`{name}` is no nested deployment among the inputs, so its state is known only \
                 at deployment time"
            )),
            None => Target::Missing(format!(
                "deployment `{name}` is not among the inputs (no nested deployment of this \
                 template has that name and scope); its outputs are known only at deployment time"
            )),
        }
    }

    /// `reference('symbol')` / `reference('symbol[i]')` of a deployment declared as `r`.
    fn symbolic(
        &self,
        r: &'a Value,
        pointer: String,
        index: Option<i64>,
        target: &str,
    ) -> Target<'a> {
        let copy = get_ci(r, "copy");
        let loop_name = copy
            .and_then(|c| get_ci(c, "name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let bad = |message: String| {
            Target::Failed(Val::Failed(Arc::new(ImportError::Invalid {
                at: Location::new(self.input, pointer.clone()),
                message,
            })))
        };
        match (copy, index) {
            (None, None) => Target::Deployment {
                r,
                pointer,
                loops: Loops::default(),
            },
            (None, Some(_)) => bad(format!(
                "`reference('{target}')` indexes a deployment that has no copy loop"
            )),
            (Some(_), None) => bad(format!(
                "`reference('{target}')` names a deployment in a copy loop: name one instance \
                 (`{target}[i]`)"
            )),
            (Some(c), Some(i)) => {
                let cptr = json::key(&json::key(&pointer, "copy"), "count");
                let count = get_ci(c, "count")
                    .map_or(Val::Null, |n| self.eval_node(n, &cptr, &Loops::default()));
                match count {
                    Val::Int(n) if (0..n).contains(&i) => Target::Deployment {
                        r,
                        pointer,
                        loops: Loops {
                            resource: Some((loop_name, i)),
                            ..Loops::default()
                        },
                    },
                    Val::Int(n) => bad(format!(
                        "`reference('{target}')`: index {i} is outside the loop's {n} instances"
                    )),
                    p if p.is_pending() => Target::Failed(p),
                    other => bad(format!(
                        "the copy count of `{target}` must be an int, got {}",
                        other.type_name()
                    )),
                }
            }
        }
    }

    /// This template's deployment instances by name (copies included), built once.
    fn deployment_index(&self) -> Result<Rc<Vec<Named<'a>>>, Val> {
        match &*self.deployments.borrow() {
            Index::Built(i) => return Ok(i.clone()),
            Index::Building => {
                return Err(Val::Failed(Arc::new(ImportError::Invalid {
                    at: Location::new(self.input, self.at("/resources")),
                    message: "a deployment's name, scope or copy count refers to a \
                              deployment with reference()"
                        .into(),
                })))
            }
            Index::NotBuilt => {}
        }
        *self.deployments.borrow_mut() = Index::Building;
        let mut out = Vec::new();
        let base = self.at("/resources");
        let entries: Vec<(String, &'a Value)> = match get_ci(self.doc, "resources") {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, r)| (json::index(&base, i), r))
                .collect(),
            Some(Value::Object(o)) => o.iter().map(|(k, r)| (json::key(&base, k), r)).collect(),
            _ => Vec::new(),
        };
        for (pointer, r) in entries.into_iter().filter(|(_, r)| is_deployment(r)) {
            let instances: Vec<Loops> = match get_ci(r, "copy") {
                Some(c) => {
                    let name = get_ci(c, "name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let cptr = json::key(&json::key(&pointer, "copy"), "count");
                    let n = match get_ci(c, "count")
                        .map(|n| self.eval_node(n, &cptr, &Loops::default()))
                    {
                        Some(Val::Int(n)) => n.clamp(0, Limit::CopyCount.maximum() as i64),
                        // The expansion reports a bad count; no instance is named here.
                        _ => 0,
                    };
                    (0..n)
                        .map(|i| Loops {
                            resource: Some((name.to_string(), i)),
                            ..Loops::default()
                        })
                        .collect()
                }
                None => vec![Loops::default()],
            };
            for loops in instances {
                let text = |key: &str, default: &str| -> Option<String> {
                    match get_ci(r, key) {
                        None => Some(default.to_string()),
                        Some(v) => match self.eval_node(v, &json::key(&pointer, key), &loops) {
                            Val::Str(s) => Some(s),
                            _ => None,
                        },
                    }
                };
                // An instance whose name is not a known string cannot be named (the expansion
                // reports why).
                let (Some(name), Some(resource_group), Some(subscription)) = (
                    text("name", ""),
                    text("resourceGroup", &self.scope.resource_group),
                    text("subscriptionId", &self.scope.subscription_id),
                ) else {
                    continue;
                };
                out.push(Named {
                    name,
                    resource_group,
                    subscription,
                    r,
                    pointer: pointer.clone(),
                    loops,
                });
            }
        }
        let index = Rc::new(out);
        *self.deployments.borrow_mut() = Index::Built(index.clone());
        Ok(index)
    }

    /// The `outputs` object of the deployment instance (`{NAME: {type, value}}`), evaluated
    /// once per instance.
    fn deployment_outputs(&self, r: &'a Value, pointer: &str, loops: &Loops) -> Val {
        let key = self.instance_key(pointer, loops);
        let cached = self.outputs.borrow().get(&key).cloned();
        match cached {
            Some(Some(v)) => return v,
            Some(None) => {
                return Val::Failed(Arc::new(ImportError::Invalid {
                    at: Location::new(self.input, pointer),
                    message: "the outputs of this nested deployment depend on themselves (its \
                              parameters or outputs read its own reference())"
                        .into(),
                }))
            }
            None => {}
        }
        self.outputs.borrow_mut().insert(key.clone(), None);
        let v = self.evaluate_outputs(r, pointer, loops, &key);
        self.outputs.borrow_mut().insert(key, Some(v.clone()));
        v
    }

    fn evaluate_outputs(&self, r: &'a Value, pointer: &str, loops: &Loops, key: &str) -> Val {
        let failed = |e: ImportError| Val::Failed(Arc::new(e));
        let name = match get_ci(r, "name")
            .map(|n| self.eval_node(n, &json::key(pointer, "name"), loops))
        {
            Some(Val::Str(s)) => s,
            Some(p) if p.is_pending() => return p,
            _ => {
                return failed(ImportError::Invalid {
                    at: Location::new(self.input, json::key(pointer, "name")),
                    message: "a nested deployment needs a string `name`".into(),
                })
            }
        };
        if let Some(c) = get_ci(r, "condition") {
            match self.eval_node(c, &json::key(pointer, "condition"), loops) {
                Val::Bool(true) => {}
                Val::Bool(false) => {
                    return failed(ImportError::Invalid {
                        at: Location::new(self.input, json::key(pointer, "condition")),
                        message: format!(
                            "deployment `{name}` is read with reference() but not deployed \
                             (its condition is false)"
                        ),
                    })
                }
                p if p.is_pending() => return p,
                other => {
                    return failed(ImportError::Invalid {
                        at: Location::new(self.input, json::key(pointer, "condition")),
                        message: format!("condition must be a bool, got {}", other.type_name()),
                    })
                }
            }
        }
        let props_ptr = json::key(pointer, "properties");
        let props = get_ci(r, "properties");
        let Some(template) = props.and_then(|p| get_ci(p, "template")) else {
            return Val::Unknown(Arc::new(super::super::value::Pending {
                input: self.input.to_string(),
                pointer: pointer.to_string(),
                expression: format!("reference('{name}')"),
                reason: format!(
                    "`reference()`: deployment `{name}` has a linked template (templateLink), \
                     which is not among the inputs; its outputs are known only at deployment time"
                ),
            }));
        };
        let tptr = json::key(&props_ptr, "template");
        if let Err(e) = counts(self.input, &tptr, template) {
            return failed(e);
        }
        if !props.is_some_and(is_inner_template) {
            // Outer scope: the nested template's outputs are the parent's expressions.
            return outputs_of(self, template, &tptr, loops);
        }
        let (scope, provided) = match module_inputs(self, r, pointer, loops) {
            Ok(x) => x,
            Err(e) => return failed(e),
        };
        let inner = Env::new(self.input, template, &scope, &provided)
            .with_base(tptr.clone())
            .with_deployment_name(name)
            .continue_from(self)
            .with_instance(key.to_string());
        let v = outputs_of(&inner, template, &tptr, &Loops::default());
        self.absorb(&inner);
        // The assumptions the outputs took hold for the import as for the expansion.
        self.used_defaults
            .set(self.used_defaults.get() || inner.used_defaults.get());
        self.null_defaults
            .set(self.null_defaults.get() || inner.null_defaults.get());
        v
    }
}

/// A template's `outputs` evaluated in `env`: `{NAME: {type, value}}`.
fn outputs_of(env: &Env<'_>, template: &Value, tptr: &str, loops: &Loops) -> Val {
    let Some(outs) = get_ci(template, "outputs").and_then(Value::as_object) else {
        return Val::Obj(Vec::new());
    };
    let optr = json::key(tptr, "outputs");
    let mut out = Vec::with_capacity(outs.len());
    for (k, o) in outs {
        let p = json::key(&optr, k);
        let cx = Cx {
            pointer: &p,
            text: k,
        };
        if let Some(c) = get_ci(o, "condition") {
            match env.eval_node(c, &json::key(&p, "condition"), loops) {
                Val::Bool(true) => {}
                // Left out of the deployment's outputs.
                Val::Bool(false) => continue,
                v if v.is_pending() => {
                    out.push((k.clone(), output(o, v)));
                    continue;
                }
                other => {
                    let t = other.type_name();
                    let v = env.fail(
                        &cx,
                        format!("an output's condition must be a bool, got {t}"),
                    );
                    out.push((k.clone(), output(o, v)));
                    continue;
                }
            }
        }
        let ty = get_ci(o, "type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let value =
            if ty.eq_ignore_ascii_case("securestring") || ty.eq_ignore_ascii_case("secureobject") {
                env.unknown(
                    &cx,
                    format!(
                        "`reference()`: output `{k}` is {ty}, which is not returned with the \
                     deployment's outputs"
                    ),
                )
            } else if let Some(copy) = get_ci(o, "copy") {
                output_copy(env, copy, &json::key(&p, "copy"), loops)
            } else if let Some(v) = get_ci(o, "value") {
                env.eval_node(v, &json::key(&p, "value"), loops)
            } else {
                env.fail(
                    &cx,
                    format!("output `{k}` has neither a `value` nor a `copy`"),
                )
            };
        out.push((k.clone(), output(o, value)));
    }
    env.charge(Val::Obj(out), &optr)
}

/// `{type, value}` of one output.
fn output(decl: &Value, value: Val) -> Val {
    let ty = get_ci(decl, "type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Val::Obj(vec![
        ("type".into(), Val::Str(ty.to_string())),
        ("value".into(), value),
    ])
}

/// An output's `copy` (`count`, `input`): the array of `input` for each index (`copyIndex()`).
fn output_copy(env: &Env<'_>, copy: &Value, pointer: &str, loops: &Loops) -> Val {
    let cx = Cx {
        pointer,
        text: "copy",
    };
    let count_ptr = json::key(pointer, "count");
    let n = match get_ci(copy, "count").map(|c| env.eval_node(c, &count_ptr, loops)) {
        Some(Val::Int(n)) if n > Limit::CopyCount.maximum() as i64 => {
            let found = format!("an output's copy loop has count {n}");
            return env.exceed(&count_ptr, Limit::CopyCount, found);
        }
        Some(Val::Int(n)) if n >= 0 => n,
        Some(p) if p.is_pending() => return p,
        Some(other) => {
            return env.fail(
                &cx,
                format!(
                    "copy count must be an int from 0 to 800, got {}",
                    other.to_json()
                ),
            )
        }
        None => return env.fail(&cx, "an output's copy needs a `count`"),
    };
    let Some(input) = get_ci(copy, "input") else {
        return env.fail(&cx, "an output's copy needs an `input`");
    };
    let ip = json::key(pointer, "input");
    let mut items = Vec::new();
    for i in 0..n {
        let l = Loops {
            resource: Some((String::new(), i)),
            ..loops.clone()
        };
        let item = env.eval_node(input, &ip, &l);
        if let Some(stop) = env.limit_error() {
            return Val::Failed(Arc::new(stop));
        }
        items.push(item);
    }
    env.charge(Val::Arr(items), pointer)
}
