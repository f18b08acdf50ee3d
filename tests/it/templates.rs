//! `vnetsim import` says what happened (issue 17): the validation `validate` runs, kept apart
//! from the import's own findings; exit codes 0 written / 1 written with error findings / 2 bad
//! input; unknowns grouped by cause and resource; Bicep refused with the command that compiles
//! it; `--set SUBJECT=VALUE` (and `set = {…}` in expectations files) for deployment-time
//! unknowns.

use serde_json::Value;

use crate::support::{arg, cli, stop_cleanly, tempdir, write};

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

/// An NSG whose rule names `ContosoPartnerEdge` (a private tag): not in the built-in
/// `ServiceTags_Public` table (an error finding),
/// in the table given with `--service-tags`.
const TAG_TEMPLATE: &str = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "resources": [{
    "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2024-05-01", "name": "nsg-b", "location": "westeurope",
    "properties": { "securityRules": [{ "name": "gm", "properties": {
      "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
      "sourceAddressPrefix": "ContosoPartnerEdge", "sourcePortRange": "*",
      "destinationAddressPrefix": "*", "destinationPortRange": "443" } }] }
  }]
}"#;

const GM_TAGS: &str = r#"{"changeNumber": 1, "cloud": "Public", "values": [
  {"name": "ContosoPartnerEdge", "id": "ContosoPartnerEdge", "properties": {"changeNumber": 1, "platform": "Azure", "addressPrefixes": ["20.37.158.0/23"]}}
]}"#;

#[test]
fn import_runs_validation_and_exits_1_on_error_findings() {
    let dir = tempdir();
    let t = write(dir.path(), "nsg.json", TAG_TEMPLATE);
    let r = cli(&["import", arg(&t), "--output", "json"]);
    // Written (the TOML is in the report), but the topology has an error finding.
    r.expect_code(1);
    let j = r.json();
    assert!(j["toml"].as_str().unwrap().contains("ContosoPartnerEdge"));
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

/// A backend behind a private endpoint: its public name (`private_link_fqdn`) resolves through
/// the linked `privatelink` zone to the endpoint's address. `orders` is reachable; `billing`
/// sits behind a rule of the integration subnet's NSG.
const PE_BACKEND: &str = r#"
[[vnets]]
name = "vnet-app"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["vnet-hub"]

  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"

[[vnets]]
name = "vnet-hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["vnet-app"]

  [[vnets.subnets]]
  name = "snet-pe"
  address_prefix = "10.1.1.0/24"

[[nsgs]]
name = "nsg-apim"

  [[nsgs.security_rules]]
  name = "deny-billing"
  priority = 100
  direction = "Outbound"
  access = "Deny"
  protocol = "Tcp"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "10.1.1.5/32"
  destination_port_range = "80"

[[hosts]]
name = "pe-orders"
address = "10.1.1.4"
kind = "private-endpoint"
dns = ["orders.privatelink.azurewebsites.net"]
private_link_fqdn = "orders.azurewebsites.net"
public_network_access = "Disabled"
services = [{ port = 80, serve = "echo" }]

[[hosts]]
name = "pe-billing"
address = "10.1.1.5"
kind = "private-endpoint"
dns = ["billing.privatelink.azurewebsites.net"]
private_link_fqdn = "billing.azurewebsites.net"
services = [{ port = 80, serve = "echo" }]

[[private_dns_zones]]
name = "privatelink.azurewebsites.net"
links = ["vnet-app", "vnet-hub"]

[apim]
name = "apim-pe"
sku = "StandardV2"
region = "westeurope"
virtual_network = "integration"
subnet = "vnet-app/snet-apim"

[[apis]]
name = "orders"
path = "/orders"
backend = "http://orders.azurewebsites.net"

[[apis]]
name = "billing"
path = "/billing"
backend = "http://billing.azurewebsites.net"
"#;

#[tokio::test]
async fn up_to_a_backend_behind_a_private_endpoint_agrees_with_check() {
    use crate::one_answer::{client, up};
    let dir = tempdir();
    let fx = write(dir.path(), "pe.toml", PE_BACKEND);
    cli(&["validate", arg(&fx)]).expect_code(0);
    let cases = [
        ("orders", "orders.azurewebsites.net", "ALLOWED", 200u16),
        ("billing", "billing.azurewebsites.net", "NSG_DENIED", 502),
    ];
    let ready = dir.path().join("ready.json");
    let (child, doc) = up(&[arg(&fx)], &ready);
    let gw = client(doc["gateway_url"].as_str().unwrap());
    for (api, name, code, status) in cases {
        let to = format!("{name}:80");
        let c = cli(&[
            "check",
            arg(&fx),
            "--from",
            "apim",
            "--to",
            &to,
            "--output",
            "json",
        ]);
        let j = c.json();
        assert_eq!(j["code"], code, "check {api}: {j}");
        // The public name resolved privately, to the endpoint.
        assert_eq!(j["resolved"]["via"], "private-zone", "{api}: {j}");
        let r = gw.get(&format!("/{api}/probe")).await.unwrap();
        assert_eq!(r.status, status, "up {api}: {}", r.text());
        assert_eq!(doc["backends"][api]["code"], code, "up's table: {api}");
        if status != 200 {
            assert_eq!(r.problem().unwrap().code, code, "{api}");
        }
    }
    stop_cleanly(child, "up pe.toml");
}

/// The same story from an ARM template (`fixtures/arm/private-endpoint-backend.json`): the APIs'
/// `serviceUrl`s name the public names two private endpoints serve, so the import gives those
/// endpoints the echo backends (the APIs are mapped before the endpoints exist, the backends are
/// attached after); `up` serves them and agrees with `check`.
#[tokio::test]
async fn up_to_an_arm_backend_behind_a_private_endpoint_agrees_with_check() {
    use crate::one_answer::{client, up};
    const T: &str = "fixtures/arm/private-endpoint-backend.json";
    cli(&["validate", T]).expect_code(0);
    let cases = [
        (
            "orders",
            "storders.blob.core.windows.net",
            "ALLOWED",
            200u16,
        ),
        (
            "billing",
            "stbilling.blob.core.windows.net",
            "NSG_DENIED",
            502,
        ),
    ];
    let dir = tempdir();
    let ready = dir.path().join("ready.json");
    let (child, doc) = up(&[T], &ready);
    let gw = client(doc["gateway_url"].as_str().unwrap());
    for (api, name, code, status) in cases {
        let to = format!("{name}:80");
        let j = cli(&[
            "check", T, "--from", "apim", "--to", &to, "--output", "json",
        ])
        .json();
        assert_eq!(j["code"], code, "check {api}: {j}");
        assert_eq!(j["resolved"]["via"], "private-zone", "{api}: {j}");
        assert_eq!(
            j["resolved"]["address"],
            if api == "orders" {
                "10.1.1.4"
            } else {
                "10.1.1.5"
            },
            "{api}: {j}"
        );
        let r = gw.get(&format!("/{api}/probe")).await.unwrap();
        assert_eq!(r.status, status, "up {api}: {}", r.text());
        assert_eq!(doc["backends"][api]["code"], code, "up's table: {api}");
        if status != 200 {
            assert_eq!(r.problem().unwrap().code, code, "{api}");
        }
    }
    stop_cleanly(child, "up private-endpoint-backend.json");
}
