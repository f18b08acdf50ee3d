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
            if hop.get("route").is_some() {
                has_keys(
                    hop,
                    &[
                        "route",
                        "route_table",
                        "address_prefix",
                        "next_hop_type",
                        "next_hop_ip_address",
                    ],
                );
            } else {
                has_keys(hop, &["nsg", "rule", "access", "direction"]);
            }
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
    assert_eq!(c["change"], "opens");
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

/// A class's `decided_by` lists the routes it takes among its NSG and firewall hops, in path
/// order and named as `check`'s `hops` name them (`TABLE/ROUTE`, `System Route`); the text
/// shows them in the DECIDED BY column.
#[test]
fn reach_lists_route_hops_in_path_order_like_check() {
    let v = cli(&[
        "reach",
        "fixtures/forced-tunnel.toml",
        "--to",
        "orders",
        "--protocol",
        "tcp",
        "--ports",
        "443",
        "--output",
        "json",
    ])
    .expect_code(0)
    .json();
    let classes = v["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 1, "{classes:#?}");
    let hops = classes[0]["decided_by"].as_array().unwrap();
    let named: Vec<String> = hops
        .iter()
        .map(|h| {
            for k in ["nsg", "route", "firewall"] {
                if let Some(n) = h.get(k) {
                    return format!("{k} {}", n.as_str().unwrap());
                }
            }
            panic!("a hop of no known kind: {h}")
        })
        .collect();
    assert_eq!(
        named,
        [
            "nsg nsg-apim",
            "route rt-apim/backends-via-firewall",
            "firewall fw-hub",
            "route System Route",
            "nsg nsg-backend",
        ]
    );
    assert_eq!(
        hops[1],
        serde_json::json!({"route": "rt-apim/backends-via-firewall", "route_table": "rt-apim",
            "address_prefix": "10.0.2.0/24", "next_hop_type": "VirtualAppliance",
            "next_hop_ip_address": "10.100.1.4"})
    );
    assert_eq!(hops[3]["next_hop_type"], "VNetPeering");
    assert_eq!(hops[3]["route_table"], serde_json::Value::Null);
    // The same hops, in the same order, as `check` walks the class's example.
    let ex = &classes[0]["example"];
    let to = format!(
        "{}:{}",
        ex["destination"].as_str().unwrap(),
        ex["destination_port"]
    );
    let c = cli(&[
        "check",
        "fixtures/forced-tunnel.toml",
        "--from",
        "apim",
        "--to",
        &to,
        "--output",
        "json",
    ])
    .expect_code(0)
    .json();
    let check: Vec<String> = c["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["kind"].as_str().unwrap(),
                h["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(named, check);
    let text = cli(&[
        "reach",
        "fixtures/forced-tunnel.toml",
        "--to",
        "orders",
        "--protocol",
        "tcp",
        "--ports",
        "443",
    ])
    .expect_code(0)
    .stdout
    .clone();
    assert!(
        text.contains("nsg-apim/allow-https-out > rt-apim/backends-via-firewall > fw-hub/apim-to-backends > System Route (VNetPeering) > nsg-backend/allow-apim-subnet"),
        "{text}"
    );
    // A service endpoint's route: the system route names its next hop type.
    let text = cli(&[
        "reach",
        "fixtures/service-endpoints.toml",
        "--protocol",
        "tcp",
        "--ports",
        "443",
    ])
    .expect_code(0)
    .stdout
    .clone();
    assert!(
        text.contains("nsg-apim/allow-keyvault > System Route (VirtualNetworkServiceEndpoint)"),
        "{text}"
    );
    assert!(
        text.contains("> rt-apim/default-to-firewall > fw-hub/default"),
        "{text}"
    );
}

/// A flow that now leaves through another route with the same verdict is a change: `diff`
/// lists it as `reroutes` (`"change": "reroutes"`), with the routes before and after.
#[test]
fn diff_reports_a_route_only_change() {
    let dir = tempdir();
    let before = std::fs::read_to_string("fixtures/forced-tunnel.toml").unwrap();
    let marker = "  [[route_tables.routes]]\n  name = \"legacy-drop\"";
    assert!(before.contains(marker));
    // The same firewall, through a /32 route of its own: same verdicts, another route.
    let text = before.replace(
        marker,
        &format!("  [[route_tables.routes]]\n  name = \"orders-direct\"\n  address_prefix = \"10.0.2.4/32\"\n  next_hop_type = \"VirtualAppliance\"\n  next_hop_ip_address = \"10.100.1.4\"\n\n{marker}"),
    );
    let p = write(dir.path(), "after.toml", &text);
    let v = cli(&[
        "diff",
        "fixtures/forced-tunnel.toml",
        p.to_str().unwrap(),
        "--output",
        "json",
    ])
    .expect_code(1)
    .json();
    let changed = v["changed"].as_array().unwrap();
    assert!(!changed.is_empty());
    let route_names = |o: &serde_json::Value| -> Vec<String> {
        o["decided_by"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h.get("route").map(|r| r.as_str().unwrap().to_string()))
            .collect()
    };
    for c in changed {
        assert_eq!(c["change"], "reroutes", "{c}");
        assert_eq!(c["destinations"], serde_json::json!(["10.0.2.4/32"]), "{c}");
        assert_eq!(c["before"]["verdict"], c["after"]["verdict"]);
        assert_eq!(c["before"]["code"], c["after"]["code"]);
        assert_eq!(
            route_names(&c["before"])[0],
            "rt-apim/backends-via-firewall",
            "{c}"
        );
        assert_eq!(route_names(&c["after"])[0], "rt-apim/orders-direct", "{c}");
    }
    // The backend's HTTPS stays allowed, now through the new route.
    assert!(changed.iter().any(|c| c["after"]["code"] == "ALLOWED"
        && c["protocols"] == serde_json::json!(["Tcp"])
        && c["ports"].as_array().unwrap().iter().any(|p| p == "443")));
    let text = cli(&["diff", "fixtures/forced-tunnel.toml", p.to_str().unwrap()])
        .expect_code(1)
        .stdout
        .clone();
    assert!(text.starts_with("reroutes apim → 10.0.2.4/32"), "{text}");
    assert!(text.contains("rt-apim/orders-direct"), "{text}");
}
