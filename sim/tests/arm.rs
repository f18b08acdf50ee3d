//! Azure's formats as topology input (issue 6), through `sim::arm`'s public API:
//! - every ARM JSON file of the shared corpus (`../shared/corpus`) loads, or fails for a precise,
//!   documented reason, and concrete facts from each are checked; Bicep files are listed as
//!   skipped (no Bicep compiler here);
//! - our own templates in `fixtures/arm/` (Standard v2 integration with loops, conditions, child
//!   resources and a parameters file; exported resources in both shapes) with verdict tables;
//! - ARM → Fixture → TOML → Fixture gives the same fixture and the same verdicts (also as a
//!   property over generated templates);
//! - bad templates fail with the JSON pointer (and line) of the offending value.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::json;
use sim::arm::{import, marker, ImportError, ImportOptions, ImportResult, Input};
use sim::fixture::{AddressField, Fixture, Format, NetworkMode, PortField, Sku};
use sim::{Flow, Protocol, ServiceTagTable, Topology, VerdictCode};

// === support ===

fn fixtures_arm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/arm")
}

fn input(path: &Path) -> Input {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .expect("a file")
        .to_string_lossy()
        .into_owned();
    Input::new(name, text)
}

fn arm_input(name: &str) -> Input {
    input(&fixtures_arm().join(name))
}

fn opts(params: &[&str]) -> ImportOptions {
    ImportOptions {
        parameters: params.iter().map(|p| p.to_string()).collect(),
        ..ImportOptions::default()
    }
}

fn build(f: &Fixture) -> Topology {
    build_with(f, ServiceTagTable::builtin())
}

fn build_with(f: &Fixture, tags: ServiceTagTable) -> Topology {
    let built = Topology::build(f, tags);
    let structural: Vec<String> = built
        .structural_errors()
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert!(structural.is_empty(), "{}", structural.join("\n"));
    built.topology
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// One row of a verdict table: source, destination, TCP port, expected code, and for a
/// decided flow the expected `nsg / securityRules/<name>` of the deciding rule.
type Row<'a> = (&'a str, &'a str, u16, VerdictCode, Option<&'a str>);

