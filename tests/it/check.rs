//! `vnetsim check`: JSON shape, exit codes 0/1/2, endpoint words, ports and protocols, refused
//! fixtures, service tag overrides.

use vnetsim::{load_path, load_str, FlowQuery, TagSource};

use crate::support::{
    arg, cli, fixture, has_keys, keys, tempdir, write, TINY_STORAGE_ADDRESS, TINY_TAGS,
};

fn check(fixture: &str, from: &str, to: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "check", fixture, "--from", from, "--to", to, "--output", "json",
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

fn assumption_codes(j: &serde_json::Value) -> Vec<String> {
    j["assumptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(keys(a), ["code", "message"]);
            a["code"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn allowed_flow_json_shape() {
    let r = check("fixtures/default.toml", "apim", "orders:443", &[]);
    r.expect_code(0);
    let j = r.json();
    has_keys(
        &j,
        &[
            "verdict",
            "code",
            "flow",
            "evaluated",
            "decided_by",
            "assumptions",
            "service_tags",
        ],
    );
    assert_eq!(j["verdict"], "Allow");
    assert_eq!(j["code"], "ALLOWED");
    assert_eq!(
        keys(&j["flow"]),
        [
            "destination",
            "destination_port",
            "protocol",
            "source",
            "source_port"
        ]
    );
    assert_eq!(j["flow"]["protocol"], "Tcp");
    assert_eq!(j["flow"]["source"], "10.0.1.4");
    assert_eq!(j["flow"]["source_port"], 60000);
    assert_eq!(j["flow"]["destination"], "10.0.2.4");
    assert_eq!(j["flow"]["destination_port"], 443);
    // Outbound NSG of the APIM subnet, then inbound NSG of the backend subnet.
    let ev = j["evaluated"].as_array().unwrap();
    assert_eq!(ev.len(), 2);
    for e in ev {
        assert_eq!(
            keys(e),
            [
                "access",
                "applied_to",
                "direction",
                "location",
                "matched_rule",
                "nsg",
                "rules"
            ]
        );
        let rules = e["rules"].as_array().unwrap();
        assert!(!rules.is_empty());
        for rule in rules {
            assert_eq!(
                keys(rule),
                [
                    "access",
                    "destination_matched",
                    "destination_port_matched",
                    "name",
                    "priority",
                    "protocol_matched",
                    "source_matched",
                    "source_port_matched"
                ]
            );
            assert!(rule["priority"].is_u64() && rule["source_matched"].is_boolean());
        }
        // The last rule examined is the match.
        assert_eq!(rules.last().unwrap()["name"], e["matched_rule"]);
    }
    assert_eq!(ev[0]["nsg"], "nsg-apim");
    assert_eq!(ev[0]["applied_to"], "vnets/vnet-app/subnets/snet-apim");
    assert_eq!(ev[0]["direction"], "Outbound");
    assert_eq!(ev[1]["nsg"], "nsg-backend");
    assert_eq!(ev[1]["direction"], "Inbound");
    assert_eq!(
        keys(&j["decided_by"]),
        ["access", "direction", "location", "nsg", "priority", "rule"]
    );
    assert_eq!(j["decided_by"]["rule"], "securityRules/allow-apim-subnet");
    assert_eq!(j["decided_by"]["priority"], 100);
    assert!(assumption_codes(&j).contains(&"ASSUMPTION_DEFAULT_SOURCE_PORT".to_string()));
    assert_eq!(j["service_tags"]["source"], "built-in");
}

#[test]
fn denied_flow_exits_1_and_stops_at_the_deny() {
    let r = check(
        "fixtures/default.toml",
        "apim",
        "legacy:8080",
        &["--source-port", "50000"],
    );
    r.expect_code(1);
    let j = r.json();
    assert_eq!(
        (j["verdict"].as_str(), j["code"].as_str()),
        (Some("Deny"), Some("NSG_DENIED"))
    );
    assert_eq!(j["decided_by"]["rule"], "securityRules/deny-legacy");
    assert_eq!(j["decided_by"]["direction"], "Outbound");
    assert_eq!(
        j["evaluated"].as_array().unwrap().len(),
        1,
        "nsg-backend is never evaluated"
    );
    // The given source port is used and no default is assumed.
    assert_eq!(j["flow"]["source_port"], 50000);
    assert!(!assumption_codes(&j).contains(&"ASSUMPTION_DEFAULT_SOURCE_PORT".to_string()));
}

#[test]
fn unreachable_flow_exits_1_with_no_deciding_rule() {
    let r = check("fixtures/default.toml", "203.0.114.9", "orders:443", &[]);
    r.expect_code(1);
    let j = r.json();
    assert_eq!(j["verdict"], "Unreachable");
    assert_eq!(j["code"], "NO_PUBLIC_ENDPOINT");
    assert!(j["decided_by"].is_null());
    assert_eq!(j["evaluated"].as_array().unwrap().len(), 0);
}

#[test]
fn apim_as_destination_is_the_public_gateway_endpoint() {
    let loaded = load_path(&fixture("default.toml"), &TagSource::Fixture).unwrap();
    let endpoint = loaded.topology().apim_endpoint().unwrap().to_string();
    let r = check("fixtures/default.toml", "203.0.114.9", "apim:443", &[]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["flow"]["destination"], endpoint.as_str());
    assert!(
        j["decided_by"].is_null(),
        "no NSG applies to inbound traffic with integration"
    );
}

#[test]
fn names_are_case_insensitive_and_dns_names_work() {
    let mut lower = check("fixtures/default.toml", "apim", "orders:443", &[]).json();
    let mut upper = check("fixtures/default.toml", "APIM", "ORDERS:443", &[]).json();
    let mut dns = check(
        "fixtures/default.toml",
        "Apim",
        "orders.internal.contoso.com:443",
        &[],
    )
    .json();
    // Since the one-answer change the JSON says how a name was resolved: a `[[hosts]]` name
    // is the host's address, a DNS name goes through the private zone linked to vnet-app.
    assert_eq!(lower["resolved"]["via"], "host-name");
    assert_eq!(upper["resolved"]["name"], "orders");
    assert_eq!(dns["resolved"]["via"], "private-zone");
    assert_eq!(dns["resolved"]["zone"], "internal.contoso.com");
    for j in [&mut lower, &mut upper, &mut dns] {
        j.as_object_mut().unwrap().remove("resolved");
    }
    assert_eq!(lower, upper);
    assert_eq!(lower, dns);
    // Protocol values are case-insensitive too.
    let r = check(
        "fixtures/default.toml",
        "apim",
        "payments:53",
        &["--protocol", "uDP"],
    );
    r.expect_code(1);
    assert_eq!(r.json()["flow"]["protocol"], "Udp");
}

#[test]
fn ipv6_with_brackets() {
    let r = check(
        "fixtures/dual-stack.toml",
        "web6",
        "[fd00:0:0:2::4]:5432",
        &[],
    );
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["flow"]["destination"], "fd00:0:0:2::4");
    assert_eq!(j["flow"]["destination_port"], 5432);
    assert_eq!(
        j["decided_by"]["rule"],
        "securityRules/allow-web-postgres-v6"
    );
    let r = check(
        "fixtures/dual-stack.toml",
        "fd00:0:0:1::4",
        "[fd00:0:0:2::4]:22",
        &[],
    );
    r.expect_code(1);
    assert_eq!(
        r.json()["decided_by"]["rule"],
        "securityRules/deny-vnet-inbound"
    );
    // Without brackets the port is part of the address: Tcp then lacks a port.
    let r = check("fixtures/dual-stack.toml", "web6", "fd00:0:0:2::4", &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("[addr]:PORT"), "{}", r.stderr);
}

#[test]
fn ports_are_required_for_tcp_and_udp_only() {
    for proto in [None, Some("udp")] {
        let extra: Vec<&str> = proto.map_or_else(Vec::new, |p| vec!["--protocol", p]);
        let r = check("fixtures/default.toml", "apim", "orders", &extra);
        r.expect_code(2);
        assert_eq!(r.json_error()["code"], "BAD_FLOW");
        assert!(r.stderr.contains("orders:PORT"), "{}", r.stderr);
    }
    let r = check(
        "fixtures/default.toml",
        "apim",
        "orders:443",
        &["--protocol", "icmp"],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("carry no ports"), "{}", r.stderr);
    let r = check(
        "fixtures/default.toml",
        "apim",
        "orders",
        &["--protocol", "Esp", "--source-port", "1"],
    );
    r.expect_code(2);
    // Icmp without ports is evaluated, and the flow has no ports.
    let r = check(
        "fixtures/default.toml",
        "apim",
        "orders",
        &["--protocol", "ICMP"],
    );
    r.expect_code(1);
    let j = r.json();
    assert!(j["flow"]["source_port"].is_null() && j["flow"]["destination_port"].is_null());
    assert!(assumption_codes(&j).contains(&"ASSUMPTION_PORTLESS_PROTOCOLS".to_string()));
    assert!(!assumption_codes(&j).contains(&"ASSUMPTION_DEFAULT_SOURCE_PORT".to_string()));
}

#[test]
fn bad_words_exit_2_and_say_what_was_expected() {
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("apim", "ordrs:443", &[], "hosts: legacy, orders, payments"),
        ("10.0.7.7", "orders:443", &[], "none of its subnets"),
        ("apim", "orders:70000", &[], "0-65535"),
        (
            "apim",
            "orders:443",
            &["--protocol", "gre"],
            "Tcp, Udp, Icmp, Esp, Ah",
        ),
        ("apim:443", "orders:443", &[], "source port"),
        ("apim", "[fd00::4]:443", &[], "address families"),
    ];
    for (from, to, extra, needle) in cases {
        let r = check("fixtures/default.toml", from, to, extra);
        r.expect_code(2);
        // A JSON error on stdout: a flow the topology does not have, or (the protocol's
        // value) a usage error; its message says the same as stderr.
        let e = r.json_error();
        let code = if extra.is_empty() {
            "BAD_FLOW"
        } else {
            "USAGE"
        };
        assert_eq!(e["code"], code, "{from} -> {to}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{from} -> {to}: {e}"
        );
        assert!(r.stderr.contains(needle), "{from} -> {to}: {}", r.stderr);
    }
}

#[test]
fn structural_errors_refuse_the_fixture_with_findings_on_stderr() {
    let r = check(
        "fixtures/invalid/rule-port-invalid.toml",
        "10.0.2.4",
        "10.0.2.5:443",
        &[],
    );
    r.expect_code(2);
    let e = r.json_error();
    assert_eq!(e["code"], "STRUCTURAL_FINDINGS");
    assert!(
        e["message"].as_str().unwrap().contains("RULE_PORT_INVALID"),
        "{e}"
    );
    assert!(r.stderr.contains("RULE_PORT_INVALID"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("nsgs/nsg-backend/securityRules/allow-apim-https"),
        "{}",
        r.stderr
    );
}

#[test]
fn preflight_errors_do_not_block_check() {
    // validate fails on the missing delegation...
    cli(&[
        "validate",
        "fixtures/invalid/subnet-delegation-missing.toml",
    ])
    .expect_code(1);
    // ...but the flow is still evaluated (the nsg-apim defaults let HTTPS out to the internet).
    let r = check(
        "fixtures/invalid/subnet-delegation-missing.toml",
        "apim",
        "13.107.21.200:443",
        &[],
    );
    r.expect_code(0);
    let j = r.json();
    assert_eq!(
        j["decided_by"]["rule"],
        "defaultSecurityRules/AllowInternetOutBound"
    );
    assert_eq!(j["flow"]["source"], "10.0.1.4");
}

#[test]
fn text_output_is_the_verdict_table() {
    let r = cli(&[
        "check",
        "fixtures/default.toml",
        "--from",
        "apim",
        "--to",
        "legacy:8080",
    ]);
    r.expect_code(1);
    // Loaded under the name the CLI was given, so the rule locations name the same file.
    let text = std::fs::read_to_string(fixture("default.toml")).unwrap();
    let loaded = load_str(
        "fixtures/default.toml",
        &text,
        Some(&fixture("")),
        &TagSource::Fixture,
    )
    .unwrap();
    let v = FlowQuery::parse("apim", "legacy:8080", None, None)
        .unwrap()
        .explain(loaded.topology())
        .unwrap();
    assert_eq!(r.stdout, format!("{v}\n"));
    assert!(
        r.stdout.contains("Verdict   Deny (NSG_DENIED)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("securityRules/deny-legacy"),
        "{}",
        r.stdout
    );
}

#[test]
fn service_tags_override_changes_the_verdict_and_is_named() {
    let to = format!("{TINY_STORAGE_ADDRESS}:443");
    // With the built-in table this address is plain internet: deny-internet.
    let r = check("fixtures/default.toml", "apim", &to, &[]);
    r.expect_code(1);
    assert_eq!(
        r.json()["decided_by"]["rule"],
        "securityRules/deny-internet"
    );
    // With the tiny table it is Storage: allow-storage, and the table's changeNumber is shown.
    let dir = tempdir();
    let tags = write(dir.path(), "tags.json", TINY_TAGS);
    let r = check(
        "fixtures/default.toml",
        "apim",
        &to,
        &["--service-tags", arg(&tags)],
    );
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["decided_by"]["rule"], "securityRules/allow-storage");
    assert_eq!(j["service_tags"]["change_number"], 4242);
    assert_eq!(j["service_tags"]["source"], "file");
    // Text output names it too.
    let r = cli(&[
        "check",
        "fixtures/default.toml",
        "--from",
        "apim",
        "--to",
        &to,
        "--service-tags",
        arg(&tags),
    ]);
    assert!(r.stdout.contains("changeNumber 4242"), "{}", r.stdout);
    // A table that lacks a tag the fixture uses makes it structurally invalid: exit 2.
    let no_kv = write(
        dir.path(),
        "no-kv.json",
        &TINY_TAGS.replace("\"AzureKeyVault\"", "\"Other\""),
    );
    let r = check(
        "fixtures/default.toml",
        "apim",
        &to,
        &["--service-tags", arg(&no_kv)],
    );
    r.expect_code(2);
    assert!(
        r.stderr.contains("RULE_UNKNOWN_SERVICE_TAG"),
        "{}",
        r.stderr
    );
}
