//! Tests of module outputs read with `reference()` (module `outputs`), grouped by the form
//! Bicep emits: deployment ids and names (languageVersion 1.0), symbolic names and loops (2.0),
//! deployments at another resource group or subscription, `outer` scope, output `copy` and
//! `condition`; then what stays unknown, cycles and limits; then the scenario of a VNet module
//! whose subnet id is passed to a private endpoint module, imported end to end.

use serde_json::{json, Value};

use super::super::eval::{DeployScope, Env, Loops};
use super::super::params::Provided;
use super::super::value::Val;
use super::super::{import, ImportError, ImportOptions, ImportResult, Input, Limit};
use crate::fixture::{AddressField, HostKind};

const SCHEMA: &str =
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#";

fn scope() -> DeployScope {
    DeployScope {
        subscription_id: "sub1".into(),
        resource_group: "rg1".into(),
        location: "westeurope".into(),
        defaulted: false,
    }
}

/// A module that creates VNet `vnetName` (`prefix`) with subnet `snet-pe` (the prefix's second
/// /24, NSG `nsgId` when given) and outputs the subnet's id and prefix and the VNet's name.
fn vnet_template() -> Value {
    json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": {
            "vnetName": { "type": "string" },
            "prefix": { "type": "string" },
            "nsgId": { "type": "string", "defaultValue": "" }
        },
        "variables": { "subnetName": "snet-pe" },
        "resources": [{
            "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2024-05-01",
            "name": "[parameters('vnetName')]", "location": "westeurope",
            "properties": {
                "addressSpace": { "addressPrefixes": ["[parameters('prefix')]"] },
                "subnets": [{ "name": "[variables('subnetName')]", "properties": {
                    "addressPrefix": "[cidrSubnet(parameters('prefix'), 24, 1)]",
                    "networkSecurityGroup": "[if(empty(parameters('nsgId')), null(), createObject('id', parameters('nsgId')))]"
                } }]
            }
        }],
        "outputs": {
            "subnetResourceId": { "type": "string",
                "value": "[resourceId('Microsoft.Network/virtualNetworks/subnets', parameters('vnetName'), variables('subnetName'))]" },
            "subnetPrefix": { "type": "string", "value": "[cidrSubnet(parameters('prefix'), 24, 1)]" },
            "name": { "type": "string", "value": "[parameters('vnetName')]" }
        }
    })
}

/// An inner-scope module deployment named `name` passing `params` (`{name: value}`).
fn module(name: &str, params: Value, template: Value) -> Value {
    let params: serde_json::Map<String, Value> = params
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), json!({ "value": v })))
        .collect();
    json!({
        "type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": name,
        "properties": {
            "expressionEvaluationOptions": { "scope": "inner" }, "mode": "Incremental",
            "parameters": params, "template": template
        }
    })
}

fn vnet_module(name: &str, vnet: &str, prefix: &str) -> Value {
    module(
        name,
        json!({ "vnetName": vnet, "prefix": prefix }),
        vnet_template(),
    )
}

/// Evaluates `text` in the top-level template `doc`.
fn eval_in(doc: &Value, text: &str) -> Val {
    let sc = scope();
    let p = Provided::default();
    let env = Env::new("t.json", doc, &sc, &p);
    env.eval_string(text, "/x", &Loops::default())
}

fn ok(doc: &Value, text: &str) -> Value {
    match eval_in(doc, text) {
        Val::Failed(e) => panic!("`{text}` failed: {e}"),
        Val::Unknown(u) => panic!("`{text}` is unknown: {}", u.reason),
        v => v.to_json(),
    }
}

fn unknown(doc: &Value, text: &str) -> String {
    match eval_in(doc, text) {
        Val::Unknown(u) => u.reason.clone(),
        other => panic!("`{text}` should be unknown, got {other:?}"),
    }
}

fn failed(doc: &Value, text: &str) -> String {
    match eval_in(doc, text) {
        Val::Failed(e) => e.to_string(),
        other => panic!("`{text}` should fail, got {other:?}"),
    }
}

fn doc(resources: Value) -> Value {
    let mut d = json!({ "$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": resources });
    if d["resources"].is_object() {
        d["languageVersion"] = json!("2.0");
    }
    d
}

fn one(text: String) -> Result<ImportResult, ImportError> {
    import(&[Input::new("t.json", text)], &ImportOptions::default())
}

// --- languageVersion 1.0: deployment ids and names ---

