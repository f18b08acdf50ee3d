//! Nested deployments (`Microsoft.Resources/deployments` with an inline `template`): how Bicep
//! compiles modules, and how AVM's virtual-network module creates its subnets and peerings.
//!
//! Source: Learn, "Using linked and nested templates when deploying Azure resources" —
//! `expressionEvaluationOptions.scope` `inner` evaluates the nested template with its own
//! parameters (passed in `properties.parameters`), variables and functions; `outer` (the
//! default) evaluates its expressions in the parent template. A deployment's `resourceGroup`
//! and `subscriptionId` move its scope. The deployment's own `copy` and `condition` apply as
//! to any resource (a module in a loop). A linked template (`templateLink`) is not among the
//! inputs, so it is listed as ignored. A parent reading a module's outputs
//! (`reference(…).outputs.X.value`) gets them evaluated: module `outputs`.

pub(crate) mod outputs;
#[cfg(test)]
mod tests;

use serde_json::Value;

use super::error::{ImportError, Location};
use super::eval::{get_ci, DeployScope, Env, Loops};
use super::json;
use super::params::{Provided, ProvidedParam, ProvidedValue};
use super::template::{counts, expand_in, known, Expander};
use super::value::{Pending, Val};
use super::IgnoredResource;

/// Whether the object holding `template` is a deployment's `properties` with inner scope.
pub(crate) fn is_inner_template(properties: &Value) -> bool {
    get_ci(properties, "expressionEvaluationOptions")
        .and_then(|o| get_ci(o, "scope"))
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("inner"))
}

/// What a nested deployment with inner scope is evaluated with: its scope (the parent's, moved by
/// its own `subscriptionId` and `resourceGroup`) and the parameters passed in
/// `properties.parameters`, evaluated in the parent for the instance `loops` selects.
pub(crate) fn module_inputs(
    env: &Env<'_>,
    r: &Value,
    pointer: &str,
    loops: &Loops,
) -> Result<(DeployScope, Provided), ImportError> {
    let props_ptr = json::key(pointer, "properties");
    let props = get_ci(r, "properties");
    let mut scope: DeployScope = env.scope.clone();
    for (key, what) in [
        ("subscriptionId", "the subscription of a nested deployment"),
        ("resourceGroup", "the resource group of a nested deployment"),
    ] {
        if let Some(v) = get_ci(r, key) {
            let p = json::key(pointer, key);
            match known(env.eval_node(v, &p, loops), || what.to_string())? {
                Val::Str(s) if key == "subscriptionId" => scope.subscription_id = s,
                Val::Str(s) => scope.resource_group = s,
                other => {
                    return Err(ImportError::Invalid {
                        at: Location::new(env.input, p),
                        message: format!("{what} must be a string, got {}", other.type_name()),
                    })
                }
            }
        }
    }
    let mut provided = Provided::default();
    if let Some(ps) = props
        .and_then(|p| get_ci(p, "parameters"))
        .and_then(Value::as_object)
    {
        let pptr = json::key(&props_ptr, "parameters");
        for (k, v) in ps {
            let kp = json::key(&pptr, k);
            // The entry may itself be an expression giving `{value: ...}`, or hold a
            // `copy` loop building `value` (both are what Bicep emits for modules).
            let value = match env.eval_node(v, &kp, loops) {
                Val::Failed(e) => return Err((*e).clone()),
                u @ Val::Unknown(_) => u,
                entry @ Val::Obj(_) => match (entry.get("value"), entry.get("reference")) {
                    (Some(x), _) => x.clone(),
                    (None, Some(_)) => Val::Unknown(std::sync::Arc::new(Pending {
                        input: env.input.to_string(),
                        pointer: json::key(&kp, "reference"),
                        expression: format!("reference for parameter `{k}`"),
                        reason: "a Key Vault reference is resolved at deployment time".into(),
                    })),
                    (None, None) => {
                        return Err(ImportError::Invalid {
                            at: Location::new(env.input, kp),
                            message: format!(
                                "parameter `{k}` needs a `value` (or a Key Vault `reference`)"
                            ),
                        })
                    }
                },
                other => {
                    return Err(ImportError::Invalid {
                        at: Location::new(env.input, kp),
                        message: format!(
                            "parameter `{k}` must be an object with a `value`, got {}",
                            other.type_name()
                        ),
                    })
                }
            };
            provided.entries.push(ProvidedParam {
                name: k.clone(),
                value: ProvidedValue::Evaluated(value),
                at: Location::new(env.input, json::key(&kp, "value")),
            });
        }
    }
    Ok((scope, provided))
}

impl Expander<'_, '_> {
    /// Expands one instance of a nested deployment named `name`.
    pub(crate) fn nested(
        &mut self,
        r: &Value,
        pointer: &str,
        loops: &Loops,
        name: &str,
    ) -> Result<(), ImportError> {
        let env = self.env;
        let props_ptr = json::key(pointer, "properties");
        let props = get_ci(r, "properties");
        let Some(template) = props.and_then(|p| get_ci(p, "template")) else {
            self.ignored.push(IgnoredResource {
                resource_type: "Microsoft.Resources/deployments".into(),
                name: name.to_string(),
                input: env.input.to_string(),
                pointer: pointer.to_string(),
                reason: "a nested deployment with a linked template (templateLink): pass the \
                         linked template's JSON as an input to import it"
                    .into(),
            });
            return Ok(());
        };
        let tptr = json::key(&props_ptr, "template");
        let props = props.expect("has a template");
        if !is_inner_template(props) {
            // Outer scope: the nested template's resources are the parent's, evaluated in its
            // environment.
            if let Some(rs) = get_ci(template, "resources") {
                self.list(rs, &json::key(&tptr, "resources"), None, loops)?;
            }
            return Ok(());
        }
        let (scope, provided) = module_inputs(env, r, pointer, loops)?;
        counts(env.input, &tptr, template)?;
        let inner = Env::new(env.input, template, &scope, &provided)
            .with_base(tptr)
            .with_deployment_name(name.to_string())
            .continue_from(env)
            .with_instance(env.instance_key(pointer, loops));
        let declared: Vec<String> = inner
            .parameter_names()
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        for p in &provided.entries {
            if !declared.contains(&p.name.to_ascii_lowercase()) {
                return Err(ImportError::ParameterUndeclared {
                    at: p.at.clone(),
                    name: p.name.clone(),
                });
            }
        }
        let x = expand_in(&inner, template);
        env.absorb(&inner);
        let x = x?;
        if let Some(e) = inner.limit_error() {
            return Err(e);
        }
        env.used_defaults
            .set(env.used_defaults.get() || x.used_defaults);
        env.null_defaults
            .set(env.null_defaults.get() || x.null_defaults);
        self.resources.extend(x.resources);
        self.ignored.extend(x.ignored);
        self.within_limits(Location::new(env.input, pointer))
    }
}
