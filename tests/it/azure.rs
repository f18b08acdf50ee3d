//! Azure inputs through the CLI (issue 6): `validate`, `check`, `test` and `up` on ARM templates,
//! parameters files and exported resources from `fixtures/arm/` (detected from content, files,
//! folders, repeated `--input`), the shared import flags, `vnetsim import` (round trip to TOML
//! with identical verdicts, no overwrite without `--force`), and precise errors for bad
//! templates.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vnetsim::client::Client;

use crate::support::{
    arg, cli, fixture, stop_cleanly, tempdir, without_locations, write, Run, TINY_STORAGE_ADDRESS,
    TINY_TAGS,
};

/// The tiny service tag table plus `AzureMonitor`, which the integration template's rules name.
fn tags_for_template(dir: &Path) -> PathBuf {
    let mut doc: Value = serde_json::from_str(TINY_TAGS).unwrap();
    doc["values"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "AzureMonitor", "id": "AzureMonitor", "properties": {"changeNumber": 1,
             "platform": "Azure", "addressPrefixes": ["93.184.218.0/24"]}}
        ));
    write(dir, "tags.json", &doc.to_string())
}

const TEMPLATE: &str = "fixtures/arm/apim-integration.json";
const PARAMS: &str = "fixtures/arm/apim-integration.parameters.json";
const EXPORTS: &str = "fixtures/arm/exports";
const UNKNOWN_RULE: &str = "fixtures/arm/unknown-rule.json";

fn check(inputs: &[&str], from: &str, to: &str) -> Run {
    let mut args = vec!["check"];
    args.extend_from_slice(inputs);
    args.extend_from_slice(&["--from", from, "--to", to, "--output", "json"]);
    cli(&args)
}

/// `(verdict, code, "nsg / rule")` of a `check --output json` run (exit 0 for Allow, else 1).
fn verdict(inputs: &[&str], from: &str, to: &str) -> (String, String, String) {
    let r = check(inputs, from, to);
    let j = r.json();
    let expected = if j["verdict"] == "Allow" { 0 } else { 1 };
    r.expect_code(expected);
    let rule = match &j["decided_by"] {
        Value::Null => String::new(),
        d => format!(
            "{} / {}",
            d["nsg"].as_str().unwrap_or(""),
            d["rule"].as_str().unwrap_or("")
        ),
    };
    (
        j["verdict"].as_str().unwrap().to_string(),
        j["code"].as_str().unwrap().to_string(),
        rule,
    )
}

#[track_caller]
fn assert_verdict(inputs: &[&str], from: &str, to: &str, v: &str, code: &str, rule: &str) {
    let (gv, gc, gr) = verdict(inputs, from, to);
    assert_eq!(
        (gv.as_str(), gc.as_str()),
        (v, code),
        "{inputs:?} {from} -> {to}"
    );
    if !rule.is_empty() {
        assert_eq!(gr, rule, "{inputs:?} {from} -> {to}");
    }
}

fn codes(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap().to_string())
        .collect()
}

// === validate ===

