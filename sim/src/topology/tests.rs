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