fn check_table(t: &Topology, rows: &[Row<'_>]) {
    let mut failures = Vec::new();
    for (src, dst, port, code, rule) in rows {
        let d = t.decide(&Flow::tcp(ip(src), 60000, ip(dst), *port));
        let by = d.decided_by.map(|r| {
            let info = t.rule_info(r);
            format!("{} / {}", info.nsg, info.rule)
        });
        let rule_ok = rule.is_none_or(|want| by.as_deref() == Some(want));
        if d.code != *code || !rule_ok {
            failures.push(format!(
                "{src} -> {dst}:{port}: got {} by {by:?}, want {code} by {rule:?}",
                d.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn codes(r: &ImportResult) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

/// Every host address and the instance's source, crossed with a few ports and an internet
/// address: verdicts of two topologies must agree on all of them.
fn same_verdicts(a: &Topology, b: &Topology) {
    let mut addrs: Vec<IpAddr> = a.hosts().iter().map(|h| h.address).collect();
    addrs.extend(a.apim_source());
    addrs.push(ip("52.1.2.3"));
    for s in &addrs {
        for d in &addrs {
            for port in [22u16, 80, 443, 1500, 8080, 8443] {
                for proto in [Protocol::Tcp, Protocol::Udp] {
                    let f = Flow {
                        protocol: proto,
                        source: *s,
                        source_port: Some(60000),
                        destination: *d,
                        destination_port: Some(port),
                    };
                    let (x, y) = (a.decide(&f), b.decide(&f));
                    let name =
                        |t: &Topology, r: Option<sim::RuleRef>| r.map(|r| t.rule_info(r).rule);
                    assert_eq!(x.code, y.code, "{f:?}");
                    assert_eq!(name(a, x.decided_by), name(b, y.decided_by), "{f:?}");
                }
            }
        }
    }
}

fn round_trip(r: &ImportResult) {
    let text = r.fixture.to_toml().expect("TOML");
    let back = Fixture::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        back, r.fixture,
        "the TOML form loads back to the same fixture"
    );
    same_verdicts(&build(&r.fixture), &build(&back));
}

// === the shared corpus ===

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Checks one corpus file's facts.
type CorpusCheck = fn(&Path);

/// What each corpus JSON file must give. Keys are path suffixes.
const CORPUS_JSON: &[(&str, CorpusCheck)] = &[
    (
        "api-management-create-with-external-vnet-publicip/azuredeploy.json",
        corpus_apim_external_classic,
    ),
    (
        "microsoft.network/azure-bastion-nsg/azuredeploy.json",
        corpus_bastion_nsg,
    ),
    (
        "microsoft.network/security-group-create/azuredeploy.json",
        corpus_security_group_create,
    ),
    (
        "microsoft.network/vnet-two-subnets/azuredeploy.json",
        corpus_vnet_two_subnets,
    ),
    (
        "examples/NetworkSecurityGroupGet.json",
        corpus_nsg_get_example,
    ),
    (
        "avm/res/network/network-security-group/main.json",
        corpus_avm_nsg,
    ),
    (
        "Public/ServiceTags_Public_20251028.json",
        corpus_service_tags,
    ),
];

#[test]
fn corpus_every_arm_json_file_loads_or_fails_for_a_documented_reason() {
    let root = corpus_root();
    if !root.is_dir() {
        println!("skipped: ../shared/corpus not found ({})", root.display());
        return;
    }
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut unlisted = Vec::new();
    let mut seen = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        match f.extension().and_then(|e| e.to_str()) {
            Some("bicep") => {
                // Bicep is not ARM JSON; without a Bicep compiler it cannot be read. It is not
                // mistaken for an Azure input either.
                let text = std::fs::read_to_string(f).expect("readable");
                assert_eq!(sim::arm::detect(&text), None, "{rel}");
                println!("skipped: {rel}: Bicep source (no Bicep compiler here; `az bicep build` it and import the JSON)");
            }
            Some("json") => match CORPUS_JSON.iter().find(|(suffix, _)| rel.ends_with(suffix)) {
                Some((suffix, check)) => {
                    check(f);
                    seen.push(*suffix);
                    println!("checked: {rel}");
                }
                None => {
                    // Files added to the corpus after this table: each is still read and,
                    // when it is Azure JSON, imported (an error is fine, a panic is not);
                    // their expectations come with the templates issue's corpus table.
                    let text = std::fs::read_to_string(f).expect("readable");
                    let outcome = match sim::arm::detect(&text) {
                        None => "not Azure JSON".to_string(),
                        Some(_) => match import(&[input(f)], &ImportOptions::default()) {
                            Ok(r) => format!("imported, {} unknown(s)", r.unknowns.len()),
                            Err(e) => format!("refused: {}", e.code()),
                        },
                    };
                    println!("unlisted: {rel}: {outcome}");
                    unlisted.push(rel);
                }
            },
            _ => {}
        }
    }
    println!(
        "{} corpus JSON file(s) have no expectations yet (add them to CORPUS_JSON)",
        unlisted.len()
    );
    for (suffix, _) in CORPUS_JSON {
        assert!(seen.contains(suffix), "{suffix} is no longer in the corpus");
    }
}

/// Classic Premium with External VNet: CLASSIC_TIER_VNET, its NSG still evaluates.
fn corpus_apim_external_classic(path: &Path) {
    let r = import(&[input(path)], &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let f = &r.fixture;
    assert_eq!(f.vnets.len(), 1);
    assert_eq!(f.vnets[0].name, "apimvnet");
    assert_eq!(f.vnets[0].address_space, vec!["10.0.0.0/16"]);
    let s = &f.vnets[0].subnets[0];
    assert_eq!(
        (s.name.as_str(), s.address_prefixes.as_slice()),
        ("apim", &["10.0.0.0/24".to_string()][..])
    );
    assert!(s.delegations.is_empty());
    // The NSG's name is `apimnsg` + uniqueString(resourceGroup().id).
    let nsg = &f.nsgs[0];
    assert!(
        nsg.name.starts_with("apimnsg") && nsg.name.len() == "apimnsg".len() + 13,
        "{}",
        nsg.name
    );
    assert_eq!(s.nsg.as_deref(), Some(nsg.name.as_str()));
    assert_eq!(nsg.security_rules.len(), 18);
    let names: Vec<&str> = nsg.security_rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names[0], "Client_communication_to_API_Management");
    assert_eq!(names[17], "Deny_All_Internet_Outbound");
    let diag = &nsg.security_rules[11];
    assert_eq!(diag.name, "Publish_DiagnosticLogs_And_Metrics");
    assert_eq!(
        diag.destination_ports,
        PortField::Ranges(vec!["443".into(), "12000".into(), "1886".into()])
    );
    let a = f.apim.as_ref().expect("apim");
    assert_eq!(
        (a.sku, a.capacity, a.virtual_network),
        (Sku::Premium, 2, NetworkMode::Classic)
    );
    assert_eq!(
        a.classic_vnet_type,
        Some(sim::fixture::ClassicVnetType::External)
    );
    assert_eq!(a.subnet.as_deref(), Some("apimvnet/apim"));
    // Classic injection is kept (issue 16): the build, not the importer, warns, so validating
    // the imported TOML warns too.
    assert!(codes(&r).is_empty());
    let warned = Topology::build(f, ServiceTagTable::builtin());
    assert!(warned
        .findings
        .iter()
        .any(|x| x.code.as_str() == "CLASSIC_TIER_VNET"));
    assert_eq!(r.ignored.len(), 1);
    assert_eq!(
        r.ignored[0].resource_type,
        "Microsoft.Network/publicIPAddresses"
    );
    // NSG evaluation still works in the classic subnet.
    let t = build(f);
    check_table(
        &t,
        &[
            (
                "10.0.0.10",
                "8.8.8.8",
                80,
                VerdictCode::NsgDenied,
                Some(&format!(
                    "{} / securityRules/Deny_All_Internet_Outbound",
                    nsg.name
                )),
            ),
            ("10.0.0.10", "8.8.8.8", 587, VerdictCode::Allowed, None),
            ("10.0.0.10", "10.0.0.20", 6381, VerdictCode::Allowed, None),
        ],
    );
    // allowedValues: the template only allows Developer and Premium.
    let e = import(&[input(path)], &opts(&["sku=StandardV2"])).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_NOT_ALLOWED", "{e}");
    let r = import(&[input(path)], &opts(&["sku=developer", "skuCount=1"])).unwrap();
    assert_eq!(
        r.fixture.apim.as_ref().map(|a| (a.sku, a.capacity)),
        Some((Sku::Developer, 1))
    );
}

/// Needs `bastion-host-name`; then one /27 subnet with a 10-rule NSG.
fn corpus_bastion_nsg(path: &Path) {
    let e = import(&[input(path)], &ImportOptions::default()).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_MISSING");
    let at = e.location().expect("located");
    assert_eq!(
        (at.pointer.as_str(), at.line),
        ("/parameters/bastion-host-name", Some(37))
    );

    let r = import(&[input(path)], &opts(&["bastion-host-name=bastion1"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let f = &r.fixture;
    assert_eq!(f.vnets[0].name, "vnet01");
    assert_eq!(f.vnets[0].address_space, vec!["10.1.0.0/16"]);
    let s = &f.vnets[0].subnets[0];
    assert_eq!(s.name, "AzureBastionSubnet");
    assert_eq!(s.address_prefixes, vec!["10.1.1.0/27"]);
    assert_eq!(s.nsg.as_deref(), Some("bastion1-nsg"));
    // The child subnet resource is for an existing VNet (condition false): one subnet only.
    assert_eq!(f.vnets[0].subnets.len(), 1);
    let rules: Vec<(&str, i64)> = f.nsgs[0]
        .security_rules
        .iter()
        .map(|r| (r.name.as_str(), r.priority))
        .collect();
    assert_eq!(rules.len(), 10);
    assert_eq!(rules[3], ("AllowBastionHostCommunicationInBound", 130));
    assert_eq!(rules[9], ("DenyAllOutBound", 1000));
    let ignored: Vec<&str> = r.ignored.iter().map(|i| i.resource_type.as_str()).collect();
    assert_eq!(
        ignored,
        // Unmodelled types as the template lists them, then the public IP address no NAT
        // gateway or firewall uses (issue 18 maps public IPs used by those).
        [
            "Microsoft.Network/bastionHosts",
            "Microsoft.Network/publicIpAddresses"
        ]
    );
    // `GatewayManager` is in the built-in table (the whole ServiceTags_Public file), as in the
    // corpus' file: no unknown tag either way.
    let built = Topology::build(f, ServiceTagTable::builtin());
    assert!(!built
        .findings
        .iter()
        .any(|x| x.code.as_str() == "RULE_UNKNOWN_SERVICE_TAG"));
    let same = build_with(f, ServiceTagTable::builtin());
    let tags_file = corpus_root()
        .join("ryanborMSFT_AzureServiceTagsJson/Public/ServiceTags_Public_20251028.json");
    let tags =
        ServiceTagTable::from_json(&std::fs::read_to_string(tags_file).expect("the corpus has it"))
            .expect("parses");
    let t = build_with(f, tags);
    for t in [&t, &same] {
        check_table(
            t,
            &[
                ("10.1.1.5", "10.1.1.6", 8080, VerdictCode::Allowed, None),
                (
                    "10.1.1.5",
                    "10.1.1.6",
                    22,
                    VerdictCode::NsgDenied,
                    Some("bastion1-nsg / securityRules/DenyAllInBound"),
                ),
            ],
        );
    }
    // Deploying into an existing VNet: the VNet is not among the inputs.
    let e = import(
        &[input(path)],
        &opts(&["bastion-host-name=b", "vnet-new-or-existing=existing"]),
    )
    .unwrap_err();
    assert_eq!(e.code(), "ARM_MISSING_REFERENCE", "{e}");
    assert!(e.to_string().contains("VNet `vnet01`"), "{e}");
}

fn corpus_security_group_create(path: &Path) {
    let r = import(&[input(path)], &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let f = &r.fixture;
    assert_eq!(f.vnets[0].name, "virtualNetwork1");
    assert_eq!(f.vnets[0].subnets[0].address_prefixes, vec!["10.0.0.0/24"]);
    assert_eq!(
        f.vnets[0].subnets[0].nsg.as_deref(),
        Some("networkSecurityGroup1")
    );
    let rule = &f.nsgs[0].security_rules[0];
    assert_eq!(f.nsgs[0].security_rules.len(), 1);
    assert_eq!((rule.name.as_str(), rule.priority), ("first_rule", 123));
    assert_eq!(rule.source_ports, PortField::Range("23-45".into()));
    assert_eq!(rule.destination_ports, PortField::Range("46-56".into()));
    assert!(r.ignored.is_empty() && r.findings.is_empty());
    build(f);
}

fn corpus_vnet_two_subnets(path: &Path) {
    let r =
        import(&[input(path)], &opts(&["subnet2Name=Backend"])).unwrap_or_else(|e| panic!("{e}"));
    let v = &r.fixture.vnets[0];
    assert_eq!(v.name, "VNet1");
    let subnets: Vec<(&str, &str)> = v
        .subnets
        .iter()
        .map(|s| (s.name.as_str(), s.address_prefixes[0].as_str()))
        .collect();
    // Child resources named with format('{0}/{1}', ...) join their VNet.
    assert_eq!(
        subnets,
        [("Subnet1", "10.0.0.0/24"), ("Backend", "10.0.1.0/24")]
    );
    assert!(r.fixture.nsgs.is_empty());
    build(&r.fixture);
}

/// The REST example response of `GET networkSecurityGroups/{name}` (same shape as `az network
/// nsg show`): one rule; its six defaultSecurityRules match vnetsim's.
fn corpus_nsg_get_example(path: &Path) {
    let r = import(&[input(path)], &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.findings.is_empty(),
        "no DEFAULT_RULES_MISMATCH: {:?}",
        r.findings
    );
    assert_eq!(
        r.fixture.subscription.as_ref().map(|s| s.id.as_str()),
        Some("subid")
    );
    let nsg = &r.fixture.nsgs[0];
    assert_eq!(nsg.name, "testnsg");
    assert_eq!(nsg.security_rules.len(), 1);
    let rule = &nsg.security_rules[0];
    assert_eq!((rule.name.as_str(), rule.priority), ("rule1", 130));
    assert_eq!(rule.destination_ports, PortField::Range("80".into()));
}

/// The compiled AVM NSG module (languageVersion 2.0). `name` is required; its rules come from
/// the `securityRules` parameter through `tryGet()` and `map()`/`lambda()`, evaluated since
/// issue 17 (before, those fields imported as unknown markers).
fn corpus_avm_nsg(path: &Path) {
    let e = import(&[input(path)], &ImportOptions::default()).unwrap_err();
    assert_eq!(e.code(), "ARM_PARAMETER_MISSING");
    assert_eq!(
        e.location().map(|l| l.pointer.as_str()),
        Some("/parameters/name")
    );

    let r = import(&[input(path)], &opts(&["name=nsg-avm"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.fixture.nsgs[0].name, "nsg-avm");
    // No securityRules: only the default rules.
    assert!(r.fixture.nsgs[0].security_rules.is_empty());
    // The telemetry deployment is a nested deployment (expanded: it deploys nothing); the lock,
    // diagnostic settings and role assignments deploy no instance with the defaults.
    assert!(r.ignored.is_empty(), "{:?}", r.ignored);

    // The rules of the module's own "max" test (tests/e2e/max/main.test.bicep).
    let asg = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/dep-asg";
    let rules = json!([
        { "name": "Specific", "properties": { "access": "Allow", "description": "Tests specific IPs and ports", "destinationAddressPrefix": "*", "destinationPortRange": "8080", "direction": "Inbound", "priority": 100, "protocol": "*", "sourceAddressPrefix": "*", "sourcePortRange": "*" } },
        { "name": "Ranges", "properties": { "access": "Allow", "destinationAddressPrefixes": ["10.2.0.0/16", "10.3.0.0/16"], "destinationPortRanges": ["90", "91"], "direction": "Inbound", "priority": 101, "protocol": "*", "sourceAddressPrefixes": ["10.0.0.0/16", "10.1.0.0/16"], "sourcePortRanges": ["80", "81"] } },
        { "name": "Port_8082", "properties": { "access": "Allow", "destinationApplicationSecurityGroupResourceIds": [asg], "destinationPortRange": "8082", "direction": "Inbound", "priority": 102, "protocol": "*", "sourceApplicationSecurityGroupResourceIds": [asg], "sourcePortRange": "*" } },
        { "name": "Deny-All-Inbound", "properties": { "access": "Deny", "direction": "Inbound", "priority": 4095, "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*" } },
        { "name": "Allow-AzureCloud-Tcp", "properties": { "access": "Allow", "direction": "Outbound", "priority": 250, "protocol": "Tcp", "destinationAddressPrefix": "AzureCloud", "sourceAddressPrefixes": ["10.10.10.0/24", "192.168.1.0/24"], "sourcePortRange": "*", "destinationPortRange": "443" } }
    ]);
    let pair = format!("securityRules={rules}");
    let r = import(
        &[input(path)],
        &opts(&["name=nsg-avm", &pair, "location=swedencentral"]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(&str, i64, &str, &str, &str)> = r.fixture.nsgs[0]
        .security_rules
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.priority,
                r.direction.as_str(),
                r.access.as_str(),
                r.protocol.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Specific", 100, "Inbound", "Allow", "*"),
            ("Ranges", 101, "Inbound", "Allow", "*"),
            ("Port_8082", 102, "Inbound", "Allow", "*"),
            ("Deny-All-Inbound", 4095, "Inbound", "Deny", "*"),
            ("Allow-AzureCloud-Tcp", 250, "Outbound", "Allow", "Tcp"),
        ]
    );
    // Issue 17: tryGet(), map() and lambda() are evaluated, so every field is known and the
    // mutually exclusive singular/plural fields stay apart.
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns.first());
    let rules = &r.fixture.nsgs[0].security_rules;
    assert_eq!(rules[0].source, AddressField::Prefix("*".into()));
    assert_eq!(rules[0].destination_ports, PortField::Range("8080".into()));
    assert_eq!(
        rules[1].source,
        AddressField::Prefixes(vec!["10.0.0.0/16".into(), "10.1.0.0/16".into()])
    );
    assert_eq!(
        rules[1].source_ports,
        PortField::Ranges(vec!["80".into(), "81".into()])
    );
    assert_eq!(rules[2].source, AddressField::Asgs(vec!["dep-asg".into()]));
    assert_eq!(
        rules[2].destination,
        AddressField::Asgs(vec!["dep-asg".into()])
    );
    assert_eq!(
        rules[4].destination,
        AddressField::Prefix("AzureCloud".into())
    );
}

fn corpus_service_tags(path: &Path) {
    let e = import(&[input(path)], &ImportOptions::default()).unwrap_err();
    assert_eq!(e.code(), "ARM_NOT_AZURE");
    assert!(e.to_string().contains("--service-tags"), "{e}");
}

// === fixtures/arm: Standard v2 integration ===

#[test]
fn integration_template_with_defaults() {
    let r = import(
        &[arm_input("apim-integration.json")],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let f = &r.fixture;
    let a = f.apim.as_ref().expect("apim");
    assert!(a.name.starts_with("contoso-apim-"), "{}", a.name);
    assert_eq!(
        (a.sku, a.virtual_network, a.subnet.as_deref()),
        (
            Sku::StandardV2,
            NetworkMode::Integration,
            Some("contoso-vnet/snet-apim")
        )
    );
    let subnets: Vec<(&str, &str)> = f.vnets[0]
        .subnets
        .iter()
        .map(|s| (s.name.as_str(), s.address_prefixes[0].as_str()))
        .collect();
    assert_eq!(
        subnets,
        [
            ("snet-apim", "10.20.1.0/24"),
            ("snet-backend", "10.20.2.0/24")
        ]
    );
    assert_eq!(
        f.vnets[0].subnets[0].delegations,
        vec!["Microsoft.Web/serverFarms"]
    );
    // Property copy (3 dependency rules) plus two top-level child rules.
    let apim_rules: Vec<&str> = f.nsgs[0]
        .security_rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        apim_rules,
        [
            "Allow-Storage-Outbound",
            "Allow-AzureKeyVault-Outbound",
            "Allow-AzureMonitor-Outbound",
            "Allow-Backend-Outbound",
            "Deny-Internet-Outbound"
        ]
    );
    // Resource copy: two NICs; the second is dynamic and gets the first free usable address.
    let hosts: Vec<(&str, &str)> = f
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.address.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("contoso-backend-1", "10.20.2.10"),
            ("contoso-backend-2", "10.20.2.4")
        ]
    );
    let assumptions: Vec<&str> = r.assumptions.iter().map(|a| a.code()).collect();
    assert_eq!(
        assumptions,
        [
            "ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS",
            "ASSUMPTION_DEPLOYMENT_SCOPE_DEFAULTS"
        ]
    );
    assert_eq!(r.ignored.len(), 1);
    assert!(r.unknowns.is_empty() && r.findings.is_empty());

    let built = Topology::build(f, ServiceTagTable::builtin());
    assert!(
        !built.has_errors(),
        "the v2 preflight passes: {:?}",
        built.findings
    );
    let t = built.topology;
    let apim = t.apim_source().expect("integrated").to_string();
    assert_eq!(apim, "10.20.1.4");
    let storage = ServiceTagTable::builtin()
        .get("Storage")
        .expect("Storage")
        .prefixes[0]
        .first()
        .to_string();
    check_table(
        &t,
        &[
            (&apim, "10.20.2.10", 443, VerdictCode::Allowed, None),
            (
                &apim,
                "10.20.2.4",
                8443,
                VerdictCode::NsgDenied,
                Some("contoso-backend-nsg / securityRules/Deny-Vnet-Inbound"),
            ),
            (
                &apim,
                "10.20.2.10",
                22,
                VerdictCode::NsgDenied,
                Some("contoso-backend-nsg / securityRules/Deny-Vnet-Inbound"),
            ),
            (
                &apim,
                &storage,
                443,
                VerdictCode::Allowed,
                Some("contoso-apim-nsg / securityRules/Allow-Storage-Outbound"),
            ),
            (
                &apim,
                "8.8.8.8",
                443,
                VerdictCode::NsgDenied,
                Some("contoso-apim-nsg / securityRules/Deny-Internet-Outbound"),
            ),
            (
                "10.20.2.10",
                "8.8.8.8",
                443,
                VerdictCode::Allowed,
                Some("contoso-backend-nsg / defaultSecurityRules/AllowInternetOutBound"),
            ),
            (
                "10.20.2.10",
                "10.20.2.4",
                443,
                VerdictCode::NsgDenied,
                Some("contoso-backend-nsg / securityRules/Deny-Vnet-Inbound"),
            ),
        ],
    );
    // APIs route to the imported hosts (echo services were added for their backends).
    let (i, rest) = t.route("/inventory/v1/items").expect("routed");
    assert_eq!((t.apis()[i].name.as_str(), rest), ("inventory", "/items"));
    round_trip(&r);
}

#[test]
fn integration_template_with_parameters_file() {
    let r = import(
        &[
            arm_input("apim-integration.json"),
            arm_input("apim-integration.parameters.json"),
        ],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let f = &r.fixture;
    // Condition true: the child subnet and the jump box; three NICs from the copy loop.
    assert_eq!(
        f.vnets[0]
            .subnets
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["snet-apim", "snet-backend", "snet-tools"]
    );
    let hosts: Vec<(&str, &str)> = f
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.address.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("contoso-backend-1", "10.20.2.10"),
            ("contoso-backend-2", "10.20.2.4"),
            ("contoso-backend-3", "10.20.2.5"),
            ("contoso-jumpbox", "10.20.3.4")
        ]
    );
    // The nested conditional child rule joined its NSG.
    assert!(f.nsgs[1]
        .security_rules
        .iter()
        .any(|r| r.name == "Allow-Ssh-From-Tools"));
    let t = build(f);
    let apim = t.apim_source().expect("integrated").to_string();
    check_table(
        &t,
        &[
            (
                &apim,
                "10.20.2.4",
                8443,
                VerdictCode::Allowed,
                Some("contoso-backend-nsg / securityRules/Allow-Apim-Inbound"),
            ),
            (&apim, "10.20.2.5", 8443, VerdictCode::Allowed, None),
            (
                "10.20.3.4",
                "10.20.2.10",
                22,
                VerdictCode::Allowed,
                Some("contoso-backend-nsg / securityRules/Allow-Ssh-From-Tools"),
            ),
            (
                "10.20.3.4",
                "10.20.2.5",
                443,
                VerdictCode::NsgDenied,
                Some("contoso-backend-nsg / securityRules/Deny-Vnet-Inbound"),
            ),
            (
                &apim,
                "8.8.8.8",
                80,
                VerdictCode::NsgDenied,
                Some("contoso-apim-nsg / securityRules/Deny-Internet-Outbound"),
            ),
        ],
    );
    round_trip(&r);

    // The same through --parameters FILE and --parameter (which wins over the file).
    let o = ImportOptions {
        parameter_files: vec![arm_input("apim-integration.parameters.json")],
        parameters: vec!["backendCount=1".into(), "apimSku=Premiumv2".into()],
        ..ImportOptions::default()
    };
    let r2 = import(&[arm_input("apim-integration.json")], &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r2.fixture.hosts.len(),
        2,
        "one backend NIC and the jump box"
    );
    assert_eq!(
        r2.fixture.apim.as_ref().map(|a| a.sku),
        Some(Sku::PremiumV2)
    );
}

// === fixtures/arm/exports: REST and CLI shapes merged ===

const EXPORTS: [&str; 5] = [
    "exports/vnet-prod.json",
    "exports/nsg-list-cli.json",
    "exports/nic-app-1-cli.json",
    "exports/apim-prod-cli.json",
    "exports/apim-prod-api-orders-cli.json",
];

#[test]
fn exports_merge_into_one_topology() {
    let inputs: Vec<Input> = EXPORTS.iter().map(|n| arm_input(n)).collect();
    let r = import(&inputs, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let f = &r.fixture;
    assert_eq!(
        f.subscription.as_ref().map(|s| s.id.as_str()),
        Some("11111111-2222-3333-4444-555555555555")
    );
    // The peer is not among the inputs; the exported default rules match vnetsim's.
    assert_eq!(codes(&r), ["PEERING_NOT_CONNECTED"]);
    assert_eq!(
        f.nsgs
            .iter()
            .map(|n| n.security_rules.len())
            .collect::<Vec<_>>(),
        [4, 2]
    );
    assert_eq!(f.application_security_groups, vec!["asg-app"]);
    let h = &f.hosts[0];
    // Dynamic in the export, but the export says which address Azure gave it.
    assert_eq!(
        (h.name.as_str(), h.address.as_str()),
        ("nic-app-1", "10.30.2.4")
    );
    assert!(r.assumptions.is_empty());
    // The NIC is imported, so its IP configuration does not count as another resource.
    assert!(f.vnets[0].subnets[1].resources.is_empty());
    let a = f.apim.as_ref().expect("apim");
    assert_eq!(
        (a.virtual_network, a.public_address.as_deref()),
        (NetworkMode::Integration, Some("20.61.10.20"))
    );
    assert_eq!(h.services[0].port, 8080);

    let built = Topology::build(f, ServiceTagTable::builtin());
    assert!(!built.has_errors(), "{:?}", built.findings);
    let t = built.topology;
    check_table(
        &t,
        &[
            (
                "10.30.1.4",
                "10.30.2.4",
                8080,
                VerdictCode::Allowed,
                Some("nsg-app / securityRules/AllowApimInbound"),
            ),
            (
                "10.30.1.4",
                "10.30.2.4",
                22,
                VerdictCode::NsgDenied,
                Some("nsg-app / securityRules/DenyVnetInbound"),
            ),
            (
                "10.30.1.4",
                "8.8.8.8",
                443,
                VerdictCode::NsgDenied,
                Some("nsg-apim / securityRules/DenyInternetOutbound"),
            ),
        ],
    );
    round_trip(&r);

    // Input order does not matter.
    let reversed: Vec<Input> = EXPORTS.iter().rev().map(|n| arm_input(n)).collect();
    let r2 = import(&reversed, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    same_verdicts(&t, &build(&r2.fixture));
}

#[test]
fn conflicting_exports_name_both_inputs() {
    let mut inputs: Vec<Input> = EXPORTS.iter().map(|n| arm_input(n)).collect();
    // The same export twice is fine ...
    inputs.push(arm_input("exports/nic-app-1-cli.json"));
    assert!(import(&inputs, &ImportOptions::default()).is_ok());
    // ... a different one of the same name is not.
    let changed = inputs[2].text.replace("10.30.2.4", "10.30.2.9");
    inputs.push(Input::new("nic-app-1-changed.json", changed));
    match import(&inputs, &ImportOptions::default()).unwrap_err() {
        ImportError::Conflict {
            kind,
            name,
            first,
            second,
        } => {
            assert_eq!((kind.as_str(), name.as_str()), ("NIC", "nic-app-1"));
            assert_eq!(
                (first.input.as_str(), second.input.as_str()),
                ("nic-app-1-cli.json", "nic-app-1-changed.json")
            );
        }
        e => panic!("{e}"),
    }
}

// === unknown values ===

#[test]
fn deployment_time_values_become_markers() {
    let r = import(&[arm_input("unknowns.json")], &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let rules = &r.fixture.nsgs[0].security_rules;
    let base = |i: usize, field: &str| {
        format!("/resources/1/properties/securityRules/{i}/properties/{field}")
    };
    assert_eq!(
        rules[0].destination,
        AddressField::Prefix(marker(&base(0, "destinationAddressPrefix")))
    );
    assert_eq!(
        rules[1].destination_ports,
        PortField::Ranges(vec![
            "443".into(),
            marker(&base(1, "destinationPortRanges/1"))
        ])
    );
    // An unknown protocol keeps the rule as `*`, with its source ports unknown.
    assert_eq!(rules[2].protocol.as_str(), "*");
    assert_eq!(
        rules[2].source_ports,
        PortField::Ranges(vec![marker(&base(2, "protocol"))])
    );
    let listed: Vec<(&str, Option<usize>)> = r
        .unknowns
        .iter()
        .map(|u| (u.subject.as_str(), u.line))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "nsgs/nsg-edge/security_rules/Allow-Egress-Ip/destination",
                Some(31)
            ),
            (
                "nsgs/nsg-edge/security_rules/Allow-App-Ports/destination_ports",
                Some(41)
            ),
            (
                "nsgs/nsg-edge/security_rules/Allow-Partner/protocol",
                Some(48)
            ),
        ]
    );
    assert!(
        r.unknowns[0].reason.contains("deployment time"),
        "{}",
        r.unknowns[0].reason
    );
    assert!(
        r.unknowns[1].reason.contains("dateTimeToEpoch"),
        "{}",
        r.unknowns[1].reason
    );
    // Markers round-trip through TOML ...
    let back = Fixture::parse(&r.fixture.to_toml().expect("TOML"), Format::Toml).expect("loads");
    assert_eq!(back, r.fixture);
    // ... and the engine reads them: each rule with a marker loads with an UNKNOWN_VALUE
    // warning (it matches like `*` on that field; dependent flows are Indeterminate), never as
    // an invalid prefix or port and never as a guessed value.
    let built = Topology::build(&back, ServiceTagTable::builtin());
    let structural: Vec<&str> = built
        .structural_errors()
        .iter()
        .map(|f| f.code.as_str())
        .collect();
    assert!(
        !structural.contains(&"RULE_PREFIX_INVALID") && !structural.contains(&"RULE_PORT_INVALID"),
        "{structural:?}"
    );
    let unknown_rules = built
        .findings
        .iter()
        .filter(|f| f.code.as_str() == "UNKNOWN_VALUE")
        .count();
    assert!(unknown_rules >= 1, "{:#?}", built.findings);
}

// === bad templates ===

fn bad(files: &[&str], params: &[&str]) -> ImportError {
    let inputs: Vec<Input> = files
        .iter()
        .map(|f| arm_input(&format!("bad/{f}")))
        .collect();
    import(&inputs, &opts(params)).expect_err("a bad template")
}

fn at(e: &ImportError) -> (&str, &str, Option<usize>) {
    let l = e.location().expect("located");
    (l.input.as_str(), l.pointer.as_str(), l.line)
}

#[test]
fn broken_json_names_the_value_being_read() {
    let e = bad(&["broken-json.json"], &[]);
    assert_eq!(e.code(), "ARM_JSON_INVALID");
    assert_eq!(
        at(&e),
        (
            "broken-json.json",
            "/resources/0/properties/securityRules/0/properties/destinationPortRange",
            Some(13)
        )
    );
}

#[test]
fn unknown_function_names_its_string() {
    let e = bad(&["unknown-function.json"], &[]);
    let ImportError::UnknownFunction { name, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(name, "subnetPrefix");
    assert_eq!(
        at(&e),
        (
            "unknown-function.json",
            "/resources/0/properties/subnets/0/properties/addressPrefix",
            Some(16)
        )
    );
}

#[test]
fn wrong_parameter_type_names_the_value() {
    let e = bad(
        &[
            "wrong-parameter-type.json",
            "wrong-parameter-type.parameters.json",
        ],
        &[],
    );
    assert_eq!(e.code(), "ARM_PARAMETER_TYPE");
    assert_eq!(
        at(&e),
        (
            "wrong-parameter-type.parameters.json",
            "/parameters/ruleCount/value",
            Some(5)
        )
    );
    let e = bad(&["wrong-parameter-type.json"], &["ruleCount=two"]);
    assert_eq!(e.code(), "ARM_PARAMETER_TYPE");
    assert_eq!(at(&e), ("--parameter", "/ruleCount", None));
    assert!(import(
        &[arm_input("bad/wrong-parameter-type.json")],
        &opts(&["ruleCount=2"])
    )
    .is_ok());
}

#[test]
fn missing_required_parameter_names_its_declaration() {
    let e = bad(&["missing-parameter.json"], &[]);
    assert_eq!(e.code(), "ARM_PARAMETER_MISSING");
    assert_eq!(
        at(&e),
        ("missing-parameter.json", "/parameters/nsgName", Some(6))
    );
    assert!(e.to_string().contains("--parameter nsgName=VALUE"), "{e}");
}

// === round trip over generated templates ===

#[derive(Clone, Debug)]
struct GenRule {
    inbound: bool,
    allow: bool,
    proto: usize,
    src: usize,
    dst: usize,
    port: usize,
    child: bool,
}

#[derive(Clone, Debug)]
struct GenTemplate {
    subnets: usize,
    rules: Vec<Vec<GenRule>>,
    nics: Vec<(usize, bool)>,
}

fn arb_rule() -> impl Strategy<Value = GenRule> {
    (
        any::<bool>(),
        any::<bool>(),
        0..3usize,
        0..6usize,
        0..6usize,
        0..5usize,
        any::<bool>(),
    )
        .prop_map(|(inbound, allow, proto, src, dst, port, child)| GenRule {
            inbound,
            allow,
            proto,
            src,
            dst,
            port,
            child,
        })
}

fn arb_template() -> impl Strategy<Value = GenTemplate> {
    (1..=3usize)
        .prop_flat_map(|subnets| {
            (
                Just(subnets),
                prop::collection::vec(prop::collection::vec(arb_rule(), 0..5), subnets),
                prop::collection::vec((0..subnets, any::<bool>()), 1..6),
            )
        })
        .prop_map(|(subnets, rules, nics)| GenTemplate {
            subnets,
            rules,
            nics,
        })
}

/// Renders a generated topology as an ARM template that uses expressions, inline and child
/// rules, and static and dynamic NIC addresses.
fn render(g: &GenTemplate) -> String {
    let address = |i: usize| -> serde_json::Value {
        match i {
            0 => json!("*"),
            1 => json!("VirtualNetwork"),
            2 => json!("Internet"),
            n => json!(format!(
                "[cidrSubnet(parameters('space'), 24, {})]",
                (n - 3) % 3
            )),
        }
    };
    let mut resources = Vec::new();
    let mut subnets = Vec::new();
    for s in 0..g.subnets {
        let nsg = format!("nsg-{s}");
        let mut inline = Vec::new();
        for (j, r) in g.rules[s].iter().enumerate() {
            let protocol = ["Tcp", "Udp", "*"][r.proto];
            let mut props = json!({
                "priority": 100 + 10 * j, "direction": if r.inbound { "Inbound" } else { "Outbound" },
                "access": if r.allow { "Allow" } else { "Deny" }, "protocol": protocol,
                "sourceAddressPrefix": address(r.src), "sourcePortRange": "*",
                "destinationAddressPrefix": address(r.dst),
            });
            match r.port {
                0 => props["destinationPortRange"] = json!("*"),
                1 => props["destinationPortRange"] = json!("22"),
                2 => props["destinationPortRange"] = json!("443"),
                3 => props["destinationPortRange"] = json!("1000-2000"),
                _ => props["destinationPortRanges"] = json!(["80", "443"]),
            }
            let name = format!("r{j}");
            if r.child {
                resources.push(
                    json!({ "type": "Microsoft.Network/networkSecurityGroups/securityRules",
                    "name": format!("[concat('{nsg}', '/', '{name}')]"), "properties": props }),
                );
            } else {
                inline.push(json!({ "name": name, "properties": props }));
            }
        }
        resources.push(json!({ "type": "Microsoft.Network/networkSecurityGroups", "name": nsg, "location": "[resourceGroup().location]",
            "properties": { "securityRules": inline } }));
        subnets.push(json!({ "name": format!("s{s}"), "properties": {
            "addressPrefix": format!("[cidrSubnet(parameters('space'), 24, {s})]"),
            "networkSecurityGroup": { "id": format!("[resourceId('Microsoft.Network/networkSecurityGroups', 'nsg-{s}')]") } } }));
    }
    resources.push(json!({ "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "[parameters('LOCATION')]",
        "properties": { "addressSpace": { "addressPrefixes": ["[parameters('space')]"] }, "subnets": subnets } }));
    for (k, (s, fixed)) in g.nics.iter().enumerate() {
        let mut cfg = json!({ "privateIPAllocationMethod": if *fixed { "Static" } else { "Dynamic" },
            "subnet": { "id": format!("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's{s}')]") } });
        if *fixed {
            cfg["privateIPAddress"] = json!(format!("10.50.{s}.{}", 20 + k));
        }
        resources.push(json!({ "type": "Microsoft.Network/networkInterfaces", "name": format!("nic{k}"), "location": "westeurope",
            "properties": { "ipConfigurations": [{ "name": "ipconfig1", "properties": cfg }] } }));
    }
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "space": { "type": "string", "defaultValue": "10.50.0.0/16" },
            "location": { "type": "string", "defaultValue": "[resourceGroup().location]" }
        },
        "resources": resources
    })
    .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// ARM → Fixture → TOML → Fixture is the identity, and both give the same verdicts.
    #[test]
    fn generated_templates_round_trip_through_toml(g in arb_template()) {
        let text = render(&g);
        let r = import(&[Input::new("gen.json", text)], &ImportOptions::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(r.fixture.hosts.len(), g.nics.len());
        prop_assert_eq!(r.fixture.nsgs.iter().map(|n| n.security_rules.len()).sum::<usize>(), g.rules.iter().map(Vec::len).sum::<usize>());
        round_trip(&r);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any expression text gives a value, an unknown or an error: never a panic.
    #[test]
    fn import_never_panics_on_random_expressions(expr in "[a-zA-Z(),.'\\[\\]0-9 -]{0,48}") {
        let t = json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "parameters": { "p": { "type": "array", "defaultValue": [1, "a", {"b": [2]}] } },
            "resources": [{ "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
                "properties": { "addressSpace": { "addressPrefixes": [format!("[{expr}]")] } } }]
        })
        .to_string();
        let _ = import(&[Input::new("t.json", t)], &ImportOptions::default());
    }

    /// A template damaged by a few edits still imports or fails with an error: never a panic.
    #[test]
    fn import_never_panics_on_damaged_templates(edits in prop::collection::vec((any::<prop::sample::Index>(), 0..4usize, "[\\[\\]{}\",:a0 ]"), 1..8)) {
        let mut text = arm_input("apim-integration.json").text.into_bytes();
        for (at, op, s) in edits {
            let i = at.index(text.len().max(1));
            match op {
                0 if i < text.len() => { text.remove(i); }
                1 => text.splice(i.min(text.len())..i.min(text.len()), s.bytes()).for_each(drop),
                2 if i < text.len() => text[i] = s.as_bytes()[0],
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let _ = import(&[Input::new("damaged.json", text)], &ImportOptions::default());
    }
}

// === limits: ARM's own and the evaluator's bounds ===

/// A template with `variables` and one VNet whose address prefix is `prefix` (an expression).
fn limit_template(variables: serde_json::Value, prefix: &str) -> String {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "variables": variables,
        "resources": [{ "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
            "properties": { "addressSpace": { "addressPrefixes": [prefix] } } }]
    })
    .to_string()
}

/// Imports `text` on a thread with a 2 MiB stack (what a reload gets on Tokio's blocking pool):
/// the limit the import fails with, and its message.
fn limit_of(text: String) -> (sim::arm::Limit, String) {
    let r = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            import(&[Input::new("t.json", text)], &ImportOptions::default())
                .map(|r| r.fixture.vnets.len())
                .map_err(Box::new)
        })
        .expect("a thread")
        .join()
        .expect("no stack overflow or panic");
    match r.as_ref().map_err(|e| &**e) {
        Err(e @ ImportError::LimitExceeded { limit, .. }) => {
            assert_eq!(e.code(), "ARM_LIMIT_EXCEEDED");
            (*limit, e.to_string())
        }
        other => panic!("expected ARM_LIMIT_EXCEEDED, got {other:?}"),
    }
}

#[test]
fn doubling_a_string_stops_at_the_value_limit() {
    // 2.5 KB of template that would build a 10 TiB string: each variable doubles the last.
    let mut vars = serde_json::Map::new();
    vars.insert("v0".into(), json!("aaaaaaaaaa"));
    for i in 1..=40 {
        vars.insert(
            format!("v{i}"),
            json!(format!(
                "[concat(variables('v{0}'), variables('v{0}'))]",
                i - 1
            )),
        );
    }
    let t = std::time::Instant::now();
    let (limit, msg) = limit_of(limit_template(vars.into(), "[variables('v40')]"));
    assert_eq!(limit, sim::arm::Limit::ValueSize);
    // Names the JSON pointer of the string whose evaluation went over.
    assert!(msg.contains("/variables/v"), "{msg}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn format_and_split_cannot_multiply_a_value() {
    let big = "x".repeat(1 << 20);
    let mut vars = serde_json::Map::new();
    vars.insert("big".into(), json!(big));
    let fmt = "{0}".repeat(8);
    vars.insert(
        "f".into(),
        json!(format!("[format('{fmt}', variables('big'))]")),
    );
    let (limit, _) = limit_of(limit_template(vars.clone().into(), "[variables('f')]"));
    assert_eq!(limit, sim::arm::Limit::ValueSize);
    // One-character pieces cost far more than the string they come from.
    vars.insert("commas".into(), json!(",".repeat(1 << 20)));
    vars.insert("s".into(), json!("[split(variables('commas'), ',')]"));
    let prefix = "[if(empty(variables('s')), '10.0.0.0/16', '10.1.0.0/16')]";
    let (limit, _) = limit_of(limit_template(vars.into(), prefix));
    assert_eq!(limit, sim::arm::Limit::ValueSize);
}

#[test]
fn repeated_references_stop_at_the_total() {
    // Each copy of a 3 MB variable is within the value limit; 800 of them are not.
    let mut vars = serde_json::Map::new();
    vars.insert("big".into(), json!("y".repeat(3 << 20)));
    vars.insert(
        "copy".into(),
        json!([{ "name": "many", "count": 800, "input": "[variables('big')]" }]),
    );
    let (limit, _) = limit_of(limit_template(
        vars.into(),
        "[if(empty(variables('many')), '10.0.0.0/16', '10.1.0.0/16')]",
    ));
    assert!(
        matches!(
            limit,
            sim::arm::Limit::EvaluatedTotal | sim::arm::Limit::ValueSize
        ),
        "{limit:?}"
    );
}

#[test]
fn long_reference_chains_are_refused_not_a_stack_overflow() {
    let chain = |n: usize| {
        let mut vars = serde_json::Map::new();
        vars.insert("v0".into(), json!("10.0.0.0/16"));
        for i in 1..n {
            vars.insert(format!("v{i}"), json!(format!("[variables('v{}')]", i - 1)));
        }
        limit_template(vars.into(), &format!("[variables('v{}')]", n - 1))
    };
    // 3,000 variables: over ARM's own limit, refused before evaluation.
    let (limit, msg) = limit_of(chain(3_000));
    assert_eq!(limit, sim::arm::Limit::Variables);
    assert!(
        msg.contains("(/variables)") && msg.contains("3000"),
        "{msg}"
    );
    // 512 variables is within ARM's limit, but the chain is deeper than evaluation goes.
    let (limit, _) = limit_of(chain(512));
    assert_eq!(limit, sim::arm::Limit::EvaluationDepth);
    // Objects nest evaluation too: 60 variables, each an object 20 levels deep whose innermost
    // value references the previous one.
    let mut vars = serde_json::Map::new();
    vars.insert("v0".into(), json!("10.0.0.0/16"));
    for i in 1..60 {
        let mut v = json!(format!("[variables('v{}')]", i - 1));
        for _ in 0..20 {
            v = json!({ "a": v });
        }
        vars.insert(format!("v{i}"), v);
    }
    let (limit, _) = limit_of(limit_template(
        vars.into(),
        "[if(empty(variables('v59')), '10.0.0.0/16', '10.1.0.0/16')]",
    ));
    assert_eq!(limit, sim::arm::Limit::EvaluationDepth);
    // A short chain imports.
    let ok = import(
        &[Input::new("t.json", chain(20))],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(ok.fixture.vnets[0].address_space, vec!["10.0.0.0/16"]);
}

#[test]
fn accessor_chains_are_refused_not_a_stack_overflow() {
    let vars = json!({ "o": { "a": "10.0.0.0/16" } });
    // 26,000 accessors: longer than ARM's expression limit.
    let (limit, _) = limit_of(limit_template(
        vars.clone(),
        &format!("[variables('o'){}]", "[0]".repeat(26_000)),
    ));
    assert_eq!(limit, sim::arm::Limit::ExpressionLength);
    // 5,000 fit in the length but nest deeper than any expression is evaluated.
    let (limit, msg) = limit_of(limit_template(
        vars,
        &format!("[variables('o'){}]", ".a".repeat(5_000)),
    ));
    assert_eq!(limit, sim::arm::Limit::ExpressionDepth);
    assert!(
        msg.contains("/resources/0/properties/addressSpace/addressPrefixes/0"),
        "{msg}"
    );
}

#[test]
fn arm_counts_and_sizes_are_enforced() {
    use sim::arm::Limit;
    // 801 copies of one resource.
    let t = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "resources": [{ "type": "Microsoft.Network/networkSecurityGroups", "name": "[concat('n', copyIndex())]",
            "location": "westeurope", "copy": { "name": "c", "count": 801 }, "properties": {} }]
    });
    assert_eq!(limit_of(t.to_string()).0, Limit::CopyCount);
    // 801 resources in all, through two loops within the copy limit.
    let t = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "resources": [
            { "type": "Microsoft.Network/networkSecurityGroups", "name": "[concat('a', copyIndex())]",
              "location": "westeurope", "copy": { "name": "a", "count": 400 }, "properties": {} },
            { "type": "Microsoft.Network/networkSecurityGroups", "name": "[concat('b', copyIndex())]",
              "location": "westeurope", "copy": { "name": "b", "count": 401 }, "properties": {} }]
    });
    assert_eq!(limit_of(t.to_string()).0, Limit::Resources);
    // 65 outputs, 257 parameters.
    let outputs: serde_json::Map<_, _> = (0..65)
        .map(|i| (format!("o{i}"), json!({ "type": "string", "value": "x" })))
        .collect();
    let t = json!({ "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "resources": [], "outputs": outputs });
    assert_eq!(limit_of(t.to_string()).0, Limit::Outputs);
    let params: serde_json::Map<_, _> = (0..257)
        .map(|i| {
            (
                format!("p{i}"),
                json!({ "type": "string", "defaultValue": "x" }),
            )
        })
        .collect();
    let t = json!({ "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "resources": [], "parameters": params });
    assert_eq!(limit_of(t.to_string()).0, Limit::Parameters);
    // A template over 4 MB.
    let t = limit_template(json!({ "pad": "z".repeat(4 << 20) }), "10.0.0.0/16");
    assert_eq!(limit_of(t).0, Limit::TemplateSize);
}

// === API backends selected by policy (set-backend-service) ===

/// An instance with backend `be-orders` (a private address in the hub) and APIs whose policies
/// select backends: `orders` (no serviceUrl) by `backend-id`, `legacy` keeps its serviceUrl
/// (its set-backend-service is inside `<choose>`), `{bad}` is the policy of `billing`.
fn policy_template(orders_policy: &str, billing_policy: &str, billing_format: &str) -> String {
    json!({
      "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      "contentVersion": "1.0.0.0",
      "resources": [
        { "type": "Microsoft.ApiManagement/service", "apiVersion": "2024-05-01", "name": "apim-p",
          "location": "westeurope", "sku": { "name": "StandardV2", "capacity": 1 },
          "properties": { "publisherEmail": "a@contoso.example", "publisherName": "C" } },
        { "type": "Microsoft.ApiManagement/service/backends", "apiVersion": "2024-05-01",
          "name": "apim-p/be-orders", "properties": { "url": "http://52.178.1.10/orders", "protocol": "http" } },
        { "type": "Microsoft.ApiManagement/service/apis", "apiVersion": "2024-05-01",
          "name": "apim-p/orders", "properties": { "path": "orders", "protocols": ["https"] } },
        { "type": "Microsoft.ApiManagement/service/apis/policies", "apiVersion": "2024-05-01",
          "name": "apim-p/orders/policy", "properties": { "format": "xml", "value": orders_policy } },
        { "type": "Microsoft.ApiManagement/service/apis", "apiVersion": "2024-05-01",
          "name": "apim-p/billing", "properties": { "path": "billing", "serviceUrl": "http://52.178.1.20" } },
        { "type": "Microsoft.ApiManagement/service/apis/policies", "apiVersion": "2024-05-01",
          "name": "apim-p/billing/policy", "properties": { "format": billing_format, "value": billing_policy } }
      ]
    })
    .to_string()
}

const SELECT_ORDERS: &str = r#"<policies><inbound><set-backend-service backend-id="be-orders" /><base /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;

/// Learn's `<choose>` example (set-backend-service-policy, "Route request based on value in
/// query string"), as `rawxml` (policy expressions not XML-encoded).
const CHOOSE_RAW: &str = r#"<policies>
    <inbound>
        <choose>
            <when condition="@(context.Request.Url.Query.GetValueOrDefault("version") == "2013-05")">
                <set-backend-service base-url="http://contoso.com/api/8.2/" />
            </when>
        </choose>
        <base />
    </inbound>
</policies>"#;

fn api_backend<'a>(r: &'a ImportResult, api: &str) -> Option<&'a str> {
    r.fixture
        .apis
        .iter()
        .find(|a| a.name == api)
        .map(|a| a.backend.as_str())
}

#[test]
fn a_policy_selecting_a_backend_sets_the_api_backend_to_its_url() {
    let t = policy_template(SELECT_ORDERS, CHOOSE_RAW, "rawxml");
    let r = import(&[Input::new("p.json", t)], &ImportOptions::default()).unwrap();
    assert!(codes(&r).is_empty(), "{:?}", r.findings);
    assert_eq!(api_backend(&r, "orders"), Some("http://52.178.1.10/orders"));
    // Conditional: the API keeps its serviceUrl; the policy is listed with the reason.
    assert_eq!(api_backend(&r, "billing"), Some("http://52.178.1.20"));
    let why = r
        .ignored
        .iter()
        .find(|i| i.name == "apim-p/billing/policy")
        .expect("the conditional policy is listed");
    assert!(why.reason.contains("<choose>"), "{}", why.reason);
    // The selected backend is used, so not listed.
    assert!(!r.ignored.iter().any(|i| i.name == "apim-p/be-orders"));
    // The backend got a host with an echo service, so `up` can serve it as is.
    assert!(r.fixture.hosts.iter().any(|h| h.address == "52.178.1.10"));
    // base-url wins over serviceUrl too.
    let t = policy_template(
        &SELECT_ORDERS.replace("be-orders", "be-none"),
        r#"<policies><inbound><set-backend-service base-url="http://52.178.1.30/v2" /></inbound></policies>"#,
        "xml",
    );
    let r = import(&[Input::new("p.json", t)], &ImportOptions::default()).unwrap();
    assert_eq!(api_backend(&r, "billing"), Some("http://52.178.1.30/v2"));
    // A backend no policy selects is listed as ignored with the reason.
    let why = r
        .ignored
        .iter()
        .find(|i| i.name == "apim-p/be-orders")
        .expect("the unused backend is listed");
    assert!(why.reason.contains("no API policy"), "{}", why.reason);
}

#[test]
fn malformed_policy_xml_and_unknown_backends_are_findings_naming_the_resource() {
    for (bad, what) in [
        (
            "<policies><inbound><set-backend-service backend-id=\"x\"></inbound>",
            "not well-formed",
        ),
        (CHOOSE_RAW, "not well-formed"), // rawxml content declared as `xml`
        (
            r#"<policies><inbound><set-backend-service backend-id="be-missing" /></inbound></policies>"#,
            "be-missing",
        ),
    ] {
        let t = policy_template(SELECT_ORDERS, bad, "xml");
        let r = import(&[Input::new("p.json", t)], &ImportOptions::default()).unwrap();
        assert_eq!(codes(&r), ["API_POLICY_INVALID"], "{bad}");
        let f = &r.findings[0];
        assert!(f.subject.contains("apim-p/billing/policy"), "{}", f.subject);
        assert!(f.message.contains(what), "{}", f.message);
        assert_eq!(
            f.location.as_ref().and_then(|l| l.pointer.as_deref()),
            Some("/resources/5")
        );
        // The API keeps its serviceUrl; the other API is unaffected.
        assert_eq!(api_backend(&r, "billing"), Some("http://52.178.1.20"));
        assert_eq!(api_backend(&r, "orders"), Some("http://52.178.1.10/orders"));
    }
}
// === fixtures/arm/forced-tunnel.json: routing (issue 18) ===

/// The forced-tunnel hub and spoke as an ARM template (route tables inline and as a child
/// resource, a firewall with a policy, a static public IP, peering flags) imports with no
/// unknowns and gives `fixtures/forced-tunnel.toml`'s verdicts on every flow both can see.
#[test]
fn forced_tunnel_template_matches_the_toml_fixture() {
    let r = import(
        &[arm_input("forced-tunnel.json")],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
    assert!(r.ignored.is_empty(), "{:?}", r.ignored);
    let assumed: Vec<&str> = r.assumptions.iter().map(|a| a.code()).collect();
    assert!(
        assumed.contains(&"ASSUMPTION_FIREWALL_PRIVATE_ADDRESS"),
        "{assumed:?}"
    );
    let f = &r.fixture;
    let rt: Vec<(&str, Vec<&str>)> = f
        .route_tables
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.routes.iter().map(|x| x.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        rt,
        [
            (
                "rt-apim",
                vec![
                    "default-to-firewall",
                    "backends-via-firewall",
                    "legacy-drop"
                ]
            ),
            ("rt-backend", vec!["apim-via-firewall"]),
        ]
    );
    assert!(f.route_tables[0].disable_bgp_route_propagation);
    let fw = &f.firewalls[0];
    assert_eq!(
        (
            fw.subnet.as_str(),
            fw.private_address.as_str(),
            fw.public_addresses.clone()
        ),
        (
            "vnet-hub/AzureFirewallSubnet",
            "10.100.1.4",
            vec!["20.61.20.5".to_string()]
        )
    );
    let spoke = f
        .vnets
        .iter()
        .find(|v| v.name == "vnet-spoke")
        .expect("spoke");
    assert!(spoke.peerings[0].allow_forwarded_traffic);
    round_trip(&r);

    let toml = std::fs::read_to_string(fixtures_arm().join("../forced-tunnel.toml"))
        .expect("fixtures/forced-tunnel.toml");
    let want = build(&Fixture::parse(&toml, Format::Toml).expect("TOML fixture"));
    let got = build(&r.fixture);
    let apim = got.apim_source().expect("the instance's source");
    assert_eq!(Some(apim), want.apim_source());
    // (destination, port, expected code): through the firewall's network rule, the None route,
    // the firewall's default deny (public addresses), a Storage address (network rule by tag).
    let storage = ServiceTagTable::builtin()
        .get("Storage")
        .and_then(|t| t.prefixes.iter().find(|c| c.is_ipv4()).copied())
        .expect("a Storage prefix")
        .nth(1)
        .expect("an address");
    let rows = [
        (ip("10.0.2.4"), 443, VerdictCode::Allowed),
        (ip("10.0.9.4"), 8080, VerdictCode::RouteNone),
        (ip("20.50.1.20"), 443, VerdictCode::FirewallDenied),
        (ip("52.1.2.3"), 443, VerdictCode::FirewallDenied),
        (storage, 443, VerdictCode::Allowed),
    ];
    for (dst, port, code) in rows {
        let flow = Flow::tcp(apim, 60000, dst, port);
        let (a, b) = (got.decide(&flow), want.decide(&flow));
        assert_eq!((a.code, b.code), (code, code), "{flow:?}");
    }
    // And on every flow among the addresses both topologies have.
    for s in [apim, ip("10.0.2.4"), ip("10.0.9.4"), ip("10.100.1.4")] {
        for d in [
            apim,
            ip("10.0.2.4"),
            ip("10.0.9.4"),
            ip("20.50.1.20"),
            ip("52.1.2.3"),
        ] {
            for port in [22u16, 443, 8080] {
                let flow = Flow::tcp(s, 60000, d, port);
                assert_eq!(got.decide(&flow).code, want.decide(&flow).code, "{flow:?}");
            }
        }
    }
}

/// The other routing shapes: a NAT gateway whose public IP has no address in the template (an
/// explicit unknown), classic rule collections, an IP-forwarding NIC, a firewall left out for
/// what vnetsim does not evaluate (IP groups), and an unused policy listed as ignored.
#[test]
fn routing_resources_in_their_other_shapes() {
    let sub = |v: &str, s: &str| {
        format!("[resourceId('Microsoft.Network/virtualNetworks/subnets', '{v}', '{s}')]")
    };
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            { "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2024-05-01", "name": "vnet",
              "location": "westeurope",
              "properties": { "addressSpace": { "addressPrefixes": ["10.9.0.0/16"] }, "subnets": [
                  { "name": "AzureFirewallSubnet", "properties": { "addressPrefix": "10.9.0.0/26" } },
                  { "name": "fw2", "properties": { "addressPrefix": "10.9.2.0/26" } },
                  { "name": "app", "properties": { "addressPrefix": "10.9.1.0/24",
                    "natGateway": { "id": "[resourceId('Microsoft.Network/natGateways', 'nat')]" } } } ] } },
            { "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "name": "pip-nat",
              "location": "westeurope", "properties": { "publicIPAllocationMethod": "Static" } },
            { "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "name": "pip-spare",
              "location": "westeurope", "properties": { "ipAddress": "20.1.1.1" } },
            { "type": "Microsoft.Network/natGateways", "apiVersion": "2024-05-01", "name": "nat",
              "location": "westeurope", "properties": { "publicIpAddresses": [
                  { "id": "[resourceId('Microsoft.Network/publicIPAddresses', 'pip-nat')]" } ] } },
            { "type": "Microsoft.Network/azureFirewalls", "apiVersion": "2024-05-01", "name": "fw",
              "location": "westeurope", "properties": {
                "ipConfigurations": [{ "name": "c", "properties": {
                    "subnet": { "id": sub("vnet", "AzureFirewallSubnet") }, "privateIPAddress": "10.9.0.10" } }],
                "networkRuleCollections": [{ "name": "net", "properties": {
                    "priority": 100, "action": { "type": "Deny" },
                    "rules": [{ "name": "no-ssh", "protocols": ["TCP"], "sourceAddresses": ["*"],
                                "destinationAddresses": ["10.0.0.0/8"], "destinationPorts": ["22"] }] } }],
                "applicationRuleCollections": [{ "name": "app", "properties": {
                    "priority": 200, "action": { "type": "Allow" },
                    "rules": [{ "name": "web", "protocols": [{ "protocolType": "Https", "port": 443 }],
                                "sourceAddresses": ["10.9.1.0/24"], "targetFqdns": ["*.contoso.com"] }] } }] } },
            { "type": "Microsoft.Network/azureFirewalls", "apiVersion": "2024-05-01", "name": "fw-groups",
              "location": "westeurope", "properties": {
                "ipConfigurations": [{ "name": "c", "properties": { "subnet": { "id": sub("vnet", "fw2") } } }],
                "networkRuleCollections": [{ "name": "net", "properties": {
                    "priority": 100, "action": { "type": "Allow" },
                    "rules": [{ "name": "by-group", "protocols": ["TCP"], "sourceIpGroups": ["/ipGroups/g"],
                                "destinationAddresses": ["*"], "destinationPorts": ["443"] }] } }] } },
            { "type": "Microsoft.Network/firewallPolicies", "apiVersion": "2024-05-01", "name": "unused",
              "location": "westeurope", "properties": {} },
            { "type": "Microsoft.Network/networkInterfaces", "apiVersion": "2024-05-01", "name": "nva",
              "location": "westeurope", "properties": { "enableIPForwarding": true, "ipConfigurations": [
                  { "name": "c", "properties": { "privateIPAllocationMethod": "Static",
                    "privateIPAddress": "10.9.1.4", "subnet": { "id": sub("vnet", "app") } } } ] } }
        ]
    });
    let r = import(
        &[Input::new("routing.json", template.to_string())],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let f = &r.fixture;
    // The NAT gateway's address is allocated at deployment: one explicit unknown.
    let pointer = "/resources/1/properties/ipAddress";
    assert_eq!(f.nat_gateways[0].public_addresses, vec![marker(pointer)]);
    let unknowns: Vec<(&str, &str)> = r
        .unknowns
        .iter()
        .map(|u| (u.pointer.as_str(), u.subject.as_str()))
        .collect();
    assert_eq!(unknowns, [(pointer, "nat_gateways/nat/public_addresses")]);
    let app = &f.vnets[0].subnets[2];
    assert_eq!(app.nat_gateway.as_deref(), Some("nat"));
    assert!(f.hosts[0].ip_forwarding);
    // Classic collections: one group after any policy group, network and application kinds.
    assert_eq!(f.firewalls.len(), 1);
    let fw = &f.firewalls[0];
    assert_eq!(fw.private_address, "10.9.0.10");
    let g = &fw.rule_collection_groups[0];
    assert_eq!((g.name.as_str(), g.priority), ("classic-rules", 65000));
    let kinds: Vec<(&str, &str, &str)> = g
        .rule_collections
        .iter()
        .map(|c| (c.name.as_str(), c.kind.as_str(), c.action.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("net", "Network", "Deny"), ("app", "Application", "Allow")]
    );
    assert_eq!(g.rule_collections[1].rules[0].protocols, vec!["Https:443"]);
    // Left out, with reasons.
    let ignored: Vec<(&str, &str)> = r
        .ignored
        .iter()
        .map(|i| (i.name.as_str(), i.reason.as_str()))
        .collect();
    assert_eq!(ignored.len(), 3, "{ignored:?}");
    assert!(ignored
        .iter()
        .any(|(n, why)| *n == "fw-groups" && why.contains("sourceIpGroups")));
    assert!(ignored
        .iter()
        .any(|(n, why)| *n == "unused" && why.contains("no Azure Firewall")));
    assert!(ignored
        .iter()
        .any(|(n, why)| *n == "pip-spare" && why.contains("no NAT gateway")));
    // A `--set` gives the address; the unknown is gone.
    let set = ImportOptions {
        sets: vec!["nat_gateways/nat/public_addresses=20.9.9.9".into()],
        ..ImportOptions::default()
    };
    let r = import(&[Input::new("routing.json", template.to_string())], &set)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.unknowns.is_empty());
    assert_eq!(r.fixture.nat_gateways[0].public_addresses, vec!["20.9.9.9"]);
    round_trip(&r);
}