#[test]
fn outputs_by_deployment_id_and_name() {
    let d = doc(json!([vnet_module("vnet-mod", "vnet-a", "10.1.0.0/16")]));
    let subnet_id = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet-a/subnets/snet-pe";
    // What Bicep emits for `mod.outputs.x` (languageVersion 1.0).
    assert_eq!(
        ok(&d, "[reference(resourceId('Microsoft.Resources/deployments', 'vnet-mod'), '2022-09-01').outputs.subnetResourceId.value]"),
        json!(subnet_id)
    );
    // By name, with or without the API version; names are case-insensitive.
    assert_eq!(
        ok(&d, "[reference('vnet-mod').outputs.subnetPrefix.value]"),
        json!("10.1.1.0/24")
    );
    assert_eq!(
        ok(
            &d,
            "[reference('VNET-MOD', '2022-09-01').outputs.name.value]"
        ),
        json!("vnet-a")
    );
    // 'Full' puts the deployment's state under `properties`; tryGet navigates the object
    // (AVM's firewall module reads its public IP module this way).
    assert_eq!(
        ok(
            &d,
            "[reference('vnet-mod', '2022-09-01', 'Full').properties.outputs.name.value]"
        ),
        json!("vnet-a")
    );
    assert_eq!(
        ok(
            &d,
            "[tryGet(reference('vnet-mod'), 'outputs', 'name', 'value')]"
        ),
        json!("vnet-a")
    );
    assert_eq!(
        ok(&d, "[reference('vnet-mod').outputs.name.type]"),
        json!("string")
    );
    // A deployment's other runtime properties need the deployment.
    assert!(unknown(&d, "[reference('vnet-mod').provisioningState]").contains("`reference()`"));
    assert!(
        unknown(&d, "[reference('vnet-mod', '2022-09-01', 'Full').location]")
            .contains("`reference()`")
    );
}

#[test]
fn module_loops_by_name() {
    let mut m = vnet_module("unused", "", "");
    m["copy"] = json!({ "name": "spokes", "count": 3 });
    m["name"] = json!("[format('spoke-{0}', copyIndex())]");
    m["properties"]["parameters"] = json!({
        "vnetName": { "value": "[format('vnet-{0}', copyIndex())]" },
        "prefix": { "value": "[format('10.{0}.0.0/16', add(copyIndex(), 10))]" }
    });
    let d = doc(json!([m]));
    // Each instance has its own outputs (its own parameters).
    assert_eq!(
        ok(
            &d,
            "[reference(format('spoke-{0}', 2)).outputs.subnetPrefix.value]"
        ),
        json!("10.12.1.0/24")
    );
    assert_eq!(
        ok(&d, "[reference(resourceId('Microsoft.Resources/deployments', 'spoke-0')).outputs.name.value]"),
        json!("vnet-0")
    );
}

// --- languageVersion 2.0: symbolic names ---

