//! Unit tests of the importer, grouped by stage: expressions, parameters, template expansion,
//! mapping (both export shapes), merging, and the unknown-value markers.

use serde_json::json;

use super::eval::{DeployScope, Env, Loops};
use super::params::Provided;
use super::value::Val;
use super::*;
use crate::fixture::{AddressField, NetworkMode, PortField, Sku};

const SCHEMA: &str =
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#";

fn scope() -> DeployScope {
    DeployScope {
        subscription_id: "sub1".into(),
        resource_group: "rg1".into(),
        location: "northeurope".into(),
        defaulted: false,
    }
}

fn doc() -> serde_json::Value {
    json!({
        "$schema": SCHEMA,
        "parameters": {
            "Name": { "type": "string", "defaultValue": "App" },
            "derived": { "type": "string", "defaultValue": "[concat(parameters('name'), '-x')]" },
            "count": { "type": "int", "defaultValue": 3 },
            "obj": { "type": "object", "defaultValue": { "a": { "b": [10, 20] } } }
        },
        "variables": {
            "v1": "[toUpper(parameters('NAME'))]",
            "copy": [{ "name": "squares", "count": 3, "input": "[concat('s', copyIndex('squares'))]" }]
        },
        "resources": []
    })
}

/// Evaluates one template string against [`doc`].
fn eval(s: &str) -> Val {
    let d = doc();
    let sc = scope();
    let p = Provided::default();
    let env = Env::new("t.json", &d, &sc, &p);
    env.eval_string(s, "/x", &Loops::default())
}

fn ok(s: &str) -> serde_json::Value {
    match eval(s) {
        Val::Failed(e) => panic!("`{s}` failed: {e}"),
        Val::Unknown(u) => panic!("`{s}` is unknown: {}", u.reason),
        v => v.to_json(),
    }
}

fn template(resources: serde_json::Value) -> String {
    json!({ "$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": resources }).to_string()
}

fn one(text: &str) -> Result<ImportResult, ImportError> {
    import(&[Input::new("t.json", text)], &ImportOptions::default())
}

// --- expressions ---

#[test]
fn strings_and_escapes() {
    assert_eq!(ok("plain"), json!("plain"));
    assert_eq!(ok("[[not an expression]"), json!("[not an expression]"));
    assert_eq!(ok("['it''s']"), json!("it's"));
}

#[test]
fn parameters_and_variables() {
    // Names are case-insensitive; a defaultValue can itself be an expression.
    assert_eq!(ok("[parameters('NAME')]"), json!("App"));
    assert_eq!(ok("[parameters('Derived')]"), json!("App-x"));
    assert_eq!(ok("[variables('V1')]"), json!("APP"));
    assert_eq!(ok("[variables('squares')]"), json!(["s0", "s1", "s2"]));
    // Property access and indexing on results.
    assert_eq!(ok("[parameters('obj').a.b[1]]"), json!(20));
    assert_eq!(ok("[parameters('obj')['a']]"), json!({"b": [10, 20]}));
    assert!(matches!(eval("[parameters('nope')]"), Val::Failed(_)));
    assert!(matches!(
        eval("[parameters('obj').missing]"),
        Val::Failed(_)
    ));
}

#[test]
fn string_functions() {
    assert_eq!(ok("[concat('a', 1, 'b')]"), json!("a1b"));
    assert_eq!(
        ok("[concat(createArray(1), createArray(2, 3))]"),
        json!([1, 2, 3])
    );
    assert_eq!(
        ok("[format('{0}-{1:D3}-{{x}}', 'a', 7)]"),
        json!("a-007-{x}")
    );
    assert_eq!(ok("[toLower('AbC')]"), json!("abc"));
    assert_eq!(ok("[toUpper('AbC')]"), json!("ABC"));
    assert_eq!(ok("[split('a/b/c', '/')]"), json!(["a", "b", "c"]));
    assert_eq!(ok("[last(split('a/b/c', '/'))]"), json!("c"));
    assert_eq!(ok("[split('a,b;c', createArray(',', ';'))[2]]"), json!("c"));
    assert_eq!(ok("[length('abc')]"), json!(3));
    assert_eq!(ok("[contains('abc', 'b')]"), json!(true));
    assert!(matches!(eval("[toLower(1)]"), Val::Failed(_)));
}

#[test]
fn logic_and_collections() {
    assert_eq!(ok("[equals('a', 'a')]"), json!(true));
    assert_eq!(ok("[equals('a', 'A')]"), json!(false));
    assert_eq!(ok("[not(equals(1, 2))]"), json!(true));
    assert_eq!(ok("[and(equals(1, 1), equals(2, 2))]"), json!(true));
    assert_eq!(ok("[or(equals(1, 2), equals(2, 2))]"), json!(true));
    // `if` is lazy: the branch not taken is never evaluated (it would fail here).
    assert_eq!(
        ok("[if(equals(1, 1), 'yes', parameters('nope'))]"),
        json!("yes")
    );
    assert_eq!(ok("[empty('')]"), json!(true));
    assert_eq!(ok("[empty(createObject())]"), json!(true));
    assert_eq!(ok("[empty(json('null'))]"), json!(true));
    assert_eq!(ok("[length(createArray(1, 2))]"), json!(2));
    assert_eq!(ok("[json('null')]"), json!(null));
    assert_eq!(ok("[json('{\"a\": [1]}').a[0]]"), json!(1));
    assert_eq!(ok("[contains(createArray('x', 'y'), 'y')]"), json!(true));
    assert_eq!(ok("[contains(createObject('Key', 1), 'key')]"), json!(true));
    assert_eq!(
        ok("[union(createArray(1, 2), createArray(2, 3))]"),
        json!([1, 2, 3])
    );
    assert_eq!(
        ok("[union(createObject('a', 1, 'n', createObject('x', 1)), createObject('b', 2, 'n', createObject('y', 2)))]"),
        json!({"a": 1, "n": {"x": 1, "y": 2}, "b": 2})
    );
    assert_eq!(ok("[coalesce(json('null'), 'second')]"), json!("second"));
    assert_eq!(
        ok("[createObject('k', createArray('v'))]"),
        json!({"k": ["v"]})
    );
    assert_eq!(
        ok("[cidrSubnet('10.1.0.0/16', 24, 5)]"),
        json!("10.1.5.0/24")
    );
}

