//! Rule and flow control through the harness (`vnetsim::harness::Simulation`): one rule put
//! (created, then replaced) or deleted while the NSG's other rules stay, NSGs read back, the
//! whole-list replace reporting what it removed, flushing flows, and `now` on each flow.

use gateway::ChangeError;
use sim::fixture::RawRule;
use sim::{Access, Direction, RuleProtocol, VerdictCode, VerdictKind};
use vnetsim::harness::{FlowNow, HarnessError, RulePut, Simulation};

/// An outbound deny of the orders backend (10.0.2.4:443) on nsg-apim, before its
/// `allow-backends-https` (priority 200).
fn deny_orders(priority: i64) -> RawRule {
    RawRule::new(
        "deny-orders",
        priority,
        Direction::Outbound,
        Access::Deny,
        RuleProtocol::Tcp,
        "10.0.2.4",
        "443",
    )
}

/// The custom rule names of `nsg`, as the harness reads them back.
fn names(sim: &Simulation, nsg: &str) -> Vec<String> {
    sim.nsg(nsg)
        .expect("the NSG exists")
        .security_rules
        .into_iter()
        .map(|r| r.name)
        .collect()
}

/// The default fixture's custom rules of nsg-apim, in file order.
const APIM_RULES: [&str; 6] = [
    "allow-storage",
    "allow-keyvault",
    "deny-legacy",
    "allow-backends-https",
    "allow-payments-partner",
    "deny-internet",
];