#[test]
fn symbolic_names_and_instances_of_a_loop() {
    let mut spokes = vnet_module("unused", "", "");
    spokes["copy"] = json!({ "name": "spokes", "count": 2 });
    spokes["name"] = json!("[format('spoke-{0}', copyIndex())]");
    spokes["properties"]["parameters"] = json!({
        "vnetName": { "value": "[format('vnet-{0}', copyIndex())]" },
        "prefix": { "value": "[format('10.{0}.0.0/16', add(copyIndex(), 10))]" }
    });
    let d = doc(json!({
        "hub": vnet_module("hub-deployment", "vnet-hub", "10.0.0.0/16"),
        "spokes": spokes,
        "pip": { "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "name": "pip" }
    }));
    assert_eq!(
        ok(&d, "[reference('hub').outputs.name.value]"),
        json!("vnet-hub")
    );
    // `symbol[i]` as Bicep emits for `spokes[i].outputs.x`.
    assert_eq!(
        ok(
            &d,
            "[reference(format('spokes[{0}]', 1)).outputs.subnetPrefix.value]"
        ),
        json!("10.11.1.0/24")
    );
    // A 2.0 template's deployments can still be named by their names.
    assert_eq!(
        ok(&d, "[reference('spoke-0').outputs.name.value]"),
        json!("vnet-0")
    );
    assert_eq!(
        ok(&d, "[reference('hub-deployment').outputs.name.value]"),
        json!("vnet-hub")
    );
    // Not a deployment: its runtime state needs the deployment.
    assert!(unknown(&d, "[reference('pip').ipAddress]").contains("deployment time"));
    assert!(unknown(&d, "[reference('pip').outputs]").contains("deployment time"));
    // An instance outside the loop, or the whole loop, is an error naming it.
    assert!(failed(&d, "[reference('spokes[2]').outputs]").contains("outside the loop's 2"));
    assert!(failed(&d, "[reference('spokes').outputs]").contains("name one instance"));
    assert!(failed(&d, "[reference('hub[0]').outputs]").contains("no copy loop"));
}

// --- deployments at another resource group or subscription ---

#[test]
fn deployment_ids_at_other_scopes() {
    let mut net = vnet_module("net", "vnet-net", "10.2.0.0/16");
    net["resourceGroup"] = json!("rg-net");
    let mut far = vnet_module("far", "vnet-far", "10.3.0.0/16");
    far["subscriptionId"] = json!("sub2");
    far["resourceGroup"] = json!("rg-far");
    let d = doc(json!([net, far]));
    // The module's outputs are evaluated in its own scope.
    let net_subnet = "/subscriptions/sub1/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-net/subnets/snet-pe";
    // Bicep: a module at `resourceGroup('rg-net')`.
    assert_eq!(
        ok(&d, "[reference(extensionResourceId(format('/subscriptions/{0}/resourceGroups/{1}', subscription().subscriptionId, 'rg-net'), 'Microsoft.Resources/deployments', 'net'), '2022-09-01').outputs.subnetResourceId.value]"),
        json!(net_subnet)
    );
    assert_eq!(
        ok(&d, "[reference(resourceId('rg-net', 'Microsoft.Resources/deployments', 'net')).outputs.subnetResourceId.value]"),
        json!(net_subnet)
    );
    assert_eq!(
        ok(&d, "[reference(resourceId('sub2', 'rg-far', 'Microsoft.Resources/deployments', 'far')).outputs.subnetResourceId.value]"),
        json!("/subscriptions/sub2/resourceGroups/rg-far/providers/Microsoft.Network/virtualNetworks/vnet-far/subnets/snet-pe")
    );
    // A subscription-level id names no resource group.
    assert_eq!(
        ok(&d, "[reference(subscriptionResourceId('Microsoft.Resources/deployments', 'net')).outputs.name.value]"),
        json!("vnet-net")
    );
    // The same name at another resource group is not among the inputs.
    let why = unknown(
        &d,
        "[reference(resourceId('Microsoft.Resources/deployments', 'net')).outputs.name.value]",
    );
    assert!(
        why.contains("deployment `net` is not among the inputs"),
        "{why}"
    );
}

// --- scope, output copy and condition ---

#[test]
fn outer_scope_outputs_use_the_parents_values() {
    let mut d = doc(json!([{
        "type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "outer",
        "properties": { "mode": "Incremental", "template": {
            "$schema": SCHEMA, "contentVersion": "1.0.0.0",
            "variables": { "v": "the nested template's" },
            "resources": [],
            "outputs": { "v": { "type": "string", "value": "[variables('v')]" } }
        } }
    }]));
    d["variables"] = json!({ "v": "the parent's" });
    assert_eq!(
        ok(&d, "[reference('outer').outputs.v.value]"),
        json!("the parent's")
    );
    // The same template with inner scope sees its own.
    d["resources"][0]["properties"]["expressionEvaluationOptions"] = json!({ "scope": "inner" });
    assert_eq!(
        ok(&d, "[reference('outer').outputs.v.value]"),
        json!("the nested template's")
    );
}

#[test]
fn output_copy_and_condition() {
    let t = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": { "n": { "type": "int" } },
        "resources": [],
        "outputs": {
            // Learn, "Output iteration in ARM templates": copy with count and input.
            "ids": { "type": "array", "copy": { "count": "[parameters('n')]", "input": "[format('x{0}', copyIndex())]" } },
            "objs": { "type": "array", "copy": { "count": 2, "input": { "i": "[copyIndex()]" } } },
            "kept": { "condition": "[greater(parameters('n'), 0)]", "type": "int", "value": "[parameters('n')]" },
            "gone": { "condition": "[equals(parameters('n'), 0)]", "type": "int", "value": 0 }
        }
    });
    let d = doc(json!([module("m", json!({ "n": 3 }), t)]));
    assert_eq!(
        ok(&d, "[reference('m').outputs.ids.value]"),
        json!(["x0", "x1", "x2"])
    );
    assert_eq!(
        ok(&d, "[reference('m').outputs.objs.value]"),
        json!([{ "i": 0 }, { "i": 1 }])
    );
    assert_eq!(ok(&d, "[reference('m').outputs.kept.value]"), json!(3));
    // A false condition leaves the output out.
    assert_eq!(
        ok(&d, "[contains(reference('m').outputs, 'gone')]"),
        json!(false)
    );
}

