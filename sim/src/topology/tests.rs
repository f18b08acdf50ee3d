//! Tests of topology building and flow verdicts.

use super::*;
use crate::fixture::Format;
use crate::flow::{Flow, VerdictKind};

fn build(text: &str) -> Built {
    let f = Fixture::parse(text, Format::Toml).unwrap();
    Topology::build(&f, ServiceTagTable::builtin())
}

#[test]
fn default_fixture_is_clean_and_behaves() {
    let b = build(include_str!("../../../fixtures/default.toml"));
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    let t = &b.topology;
    let apim = t.apim_source().unwrap();
    assert_eq!(apim.to_string(), "10.0.1.4");
    let ip = |s: &str| s.parse().unwrap();
    let orders = t.resolve_from_apim("orders.internal.contoso.com").unwrap();
    let d = t.decide(&Flow::tcp(apim, 50000, orders, 443));
    assert_eq!(d.verdict, VerdictKind::Allow);
    let v = t.evaluate(&Flow::tcp(apim, 50000, orders, 443));
    assert_eq!(
        v.evaluated.len(),
        2,
        "nsg-apim outbound then nsg-backend inbound"
    );
    assert_eq!(
        v.decided_by.as_ref().unwrap().rule,
        "securityRules/allow-apim-subnet"
    );
    let d = t.decide(&Flow::tcp(apim, 50000, ip("10.0.2.5"), 8080));
    assert_eq!(
        (d.verdict, d.code.as_str()),
        (VerdictKind::Deny, "NSG_DENIED")
    );
    assert_eq!(
        t.rule_info(d.decided_by.unwrap()).rule,
        "securityRules/deny-legacy"
    );
    let d = t.decide(&Flow::tcp(apim, 50000, ip("20.50.1.10"), 443));
    assert!(d.allowed());
    let d = t.decide(&Flow::tcp(apim, 50000, ip("13.107.21.200"), 443));
    assert_eq!(
        t.rule_info(d.decided_by.unwrap()).rule,
        "securityRules/deny-internet"
    );
    // The gateway endpoint stays public: no NSG evaluated for inbound internet traffic.
    let gw = t.apim_endpoint().unwrap();
    let v = t.evaluate(&Flow::tcp(ip("203.0.114.9"), 50000, gw, 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert!(v.evaluated.is_empty());
}

// === Unknown values (imported templates): Indeterminate, never a guess ===

const UNKNOWN_TOPOLOGY: &str = r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "a"
  address_prefix = "10.0.1.0/24"
  nsg = "n"
  [[vnets.subnets]]
  name = "b"
  address_prefix = "10.0.2.0/24"
  nsg = "nb"
[[nsgs]]
name = "n"
  [[nsgs.security_rules]]
  name = "allow-web"
  priority = 100
  direction = "Outbound"
  access = "Allow"
  protocol = "Tcp"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "*"
  destination_port_range = "80"
  [[nsgs.security_rules]]
  name = "deny-unknown"
  priority = 200
  direction = "Outbound"
  access = "Deny"
  protocol = "Tcp"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefixes = ["10.0.9.0/24", "<unknown:/resources/0/properties/securityRules/1/properties/destinationAddressPrefixes/1>"]
  destination_port_range = "443"
[[nsgs]]
name = "nb"
  [[nsgs.security_rules]]
  name = "deny-8443-in"
  priority = 100
  direction = "Inbound"
  access = "Deny"
  protocol = "Tcp"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "*"
  destination_port_range = "8443"
"#;

#[test]
fn unknown_rule_fields_make_dependent_flows_indeterminate() {
    let b = build(UNKNOWN_TOPOLOGY);
    // The rule loads with a warning naming the pointer; nothing structural blocks evaluation.
    assert!(b.structural_errors().is_empty(), "{:#?}", b.findings);
    assert!(b
        .findings
        .iter()
        .any(|f| f.code.as_str() == "UNKNOWN_VALUE"
            && f.subject == "nsgs/n/securityRules/deny-unknown"));
    let t = &b.topology;
    let ip = |s: &str| s.parse().unwrap();
    // Decided before the unknown rule: a definite answer.
    let d = t.decide(&Flow::tcp(ip("10.0.1.4"), 50000, ip("10.0.2.4"), 80));
    assert_eq!(d.verdict, VerdictKind::Allow);
    // The known item of the unknown rule matches: the rule decides whatever the unknown is.
    let d = t.decide(&Flow::tcp(ip("10.0.1.4"), 50000, ip("10.0.9.9"), 443));
    assert_eq!(
        (d.verdict, d.code.as_str()),
        (VerdictKind::Deny, "NSG_DENIED")
    );
    // Only the unknown item could match: the outcome depends on it.
    let f = Flow::tcp(ip("10.0.1.4"), 50000, ip("10.0.2.4"), 443);
    let d = t.decide(&f);
    assert_eq!(
        (d.verdict, d.code.as_str()),
        (VerdictKind::Indeterminate, "UNKNOWN_VALUE")
    );
    assert_eq!(
        t.rule_info(d.decided_by.unwrap()).rule,
        "securityRules/deny-unknown"
    );
    let v = t.evaluate(&f);
    assert_eq!(v.verdict, VerdictKind::Indeterminate);
    assert!(
        v.detail.contains("nsgs/n/securityRules/deny-unknown")
            && v.detail.contains("destinationAddressPrefixes/1"),
        "{}",
        v.detail
    );
    // A rule that fails on a known field is skipped, unknown or not.
    let d = t.decide(&Flow {
        protocol: crate::Protocol::Udp,
        ..f
    });
    assert_eq!(d.verdict, VerdictKind::Allow);
    // 8443 fails deny-unknown's known port (443): the rule is skipped, n allows by default and
    // nb denies for sure.
    let d = t.decide(&Flow::tcp(ip("10.0.1.4"), 50000, ip("10.0.2.4"), 8443));
    assert_eq!(
        (d.verdict, t.rule_info(d.decided_by.unwrap()).rule.as_str()),
        (VerdictKind::Deny, "securityRules/deny-8443-in")
    );
}

#[test]
fn a_later_definite_deny_wins_over_an_unknown() {
    let text = UNKNOWN_TOPOLOGY.replace(
        "destination_port_range = \"443\"",
        "destination_port_ranges = [\"443\", \"8443\"]",
    );
    let t = build(&text).topology;
    let ip = |s: &str| s.parse().unwrap();
    // nsg n: deny-unknown may or may not match; nsg nb (inbound) denies 8443 for sure.
    let d = t.decide(&Flow::tcp(ip("10.0.1.4"), 50000, ip("10.0.2.4"), 8443));
    assert_eq!(
        (d.verdict, t.rule_info(d.decided_by.unwrap()).rule.as_str()),
        (VerdictKind::Deny, "securityRules/deny-8443-in")
    );
}

#[test]
fn unknown_addresses_are_structural_errors() {
    let text = UNKNOWN_TOPOLOGY.replace(
        "address_prefix = \"10.0.2.0/24\"",
        "address_prefix = \"<unknown:/resources/3/properties/addressPrefix>\"",
    );
    let b = build(&text);
    let e: Vec<&str> = b
        .structural_errors()
        .iter()
        .map(|f| f.code.as_str())
        .collect();
    assert_eq!(e, ["UNKNOWN_ADDRESS"], "{:#?}", b.findings);
}

// === Source locations ===

/// Two NSGs; the second's rules are `r1` (valid) and `r2` (priority 50: out of range), so `r2`
/// is left out of the NSG and `r1` keeps index 0 — then a third rule follows.
const LOCATED: &str = "[[nsgs]]\nname = \"a\"\n\n[[nsgs]]\nname = \"b\"\n\n[[nsgs.security_rules]]\nname = \"r2\"\npriority = 50\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"*\"\ndestination_port_range = \"*\"\n\n[[nsgs.security_rules]]\nname = \"r3\"\npriority = 300\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"*\"\ndestination_port_range = \"*\"\n";

fn build_located(text: &str) -> Built {
    let f = Fixture::parse(text, Format::Toml).unwrap();
    let source = SourceMap::from_text("n.toml", text, Format::Toml);
    Topology::build_with_source(&f, ServiceTagTable::builtin(), source)
}

#[test]
fn findings_and_rules_keep_their_file_positions() {
    let b = build_located(LOCATED);
    let f = &b.findings[0];
    assert_eq!(f.code.as_str(), "RULE_PRIORITY_OUT_OF_RANGE");
    let at = f.location.as_ref().unwrap();
    assert_eq!(
        (at.line, at.pointer.as_deref()),
        (Some(7), Some("/nsgs/1/security_rules/0"))
    );
    // Display leads with `file:line:` as a compiler does.
    assert!(f.to_string().starts_with("n.toml:7: error"), "{f}");
    // r3 is the NSG's first valid rule but the file's second: it is located by its own entry.
    let t = &b.topology;
    let r3 = &t.nsgs()[1].rules[0];
    assert_eq!((r3.name.as_str(), r3.index), ("r3", Some(1)));
    let at = t.nsg_rule_location(1, 0).unwrap();
    assert_eq!(at.line, Some(18));
    // Default rules are in no file.
    let default = t.nsgs()[1].rules.len() - 1;
    assert_eq!(t.nsg_rule_location(1, default), None);
}

#[test]
fn replaced_rules_are_located_at_their_nsg() {
    let b = build_located(LOCATED);
    let rule = crate::fixture::RawRule::new(
        "bad name-",
        200,
        crate::Direction::Outbound,
        crate::Access::Deny,
        crate::RuleProtocol::Tcp,
        "*",
        "*",
    );
    let after = b.with_nsg_rules("b", &[rule]).unwrap();
    let f = after
        .findings
        .iter()
        .find(|f| f.code.as_str() == "RULE_NAME_INVALID")
        .expect("the new rule's name is invalid");
    // The new rule is not in the file: it is placed on its NSG's header, not on the old rule
    // that happened to hold the same index.
    let at = f.location.as_ref().unwrap();
    assert_eq!((at.line, at.pointer.as_deref()), (Some(4), Some("/nsgs/1")));
}

#[test]
fn in_memory_topologies_know_pointers_only() {
    let b = build(LOCATED);
    let at = b.findings[0].location.as_ref().unwrap();
    assert_eq!(at.file, None);
    assert_eq!(at.pointer.as_deref(), Some("/nsgs/1/security_rules/0"));
    assert!(b.findings[0].to_string().starts_with("error"));
}

// === single-rule changes ===

fn names(b: &Built, nsg: &str) -> Vec<String> {
    b.document
        .nsg_rules(nsg)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

fn allow(name: &str, priority: i64) -> crate::fixture::RawRule {
    crate::fixture::RawRule::new(
        name,
        priority,
        crate::Direction::Outbound,
        crate::Access::Allow,
        crate::RuleProtocol::Tcp,
        "*",
        "443",
    )
}

#[test]
fn put_rule_creates_or_replaces_one_rule_and_keeps_the_others() {
    use crate::Change;
    let b = build_located(LOCATED);
    // A new name is appended; r2 and r3 stay.
    let put = Change::PutRule {
        nsg: "B".into(),
        rule: allow("r4", 400).into(),
    };
    let a = b.apply_change(&put).unwrap();
    assert_eq!(a.rules.created, ["r4"]);
    assert!(a.rules.replaced.is_empty() && a.rules.removed.is_empty());
    assert_eq!(names(&a.built, "b"), ["r2", "r3", "r4"]);
    // An existing name (in any case, or qualified) is replaced in place, under the name it
    // was put with.
    let put = Change::PutRule {
        nsg: "b".into(),
        rule: allow("securityRules/R3", 310).into(),
    };
    let a = a.built.apply_change(&put).unwrap();
    assert_eq!(a.rules.replaced, ["R3"]);
    assert_eq!(names(&a.built, "b"), ["r2", "R3", "r4"]);
    let r3 = &a.built.document.nsg_rules("b").unwrap()[1];
    assert_eq!(r3.priority, 310);
    // r2 keeps its place in the file (line 7); the replaced rule is located at its NSG.
    let f = &a.built.findings[0];
    assert_eq!(f.code.as_str(), "RULE_PRIORITY_OUT_OF_RANGE");
    assert_eq!(f.location.as_ref().unwrap().line, Some(7));
    let t = &a.built.topology;
    let at = t.nsg_rule_location(1, 0).unwrap();
    assert_eq!((at.line, at.pointer.as_deref()), (Some(4), Some("/nsgs/1")));
}

#[test]
fn delete_rule_removes_one_rule_and_the_rest_keep_their_lines() {
    use crate::Change;
    let b = build_located(LOCATED);
    let del = Change::DeleteRule {
        nsg: "b".into(),
        name: "R2".into(),
    };
    let a = b.apply_change(&del).unwrap();
    assert_eq!(a.rules.removed, ["r2"]);
    assert_eq!(names(&a.built, "b"), ["r3"]);
    // The invalid r2 is gone, so is its finding; r3 (now item 0) is still on line 18.
    assert!(
        !a.built
            .findings
            .iter()
            .any(|f| f.code.as_str() == "RULE_PRIORITY_OUT_OF_RANGE"),
        "{:?}",
        a.built.findings
    );
    let t = &a.built.topology;
    assert_eq!(t.nsgs()[1].rules[0].name, "r3");
    assert_eq!(t.nsg_rule_location(1, 0).unwrap().line, Some(18));
}

#[test]
fn set_rules_reports_what_it_created_replaced_and_removed() {
    use crate::Change;
    let b = build(LOCATED);
    let set = Change::SetRules {
        nsg: "b".into(),
        rules: vec![allow("r3", 300), allow("r9", 900)],
    };
    let a = b.apply_change(&set).unwrap();
    assert_eq!(
        a.rules,
        crate::RuleChanges {
            created: vec!["r9".into()],
            replaced: vec!["r3".into()],
            removed: vec!["r2".into()],
        }
    );
}

#[test]
fn single_rule_changes_refuse_default_unknown_and_malformed_rules() {
    use crate::{Change, ChangeError};
    let t = build(LOCATED);
    for name in [
        "AllowVnetOutBound",
        "denyallinbound",
        "defaultSecurityRules/AllowInternetOutBound",
        "securityRules/DenyAllOutBound",
    ] {
        let del = Change::DeleteRule {
            nsg: "b".into(),
            name: name.into(),
        };
        assert!(
            matches!(t.apply_change(&del), Err(ChangeError::DefaultRule { .. })),
            "{name}"
        );
        let put = Change::PutRule {
            nsg: "b".into(),
            rule: allow(name, 500).into(),
        };
        assert!(
            matches!(t.apply_change(&put), Err(ChangeError::DefaultRule { .. })),
            "{name}"
        );
    }
    let del = Change::DeleteRule {
        nsg: "b".into(),
        name: "nope".into(),
    };
    assert_eq!(
        t.apply_change(&del).unwrap_err(),
        ChangeError::UnknownRule {
            nsg: "b".into(),
            name: "nope".into()
        }
    );
    let del = Change::DeleteRule {
        nsg: "c".into(),
        name: "r2".into(),
    };
    assert_eq!(
        t.apply_change(&del).unwrap_err(),
        ChangeError::UnknownNsg("c".into())
    );
    let mut no_direction = allow("r5", 500);
    no_direction.direction = None;
    let put = Change::PutRule {
        nsg: "b".into(),
        rule: no_direction.into(),
    };
    assert!(matches!(
        t.apply_change(&put),
        Err(ChangeError::InvalidRule { index: 0, .. })
    ));
}

#[test]
fn an_http_upstream_is_plain_whatever_tls_says() {
    let text = include_str!("../../../fixtures/default.toml");
    let with = |upstream: &str| {
        build(&text.replacen(
            "  tls = true\n  serve = \"echo\"",
            &format!("  tls = true\n  upstream = \"{upstream}\""),
            1,
        ))
    };
    let service = |b: &Built| {
        let t = &b.topology;
        let h = t.host_by_name_or_dns("orders").unwrap();
        t.hosts()[h].services[0].clone()
    };
    let b = with("http://127.0.0.1:9080/");
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    let s = service(&b);
    assert_eq!(
        (s.tls, s.upstream_plain, s.upstream),
        (true, true, Some("127.0.0.1:9080".parse().unwrap()))
    );
    for tls_form in ["HTTPS://127.0.0.1:9443", "127.0.0.1:9443"] {
        let s = service(&with(tls_form));
        assert_eq!(
            (s.upstream_plain, s.upstream.unwrap().port()),
            (false, 9443)
        );
    }
    // Not a socket after the scheme: a finding that shows both forms, never a panic.
    for bad in ["http://orders:80", "http://", "httpé://x"] {
        let b = with(bad);
        let f = b
            .findings
            .iter()
            .find(|f| f.code == crate::FindingCode::ServiceInvalid)
            .unwrap_or_else(|| panic!("{bad}: {:#?}", b.findings));
        assert!(f.message.contains("http://127.0.0.1:9080"), "{}", f.message);
    }
}