#[test]
fn deployment_scope_and_ids() {
    assert_eq!(ok("[resourceGroup().location]"), json!("northeurope"));
    assert_eq!(
        ok("[resourceGroup().id]"),
        json!("/subscriptions/sub1/resourceGroups/rg1")
    );
    assert_eq!(ok("[subscription().subscriptionId]"), json!("sub1"));
    assert_eq!(
        ok("[resourceId('Microsoft.Network/virtualNetworks', 'v')]"),
        json!(
            "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v"
        )
    );
    // Two-level types, a trailing `/` on the type, and explicit resource group/subscription.
    assert_eq!(
        ok("[resourceId('Microsoft.Network/virtualNetworks/subnets/', 'v', 's')]"),
        json!("/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v/subnets/s")
    );
    assert_eq!(
        ok("[resourceId('other-rg', 'Microsoft.Network/networkSecurityGroups/', 'n')]"),
        json!("/subscriptions/sub1/resourceGroups/other-rg/providers/Microsoft.Network/networkSecurityGroups/n")
    );
    assert_eq!(
        ok("[resourceId('sub2', 'rg2', 'Microsoft.Network/virtualNetworks/subnets', 'v/s')]"),
        json!("/subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.Network/virtualNetworks/v/subnets/s")
    );
    assert_eq!(
        ok("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'abc')]"),
        json!("/subscriptions/sub1/providers/Microsoft.Authorization/roleDefinitions/abc")
    );
    assert!(matches!(
        eval("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v')]"),
        Val::Failed(_)
    ));
    // extensionResourceId (Learn, "Resource functions for ARM templates": an extension
    // resource applied to a resource group, and to a resource).
    assert_eq!(
        ok("[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks', 'rgLock')]"),
        json!(
            "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Authorization/locks/rgLock"
        )
    );
    assert_eq!(
        ok("[extensionResourceId(resourceId('Microsoft.Network/virtualNetworks', 'v'), 'Microsoft.Authorization/locks', 'vLock')]"),
        json!("/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v/providers/Microsoft.Authorization/locks/vLock")
    );
    assert!(matches!(
        eval("[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks')]"),
        Val::Failed(_)
    ));
    let u = ok("[uniqueString(resourceGroup().id)]");
    assert_eq!(u, ok("[uniqueString(resourceGroup().id)]"));
    assert_eq!(u.as_str().map(str::len), Some(13));
}

#[test]
fn other_arm_functions_and_deployment_values_are_unknown() {
    for s in [
        "[reference('pip').ipAddress]",
        "[listKeys('sa', '2023-01-01').keys[0].value]",
        "[base64('x')]",
        "[concat('x', utcNow())]",
        "[format('{0:N2}', 3)]",
    ] {
        match eval(s) {
            Val::Unknown(u) => {
                assert_eq!(u.pointer, "/x", "{s}");
                assert!(!u.reason.is_empty());
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    // A known value stays known next to an unknown one where it decides the result.
    assert_eq!(
        ok("[or(equals(1, 1), equals(reference('x').a, 1))]"),
        json!(true)
    );
    assert_eq!(
        ok("[and(equals(1, 2), equals(reference('x').a, 1))]"),
        json!(false)
    );
    assert_eq!(ok("[length(createArray(reference('x'), 1))]"), json!(2));
}

#[test]
fn syntax_errors_and_unknown_names_fail() {
    assert!(matches!(eval("[concat('a']"), Val::Failed(_)));
    assert_eq!(ok("[concat('a'"), json!("[concat('a'"));
    match eval("[concatenate('a')]") {
        Val::Failed(e) => assert_eq!(e.code(), "ARM_UNKNOWN_FUNCTION"),
        other => panic!("{other:?}"),
    }
}

// --- parameters ---

fn param_template() -> String {
    json!({
        "$schema": SCHEMA,
        "parameters": {
            "prefix": { "type": "string", "defaultValue": "10.9.0.0/16" },
            "count": { "type": "int", "defaultValue": 1 },
            "tier": { "type": "string", "allowedValues": ["StandardV2", "PremiumV2"], "defaultValue": "StandardV2" },
            "flag": { "type": "bool", "defaultValue": false }
        },
        "resources": [{
            "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
            "properties": { "addressSpace": { "addressPrefixes": ["[parameters('prefix')]"] } }
        }]
    })
    .to_string()
}

#[test]
fn parameter_values_follow_the_declared_type() {
    let opts = ImportOptions {
        parameters: vec![
            "PREFIX=10.8.0.0/16".into(),
            "count=2".into(),
            "flag=true".into(),
            "tier=standardv2".into(),
        ],
        ..ImportOptions::default()
    };
    let r = import(&[Input::new("t.json", param_template())], &opts).unwrap();
    assert_eq!(r.fixture.vnets[0].address_space, vec!["10.8.0.0/16"]);

    let bad = ImportOptions {
        parameters: vec!["count=two".into()],
        ..ImportOptions::default()
    };
    let e = import(&[Input::new("t.json", param_template())], &bad).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_TYPE", "{e}");
    assert_eq!(e.location().map(|l| l.input.as_str()), Some("--parameter"));

    let not_allowed = ImportOptions {
        parameters: vec!["tier=Gold".into()],
        ..ImportOptions::default()
    };
    let e = import(&[Input::new("t.json", param_template())], &not_allowed).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_NOT_ALLOWED", "{e}");

    let undeclared = ImportOptions {
        parameters: vec!["nope=1".into()],
        ..ImportOptions::default()
    };
    let e = import(&[Input::new("t.json", param_template())], &undeclared).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_UNDECLARED", "{e}");
}

#[test]
fn parameters_files_are_typed_and_key_vault_references_unknown() {
    let file = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "parameters": { "count": { "value": "2" } }
    })
    .to_string();
    let opts = ImportOptions {
        parameter_files: vec![Input::new("p.json", file)],
        ..ImportOptions::default()
    };
    let e = import(&[Input::new("t.json", param_template())], &opts).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_TYPE");
    let at = e.location().expect("located");
    assert_eq!(
        (at.input.as_str(), at.pointer.as_str()),
        ("p.json", "/parameters/count/value")
    );
    assert!(at.line.is_some(), "{e}");

    let kv = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "parameters": { "prefix": { "reference": { "keyVault": { "id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv" }, "secretName": "p" } } }
    })
    .to_string();
    // As an input, a parameters file is detected from its content.
    let r = import(
        &[
            Input::new("t.json", param_template()),
            Input::new("kv.json", kv),
        ],
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(is_marker(&r.fixture.vnets[0].address_space[0]));
    assert_eq!(
        r.unknowns[0].pointer,
        "/resources/0/properties/addressSpace/addressPrefixes/0"
    );
    assert!(
        r.unknowns[0].reason.contains("Key Vault"),
        "{}",
        r.unknowns[0].reason
    );
}

