//! `vnetsim import` says what happened (issue 17): the validation `validate` runs, kept apart
//! from the import's own findings; exit codes 0 written / 1 written with error findings / 2 bad
//! input; unknowns grouped by cause and resource; Bicep refused with the command that compiles
//! it; `--set SUBJECT=VALUE` (and `set = {…}` in expectations files) for deployment-time
//! unknowns.

use serde_json::Value;

use crate::support::{arg, cli, tempdir, write};

const UNKNOWN_RULE: &str = "fixtures/arm/unknown-rule.json";
const EXPORTS: &str = "fixtures/arm/exports";
const SUBJECT: &str = "nsgs/nsg-app/security_rules/Allow-Partner-Port/destination_ports";

fn codes(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// An NSG whose rule names `GatewayManager`: not in the built-in tag table (an error finding),
/// in the table given with `--service-tags`.
const TAG_TEMPLATE: &str = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "resources": [{
    "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2024-05-01", "name": "nsg-b", "location": "westeurope",
    "properties": { "securityRules": [{ "name": "gm", "properties": {
      "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
      "sourceAddressPrefix": "GatewayManager", "sourcePortRange": "*",
      "destinationAddressPrefix": "*", "destinationPortRange": "443" } }] }
  }]
}"#;

const GM_TAGS: &str = r#"{"changeNumber": 1, "cloud": "Public", "values": [
  {"name": "GatewayManager", "id": "GatewayManager", "properties": {"changeNumber": 1, "platform": "Azure", "addressPrefixes": ["20.37.158.0/23"]}}
]}"#;

#[test]
fn import_runs_validation_and_exits_1_on_error_findings() {
    let dir = tempdir();
    let t = write(dir.path(), "nsg.json", TAG_TEMPLATE);
    let r = cli(&["import", arg(&t), "--output", "json"]);
    // Written (the TOML is in the report), but the topology has an error finding.
    r.expect_code(1);
    let j = r.json();
    assert!(j["toml"].as_str().unwrap().contains("GatewayManager"));
    assert_eq!(j["valid"], false);
    assert_eq!(codes(&j["findings"]), ["RULE_UNKNOWN_SERVICE_TAG"]);
    assert!(codes(&j["import_findings"]).is_empty());
    // With the tag table that has the tag, the same import is clean.
    let tags = write(dir.path(), "tags.json", GM_TAGS);
    let ok = cli(&[
        "import",
        arg(&t),
        "--service-tags",
        arg(&tags),
        "--output",
        "json",
    ]);
    ok.expect_code(0);
    assert_eq!(ok.json()["findings"], Value::Array(Vec::new()));
    // Text: the validation is listed apart and the exit code is said.
    let text = cli(&["import", arg(&t)]);
    text.expect_code(1);
    assert!(
        text.stderr.contains("Validation of the imported topology"),
        "{}",
        text.stderr
    );
    assert!(text.stderr.contains("RULE_UNKNOWN_SERVICE_TAG"));
}

#[test]
fn import_findings_and_validation_findings_are_apart() {
    let r = cli(&["import", EXPORTS, "--output", "json"]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(codes(&j["import_findings"]), ["PEERING_NOT_CONNECTED"]);
    assert!(!codes(&j["findings"]).contains(&"PEERING_NOT_CONNECTED".to_string()));
}

#[test]
fn unknowns_are_grouped_by_cause_and_resource() {
    let r = cli(&["import", UNKNOWN_RULE, "--output", "json"]);
    r.expect_code(0);
    let g = &r.json()["unknown_groups"];
    assert_eq!(g.as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g[0]["cause"], "reference()");
    assert_eq!(g[0]["resource"], "nsgs/nsg-app");
    assert_eq!(g[0]["count"], 1);
    assert_eq!(g[0]["subjects"][0], SUBJECT);
    let t = cli(&["import", UNKNOWN_RULE]);
    let line = t
        .stderr
        .lines()
        .find(|l| l.contains("× reference() in nsgs/nsg-app"))
        .unwrap_or_else(|| panic!("{}", t.stderr));
    assert!(
        line.contains(SUBJECT) && line.contains("unknown-rule.json:42:39"),
        "{line}"
    );
}

#[test]
fn set_supplies_a_deployment_time_value_everywhere() {
    let set = format!("{SUBJECT}=8443");
    let r = cli(&["import", UNKNOWN_RULE, "--set", &set, "--output", "json"]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["unknowns"], Value::Array(Vec::new()));
    let toml = j["toml"].as_str().unwrap();
    assert!(!toml.contains("<unknown:"), "{toml}");
    assert!(toml.contains("\"8443\""), "{toml}");
    // check takes it too: the flow the rule decides is no longer Indeterminate.
    let c = cli(&[
        "check",
        UNKNOWN_RULE,
        "--set",
        &set,
        "--from",
        "10.50.1.4",
        "--to",
        "10.50.2.10:8443",
        "--output",
        "json",
    ]);
    c.expect_code(0);
    assert_eq!(c.json()["code"], "ALLOWED", "{}", c.stdout);
    // A subject no unknown lands in is bad input naming the subjects that are unknown.
    let bad = cli(&["import", UNKNOWN_RULE, "--set", "nsgs/nsg-app/nope=1"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains(SUBJECT), "{}", bad.stderr);
    // A vnetsim fixture has no unknowns to set.
    let f = cli(&["validate", "fixtures/default.toml", "--set", "a=1"]);
    f.expect_code(2);
    assert!(f.stderr.contains("--set"), "{}", f.stderr);
}

#[test]
fn expectations_files_take_set() {
    let dir = tempdir();
    let topo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(UNKNOWN_RULE);
    let text = format!(
        "topology = {topo:?}\nset = {{ \"{SUBJECT}\" = \"8443\" }}\n\n[[expect]]\nname = \"apim subnet reaches the partner port\"\nfrom = \"10.50.1.4\"\nto = \"10.50.2.10:8443\"\nverdict = \"Allow\"\nrule = \"securityRules/Allow-Partner-Port\"\n"
    );
    let e = write(dir.path(), "u.expect.toml", &text);
    let r = cli(&["test", arg(&e)]);
    r.expect_code(0);
}

#[test]
fn bicep_is_refused_with_the_command_that_compiles_it() {
    let dir = tempdir();
    let bicep = "// a module\n@description('name')\nparam name string\nresource nsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {\n  name: name\n}\n";
    let b = write(dir.path(), "main.bicep", bicep);
    for cmd in ["validate", "import"] {
        let r = cli(&[cmd, arg(&b)]);
        r.expect_code(2);
        assert!(
            r.stderr.contains(&format!(
                "compile it first: `az bicep build --file {}`",
                arg(&b)
            )),
            "{cmd}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("TOML"), "{}", r.stderr);
    }
    // With X.json beside it, the message names it.
    write(dir.path(), "main.json", TAG_TEMPLATE);
    let r = cli(&["validate", arg(&b)]);
    assert!(r.stderr.contains("main.json"), "{}", r.stderr);
    // By content: Bicep text under another name.
    let t = write(dir.path(), "module.txt", bicep);
    let r = cli(&["validate", arg(&t)]);
    r.expect_code(2);
    assert!(r.stderr.contains("az bicep build"), "{}", r.stderr);
}
