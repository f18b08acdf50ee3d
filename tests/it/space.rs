//! `vnetsim reach`, `lint` and `diff` end to end: the JSON fields and exit codes, and
//! a SARIF log that validates against the SARIF 2.1.0 schema.

use crate::support::{cli, has_keys, tempdir, write};

#[test]
fn reach_json_has_the_contract_fields() {
    let v = cli(&["reach", "fixtures/default.toml", "--output", "json"])
        .expect_code(0)
        .json();
    has_keys(&v["query"], &["from", "to", "protocols", "ports"]);
    let classes = v["classes"].as_array().unwrap();
    assert!(!classes.is_empty());
    for c in classes {
        has_keys(
            c,
            &[
                "verdict",
                "code",
                "destinations",
                "ports",
                "protocols",
                "decided_by",
                "example",
            ],
        );
        has_keys(
            &c["example"],
            &[
                "protocol",
                "source",
                "source_port",
                "destination",
                "destination_port",
            ],
        );
        for hop in c["decided_by"].as_array().unwrap() {
            has_keys(hop, &["nsg", "rule", "access", "direction"]);
        }
    }
    // The one partner API the APIM subnet may call: Tcp 443 to 20.50.1.10, allowed.
    assert!(classes.iter().any(|c| c["verdict"] == "Allow"
        && c["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "20.50.1.10/32")
        && c["ports"] == serde_json::json!(["443"])));
}

#[test]
fn reach_to_a_name_resolves_like_check() {
    let v = cli(&[
        "reach",
        "fixtures/default.toml",
        "--to",
        "orders",
        "--ports",
        "443",
        "--output",
        "json",
    ])
    .expect_code(0)
    .json();
    let classes = v["classes"].as_array().unwrap();
    let tcp = classes
        .iter()
        .find(|c| c["protocols"] == serde_json::json!(["Tcp"]))
        .unwrap();
    assert_eq!(tcp["destinations"], serde_json::json!(["10.0.2.4/32"]));
    assert_eq!(tcp["code"], "ALLOWED");
    cli(&["reach", "fixtures/default.toml", "--to", "nope"]).expect_code(2);
    cli(&["reach", "fixtures/default.toml", "--to", "orders:443"]).expect_code(2);
}

#[test]
fn reach_into_partitions_the_sources() {
    let v = cli(&[
        "reach",
        "fixtures/default.toml",
        "--into",
        "orders",
        "--protocol",
        "tcp",
        "--output",
        "json",
    ])
    .expect_code(0)
    .json();
    assert_eq!(v["query"]["into"], "orders");
    assert_eq!(v["query"]["destination"], "10.0.2.4");
    let classes = v["classes"].as_array().unwrap();
    for c in classes {
        assert_eq!(c["destinations"], serde_json::json!(["10.0.2.4/32"]));
        assert_eq!(c["example"]["destination"], "10.0.2.4");
    }
    // Only the APIM subnet reaches orders, on 443 and 8080 — and the host node's health
    // probes from 168.63.129.16 (a platform address of the seam: AllowAzureLoadBalancerInBound).
    let allowed: Vec<_> = classes.iter().filter(|c| c["verdict"] == "Allow").collect();
    assert_eq!(allowed.len(), 2, "{allowed:#?}");
    assert_eq!(allowed[0]["sources"], serde_json::json!(["10.0.1.0/24"]));
    assert_eq!(allowed[0]["ports"], serde_json::json!(["443", "8080"]));
    assert_eq!(
        allowed[1]["sources"],
        serde_json::json!(["168.63.129.16/32"])
    );
    assert_eq!(allowed[1]["example"]["source"], "168.63.129.16");
    cli(&[
        "reach",
        "fixtures/default.toml",
        "--into",
        "orders",
        "--from",
        "apim",
    ])
    .expect_code(2);
}

#[test]
fn lint_exit_codes_follow_fail_on() {
    // The default fixture has info findings only.
    let v = cli(&["lint", "fixtures/default.toml", "--output", "json"])
        .expect_code(0)
        .json();
    let f = v["findings"].as_array().unwrap();
    assert!(!f.is_empty());
    for x in f {
        has_keys(
            x,
            &[
                "code", "severity", "nsg", "rule", "message", "hint", "related", "example",
            ],
        );
        assert!(x["rule"].as_str().unwrap().starts_with("securityRules/"));
    }
    cli(&["lint", "fixtures/default.toml", "--fail-on", "info"]).expect_code(1);
    cli(&["lint", "fixtures/nope.toml"]).expect_code(2);
    // A rule below a broader one of the same access is shadowed: a warning, exit 1.
    let dir = tempdir();
    let text = std::fs::read_to_string("fixtures/default.toml").unwrap().replace(
        "  [[nsgs.security_rules]]\n  name = \"allow-keyvault\"",
        "  [[nsgs.security_rules]]\n  name = \"shadowed\"\n  priority = 120\n  direction = \"Outbound\"\n  access = \"Allow\"\n  protocol = \"Tcp\"\n  source_address_prefix = \"VirtualNetwork\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"Storage\"\n  destination_port_range = \"443\"\n\n  [[nsgs.security_rules]]\n  name = \"allow-keyvault\"",
    );
    let p = write(dir.path(), "shadow.toml", &text);
    let v = cli(&["lint", p.to_str().unwrap(), "--output", "json"])
        .expect_code(1)
        .json();
    let s = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "RULE_SHADOWED")
        .expect("a shadowed finding");
    assert_eq!(s["rule"], "securityRules/shadowed");
    assert_eq!(
        s["related"],
        serde_json::json!(["securityRules/allow-storage"])
    );
}