#[test]
fn missing_required_parameter_names_its_declaration() {
    let t = json!({
        "$schema": SCHEMA,
        "parameters": { "name": { "type": "string" }, "opt": { "type": "array", "nullable": true } },
        "resources": []
    })
    .to_string();
    let e = one(&t).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_MISSING");
    assert_eq!(
        e.location().map(|l| l.pointer.as_str()),
        Some("/parameters/name")
    );
}

// --- template expansion ---

#[test]
fn copy_loops_conditions_and_nested_children() {
    let t = json!({
        "$schema": SCHEMA,
        "parameters": { "n": { "type": "int", "defaultValue": 3 } },
        "resources": [
            {
                "type": "Microsoft.Network/networkSecurityGroups", "name": "nsg", "location": "westeurope",
                "properties": { "copy": [{
                    "name": "securityRules", "count": "[parameters('n')]",
                    "input": { "name": "[concat('r', copyIndex('securityRules', 1))]", "properties": {
                        "priority": "[add_is_not_evaluated_so_use_literal_priority()]"
                    } }
                }] }
            }
        ]
    })
    .to_string();
    // `add_is_not_…` is no ARM function: an error, with the pointer of the string.
    let e = one(&t).unwrap_err();
    assert_eq!(e.code(), "ARM_UNKNOWN_FUNCTION");
    assert_eq!(
        e.location().map(|l| l.pointer.as_str()),
        Some("/resources/0/properties/copy/0/input/properties/priority")
    );

    let t = json!({
        "$schema": SCHEMA,
        "parameters": { "n": { "type": "int", "defaultValue": 3 }, "extra": { "type": "bool", "defaultValue": false } },
        "variables": { "prios": [100, 110, 120] },
        "resources": [
            {
                "type": "Microsoft.Network/virtualNetworks", "name": "[concat('vnet', copyIndex())]", "location": "westeurope",
                "copy": { "name": "vnets", "count": 2 },
                "properties": { "addressSpace": { "addressPrefixes": ["[format('10.{0}.0.0/16', copyIndex(10))]"] } },
                "resources": [{ "type": "subnets", "name": "a", "properties": { "addressPrefix": "[format('10.{0}.1.0/24', copyIndex(10))]" } }]
            },
            {
                "condition": "[parameters('extra')]",
                "type": "Microsoft.Network/virtualNetworks/subnets", "name": "vnet0/b",
                "properties": { "addressPrefix": "10.10.2.0/24" }
            },
            {
                "type": "Microsoft.Network/networkSecurityGroups", "name": "nsg", "location": "westeurope",
                "properties": { "copy": [{
                    "name": "securityRules", "count": "[parameters('n')]",
                    "input": { "name": "[concat('r', copyIndex('securityRules', 1))]", "properties": {
                        "priority": "[variables('prios')[copyIndex('securityRules')]]",
                        "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                        "sourceAddressPrefix": "*", "sourcePortRange": "*",
                        "destinationAddressPrefix": "*", "destinationPortRange": "443"
                    } }
                }] }
            }
        ]
    })
    .to_string();
    let r = one(&t).unwrap();
    let f = &r.fixture;
    assert_eq!(f.vnets.len(), 2);
    assert_eq!(f.vnets[1].name, "vnet1");
    assert_eq!(f.vnets[1].address_space, vec!["10.11.0.0/16"]);
    // The nested child resource joined its parent of the same copy iteration.
    assert_eq!(f.vnets[1].subnets[0].address_prefixes, vec!["10.11.1.0/24"]);
    // The conditional subnet is not deployed.
    assert_eq!(f.vnets[0].subnets.len(), 1);
    let names: Vec<&str> = f.nsgs[0]
        .security_rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["r1", "r2", "r3"]);
    assert_eq!(f.nsgs[0].security_rules[2].priority, 120);
}