/// NAT rules keep their translation: classic `natRuleCollections` and a policy's
/// `FirewallPolicyNatRuleCollection` carry `translatedAddress` / `translatedFqdn` /
/// `translatedPort` ("New-AzFirewallNatRule", "New-AzFirewallPolicyNatRule"), and the imported
/// firewall translates a flow to its public address as the TOML one does.
#[test]
fn nat_rule_collections_carry_their_translation() {
    let sub = |v: &str, s: &str| {
        format!("[resourceId('Microsoft.Network/virtualNetworks/subnets', '{v}', '{s}')]")
    };
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            { "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2024-05-01", "name": "vnet",
              "location": "westeurope",
              "properties": { "addressSpace": { "addressPrefixes": ["10.9.0.0/16"] }, "subnets": [
                  { "name": "AzureFirewallSubnet", "properties": { "addressPrefix": "10.9.0.0/26" } },
                  { "name": "app", "properties": { "addressPrefix": "10.9.1.0/24" } } ] } },
            { "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "name": "pip-fw",
              "location": "westeurope", "properties": { "ipAddress": "20.61.20.5" } },
            { "type": "Microsoft.Network/azureFirewalls", "apiVersion": "2024-05-01", "name": "fw",
              "location": "westeurope", "properties": {
                "ipConfigurations": [{ "name": "c", "properties": {
                    "subnet": { "id": sub("vnet", "AzureFirewallSubnet") }, "privateIPAddress": "10.9.0.4",
                    "publicIPAddress": { "id": "[resourceId('Microsoft.Network/publicIPAddresses', 'pip-fw')]" } } }],
                "natRuleCollections": [{ "name": "publish", "properties": {
                    "priority": 100, "action": { "type": "Dnat" },
                    "rules": [
                        { "name": "web", "protocols": ["TCP"], "sourceAddresses": ["*"],
                          "destinationAddresses": ["20.61.20.5"], "destinationPorts": ["443"],
                          "translatedAddress": "10.9.1.4", "translatedPort": "8443" },
                        { "name": "by-name", "protocols": ["TCP"], "sourceAddresses": ["*"],
                          "destinationAddresses": ["20.61.20.5"], "destinationPorts": ["80"],
                          "translatedFqdn": "app.contoso.example", "translatedPort": 8080 } ] } }] } }
        ]
    });
    let r = import(
        &[Input::new("dnat.json", template.to_string())],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let c = &r.fixture.firewalls[0].rule_collection_groups[0].rule_collections[0];
    assert_eq!(c.kind.as_str(), "Dnat");
    let web = &c.rules[0];
    assert_eq!(web.translated_address.as_deref(), Some("10.9.1.4"));
    assert_eq!(web.translated_port.as_deref(), Some("8443"));
    let by_name = &c.rules[1];
    assert_eq!(
        by_name.translated_fqdn.as_deref(),
        Some("app.contoso.example")
    );
    assert_eq!(by_name.translated_port.as_deref(), Some("8080"));
    round_trip(&r);
    // The imported firewall translates 20.61.20.5:443 to 10.9.1.4:8443.
    let t = build(&r.fixture);
    let d = t.decide(&Flow::tcp(ip("52.1.2.3"), 60000, ip("20.61.20.5"), 443));
    assert_eq!(d.code, VerdictCode::Allowed);
    let x = d.dnat.expect("translated");
    assert_eq!((x.destination, x.port), (ip("10.9.1.4"), 8443));
    let d = t.decide(&Flow::tcp(ip("52.1.2.3"), 60000, ip("20.61.20.5"), 22));
    assert_eq!(d.code, VerdictCode::FirewallDenied);
}