#[test]
fn lint_sarif_validates_against_the_sarif_2_1_0_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/sarif-2.1.0.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let v = cli(&["lint", "fixtures/default.toml", "--output", "sarif"])
        .expect_code(0)
        .json();
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "SARIF invalid: {errors:#?}");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    // Locations are the rule's file and line.
    let loc = &results[0]["locations"][0]["physicalLocation"];
    assert!(loc["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("default.toml"));
    assert!(loc["region"]["startLine"].as_u64().unwrap() > 1);
    // ARM input: the rule's file and line in the template.
    let arm = cli(&[
        "lint",
        "fixtures/arm/apim-integration.json",
        "--output",
        "sarif",
        "--fail-on",
        "never",
    ])
    .expect_code(0)
    .json();
    assert!(validator.is_valid(&arm));
    let loc = &arm["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
    assert!(loc["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("apim-integration.json"));
    assert!(loc["region"]["startLine"].as_u64().unwrap() > 1);
    // The schema is not vacuous: a result without a message is refused.
    let mut bad = v.clone();
    bad["runs"][0]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("message");
    assert!(!validator.is_valid(&bad));
}

#[test]
fn diff_exit_codes_and_fields() {
    cli(&["diff", "fixtures/default.toml", "fixtures/default.toml"]).expect_code(0);
    let dir = tempdir();
    // Open the legacy service: drop the deny.
    let text = std::fs::read_to_string("fixtures/default.toml")
        .unwrap()
        .replace("access = \"Deny\"\n  protocol = \"Tcp\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"10.0.2.5\"", "access = \"Allow\"\n  protocol = \"Tcp\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"10.0.2.5\"");
    let p = write(dir.path(), "after.toml", &text);
    let v = cli(&[
        "diff",
        "fixtures/default.toml",
        p.to_str().unwrap(),
        "--output",
        "json",
    ])
    .expect_code(1)
    .json();
    let changed = v["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    let c = &changed[0];
    has_keys(
        c,
        &[
            "from",
            "destinations",
            "ports",
            "protocols",
            "before",
            "after",
            "example",
        ],
    );
    assert_eq!(c["destinations"], serde_json::json!(["10.0.2.5/32"]));
    assert_eq!(c["ports"], serde_json::json!(["8080"]));
    assert_eq!(c["before"]["code"], "NSG_DENIED");
    assert_eq!(c["after"]["code"], "ALLOWED");
    cli(&["diff", "fixtures/default.toml", "fixtures/nope.toml"]).expect_code(2);
}

/// Where routing exists, a class's `decided_by` lists the firewall that decided it (last when
/// it denied), and a class decided by an application rule carries the rule's `fqdns`.
#[test]
fn reach_lists_firewall_hops_and_application_rule_fqdns() {
    let v = cli(&["reach", "fixtures/forced-tunnel.toml", "--output", "json"])
        .expect_code(0)
        .json();
    let classes = v["classes"].as_array().unwrap();
    let firewall_hop = |c: &serde_json::Value| -> Option<serde_json::Value> {
        c["decided_by"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h.get("firewall").is_some())
            .cloned()
    };
    // The partner API is allowed by the application rule `partner-api`, keyed by its FQDN.
    let partner = classes
        .iter()
        .find(|c| {
            c["destinations"] == serde_json::json!(["20.50.1.10/32"])
                && c["ports"] == serde_json::json!(["443"])
        })
        .expect("a class for the partner API");
    assert_eq!(partner["verdict"], "Allow");
    assert_eq!(partner["fqdns"], serde_json::json!(["api.partner.example"]));
    let hop = firewall_hop(partner).expect("the firewall hop");
    has_keys(
        &hop,
        &["firewall", "group", "collection", "rule", "access", "kind"],
    );
    assert_eq!(hop["rule"], "partner-api");
    assert_eq!(hop["kind"], "Application");
    // Every firewall-denied class ends with the firewall's hop; no other class has `fqdns`
    // unless an application rule decided it.
    let mut denied = 0;
    for c in classes {
        if c["code"] == "FIREWALL_DENIED" {
            denied += 1;
            let last = c["decided_by"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["firewall"], "fw-hub", "{c}");
            assert_eq!(last["access"], "Deny");
        }
        if c.get("fqdns").is_some() {
            assert_eq!(firewall_hop(c).unwrap()["kind"], "Application", "{c}");
        }
    }
    assert!(denied > 0);
}