#[test]
fn language_version_2_and_existing_resources() {
    let t = json!({
        "$schema": SCHEMA,
        "languageVersion": "2.0",
        "contentVersion": "1.0.0.0",
        "resources": {
            "shared": { "existing": true, "type": "Microsoft.Network/virtualNetworks", "name": "shared" },
            "nsg": { "type": "Microsoft.Network/networkSecurityGroups", "name": "n", "location": "westeurope" },
            "plan": { "type": "Microsoft.Web/serverfarms", "name": "plan", "location": "westeurope" }
        }
    })
    .to_string();
    let r = one(&t).unwrap();
    // An NSG without properties has only the default rules.
    assert_eq!(r.fixture.nsgs[0].name, "n");
    assert!(r.fixture.nsgs[0].security_rules.is_empty());
    let ignored: Vec<&str> = r.ignored.iter().map(|i| i.name.as_str()).collect();
    assert!(
        ignored.contains(&"shared") && ignored.contains(&"plan"),
        "{ignored:?}"
    );
    assert_eq!(
        r.ignored
            .iter()
            .find(|i| i.name == "plan")
            .map(|i| i.pointer.as_str()),
        Some("/resources/plan")
    );
}

#[test]
fn unknown_conditions_and_names_cannot_be_modelled() {
    let t = template(json!([{
        "condition": "[equals(reference('x').state, 'on')]",
        "type": "Microsoft.Network/networkSecurityGroups", "name": "n", "location": "westeurope"
    }]));
    let e = one(&t).unwrap_err();
    assert_eq!(e.code(), "ARM_UNREPRESENTABLE");
    assert_eq!(
        e.location().map(|l| l.pointer.as_str()),
        Some("/resources/0/condition")
    );
}

// --- mapping ---

fn nsg_rule(props: serde_json::Value) -> serde_json::Value {
    json!({ "type": "Microsoft.Network/networkSecurityGroups", "name": "n", "location": "westeurope",
            "properties": { "securityRules": [{ "name": "r", "properties": props }] } })
}

#[test]
fn singular_and_plural_rule_fields() {
    // Empty strings, empty arrays and nulls are unused; the other form decides.
    let r = one(&template(json!([nsg_rule(json!({
        "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "TCP",
        "sourceAddressPrefix": "", "sourceAddressPrefixes": ["10.0.0.0/24", "10.0.1.0/24"],
        "sourceApplicationSecurityGroups": null, "sourcePortRange": "*", "sourcePortRanges": [],
        "destinationAddressPrefix": "*", "destinationAddressPrefixes": [],
        "destinationPortRange": null, "destinationPortRanges": ["80", "443"]
    }))])))
    .unwrap();
    let rule = &r.fixture.nsgs[0].security_rules[0];
    assert_eq!(
        rule.source,
        AddressField::Prefixes(vec!["10.0.0.0/24".into(), "10.0.1.0/24".into()])
    );
    assert_eq!(
        rule.destination_ports,
        PortField::Ranges(vec!["80".into(), "443".into()])
    );
    assert_eq!(rule.protocol.as_str(), "Tcp");

    let e = one(&template(json!([nsg_rule(json!({
        "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
        "sourceAddressPrefix": "*", "sourceAddressPrefixes": ["10.0.0.0/24"], "sourcePortRange": "*",
        "destinationAddressPrefix": "*", "destinationPortRange": "80"
    }))])))
    .unwrap_err();
    assert_eq!(e.code(), "ARM_INVALID");
    assert!(
        e.to_string()
            .contains("sourceAddressPrefix and sourceAddressPrefixes"),
        "{e}"
    );

    let e = one(&template(json!([nsg_rule(json!({
        "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Gre",
        "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "80"
    }))])))
    .unwrap_err();
    assert_eq!(
        e.location().map(|l| l.pointer.as_str()),
        Some("/resources/0/properties/securityRules/0/properties/protocol")
    );
}