#[test]
fn validate_template_with_parameters_file_lists_ignored_and_assumptions() {
    let r = cli(&[
        "validate",
        TEMPLATE,
        "--parameters",
        PARAMS,
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["valid"], true);
    let ignored = j["ignored"].as_array().unwrap();
    assert_eq!(ignored.len(), 1, "{j}");
    assert_eq!(ignored[0]["type"], "Microsoft.Insights/components");
    assert_eq!(ignored[0]["pointer"], "/resources/11");
    assert_eq!(j["unknowns"].as_array().unwrap().len(), 0);
    let a = codes(&j["assumptions"]);
    assert!(
        a.contains(&"ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS".to_string())
            && a.contains(&"ASSUMPTION_DEPLOYMENT_SCOPE_DEFAULTS".to_string())
            && a.contains(&"ASSUMPTION_APIM_SOURCE_ADDRESS".to_string()),
        "{a:?}"
    );
    // Text lists the same, under headings.
    let t = cli(&["validate", TEMPLATE, "--parameters", PARAMS]);
    t.expect_code(0);
    assert!(t.stdout.contains("Ignored resources (1):"), "{}", t.stdout);
    assert!(
        t.stdout
            .contains("Microsoft.Insights/components `contoso-appinsights`"),
        "{}",
        t.stdout
    );
    assert!(t.stdout.contains("ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS"));
    assert!(t.stdout.contains(": valid — 0 errors"), "{}", t.stdout);
}

#[test]
fn a_full_deployment_scope_drops_the_scope_assumption() {
    let r = cli(&[
        "validate",
        TEMPLATE,
        "--subscription-id",
        "11111111-2222-3333-4444-555555555555",
        "--resource-group",
        "rg-prod",
        "--location",
        "northeurope",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let a = codes(&r.json()["assumptions"]);
    assert!(
        !a.contains(&"ASSUMPTION_DEPLOYMENT_SCOPE_DEFAULTS".to_string()),
        "{a:?}"
    );
}

#[test]
fn validate_a_folder_of_exports() {
    let r = cli(&["validate", EXPORTS, "--output", "json"]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["fixture"], EXPORTS);
    assert_eq!(
        codes(&j["findings"]),
        ["PEERING_NOT_CONNECTED"],
        "the peer VNet is not exported"
    );
    // Addresses were in the exports: no import assumption.
    let a = codes(&j["assumptions"]);
    assert!(
        !a.iter().any(|c| c == "ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS"),
        "{a:?}"
    );
}

#[test]
fn unknown_values_are_listed_with_position_and_pointer() {
    let r = cli(&["validate", UNKNOWN_RULE, "--output", "json"]);
    r.expect_code(0);
    let j = r.json();
    let u = j["unknowns"].as_array().unwrap();
    assert_eq!(u.len(), 1, "{j}");
    assert_eq!(
        u[0]["pointer"],
        "/resources/1/properties/securityRules/1/properties/destinationPortRange"
    );
    assert_eq!(u[0]["line"], 42);
    assert!(codes(&j["findings"]).contains(&"UNKNOWN_VALUE".to_string()));
    let t = cli(&["validate", UNKNOWN_RULE]);
    assert!(
        t.stdout.contains("fixtures/arm/unknown-rule.json:42:39"),
        "{}",
        t.stdout
    );
    assert!(t.stdout.contains("1 unknown value"), "{}", t.stdout);
}

// === check: parameters, folders, --input ===

#[test]
fn template_verdicts_follow_the_parameters() {
    let apim = "apim";
    // Defaults: two backends, port 443 only, no tools subnet.
    assert_verdict(&[TEMPLATE], apim, "10.20.2.10:443", "Allow", "ALLOWED", "");
    assert_verdict(
        &[TEMPLATE],
        apim,
        "10.20.2.4:8443",
        "Deny",
        "NSG_DENIED",
        "contoso-backend-nsg / securityRules/Deny-Vnet-Inbound",
    );
    let r = check(&[TEMPLATE], "10.20.3.4", "10.20.2.10:22");
    r.expect_code(2);
    // The parameters file, as --parameters or detected among the inputs, adds the tools subnet.
    for inputs in [
        vec![TEMPLATE, "--parameters", PARAMS],
        vec![TEMPLATE, "--input", PARAMS],
        vec![PARAMS, "--input", TEMPLATE],
    ] {
        assert_verdict(
            &inputs,
            "10.20.3.4",
            "10.20.2.10:22",
            "Allow",
            "ALLOWED",
            "contoso-backend-nsg / securityRules/Allow-Ssh-From-Tools",
        );
        assert_verdict(
            &inputs,
            apim,
            "10.20.2.4:8443",
            "Allow",
            "ALLOWED",
            "contoso-backend-nsg / securityRules/Allow-Apim-Inbound",
        );
    }
}

#[test]
fn parameter_values_are_read_per_declared_type() {
    // int
    assert_verdict(
        &[TEMPLATE, "--parameter", "backendCount=3"],
        "apim",
        "10.20.2.5:443",
        "Allow",
        "ALLOWED",
        "",
    );
    // array (JSON) and bool
    assert_verdict(
        &[TEMPLATE, "--parameter", r#"backendPorts=["443","8443"]"#],
        "apim",
        "10.20.2.4:8443",
        "Allow",
        "ALLOWED",
        "contoso-backend-nsg / securityRules/Allow-Apim-Inbound",
    );
    assert_verdict(
        &[
            TEMPLATE,
            "--parameter",
            "allowSsh=true",
            "--parameter",
            "deployToolsSubnet=true",
        ],
        "10.20.3.4",
        "10.20.2.10:22",
        "Allow",
        "ALLOWED",
        "contoso-backend-nsg / securityRules/Allow-Ssh-From-Tools",
    );
    // --parameter wins over --parameters.
    assert_verdict(
        &[
            TEMPLATE,
            "--parameters",
            PARAMS,
            "--parameter",
            "allowSsh=false",
        ],
        "10.20.3.4",
        "10.20.2.10:22",
        "Deny",
        "NSG_DENIED",
        "contoso-backend-nsg / securityRules/Deny-Vnet-Inbound",
    );
    // A value of the wrong type, a value outside allowedValues, an undeclared name.
    for (p, code) in [
        ("backendCount=three", "ARM_PARAMETER_TYPE"),
        ("allowSsh=yes", "ARM_PARAMETER_TYPE"),
        ("apimSku=Gold", "ARM_PARAMETER_NOT_ALLOWED"),
        ("nope=1", "ARM_PARAMETER_UNDECLARED"),
    ] {
        let r = check(&[TEMPLATE, "--parameter", p], "apim", "10.20.2.10:443");
        r.expect_code(2);
        assert!(r.stderr.contains(code), "{p}: {}", r.stderr);
        assert!(r.stderr.contains("--parameter"), "{p}: {}", r.stderr);
    }
    // Not NAME=VALUE at all: a usage error.
    let r = check(
        &[TEMPLATE, "--parameter", "backendCount"],
        "apim",
        "10.20.2.10:443",
    );
    r.expect_code(2);
    assert!(r.stderr.contains("NAME=VALUE"), "{}", r.stderr);
}

const EXPORT_FILES: [&str; 5] = [
    "fixtures/arm/exports/vnet-prod.json",
    "fixtures/arm/exports/nsg-list-cli.json",
    "fixtures/arm/exports/nic-app-1-cli.json",
    "fixtures/arm/exports/apim-prod-cli.json",
    "fixtures/arm/exports/apim-prod-api-orders-cli.json",
];

const EXPORT_FLOWS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "apim",
        "10.30.2.4:8080",
        "Allow",
        "ALLOWED",
        "nsg-app / securityRules/AllowApimInbound",
    ),
    (
        "apim",
        "10.30.2.4:22",
        "Deny",
        "NSG_DENIED",
        "nsg-app / securityRules/DenyVnetInbound",
    ),
    (
        "10.30.1.4",
        "8.8.8.8:443",
        "Deny",
        "NSG_DENIED",
        "nsg-apim / securityRules/DenyInternetOutbound",
    ),
    // A host name of the exports resolves; its own NSG denies VNet traffic to itself.
    (
        "nic-app-1",
        "10.30.2.4:8080",
        "Deny",
        "NSG_DENIED",
        "nsg-app / securityRules/DenyVnetInbound",
    ),
];

#[test]
fn a_folder_and_repeated_inputs_give_the_same_verdicts() {
    let mut repeated: Vec<&str> = vec![EXPORT_FILES[0]];
    for f in &EXPORT_FILES[1..] {
        repeated.extend_from_slice(&["--input", f]);
    }
    // The folder plus one of its files again: an identical duplicate is fine.
    let folder_and_file = [EXPORTS, "--input", EXPORT_FILES[2]];
    for (from, to, v, code, rule) in EXPORT_FLOWS {
        assert_verdict(&[EXPORTS], from, to, v, code, rule);
        assert_eq!(verdict(&repeated, from, to), verdict(&[EXPORTS], from, to));
        assert_eq!(
            verdict(&folder_and_file, from, to),
            verdict(&[EXPORTS], from, to)
        );
    }
}

#[test]
fn exports_without_the_vnet_fail_with_the_missing_reference() {
    let r = check(
        &[EXPORT_FILES[2], "--input", EXPORT_FILES[1]],
        "apim",
        "10.30.2.4:8080",
    );
    r.expect_code(2);
    assert!(r.stderr.contains("ARM_MISSING_REFERENCE"), "{}", r.stderr);
    assert!(r.stderr.contains("nic-app-1-cli.json"), "{}", r.stderr);
}

#[test]
fn unknown_rules_make_flows_indeterminate() {
    assert_verdict(
        &[UNKNOWN_RULE],
        "apim",
        "10.50.2.10:443",
        "Allow",
        "ALLOWED",
        "nsg-app / securityRules/Allow-Apim-Https",
    );
    assert_verdict(
        &[UNKNOWN_RULE],
        "apim",
        "10.50.2.10:8080",
        "Indeterminate",
        "UNKNOWN_VALUE",
        "nsg-app / securityRules/Allow-Partner-Port",
    );
    // A source the unknown rule does not cover is decided as usual.
    assert_verdict(
        &[UNKNOWN_RULE],
        "10.50.2.10",
        "10.50.2.10:8080",
        "Deny",
        "NSG_DENIED",
        "nsg-app / securityRules/Deny-Vnet-Inbound",
    );
}

#[test]
fn service_tags_override_applies_to_azure_inputs() {
    let dir = tempdir();
    let tags = tags_for_template(dir.path());
    let to = format!("{TINY_STORAGE_ADDRESS}:443");
    // Built-in table: the address is Internet, denied by the template's rule.
    assert_verdict(
        &[TEMPLATE],
        "apim",
        &to,
        "Deny",
        "NSG_DENIED",
        "contoso-apim-nsg / securityRules/Deny-Internet-Outbound",
    );
    // Tiny table: it is Storage, allowed by the Storage rule.
    assert_verdict(
        &[TEMPLATE, "--service-tags", arg(&tags)],
        "apim",
        &to,
        "Allow",
        "ALLOWED",
        "contoso-apim-nsg / securityRules/Allow-Storage-Outbound",
    );
}

#[test]
fn fixtures_stand_alone_and_take_no_import_options() {
    let r = cli(&[
        "validate",
        "fixtures/default.toml",
        "--location",
        "westeurope",
    ]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("--location applies only to Azure inputs"),
        "{}",
        r.stderr
    );
    let r = cli(&["validate", "fixtures/default.toml", "--input", TEMPLATE]);
    r.expect_code(2);
    assert!(r.stderr.contains("fixtures/default.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("not an ARM template"), "{}", r.stderr);
    // A ServiceTags file is not a topology input.
    let dir = tempdir();
    let tags = write(dir.path(), "tags.json", TINY_TAGS);
    let r = cli(&["validate", TEMPLATE, "--input", arg(&tags)]);
    r.expect_code(2);
    assert!(r.stderr.contains("--service-tags"), "{}", r.stderr);
    // An empty folder says what it expected.
    let empty = tempdir();
    let r = cli(&["validate", arg(empty.path())]);
    r.expect_code(2);
    assert!(r.stderr.contains("no *.json file"), "{}", r.stderr);
}

// === bad templates ===

#[test]
fn bad_templates_exit_2_with_file_line_col_and_pointer() {
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["fixtures/arm/bad/broken-json.json"],
            "fixtures/arm/bad/broken-json.json:13:",
            "(/resources/0/properties/securityRules/0/properties/destinationPortRange)",
        ),
        (
            &["fixtures/arm/bad/unknown-function.json"],
            "fixtures/arm/bad/unknown-function.json:16:59",
            "(/resources/0/properties/subnets/0/properties/addressPrefix)",
        ),
        (
            &[
                "fixtures/arm/bad/wrong-parameter-type.json",
                "--parameters",
                "fixtures/arm/bad/wrong-parameter-type.parameters.json",
            ],
            "fixtures/arm/bad/wrong-parameter-type.parameters.json:5:",
            "(/parameters/ruleCount/value)",
        ),
        (
            &[
                "fixtures/arm/bad/wrong-parameter-type.json",
                "--parameter",
                "ruleCount=two",
            ],
            "--parameter",
            "(/ruleCount)",
        ),
        (
            &["fixtures/arm/bad/missing-parameter.json"],
            "fixtures/arm/bad/missing-parameter.json:6:",
            "(/parameters/nsgName)",
        ),
    ];
    for (inputs, at, pointer) in cases {
        for cmd in ["validate", "check", "import"] {
            let mut args = vec![cmd];
            args.extend_from_slice(inputs);
            if cmd == "check" {
                args.extend_from_slice(&["--from", "apim", "--to", "10.0.0.4:443"]);
            }
            let r = cli(&args);
            r.expect_code(2);
            assert!(
                r.stderr.starts_with("error: "),
                "{cmd} {inputs:?}: {}",
                r.stderr
            );
            assert!(r.stderr.contains(at), "{cmd} {inputs:?}: {}", r.stderr);
            assert!(r.stderr.contains(pointer), "{cmd} {inputs:?}: {}", r.stderr);
            assert!(r.stdout.is_empty(), "{cmd} {inputs:?}: {}", r.stdout);
        }
    }
    let r = cli(&["validate", "fixtures/arm/bad/missing-parameter.json"]);
    assert!(
        r.stderr.contains("--parameter nsgName=VALUE"),
        "{}",
        r.stderr
    );
}

// === import ===

/// Imports `inputs` (with `extra` flags) into `dir/name` and returns the path.
fn import_to(dir: &Path, name: &str, inputs: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["import"];
    args.extend_from_slice(inputs);
    args.extend_from_slice(&["-o", arg(&out)]);
    cli(&args).expect_code(0);
    out
}

/// The whole `check --output json` document for a flow.
/// `check --output json`, rule locations left out: they name each run's own input files.
fn check_json(inputs: &[&str], from: &str, to: &str) -> (i32, Value) {
    let r = check(inputs, from, to);
    (r.code, without_locations(r.json()))
}

#[test]
fn import_round_trips_to_identical_verdicts() {
    let dir = tempdir();
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "defaults.toml",
            vec![TEMPLATE],
            vec![
                ("apim", "10.20.2.10:443"),
                ("apim", "10.20.2.4:8443"),
                ("apim", "10.20.2.10:22"),
                ("apim", "8.8.8.8:443"),
                ("apim", "contoso-backend-2:443"),
                ("10.20.2.10", "8.8.8.8:443"),
                ("10.20.2.10", "10.20.2.4:443"),
            ],
        ),
        (
            "with-parameters.toml",
            vec![
                TEMPLATE,
                "--parameters",
                PARAMS,
                "--parameter",
                "backendCount=4",
            ],
            vec![
                ("apim", "10.20.2.4:8443"),
                ("apim", "10.20.2.6:8443"),
                ("10.20.3.4", "10.20.2.10:22"),
                ("10.20.3.4", "10.20.2.5:443"),
                ("apim", "8.8.8.8:80"),
            ],
        ),
        (
            "exports.toml",
            vec![EXPORTS],
            EXPORT_FLOWS.iter().map(|f| (f.0, f.1)).collect(),
        ),
        (
            "unknown-rule.toml",
            vec![UNKNOWN_RULE],
            vec![
                ("apim", "10.50.2.10:443"),
                ("apim", "10.50.2.10:8080"),
                ("10.50.2.10", "10.50.2.10:8080"),
            ],
        ),
    ];
    for (name, inputs, flows) in cases {
        let toml = import_to(dir.path(), name, &inputs);
        let toml = arg(&toml);
        let text = std::fs::read_to_string(toml).unwrap();
        assert!(
            text.starts_with("# Imported by `vnetsim import` from: "),
            "{text}"
        );
        for (from, to) in flows {
            let arm = check_json(&inputs, from, to);
            let back = check_json(&[toml], from, to);
            assert_eq!(arm, back, "{name}: {from} -> {to}");
        }
        // The TOML validates like the inputs (the import's own findings aside).
        let v = cli(&["validate", toml, "--output", "json"]);
        assert_eq!(v.json()["valid"], true, "{name}: {}", v.stdout);
    }
}

