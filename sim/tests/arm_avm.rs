//! Issue 17's first acceptance: the Azure Verified Modules NSG module with our parameters file
//! (`fixtures/arm/avm/nsg-backend.parameters.json`: a rule with `sourceAddressPrefixes`, one
//! with application security groups by resource ID, one with a service tag) imports with zero
//! unknowns, and together with the AVM virtual-network module (its subnets come from nested
//! deployments) placing that NSG on a subnet, the verdicts are the ones the rules imply. The
//! modules are read from `../shared/corpus`; the test skips, saying so, when it is absent.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sim::arm::{import, ImportOptions, Input};
use sim::fixture::AddressField;
use sim::{Flow, ServiceTagTable, Topology, VerdictCode};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn avm(module: &str) -> Option<Input> {
    let p = repo()
        .join("../shared/corpus/Azure_bicep-registry-modules/avm/res/network")
        .join(module)
        .join("main.json");
    let text = std::fs::read_to_string(&p).ok()?;
    Some(Input::new(format!("{module}/main.json"), text))
}

fn ours(name: &str) -> Input {
    let p = repo().join("fixtures/arm/avm").join(name);
    Input::new(
        name,
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

#[test]
fn avm_nsg_module_imports_with_zero_unknowns() {
    let Some(nsg) = avm("network-security-group") else {
        println!("skipped: ../shared/corpus (AVM network-security-group) not found");
        return;
    };
    let r = import(
        &[nsg, ours("nsg-backend.parameters.json")],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
    // The lock (condition false), diagnostic settings and role assignments (copy count 0)
    // deploy nothing, so nothing is listed as ignored.
    assert!(r.ignored.is_empty(), "{:?}", r.ignored);
    let rules = &r.fixture.nsgs[0].security_rules;
    assert_eq!(r.fixture.nsgs[0].name, "nsg-backend");
    assert_eq!(
        rules[0].source,
        AddressField::Prefixes(vec!["10.20.1.0/24".into(), "10.20.3.0/26".into()])
    );
    assert_eq!(rules[1].source, AddressField::Asgs(vec!["asg-web".into()]));
    assert_eq!(
        rules[1].destination,
        AddressField::Asgs(vec!["asg-api".into()])
    );
    assert_eq!(
        rules[2].destination,
        AddressField::Prefix("AzureKeyVault.WestEurope".into())
    );
}

#[test]
fn avm_vnet_and_nsg_modules_give_the_verdicts_the_rules_imply() {
    let (Some(vnet), Some(nsg)) = (avm("virtual-network"), avm("network-security-group")) else {
        println!(
            "skipped: ../shared/corpus (AVM virtual-network, network-security-group) not found"
        );
        return;
    };
    // Each parameters file follows the template it belongs to.
    let r = import(
        &[
            vnet,
            ours("vnet-spoke.parameters.json"),
            nsg,
            ours("nsg-backend.parameters.json"),
            ours("nics.json"),
        ],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
    let v = &r.fixture.vnets[0];
    let subnets: Vec<(&str, Option<&str>)> = v
        .subnets
        .iter()
        .map(|s| (s.name.as_str(), s.nsg.as_deref()))
        .collect();
    // The subnets come from the module's nested deployments (one per subnet, `copy`).
    assert_eq!(
        subnets,
        [
            ("snet-apim", None),
            ("snet-backend", Some("nsg-backend")),
            ("snet-web", None)
        ]
    );
    let built = Topology::build(&r.fixture, ServiceTagTable::builtin());
    assert!(
        built.structural_errors().is_empty(),
        "{:?}",
        built.structural_errors()
    );
    let t = built.topology;
    let rows: &[(&str, &str, u16, VerdictCode, Option<&str>)] = &[
        // sourceAddressPrefixes: both ranges reach the API subnet on 8080.
        (
            "10.20.1.10",
            "10.20.2.4",
            8080,
            VerdictCode::Allowed,
            Some("allow-apim-8080"),
        ),
        (
            "10.20.3.4",
            "10.20.2.4",
            8080,
            VerdictCode::Allowed,
            Some("allow-apim-8080"),
        ),
        (
            "10.20.1.10",
            "10.20.2.4",
            22,
            VerdictCode::NsgDenied,
            Some("deny-vnet-in"),
        ),
        // ASGs: the web NIC reaches the API NIC on 443 and 8443; the APIM subnet does not.
        (
            "10.20.3.4",
            "10.20.2.4",
            443,
            VerdictCode::Allowed,
            Some("allow-web-asg-to-api-asg"),
        ),
        (
            "10.20.3.4",
            "10.20.2.4",
            8443,
            VerdictCode::Allowed,
            Some("allow-web-asg-to-api-asg"),
        ),
        (
            "10.20.1.10",
            "10.20.2.4",
            443,
            VerdictCode::NsgDenied,
            Some("deny-vnet-in"),
        ),
        // Service tag: Key Vault in West Europe on 443 is allowed out; the rest of the
        // internet is denied.
        (
            "10.20.2.4",
            "13.69.64.73",
            443,
            VerdictCode::Allowed,
            Some("allow-keyvault-out"),
        ),
        (
            "10.20.2.4",
            "13.69.64.73",
            80,
            VerdictCode::NsgDenied,
            Some("deny-internet-out"),
        ),
        (
            "10.20.2.4",
            "8.8.8.8",
            443,
            VerdictCode::NsgDenied,
            Some("deny-internet-out"),
        ),
    ];
    let mut failures = Vec::new();
    for (src, dst, port, code, rule) in rows {
        let d = t.decide(&Flow::tcp(ip(src), 60000, ip(dst), *port));
        let by = d.decided_by.map(|r| t.rule_info(r).rule);
        let rule_ok = rule.is_none_or(|want| {
            by.as_deref()
                .is_some_and(|b| b.trim_start_matches("securityRules/") == want)
        });
        if d.code != *code || !rule_ok {
            failures.push(format!(
                "{src} -> {dst}:{port}: got {} by {by:?}, want {code} by {rule:?}",
                d.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 17, resource-derived types: the AVM firewall module types `networkRuleCollections`
/// and `applicationRuleCollections` as `resourceInput<'Microsoft.Network/azureFirewalls@…'>`
/// properties (compiled to `type: array` with `metadata.__bicep_resource_derived_type!`);
/// given as REST objects (`fixtures/arm/avm/firewall-hub.parameters.json`) they reach the
/// firewall's rules. The module's public IP comes from its own nested module's output
/// (`reference('publicIPAddress').outputs.resourceId.value`); its address is allocated at
/// deployment, so `--set` gives it.
#[test]
fn avm_firewall_module_takes_rest_shaped_rule_collections() {
    let Some(fw) = avm("azure-firewall") else {
        println!("skipped: ../shared/corpus (AVM azure-firewall) not found");
        return;
    };
    let inputs = [
        ours("hub-vnet.json"),
        fw,
        ours("firewall-hub.parameters.json"),
    ];
    let unset = import(&inputs, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let subjects: Vec<&str> = unset.unknowns.iter().map(|u| u.subject.as_str()).collect();
    assert_eq!(subjects, ["firewalls/afw-hub/public_addresses"]);
    let options = ImportOptions {
        sets: vec!["firewalls/afw-hub/public_addresses=20.50.1.2".into()],
        ..ImportOptions::default()
    };
    let r = import(&inputs, &options).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
    let f = &r.fixture.firewalls[0];
    assert_eq!(
        (
            f.name.as_str(),
            f.subnet.as_str(),
            f.public_addresses.as_slice()
        ),
        (
            "afw-hub",
            "vnet-hub/AzureFirewallSubnet",
            &["20.50.1.2".to_string()][..]
        )
    );
    let collections: Vec<(&str, usize)> = f.rule_collection_groups[0]
        .rule_collections
        .iter()
        .map(|c| (c.name.as_str(), c.rules.len()))
        .collect();
    assert_eq!(collections, [("allow-dns", 2), ("allow-vault", 1)]);
    let vault = &f.rule_collection_groups[0].rule_collections[1].rules[0];
    assert_eq!(vault.target_fqdns, ["kv1.vault.azure.net"]);
    let built = Topology::build(&r.fixture, ServiceTagTable::builtin());
    assert!(
        built.structural_errors().is_empty(),
        "{:?}",
        built.structural_errors()
    );
}

fn avm_template(module: &str) -> Option<serde_json::Value> {
    let m = avm(module)?;
    Some(serde_json::from_str(m.text.trim_start_matches('\u{feff}')).expect("corpus JSON"))
}

/// Issue 17, module outputs: a parent template deploys the corpus AVM virtual-network module
/// and passes its `subnetResourceIds` output (an output `copy` over the module's own subnet
/// deployments, read with `reference('virtualNetwork_subnets[i]')`) to the AVM private-endpoint
/// module, as Bicep compiles `vnet.outputs.subnetResourceIds[0]` — in languageVersion 1.0
/// (`reference(resourceId('Microsoft.Resources/deployments', …))`) and 2.0 (symbolic name).
/// The endpoint lands in that subnet with no unknowns.
#[test]
fn avm_vnet_module_output_places_the_avm_private_endpoint() {
    let (Some(vnet), Some(pe)) = (
        avm_template("virtual-network"),
        avm_template("private-endpoint"),
    ) else {
        println!("skipped: ../shared/corpus (AVM virtual-network, private-endpoint) not found");
        return;
    };
    let module = |name: &str, params: serde_json::Value, template: &serde_json::Value| {
        let params: serde_json::Map<String, serde_json::Value> = params
            .as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!({ "value": v })))
            .collect();
        serde_json::json!({
            "type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": name,
            "properties": { "expressionEvaluationOptions": { "scope": "inner" }, "mode": "Incremental",
                "parameters": params, "template": template }
        })
    };
    for symbolic in [false, true] {
        let subnet_id = if symbolic {
            "[reference('vnetModule').outputs.subnetResourceIds.value[1]]".to_string()
        } else {
            "[reference(resourceId('Microsoft.Resources/deployments', 'vnet-app-deployment'), '2022-09-01').outputs.subnetResourceIds.value[1]]".to_string()
        };
        let vnet_module = module(
            "vnet-app-deployment",
            serde_json::json!({
                "name": "vnet-app", "location": "westeurope", "enableTelemetry": false,
                "addressPrefixes": ["10.40.0.0/16"],
                "subnets": [
                    { "name": "snet-apim", "addressPrefix": "10.40.0.0/24" },
                    { "name": "snet-pe", "addressPrefix": "10.40.1.0/24" }
                ]
            }),
            &vnet,
        );
        let pe_module = module(
            "pe-deployment",
            serde_json::json!({
                "name": "pe-kv", "location": "westeurope", "enableTelemetry": false,
                "subnetResourceId": subnet_id,
                "privateLinkServiceConnections": [{ "name": "vault", "properties": {
                    "privateLinkServiceId": "[resourceId('Microsoft.KeyVault/vaults', 'kv1')]", "groupIds": ["vault"] } }]
            }),
            &pe,
        );
        let vault = serde_json::json!({
            "type": "Microsoft.KeyVault/vaults", "apiVersion": "2023-07-01", "name": "kv1", "location": "westeurope",
            "properties": { "tenantId": "[subscription().tenantId]", "sku": { "family": "A", "name": "standard" },
                "publicNetworkAccess": "Disabled" }
        });
        let mut parent = serde_json::json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "resources": [pe_module, vnet_module, vault]
        });
        if symbolic {
            parent["languageVersion"] = "2.0".into();
            let rs = parent["resources"].as_array().expect("an array").clone();
            parent["resources"] =
                serde_json::json!({ "peModule": rs[0], "vnetModule": rs[1], "kv": rs[2] });
        }
        let r = import(
            &[Input::new("parent.json", parent.to_string())],
            &ImportOptions::default(),
        )
        .unwrap_or_else(|e| panic!("symbolic={symbolic}: {e}"));
        assert!(
            r.unknowns.is_empty(),
            "symbolic={symbolic}: {:?}",
            r.unknowns
        );
        let v = &r.fixture.vnets[0];
        let subnets: Vec<&str> = v.subnets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            (v.name.as_str(), subnets),
            ("vnet-app", vec!["snet-apim", "snet-pe"])
        );
        let host = r
            .fixture
            .hosts
            .iter()
            .find(|h| h.name == "pe-kv")
            .unwrap_or_else(|| panic!("symbolic={symbolic}: no endpoint in {:?}", r.fixture.hosts));
        assert_eq!(host.subnet.as_deref(), Some("vnet-app/snet-pe"));
        assert_eq!(host.address, "10.40.1.4");
        assert_eq!(
            host.private_link_fqdn.as_deref(),
            Some("kv1.vault.azure.net")
        );
        let built = Topology::build(&r.fixture, ServiceTagTable::builtin());
        assert!(
            built.structural_errors().is_empty(),
            "{:?}",
            built.structural_errors()
        );
    }
}