/// Bicep's resource-derived types (Learn, "Resource-derived types in Bicep":
/// `resourceInput<'Microsoft.Network/networkSecurityGroups@2023-11-01'>.properties.securityRules`)
/// compile to the property's JSON type with `metadata.__bicep_resource_derived_type!` naming the
/// source, directly on a parameter or in a `definitions` entry it `$ref`s (what the corpus AVM
/// modules emit). ARM checks only the JSON type ("Data types in ARM templates"), so REST-shaped
/// objects are accepted and reach the mapping, also through a module's parameter.
#[test]
fn resource_derived_parameter_types_take_rest_objects() {
    let derived = |source: &str| json!({ "__bicep_resource_derived_type!": { "source": source } });
    let rules_source = "Microsoft.Network/networkSecurityGroups@2023-11-01#properties/properties/properties/securityRules";
    let module_template = json!({
        "$schema": SCHEMA, "languageVersion": "2.0", "contentVersion": "1.0.0.0",
        "definitions": { "rulesType": { "type": "array", "metadata": derived(rules_source) } },
        "parameters": {
            "securityRules": { "$ref": "#/definitions/rulesType" },
            "extraRule": { "type": "object", "nullable": true,
                "metadata": derived("Microsoft.Network/networkSecurityGroups/securityRules@2023-11-01") }
        },
        "resources": { "nsg": {
            "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-11-01",
            "name": "nsg-rd", "location": "westeurope",
            "properties": { "securityRules": "[concat(parameters('securityRules'), if(empty(parameters('extraRule')), createArray(), createArray(parameters('extraRule'))))]" }
        } }
    });
    let rules = json!([
        { "name": "allow-https", "properties": { "priority": 100, "direction": "Inbound", "access": "Allow",
            "protocol": "Tcp", "sourceAddressPrefixes": ["10.0.1.0/24", "10.0.2.0/24"], "sourcePortRange": "*",
            "destinationAddressPrefix": "VirtualNetwork", "destinationPortRanges": ["443", "8443"] } }
    ]);
    let extra = json!({ "name": "deny-rest", "properties": { "priority": 4000, "direction": "Inbound",
        "access": "Deny", "protocol": "*", "sourceAddressPrefix": "*", "sourcePortRange": "*",
        "destinationAddressPrefix": "*", "destinationPortRange": "*" } });
    // Given as parameters of the template itself...
    let params = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "parameters": { "securityRules": { "value": rules }, "extraRule": { "value": extra } }
    });
    let r = import(
        &[
            Input::new("t.json", module_template.to_string()),
            Input::new("p.json", params.to_string()),
        ],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // ... and passed by a parent to the same template as a module.
    let parent = json!({ "$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [{
        "type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "nsg-module",
        "properties": { "expressionEvaluationOptions": { "scope": "inner" }, "mode": "Incremental",
            "parameters": { "securityRules": { "value": rules }, "extraRule": { "value": extra } },
            "template": module_template } }] });
    let m = one(&parent.to_string()).unwrap_or_else(|e| panic!("{e}"));
    for r in [&r, &m] {
        assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
        let nsg = &r.fixture.nsgs[0];
        let names: Vec<&str> = nsg.security_rules.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            (nsg.name.as_str(), names),
            ("nsg-rd", vec!["allow-https", "deny-rest"])
        );
        let rule = &nsg.security_rules[0];
        assert_eq!(
            rule.source,
            AddressField::Prefixes(vec!["10.0.1.0/24".into(), "10.0.2.0/24".into()])
        );
        assert_eq!(
            rule.destination,
            AddressField::Prefix("VirtualNetwork".into())
        );
        assert_eq!(
            rule.destination_ports,
            PortField::Ranges(vec!["443".into(), "8443".into()])
        );
    }
    // The JSON type is still checked: an object where the derived type is an array.
    let wrong = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "parameters": { "securityRules": { "value": extra } }
    });
    let e = import(
        &[
            Input::new("t.json", module_template.to_string()),
            Input::new("p.json", wrong.to_string()),
        ],
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_TYPE");
    assert!(e.to_string().contains("array"), "{e}");
}

#[test]
fn unknown_rule_fields_become_markers() {
    let r = one(&template(json!([nsg_rule(json!({
        "priority": 100, "direction": "Outbound", "access": "[reference('cfg').access]", "protocol": "Tcp",
        "sourceAddressPrefix": "*", "sourcePortRange": "*",
        "destinationAddressPrefix": "[reference('pip').ipAddress]",
        "destinationPortRanges": ["443", "[string(reference('cfg').port)]"]
    }))])))
    .unwrap();
    let rule = &r.fixture.nsgs[0].security_rules[0];
    let base = "/resources/0/properties/securityRules/0/properties";
    assert_eq!(
        rule.destination,
        AddressField::Prefix(marker(&format!("{base}/destinationAddressPrefix")))
    );
    assert_eq!(
        rule.destination_ports,
        PortField::Ranges(vec![
            "443".into(),
            marker(&format!("{base}/destinationPortRanges/1"))
        ])
    );
    // Unknown access: kept as Deny, with the marker in the source ports.
    assert_eq!(rule.access.as_str(), "Deny");
    assert_eq!(
        rule.source_ports,
        PortField::Ranges(vec![marker(&format!("{base}/access"))])
    );
    assert_eq!(r.unknowns.len(), 3);
    let u = r
        .unknowns
        .iter()
        .find(|u| u.subject.ends_with("/destination"))
        .expect("destination unknown");
    assert_eq!(u.expression, "reference('pip').ipAddress");
    assert!(u.line.is_some() && u.column.is_some());
    // Markers survive TOML.
    let back =
        crate::fixture::Fixture::parse(&r.fixture.to_toml().unwrap(), crate::fixture::Format::Toml)
            .unwrap();
    assert_eq!(back, r.fixture);

    let e = one(&template(json!([nsg_rule(json!({
        "priority": "[reference('cfg').priority]", "direction": "Outbound", "access": "Allow", "protocol": "Tcp",
        "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "1"
    }))])))
    .unwrap_err();
    assert_eq!(e.code(), "ARM_UNREPRESENTABLE");
}

#[test]
fn flattened_cli_nsg_with_default_rules_checked() {
    let mut defaults: Vec<serde_json::Value> = crate::nsg::default_rules()
        .iter()
        .map(|d| json!({
            "name": d.name, "priority": d.priority, "direction": d.direction.as_str(), "access": d.access.as_str(),
            "protocol": "*", "sourceAddressPrefix": if d.source.any { "*".to_string() } else { d.source.text[0].clone() },
            "destinationAddressPrefix": if d.destination.any { "*".to_string() } else { d.destination.text[0].clone() },
            "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
            "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"
        }))
        .collect();
    let nsg = |defaults: &[serde_json::Value]| {
        json!({
        "id": "/subscriptions/s9/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/myVMNSG",
        "name": "myVMNSG", "type": "Microsoft.Network/networkSecurityGroups", "location": "centralus", "resourceGroup": "rg",
        "securityRules": [{
            "access": "Allow", "description": null, "destinationAddressPrefix": "*", "destinationAddressPrefixes": [],
            "destinationApplicationSecurityGroups": null, "destinationPortRange": "22", "destinationPortRanges": [],
            "direction": "Inbound", "name": "default-allow-ssh", "priority": 1000, "protocol": "Tcp",
            "sourceAddressPrefix": "*", "sourceAddressPrefixes": [], "sourceApplicationSecurityGroups": null,
            "sourcePortRange": "*", "sourcePortRanges": [], "type": "Microsoft.Network/networkSecurityGroups/securityRules"
        }],
        "defaultSecurityRules": defaults, "subnets": null
    })
    .to_string()
    };
    let r = one(&nsg(&defaults)).unwrap();
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(
        r.fixture.subscription.as_ref().map(|s| s.id.as_str()),
        Some("s9")
    );
    assert_eq!(
        r.fixture.nsgs[0].security_rules[0].name,
        "default-allow-ssh"
    );

    defaults[0]["priority"] = json!(64000);
    defaults.pop();
    let r = one(&nsg(&defaults)).unwrap();
    let codes: Vec<&str> = r.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(
        codes,
        ["DEFAULT_RULES_MISMATCH", "DEFAULT_RULES_MISMATCH"],
        "{:?}",
        r.findings
    );
}