// --- what stays unknown ---

#[test]
fn deployment_time_outputs_and_missing_deployments_stay_unknown() {
    let t = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "resources": [],
        "outputs": {
            "ip": { "type": "string", "value": "[reference(resourceId('Microsoft.Network/publicIPAddresses', 'pip'), '2024-05-01').ipAddress]" },
            "key": { "type": "string", "value": "[listKeys(resourceId('Microsoft.Storage/storageAccounts', 'st'), '2023-05-01').keys[0].value]" },
            "secret": { "type": "securestring", "value": "s3cret" },
            "known": { "type": "string", "value": "10.9.0.0/16" }
        }
    });
    let d = doc(json!([
        module("m", json!({}), t),
        {
            "type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "linked",
            "properties": { "mode": "Incremental", "templateLink": { "uri": "https://example.invalid/t.json" } }
        }
    ]));
    // An unknown output stays unknown (known ones beside it do not).
    assert_eq!(
        ok(&d, "[reference('m').outputs.known.value]"),
        json!("10.9.0.0/16")
    );
    assert!(unknown(&d, "[reference('m').outputs.ip.value]").contains("`reference()`"));
    assert!(unknown(&d, "[reference('m').outputs.key.value]").contains("`listKeys()`"));
    let why = unknown(&d, "[reference('m').outputs.secret.value]");
    assert!(why.contains("securestring"), "{why}");
    let why = unknown(&d, "[reference('linked').outputs.x.value]");
    assert!(why.contains("linked template (templateLink)"), "{why}");
    let why = unknown(
        &d,
        "[reference(resourceId('Microsoft.Resources/deployments', 'elsewhere'), '2022-09-01').outputs.x.value]",
    );
    assert!(why.contains("`elsewhere` is not among the inputs"), "{why}");
    let why = unknown(&d, "[reference('elsewhere').outputs.x.value]");
    assert!(
        why.contains("`elsewhere` is no nested deployment among the inputs"),
        "{why}"
    );
    // A deployment that is not deployed cannot be read.
    let mut off = vnet_module("off", "v", "10.0.0.0/16");
    off["condition"] = json!(false);
    let d = doc(json!([off]));
    assert!(failed(&d, "[reference('off').outputs.name.value]").contains("condition is false"));
}

#[test]
fn an_unknown_module_output_has_the_usual_subject_and_set_supplies_it() {
    let t = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [],
        "outputs": { "ip": { "type": "string", "value": "[reference(resourceId('Microsoft.Network/publicIPAddresses', 'pip'), '2024-05-01').ipAddress]" } }
    });
    let text = |sets: &[&str]| {
        let d = doc(json!([
            module("m", json!({}), t.clone()),
            {
                "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2024-05-01", "name": "nsg", "location": "westeurope",
                "properties": { "securityRules": [{ "name": "to-pip", "properties": {
                    "priority": 100, "direction": "Outbound", "access": "Allow", "protocol": "Tcp",
                    "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationPortRange": "443",
                    "destinationAddressPrefix": "[reference('m').outputs.ip.value]" } }] }
            }
        ]));
        let options = ImportOptions {
            sets: sets.iter().map(|s| s.to_string()).collect(),
            ..ImportOptions::default()
        };
        import(&[Input::new("t.json", d.to_string())], &options)
    };
    let r = text(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.unknowns.len(), 1, "{:?}", r.unknowns);
    let u = &r.unknowns[0];
    assert_eq!(u.subject, "nsgs/nsg/security_rules/to-pip/destination");
    assert!(u.reason.contains("`reference()`"), "{}", u.reason);
    let r = text(&["nsgs/nsg/security_rules/to-pip/destination=20.1.2.3"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.unknowns.is_empty());
    assert_eq!(
        r.fixture.nsgs[0].security_rules[0].destination,
        AddressField::Prefix("20.1.2.3".into())
    );
}

// --- cycles and limits ---