#[test]
fn import_writes_markers_and_lists_everything() {
    let r = cli(&["import", UNKNOWN_RULE]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(
            "\"<unknown:/resources/1/properties/securityRules/1/properties/destinationPortRange>\""
        ),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("Unknown values (1"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown-rule.json:42:39"), "{}", r.stderr);
    assert!(
        r.stderr.contains("ASSUMPTION_DEPLOYMENT_SCOPE_DEFAULTS"),
        "{}",
        r.stderr
    );

    let j = cli(&["import", TEMPLATE, "--output", "json"]);
    j.expect_code(0);
    let doc = j.json();
    assert_eq!(doc["ignored"].as_array().unwrap().len(), 1);
    assert_eq!(
        codes(&doc["assumptions"]),
        [
            "ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS",
            "ASSUMPTION_DEPLOYMENT_SCOPE_DEFAULTS"
        ]
    );
    assert!(doc["toml"].as_str().unwrap().contains("[[vnets]]"));
    assert_eq!(doc["output"], Value::Null);

    // Import findings (the peering to a VNet that was not exported) are listed too.
    let e = cli(&["import", EXPORTS]);
    e.expect_code(0);
    assert!(e.stderr.contains("PEERING_NOT_CONNECTED"), "{}", e.stderr);
}

#[test]
fn import_refuses_to_overwrite_without_force() {
    let dir = tempdir();
    let out = write(dir.path(), "topology.toml", "# mine\n");
    let r = cli(&["import", TEMPLATE, "-o", arg(&out)]);
    r.expect_code(2);
    assert!(r.stderr.contains("topology.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# mine\n");
    cli(&["import", TEMPLATE, "-o", arg(&out), "--force"]).expect_code(0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("contoso-vnet"), "{text}");
    // A failed import leaves an existing file alone even with --force.
    cli(&[
        "import",
        "fixtures/arm/bad/unknown-function.json",
        "-o",
        arg(&out),
        "--force",
    ])
    .expect_code(2);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}

#[test]
fn import_with_service_tags_names_the_file_relative_to_the_output() {
    let dir = tempdir();
    let tags = tags_for_template(dir.path());
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let out = dir.path().join("out/topology.toml");
    cli(&[
        "import",
        TEMPLATE,
        "--service-tags",
        arg(&tags),
        "-o",
        arg(&out),
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("file = \"../tags.json\""), "{text}");
    let to = format!("{TINY_STORAGE_ADDRESS}:443");
    assert_eq!(
        check_json(&[arg(&out)], "apim", &to),
        check_json(&[TEMPLATE, "--service-tags", arg(&tags)], "apim", &to)
    );
}

// === test ===

#[test]
fn expectations_on_an_azure_topology_with_import_options() {
    let dir = tempdir();
    let template = fixture("arm/apim-integration.json");
    let params = fixture("arm/apim-integration.parameters.json");
    let text = format!(
        r#"topology = {template:?}
parameters = [{params:?}]
parameter = {{ backendCount = 4 }}
resource_group = "rg-prod"

[[expect]]
name = "jump box reaches a backend over SSH"
from = "10.20.3.4"
to = "10.20.2.10:22"
verdict = "Allow"
rule = "securityRules/Allow-Ssh-From-Tools"

[[expect]]
name = "the fourth backend takes 8443"
from = "apim"
to = "10.20.2.6:8443"
verdict = "Allow"
code = "ALLOWED"

[[expect]]
name = "no internet from the instance"
from = "apim"
to = "8.8.8.8:443"
verdict = "Deny"
rule = "securityRules/Deny-Internet-Outbound"
"#
    );
    let exp = write(dir.path(), "azure.expect.toml", &text);
    let r = cli(&["test", arg(&exp), "--output", "json"]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(
        (j["total"].as_u64(), j["failed"].as_u64()),
        (Some(3), Some(0))
    );
    // Command-line options win over the file's: with three backends the fourth is gone.
    let r = cli(&["test", arg(&exp), "--parameter", "backendCount=3"]);
    r.expect_code(1);
    assert!(
        r.stdout.contains("2 of 3 expectations passed, 1 failed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("the fourth backend takes 8443"),
        "{}",
        r.stdout
    );
    // Indeterminate is a verdict an expectation can name.
    let unknown = fixture("arm/unknown-rule.json");
    let text = format!(
        "topology = {unknown:?}\n[[expect]]\nname = \"partner port\"\nfrom = \"apim\"\nto = \"10.50.2.10:8080\"\nverdict = \"Indeterminate\"\ncode = \"UNKNOWN_VALUE\"\n"
    );
    let exp = write(dir.path(), "unknown.expect.toml", &text);
    cli(&["test", arg(&exp)]).expect_code(0);
    // Import options for a TOML topology are refused at the `topology` value.
    let text = format!(
        "topology = {:?}\nlocation = \"westeurope\"\n[[expect]]\nname = \"n\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\n",
        fixture("default.toml")
    );
    let exp = write(dir.path(), "toml.expect.toml", &text);
    let r = cli(&["test", arg(&exp)]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("toml.expect.toml:1:12: topology: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--location"), "{}", r.stderr);
}

// === up ===

fn wait_for(path: &Path, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).expect("complete JSON (written atomically)");
        }
        assert!(
            start.elapsed() < limit,
            "no ready file at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `vnetsim up ARGS --ready-file ...`, hands the ready document to `body`, then SIGTERM.
async fn with_up<F, Fut>(args: &[&str], body: F)
where
    F: FnOnce(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempdir();
    let ready = dir.path().join("ready.json");
    let child = Command::new(env!("CARGO_BIN_EXE_vnetsim"))
        .arg("up")
        .args(args)
        .args(["--ready-file", arg(&ready)])
        .current_dir(crate::support::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Whatever happens below, the child does not outlive the test.
    struct Guard(Option<std::process::Child>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(c) = &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut guard = Guard(Some(child));
    let doc = wait_for(&ready, Duration::from_secs(30));
    body(doc).await;
    let child = guard.0.take().unwrap();
    stop_cleanly(child, "up with Azure inputs");
}

fn client_for(doc: &Value) -> Client {
    let url = doc["gateway_url"].as_str().unwrap();
    Client::new(
        url.trim_start_matches("http://").parse().unwrap(),
        "gateway.test",
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_apis_of_an_arm_template() {
    with_up(&[TEMPLATE], |doc| async move {
        let b = &doc["backends"];
        assert_eq!(b["orders"]["verdict"], "Allow", "{doc}");
        assert_eq!(b["inventory"]["code"], "NSG_DENIED", "{doc}");
        let c = client_for(&doc);
        let ok = c.get("/orders/42").await.unwrap();
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(ok.echo().unwrap().host, "contoso-backend-1");
        let denied = c.get("/inventory/v1/items").await.unwrap();
        let p = denied.problem().expect("a problem body");
        assert_eq!(
            (p.code.as_str(), p.rule.as_deref()),
            ("NSG_DENIED", Some("securityRules/Deny-Vnet-Inbound"))
        );
    })
    .await;
    // With the parameters file the inventory backend's port is open.
    with_up(&[TEMPLATE, "--parameters", PARAMS], |doc| async move {
        assert_eq!(doc["backends"]["inventory"]["verdict"], "Allow", "{doc}");
        let r = client_for(&doc).get("/inventory/v1/items").await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.echo().unwrap().host, "contoso-backend-2");
    })
    .await;
}

/// A plain HTTP server on loopback that answers every request with `body`.
fn local_server(body: &'static str) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_upstream_maps_a_backend_to_a_local_server() {
    let addr = local_server("from my local orders");
    let mapping = format!("10.30.2.4:8080={addr}");
    with_up(&[EXPORTS, "--upstream", &mapping], |doc| async move {
        assert_eq!(
            doc["backends"]["orders"]["upstream"],
            addr.to_string(),
            "{doc}"
        );
        let r = client_for(&doc).get("/orders/1").await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "from my local orders");
    })
    .await;
    // A mapping that names no backend is bad input; nothing starts.
    let r = cli(&["up", EXPORTS, "--upstream", "10.99.0.1:80=127.0.0.1:9"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--upstream 10.99.0.1:80"), "{}", r.stderr);
    let r = cli(&["up", EXPORTS, "--upstream", "10.30.2.4:8080"]);
    r.expect_code(2);
    assert!(r.stderr.contains("HOST:PORT=127.0.0.1:N"), "{}", r.stderr);
}

/// Issue 18: the forced-tunnel hub and spoke as an ARM template (route tables, a firewall with
/// a policy) imports, round-trips through `vnetsim import`, and `check` gives the hand-written
/// `fixtures/forced-tunnel.toml`'s verdicts through it.
#[test]
fn forced_tunnel_template_checks_like_the_toml_fixture() {
    const FORCED: &str = "fixtures/arm/forced-tunnel.json";
    let dir = tempdir();
    let toml = import_to(dir.path(), "forced-tunnel.toml", &[FORCED]);
    let toml = arg(&toml);
    let flows = [
        ("apim", "10.0.2.4:443", "Allow", "ALLOWED"),
        ("apim", "10.0.9.4:8080", "Deny", "ROUTE_NONE"),
        ("apim", "20.50.1.20:443", "Deny", "FIREWALL_DENIED"),
        ("apim", "52.1.2.3:443", "Deny", "FIREWALL_DENIED"),
    ];
    for (from, to, v, code) in flows {
        let arm = check_json(&[FORCED], from, to);
        let back = check_json(&[toml], from, to);
        assert_eq!(arm, back, "{from} -> {to}");
        for input in [FORCED, toml, "fixtures/forced-tunnel.toml"] {
            let (gv, gc, _) = verdict(&[input], from, to);
            assert_eq!(
                (gv.as_str(), gc.as_str()),
                (v, code),
                "{input}: {from} -> {to}"
            );
        }
    }
    let v = cli(&["validate", toml, "--output", "json"]);
    assert_eq!(v.json()["valid"], true, "{}", v.stdout);
}