#[test]
fn resource_list_form_is_refused_with_the_command() {
    let list = json!([{
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
        "name": "v", "type": "Microsoft.Network/virtualNetworks", "location": "westus", "resourceGroup": "rg", "tags": {}
    }])
    .to_string();
    let e = one(&list).unwrap_err();
    assert_eq!(e.code(), "ARM_NO_PROPERTIES");
    assert!(
        e.to_string()
            .contains("az network vnet show --ids /subscriptions/s/"),
        "{e}"
    );
    assert!(e.to_string().contains("az resource show --ids"), "{e}");
}

fn vnet_export(sub_nsg: Option<&str>) -> serde_json::Value {
    let mut subnet = json!({ "name": "a", "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a",
        "properties": { "addressPrefix": "10.0.1.0/24",
            "delegations": [{ "name": "d", "properties": { "serviceName": "Microsoft.Web/serverFarms" } }],
            "ipConfigurations": [{ "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb/frontendIPConfigurations/fe" }] } });
    if let Some(n) = sub_nsg {
        subnet["properties"]["networkSecurityGroup"] = json!({ "id": format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/{n}") });
    }
    json!({
        "name": "v", "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
        "type": "Microsoft.Network/virtualNetworks", "location": "westus",
        "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] }, "subnets": [subnet],
            "virtualNetworkPeerings": [{ "name": "to-hub", "properties": { "peeringState": "Connected",
                "remoteVirtualNetwork": { "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/hub" } } }] }
    })
}

#[test]
fn rest_shape_vnet_export() {
    let r = one(&vnet_export(None).to_string()).unwrap();
    let v = &r.fixture.vnets[0];
    assert_eq!(v.subnets[0].delegations, vec!["Microsoft.Web/serverFarms"]);
    // What else lives in the subnet (not an imported NIC) counts against dedication.
    assert_eq!(
        v.subnets[0].resources,
        vec!["Microsoft.Network/loadBalancers/lb/frontendIPConfigurations/fe"]
    );
    // The peer is not among the inputs: left out, with a finding.
    assert!(v.peerings.is_empty());
    assert_eq!(r.findings[0].code.as_str(), "PEERING_NOT_CONNECTED");
}

#[test]
fn references_must_resolve_among_the_inputs() {
    let e = one(&vnet_export(Some("nsg-a")).to_string()).unwrap_err();
    assert_eq!(e.code(), "ARM_MISSING_REFERENCE");
    assert!(
        e.to_string().contains("az network nsg show --name nsg-a"),
        "{e}"
    );
    assert_eq!(
        e.location().map(|l| l.pointer.as_str()),
        Some("/properties/subnets/0")
    );

    let child = template(
        json!([{ "type": "Microsoft.Network/virtualNetworks/subnets", "name": "elsewhere/s",
        "properties": { "addressPrefix": "10.0.0.0/24" } }]),
    );
    let e = one(&child).unwrap_err();
    assert_eq!(e.code(), "ARM_MISSING_REFERENCE");
    assert!(e.to_string().contains("VNet `elsewhere`"), "{e}");
}

#[test]
fn duplicates_merge_and_conflicts_name_both_sources() {
    let a = vnet_export(None).to_string();
    let r = import(
        &[Input::new("a.json", a.clone()), Input::new("b.json", a)],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(r.fixture.vnets.len(), 1);

    let mut other = vnet_export(None);
    other["properties"]["addressSpace"]["addressPrefixes"] = json!(["10.0.0.0/8"]);
    let e = import(
        &[
            Input::new("a.json", vnet_export(None).to_string()),
            Input::new("b.json", other.to_string()),
        ],
        &ImportOptions::default(),
    )
    .unwrap_err();
    let ImportError::Conflict { first, second, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(
        (first.input.as_str(), second.input.as_str()),
        ("a.json", "b.json")
    );
}

fn nic(name: &str, ip: Option<&str>) -> serde_json::Value {
    let mut cfg = json!({ "name": "ipconfig1", "properties": {
        "privateIPAllocationMethod": if ip.is_some() { "Static" } else { "Dynamic" },
        "subnet": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 'a')]" } } });
    if let Some(ip) = ip {
        cfg["properties"]["privateIPAddress"] = json!(ip);
    }
    json!({ "type": "Microsoft.Network/networkInterfaces", "name": name, "location": "westeurope",
            "properties": { "ipConfigurations": [cfg] } })
}

#[test]
fn dynamic_addresses_take_the_first_free_usable_ones() {
    let vnet = json!({ "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
        "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] },
            "subnets": [{ "name": "a", "properties": { "addressPrefix": "10.0.1.0/24" } }] } });
    let r = one(&template(json!([
        vnet,
        nic("n1", None),
        nic("n2", Some("10.0.1.5")),
        nic("n3", None),
        nic("n4", None)
    ])))
    .unwrap();
    let addrs: Vec<&str> = r.fixture.hosts.iter().map(|h| h.address.as_str()).collect();
    // .0-.3 are reserved; .5 is static; dynamic ones follow resource order.
    assert_eq!(addrs, ["10.0.1.4", "10.0.1.5", "10.0.1.6", "10.0.1.7"]);
    assert!(r
        .assumptions
        .contains(&crate::finding::Assumption::DynamicPrivateAddress));
}

fn apim(sku: &str, kind: &str) -> serde_json::Value {
    json!([
        { "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
          "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] },
            "subnets": [{ "name": "a", "properties": { "addressPrefix": "10.0.1.0/24" } }] } },
        { "type": "Microsoft.ApiManagement/service", "name": "gw", "location": "westeurope",
          "sku": { "name": sku, "capacity": 1 },
          "properties": { "virtualNetworkType": kind,
            "virtualNetworkConfiguration": { "subnetResourceId": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 'a')]" } } }
    ])
}

#[test]
fn apim_modes() {
    let mode = |sku: &str, kind: &str| {
        let r = one(&template(apim(sku, kind))).unwrap();
        let a = r.fixture.apim.clone().expect("apim");
        (
            a.sku,
            a.virtual_network,
            r.findings
                .iter()
                .map(|f| f.code.as_str())
                .collect::<Vec<_>>(),
        )
    };
    // Case-insensitive tier names, as real templates write them.
    assert_eq!(
        mode("Standardv2", "External"),
        (Sku::StandardV2, NetworkMode::Integration, vec![])
    );
    assert_eq!(
        mode("PremiumV2", "external"),
        (Sku::PremiumV2, NetworkMode::Integration, vec![])
    );
    assert_eq!(
        mode("Premiumv2", "Internal"),
        (Sku::PremiumV2, NetworkMode::Injection, vec![])
    );
    assert_eq!(
        mode("Developer", "Internal"),
        (Sku::Developer, NetworkMode::Classic, vec![])
    );
    assert_eq!(
        mode("Premium", "External"),
        (Sku::Premium, NetworkMode::Classic, vec![])
    );
    assert_eq!(
        mode("StandardV2", "None"),
        (Sku::StandardV2, NetworkMode::None, vec![])
    );
}

#[test]
fn apis_get_echo_backends() {
    let mut rs = apim("StandardV2", "External");
    let arr = rs.as_array_mut().expect("array");
    arr.push(
        json!({ "type": "Microsoft.ApiManagement/service/apis", "name": "gw/orders",
        "properties": { "path": "orders", "serviceUrl": "http://52.10.20.30:8080/v1" } }),
    );
    arr.push(
        json!({ "type": "Microsoft.ApiManagement/service/apis", "name": "gw/orders;rev=2",
        "properties": { "path": "orders", "serviceUrl": "http://52.10.20.30:8080/v2" } }),
    );
    let r = one(&template(rs)).unwrap();
    assert_eq!(r.fixture.apis.len(), 1);
    assert_eq!(r.fixture.apis[0].path, "/orders");
    let h = &r.fixture.hosts[0];
    assert_eq!(
        (h.address.as_str(), h.services[0].port),
        ("52.10.20.30", 8080)
    );
    assert!(r.ignored.iter().any(|i| i.name == "gw/orders;rev=2"));
    let built = crate::Topology::build(&r.fixture, crate::ServiceTagTable::builtin());
    // The APIs resolve; only the preflight complains (no NSG, no delegation on the subnet).
    assert!(built.structural_errors().is_empty(), "{:?}", built.findings);
}

// --- detection and helpers ---

#[test]
fn detection() {
    assert_eq!(
        detect(
            r#"{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#", "parameters": {}}"#
        ),
        Some(InputKind::Parameters)
    );
    assert_eq!(
        detect(r#"{"values": [], "changeNumber": 1, "cloud": "Public"}"#),
        Some(InputKind::ServiceTags)
    );
    assert_eq!(
        detect(r#"{"value": [{"type": "Microsoft.Network/virtualNetworks"}]}"#),
        Some(InputKind::Resources)
    );
    assert_eq!(
        detect(r#"{"parameters": {}, "responses": {"200": {"body": {"type": "x"}}}}"#),
        Some(InputKind::Resources)
    );
    // Broken JSON is still recognised by its schema, so its error can be shown.
    assert_eq!(
        detect(r#"{"$schema": "…/deploymentTemplate.json#", "resources": [}"#),
        Some(InputKind::Template)
    );
    assert_eq!(detect("vnets:\n  - name: v\n"), None);
    let e = one(r#"{"values": [], "changeNumber": 1}"#).unwrap_err();
    assert_eq!(e.code(), "ARM_NOT_AZURE");
}

#[test]
fn broken_json_is_located() {
    let text = "{\n  \"$schema\": \"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#\",\n  \"resources\": [\n    { \"type\": \"Microsoft.Network/virtualNetworks\", \"name\": }\n  ]\n}\n";
    let e = one(text).unwrap_err();
    assert_eq!(e.code(), "ARM_JSON_INVALID");
    let at = e.location().expect("located");
    assert_eq!(at.pointer, "/resources/0/name");
    assert_eq!(at.line, Some(4));
}

#[test]
fn markers() {
    assert!(is_marker(" <unknown:/a/b> "));
    assert!(!is_marker("10.0.0.0/8"));
    assert_eq!(parse_marker(&marker("")), Some(""));
}

#[test]
fn upstreams_replace_echo() {
    let mut f = crate::fixture::Fixture::parse(
        "[[hosts]]\nname = \"orders\"\naddress = \"10.0.2.4\"\ndns = [\"orders.internal\"]\n[[hosts.services]]\nport = 443\ntls = true\nserve = \"echo\"\n",
        crate::fixture::Format::Toml,
    )
    .unwrap();
    set_upstream(&mut f, "orders.internal:443", "127.0.0.1:9000").unwrap();
    let s = &f.hosts[0].services[0];
    assert_eq!(
        (s.serve, s.upstream.as_deref(), s.tls),
        (None, Some("127.0.0.1:9000"), true)
    );
    assert!(set_upstream(&mut f, "nowhere:1", "127.0.0.1:1").is_err());
    assert!(set_upstream(&mut f, "no-port", "127.0.0.1:1").is_err());
}

#[test]
fn flattened_cli_vnet_and_subnet_exports() {
    // `az network vnet show`: no `properties` wrapper anywhere.
    let vnet = json!({
        "addressSpace": { "addressPrefixes": ["10.7.0.0/16"] }, "location": "westeurope", "name": "v7",
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v7",
        "resourceGroup": "rg", "type": "Microsoft.Network/virtualNetworks",
        "subnets": [{
            "addressPrefix": "10.7.1.0/24", "name": "apim", "resourceGroup": "rg",
            "delegations": [{ "name": "d", "serviceName": "Microsoft.Web/hostingEnvironments", "actions": [] }],
            "privateEndpointNetworkPolicies": "NetworkSecurityGroupEnabled",
            "networkSecurityGroup": null
        }],
        "virtualNetworkPeerings": []
    });
    // `az network vnet subnet show` of the same subnet, and of another one.
    let same = json!({ "addressPrefix": "10.7.1.0/24", "name": "apim",
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v7/subnets/apim",
        "type": "Microsoft.Network/virtualNetworks/subnets", "privateEndpointNetworkPolicies": "NetworkSecurityGroupEnabled",
        "delegations": [{ "serviceName": "Microsoft.Web/hostingEnvironments" }] });
    let other = json!({ "addressPrefixes": ["10.7.2.0/24"], "name": "b",
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v7/subnets/b",
        "type": "Microsoft.Network/virtualNetworks/subnets" });
    let r = import(
        &[
            Input::new("v.json", vnet.to_string()),
            Input::new("s.json", json!([same, other]).to_string()),
        ],
        &ImportOptions::default(),
    )
    .unwrap();
    let v = &r.fixture.vnets[0];
    assert_eq!(v.subnets.len(), 2);
    assert_eq!(
        v.subnets[0].delegations,
        vec!["Microsoft.Web/hostingEnvironments"]
    );
    assert_eq!(
        v.subnets[0].private_endpoint_network_policies,
        crate::fixture::PrivateEndpointPolicies::NetworkSecurityGroupEnabled
    );
    assert_eq!(v.subnets[1].address_prefixes, vec!["10.7.2.0/24"]);
}

/// A subnet's `serviceEndpoints[]` (`service`, `locations`) become the fixture's
/// `service_endpoints` in both export shapes; a missing `locations` keeps the service's
/// defaults; a non-array and an endpoint without a service are clear errors.
#[test]
fn subnet_service_endpoints_map_to_the_fixture_key() {
    let vnet = |subnet: serde_json::Value| {
        json!({
            "$schema": SCHEMA,
            "resources": [{ "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2024-05-01",
                "name": "v", "location": "westeurope",
                "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] },
                    "subnets": [subnet] } }]
        })
        .to_string()
    };
    let subnet = json!({ "name": "apim", "properties": { "addressPrefix": "10.0.1.0/24",
        "serviceEndpoints": [
            { "service": "Microsoft.KeyVault" },
            { "service": "Microsoft.Storage", "locations": ["westeurope", "northeurope"] },
            // The flattened CLI shape has no `properties` wrapper either.
            { "service": "Microsoft.Sql", "locations": ["westeurope"], "provisioningState": "Succeeded" }
        ] } });
    let r = import(
        &[Input::new("t.json", vnet(subnet))],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let eps = &r.fixture.vnets[0].subnets[0].service_endpoints;
    let got: Vec<(&str, Option<Vec<&str>>)> = eps
        .iter()
        .map(|e| {
            (
                e.service.as_str(),
                e.locations
                    .as_ref()
                    .map(|l| l.iter().map(String::as_str).collect()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Microsoft.KeyVault", None),
            ("Microsoft.Storage", Some(vec!["westeurope", "northeurope"])),
            ("Microsoft.Sql", Some(vec!["westeurope"])),
        ]
    );
    // Not an array: an error naming the pointer.
    let bad = json!({ "name": "apim", "properties": { "addressPrefix": "10.0.1.0/24",
        "serviceEndpoints": "Microsoft.KeyVault" } });
    let e = import(
        &[Input::new("t.json", vnet(bad))],
        &ImportOptions::default(),
    )
    .expect_err("a string is not an array");
    assert!(
        e.to_string().contains("serviceEndpoints must be an array"),
        "{e}"
    );
    // A service without a name.
    let bad = json!({ "name": "apim", "properties": { "addressPrefix": "10.0.1.0/24",
        "serviceEndpoints": [{ "locations": ["*"] }] } });
    let e = import(
        &[Input::new("t.json", vnet(bad))],
        &ImportOptions::default(),
    )
    .expect_err("no service");
    assert!(e.to_string().contains("needs a service"), "{e}");
}