#[test]
fn a_deployment_whose_outputs_depend_on_themselves_is_an_error() {
    let t = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": { "x": { "type": "string" } }, "resources": [],
        "outputs": { "o": { "type": "string", "value": "[parameters('x')]" } }
    });
    let a_reads_itself = doc(json!([module(
        "a",
        json!({ "x": "[reference('a').outputs.o.value]" }),
        t.clone()
    )]));
    let msg = failed(&a_reads_itself, "[reference('a').outputs.o.value]");
    assert!(msg.contains("depend on themselves"), "{msg}");
    let a_and_b = doc(json!([
        module(
            "a",
            json!({ "x": "[reference('b').outputs.o.value]" }),
            t.clone()
        ),
        module(
            "b",
            json!({ "x": "[reference('a').outputs.o.value]" }),
            t.clone()
        )
    ]));
    let msg = failed(&a_and_b, "[reference('b').outputs.o.value]");
    assert!(msg.contains("depend on themselves"), "{msg}");
    // Imported, the expansion of `a` reads its own parameters: the error names the deployment.
    let e = one(a_and_b.to_string()).expect_err("a cycle");
    assert_eq!(e.code(), "ARM_INVALID");
    assert!(e.to_string().contains("/resources/"), "{e}");
    // An output that reads itself through its own template's outer scope too.
    let outer = doc(json!([{
        "type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "o",
        "properties": { "mode": "Incremental", "template": {
            "$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [],
            "outputs": { "o": { "type": "string", "value": "[reference('o').outputs.o.value]" } }
        } }
    }]));
    assert!(failed(&outer, "[reference('o').outputs.o.value]").contains("depend on themselves"));
}

/// Imports on a thread with a 2 MiB stack (what a reload gets on Tokio's blocking pool).
fn import_small_stack(text: String) -> Result<usize, Box<ImportError>> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || one(text).map(|r| r.fixture.vnets.len()).map_err(Box::new))
        .expect("a thread")
        .join()
        .expect("no stack overflow or panic")
}

#[test]
fn long_module_chains_are_refused_not_a_stack_overflow() {
    let t = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": { "x": { "type": "string" } }, "resources": [],
        "outputs": { "o": { "type": "string", "value": "[parameters('x')]" } }
    });
    // d_i passes d_(i-1)'s output on; listed last first, so the first expansion reads the
    // whole chain.
    let chain = |n: usize| {
        let mut rs = vec![json!({
            "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2024-05-01", "name": "v", "location": "westeurope",
            "properties": { "addressSpace": { "addressPrefixes": [format!("[reference('d{}').outputs.o.value]", n - 1)] } }
        })];
        for i in (0..n).rev() {
            let x = if i == 0 {
                json!("10.7.0.0/16")
            } else {
                json!(format!("[reference('d{}').outputs.o.value]", i - 1))
            };
            rs.push(module(&format!("d{i}"), json!({ "x": x }), t.clone()));
        }
        doc(Value::Array(rs)).to_string()
    };
    match import_small_stack(chain(300)).map_err(|e| *e) {
        Err(ImportError::LimitExceeded { limit, .. }) => assert_eq!(limit, Limit::EvaluationDepth),
        other => panic!("expected the evaluation depth limit, got {other:?}"),
    }
    // A chain as long as real templates have imports, each module evaluated once.
    assert_eq!(
        import_small_stack(chain(8)).map_err(|e| e.to_string()),
        Ok(1)
    );
    let r = one(chain(8)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.fixture.vnets[0].address_space, vec!["10.7.0.0/16"]);
}

#[test]
fn output_limits_are_arms() {
    let mut outs = serde_json::Map::new();
    for i in 0..65 {
        outs.insert(format!("o{i}"), json!({ "type": "int", "value": i }));
    }
    let t =
        json!({ "$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [], "outputs": outs });
    let d = doc(json!([module("m", json!({}), t)]));
    assert!(failed(&d, "[reference('m').outputs.o1.value]").contains("65 outputs"));
    let t = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [],
        "outputs": { "many": { "type": "array", "copy": { "count": 801, "input": "[copyIndex()]" } } }
    });
    let d = doc(json!([module("m", json!({}), t)]));
    let msg = failed(&d, "[reference('m').outputs.many.value]");
    assert!(msg.contains("801"), "{msg}");
}

// --- the scenario: a VNet module's subnet feeds a private endpoint module ---