#[tokio::test]
async fn put_creates_then_replaces_one_rule_and_keeps_the_others() {
    let sim = Simulation::default_topology()
        .unwrap()
        .start()
        .await
        .unwrap();
    let (report, put) = sim.put_security_rule("nsg-apim", deny_orders(120)).unwrap();
    assert_eq!(put, RulePut::Created);
    let rules = report.rules.expect("a rule change reports its rules");
    assert_eq!(rules.created, ["deny-orders"]);
    assert!(rules.replaced.is_empty() && rules.removed.is_empty());
    // Appended; the six rules of the file stay.
    let mut expected: Vec<&str> = APIM_RULES.to_vec();
    expected.push("deny-orders");
    assert_eq!(names(&sim, "nsg-apim"), expected);
    let r = sim.get("/orders/1").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(
        r.problem().unwrap().rule.as_deref(),
        Some("securityRules/deny-orders")
    );

    // The same name again replaces it in place.
    let (report, put) = sim.put_security_rule("nsg-apim", deny_orders(130)).unwrap();
    assert_eq!(put, RulePut::Replaced);
    assert_eq!(report.rules.unwrap().replaced, ["deny-orders"]);
    assert_eq!(names(&sim, "nsg-apim"), expected);
    let nsg = sim.nsg("NSG-APIM").unwrap();
    assert_eq!(
        (nsg.name.as_str(), nsg.flush_connection),
        ("nsg-apim", false)
    );
    assert_eq!(nsg.security_rules[6].priority, 130);
    assert_eq!(sim.gateway().generation(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_puts_and_deletes_keep_the_old_state() {
    let sim = Simulation::default_topology()
        .unwrap()
        .start()
        .await
        .unwrap();
    let before = sim.nsgs();
    // An error finding (priority outside 100..=4096): refused with the findings.
    let err = sim
        .put_security_rule("nsg-apim", deny_orders(50))
        .unwrap_err();
    let findings = match err {
        HarnessError::Change(ChangeError::Invalid { findings }) => findings,
        other => panic!("expected error findings, got {other:?}"),
    };
    assert!(findings
        .iter()
        .any(|f| f.code.as_str() == "RULE_PRIORITY_OUT_OF_RANGE"));
    // deny-legacy's priority (150, outbound) is taken.
    let err = sim
        .put_security_rule("nsg-apim", deny_orders(150))
        .unwrap_err();
    assert!(matches!(
        err,
        HarnessError::Change(ChangeError::Invalid { .. })
    ));
    // Default rules can be neither put nor deleted.
    let mut default = deny_orders(140);
    default.name = "AllowVnetOutBound".into();
    assert!(matches!(
        sim.put_security_rule("nsg-apim", default),
        Err(HarnessError::Change(ChangeError::DefaultRule { .. }))
    ));
    assert!(matches!(
        sim.delete_security_rule("nsg-apim", "defaultSecurityRules/DenyAllOutBound"),
        Err(HarnessError::Change(ChangeError::DefaultRule { .. }))
    ));
    // Unknown rules and NSGs.
    assert!(matches!(
        sim.delete_security_rule("nsg-apim", "no-such-rule"),
        Err(HarnessError::Change(ChangeError::UnknownRule { .. }))
    ));
    assert!(matches!(
        sim.put_security_rule("nope", deny_orders(120)),
        Err(HarnessError::Change(ChangeError::UnknownNsg(_)))
    ));
    assert_eq!(sim.nsgs(), before);
    assert_eq!(sim.gateway().generation(), 1);
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_removes_one_rule_and_whole_list_set_reports_removals() {
    let sim = Simulation::default_topology()
        .unwrap()
        .start()
        .await
        .unwrap();
    // Removing deny-legacy lets the legacy backend be reached by new flows.
    assert_eq!(sim.get("/legacy/ping").await.unwrap().status, 502);
    let report = sim.delete_security_rule("nsg-apim", "deny-legacy").unwrap();
    assert_eq!(report.rules.unwrap().removed, ["deny-legacy"]);
    let mut expected: Vec<&str> = APIM_RULES.to_vec();
    expected.retain(|n| *n != "deny-legacy");
    assert_eq!(names(&sim, "nsg-apim"), expected);
    assert_eq!(sim.get("/legacy/ping").await.unwrap().status, 200);

    // The whole-list set replaces: what it leaves out is removed, and reported.
    let keep = sim.current_rules("nsg-apim")[2].clone();
    let report = sim
        .set_nsg_rules("nsg-apim", &[keep, deny_orders(120)])
        .unwrap();
    let rules = report.rules.unwrap();
    assert_eq!(
        rules.removed,
        [
            "allow-storage",
            "allow-keyvault",
            "allow-payments-partner",
            "deny-internet"
        ]
    );
    assert_eq!(rules.replaced, ["allow-backends-https"]);
    assert_eq!(rules.created, ["deny-orders"]);
    assert_eq!(
        names(&sim, "nsg-apim"),
        ["allow-backends-https", "deny-orders"]
    );
    // NSGs are listed in fixture order.
    let all: Vec<String> = sim.nsgs().into_iter().map(|n| n.name).collect();
    assert_eq!(all.first().map(String::as_str), Some("nsg-apim"));
    assert!(sim.nsg("nope").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn flush_ends_pooled_flows_and_now_shows_what_new_flows_would_get() {
    let sim = Simulation::default_topology()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 200);
    let flows = sim.flows();
    assert_eq!(flows.len(), 1, "one pooled flow to orders");
    assert_eq!(flows[0].now.verdict, VerdictKind::Allow);

    // A deny without flush_connection: the established flow keeps answering 200…
    let (report, _) = sim.put_security_rule("nsg-apim", deny_orders(120)).unwrap();
    assert_eq!(report.flows_cut, 0);
    assert_eq!(sim.get("/orders/2").await.unwrap().status, 200);
    let flows = sim.flows();
    assert_eq!(flows.len(), 1);
    assert_eq!(
        flows[0].requests, 2,
        "the second request rode the pooled flow"
    );
    // …while `now` says a new flow would be denied, and by which rule (asked of `sim`).
    assert_eq!(
        flows[0].now,
        FlowNow {
            verdict: VerdictKind::Deny,
            code: VerdictCode::NsgDenied,
            nsg: Some("nsg-apim".into()),
            rule: Some("securityRules/deny-orders".into()),
        }
    );

    // Flushing ends it: the next request is a new flow, decided afresh.
    let flushed = sim.flush_flows();
    assert_eq!(flushed.flushed, 1);
    let r = sim.get("/orders/3").await.unwrap();
    assert_eq!(r.status, 502);
    let p = r.problem().unwrap();
    assert_eq!(
        (p.code.as_str(), p.rule.as_deref()),
        ("NSG_DENIED", Some("securityRules/deny-orders"))
    );
    assert_eq!(sim.flush_flows().flushed, 0, "nothing left to flush");
    sim.shutdown().await;
}