/// A parent template: an NSG module, a VNet module placing that NSG on its subnet (the NSG
/// module's output), and a private endpoint module on the VNet module's subnet output, for a
/// Key Vault in the same template. `symbolic` writes it as languageVersion 2.0 (symbolic
/// names), else 1.0 (`resourceId('Microsoft.Resources/deployments', …)`).
fn scenario(symbolic: bool) -> Value {
    let nsg_template = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": { "name": { "type": "string" } },
        "resources": [{
            "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2024-05-01",
            "name": "[parameters('name')]", "location": "westeurope",
            "properties": { "securityRules": [] }
        }],
        "outputs": { "resourceId": { "type": "string",
            "value": "[resourceId('Microsoft.Network/networkSecurityGroups', parameters('name'))]" } }
    });
    let pe_template = json!({
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": { "subnetResourceId": { "type": "string" }, "vaultId": { "type": "string" } },
        "resources": [{
            "type": "Microsoft.Network/privateEndpoints", "apiVersion": "2024-05-01",
            "name": "pe-kv", "location": "westeurope",
            "properties": {
                "subnet": { "id": "[parameters('subnetResourceId')]" },
                "privateLinkServiceConnections": [{ "name": "vault", "properties": {
                    "privateLinkServiceId": "[parameters('vaultId')]", "groupIds": ["vault"] } }]
            }
        }],
        "outputs": {}
    });
    let out = |module: &str, output: &str| {
        if symbolic {
            format!("[reference('{module}').outputs.{output}.value]")
        } else {
            format!("[reference(resourceId('Microsoft.Resources/deployments', '{module}'), '2022-09-01').outputs.{output}.value]")
        }
    };
    let nsg = module("nsg", json!({ "name": "nsg-pe" }), nsg_template);
    let mut vnet = vnet_module("vnet", "vnet-app", "10.4.0.0/16");
    vnet["properties"]["parameters"]["nsgId"] = json!({ "value": out("nsg", "resourceId") });
    let pe = module(
        "pe",
        json!({
            "subnetResourceId": out("vnet", "subnetResourceId"),
            "vaultId": "[resourceId('Microsoft.KeyVault/vaults', 'kv1')]"
        }),
        pe_template,
    );
    let vault = json!({
        "type": "Microsoft.KeyVault/vaults", "apiVersion": "2023-07-01", "name": "kv1", "location": "westeurope",
        "properties": { "tenantId": "[subscription().tenantId]", "sku": { "family": "A", "name": "standard" },
            "publicNetworkAccess": "Disabled" }
    });
    // The private endpoint module is listed first: its parameter reads the VNet module's
    // output before the VNet module is expanded.
    if symbolic {
        doc(json!({ "peMod": pe, "vnet": vnet, "nsg": nsg, "kv": vault }))
    } else {
        doc(json!([pe, vnet, nsg, vault]))
    }
}

#[test]
fn a_vnet_modules_subnet_output_places_a_private_endpoint_end_to_end() {
    for symbolic in [false, true] {
        let d = scenario(symbolic);
        let r = one(d.to_string()).unwrap_or_else(|e| panic!("symbolic={symbolic}: {e}"));
        assert!(
            r.unknowns.is_empty(),
            "symbolic={symbolic}: {:?}",
            r.unknowns
        );
        let f = &r.fixture;
        // The subnet exists, with the NSG the NSG module's output placed on it.
        assert_eq!(f.vnets.len(), 1);
        let subnet = &f.vnets[0].subnets[0];
        assert_eq!(
            (f.vnets[0].name.as_str(), subnet.name.as_str()),
            ("vnet-app", "snet-pe")
        );
        assert_eq!(subnet.address_prefixes, vec!["10.4.1.0/24"]);
        assert_eq!(subnet.nsg.as_deref(), Some("nsg-pe"));
        assert_eq!(f.nsgs[0].name, "nsg-pe");
        // The private endpoint is a host in that subnet (first free address), serving the
        // vault's public name.
        let pe = f
            .hosts
            .iter()
            .find(|h| h.kind == HostKind::PrivateEndpoint)
            .unwrap_or_else(|| panic!("symbolic={symbolic}: no endpoint in {:?}", f.hosts));
        assert_eq!(pe.subnet.as_deref(), Some("vnet-app/snet-pe"));
        assert_eq!(pe.address, "10.4.1.4");
        assert_eq!(pe.private_link_fqdn.as_deref(), Some("kv1.vault.azure.net"));
        // The topology builds from it.
        let built = crate::Topology::build(f, crate::ServiceTagTable::builtin());
        assert!(built.structural_errors().is_empty(), "symbolic={symbolic}");
    }
}
