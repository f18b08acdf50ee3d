//! Group 2: the rule field parsers, with random text in every field of a rule, through the
//! admin API's shape and through fixture text.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use sim::fixture::{Fixture, Format, RuleFile};
use sim::{Built, Change, ChangeError, RawRule, SecurityRule, Topology};

use crate::cases::fuzz_config;
use crate::{tags, CASE_TIME_BOUND};

/// Fragments of rule field text: valid items, boundaries, separators, markers, junk.
const FIELD_TOKENS: &[&str] = &[
    "*",
    "80",
    "443",
    "0",
    "65535",
    "65536",
    "-1",
    "80-90",
    "90-80",
    "1-65535",
    "-",
    ",",
    " ",
    "/",
    "/33",
    "/-1",
    "10.0.0.0",
    "10.0.0.0/8",
    "10.0.1.7/24",
    "fd00::/64",
    "::",
    "256.0.0.1",
    "VirtualNetwork",
    "Internet",
    "Storage",
    "Storage.WestEurope",
    "AzureLoadBalancer",
    "NoSuchTag",
    "<unknown:/resources/0>",
    "<unknown:",
    "Tcp",
    "tcp",
    "Any",
    "All",
    "Icmp",
    "Esp",
    "Ah",
    "Foo",
    "é",
    "𝄞",
    "\u{0}",
    "\t",
    "99999999999999999999",
];

/// Valid address items (prefixes, addresses, `*`, service tags).
const ADDRESS_VALID: &[&str] = &[
    "*",
    "10.0.0.0/8",
    "10.0.1.0/24",
    "10.0.2.4",
    "VirtualNetwork",
    "Internet",
    "Storage",
    "Storage.WestEurope",
    "AzureLoadBalancer",
];
/// Valid port items.
const PORT_VALID: &[&str] = &["*", "80", "443", "80-90", "1-65535", "8080"];

/// A field's text: usually one of `valid` (so about half the rules are entirely valid and
/// reach the evaluator), else any token of [`FIELD_TOKENS`], a few run together, or any string.
fn arb_text(valid: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        16 => select(valid).prop_map(str::to_string),
        2 => select(FIELD_TOKENS).prop_map(str::to_string),
        1 => prop::collection::vec(select(FIELD_TOKENS), 2..4).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
    .boxed()
}

/// A priority as JSON: mostly in range, else out of range at every integer boundary, and
/// now and then not an integer (a float, a string, beyond i64).
fn arb_priority() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => (100i64..=4096).prop_map(|p| json!(p)),
        3 => select(vec![0i64, 99, 4097, 65000, -1, i64::MIN, i64::MAX]).prop_map(|p| json!(p)),
        1 => prop_oneof![Just(json!(u64::MAX)), Just(json!(100.5)), arb_text(&["100"]).prop_map(Value::String)],
    ]
}

/// One side's address: one of the three forms, two forms at once, or none.
fn arb_address_side(side: &'static str) -> impl Strategy<Value = Vec<(String, Value)>> {
    let one = arb_text(ADDRESS_VALID).prop_map(Value::String).boxed();
    let list = prop::collection::vec(one.clone(), 0..4)
        .prop_map(Value::Array)
        .boxed();
    prop_oneof![
        16 => one.clone().prop_map(move |v| vec![(format!("{side}_address_prefix"), v)]),
        4 => list.clone().prop_map(move |v| vec![(format!("{side}_address_prefixes"), v)]),
        1 => list.clone().prop_map(move |v| vec![(format!("{side}_application_security_groups"), v)]),
        1 => (one, list).prop_map(move |(a, b)| vec![(format!("{side}_address_prefix"), a), (format!("{side}_address_prefixes"), b)]),
        1 => Just(vec![]),
    ]
}

/// One side's ports: one of the two forms, both, none, or a number instead of text.
fn arb_port_side(side: &'static str) -> impl Strategy<Value = Vec<(String, Value)>> {
    let one = arb_text(PORT_VALID).prop_map(Value::String).boxed();
    let list = prop::collection::vec(one.clone(), 0..4)
        .prop_map(Value::Array)
        .boxed();
    prop_oneof![
        16 => one.clone().prop_map(move |v| vec![(format!("{side}_port_range"), v)]),
        4 => list.clone().prop_map(move |v| vec![(format!("{side}_port_ranges"), v)]),
        1 => (one, list).prop_map(move |(a, b)| vec![(format!("{side}_port_range"), a), (format!("{side}_port_ranges"), b)]),
        1 => prop_oneof![Just(vec![(format!("{side}_port_range"), json!(80))]), Just(vec![])],
    ]
}

/// A rule in the admin API's JSON shape with random text in its fields.
fn arb_rule_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof![4 => Just(None), 1 => arb_text(&["allow-1", "r_x", "a.b"]).prop_map(Some)],
        arb_priority(),
        prop_oneof![9 => select(vec!["Inbound", "Outbound", "outbound"]), 1 => select(vec!["Sideways", ""])],
        prop_oneof![9 => select(vec!["Allow", "Deny", "deny"]), 1 => Just("Maybe")],
        prop_oneof![8 => select(vec!["Tcp", "Udp", "*", "Any", "icmp"]).prop_map(str::to_string), 1 => arb_text(&["Tcp"])],
        (arb_address_side("source"), arb_port_side("source")),
        (arb_address_side("destination"), arb_port_side("destination")),
        prop::option::of(prop_oneof![6 => arb_text(&["d"]), 1 => Just("d".repeat(141))]),
    )
        .prop_map(|(name, priority, direction, access, protocol, (sa, sp), (da, dp), description)| {
            let mut m = Map::new();
            if let Some(name) = name {
                m.insert("name".into(), json!(name));
            }
            m.insert("priority".into(), priority);
            m.insert("direction".into(), json!(direction));
            m.insert("access".into(), json!(access));
            m.insert("protocol".into(), json!(protocol));
            for (k, v) in sa.into_iter().chain(sp).chain(da).chain(dp) {
                m.insert(k, v);
            }
            if let Some(d) = description {
                m.insert("description".into(), json!(d));
            }
            Value::Object(m)
        })
}

/// The base topology of the rule cases: the default fixture (two NSGs, ASG-free).
fn base() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let text = include_str!("../../../fixtures/default.toml");
        let f = Fixture::parse(text, Format::Toml).expect("the default fixture parses");
        let b = Topology::build(&f, tags().clone());
        assert!(!b.has_errors(), "the default fixture has no error findings");
        b
    })
}

/// Names the rules of a change that have none (`r0`, `r1`, …), so each has its own subject.
fn named(mut rules: Vec<Value>) -> Vec<Value> {
    for (i, r) in rules.iter_mut().enumerate() {
        if r.get("name").is_none() {
            r["name"] = json!(format!("r{i}"));
        }
    }
    rules
}

/// The rule oracle: in `built`, NSG `nsg`'s rule at position `i` of `rules` is in force exactly
/// when [`SecurityRule::from_file`] accepts it on its own; when it refuses it, every finding it
/// gives is among the topology's findings for that rule.
fn check_rules(built: &Built, nsg: &str, rules: &[RuleFile]) -> Result<(), TestCaseError> {
    let t = &built.topology;
    let n = t.nsg_index(nsg).expect("the NSG exists");
    let in_force = &t.nsgs()[n];
    let doc = built.document.fixture();
    let known_asgs: BTreeSet<String> = doc
        .application_security_groups
        .iter()
        .chain(
            doc.hosts
                .iter()
                .flat_map(|h| &h.application_security_groups),
        )
        .map(|a| a.to_ascii_lowercase())
        .collect();
    for (i, r) in rules.iter().enumerate() {
        let subject = format!("nsgs/{}/securityRules/{}", in_force.name, r.name);
        let kept = in_force
            .rules
            .iter()
            .any(|k| !k.is_default && k.index == Some(i));
        match SecurityRule::from_file(r, t.service_tags(), &known_asgs, &subject) {
            Ok(_) => prop_assert!(kept, "rule {} parses alone but is not in force", i),
            Err(fs) => {
                prop_assert!(!kept, "rule {} is invalid ({:?}) but in force", i, fs);
                prop_assert!(!fs.is_empty());
                for f in fs {
                    let reported = built
                        .findings
                        .iter()
                        .any(|b| b.code == f.code && b.subject == subject);
                    prop_assert!(reported, "{} missing from the build's findings", f);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_config(192))]

    /// Random text in every field of rules given as the admin API takes them: the JSON either
    /// does not have the rule's shape (a serde error, or `ChangeError::InvalidRule` naming the
    /// rule), or the change builds and each rule is in force or reported by its findings.
    #[test]
    fn rule_fields_from_the_admin_shape_are_parsed_or_reported(
        rules in prop::collection::vec(arb_rule_json(), 1..3), nsg in select(vec!["nsg-apim", "NSG-BACKEND", " nsg-apim ", "nope"]),
    ) {
        let rules = named(rules);
        let raw: Result<Vec<RawRule>, _> = rules.iter().map(|r| serde_json::from_value::<RawRule>(r.clone())).collect();
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                // A field of the wrong type (a float priority, a number as a port): serde says so.
                prop_assert!(!e.to_string().is_empty());
                return Ok(());
            }
        };
        let start = Instant::now();
        let change = Change::SetRules { nsg: nsg.to_string(), rules: raw.clone() };
        match base().apply(&change) {
            Err(ChangeError::UnknownNsg(n)) => prop_assert_eq!(n.as_str(), "nope"),
            // Only single-rule changes name one rule; a whole-list replacement never does.
            Err(e @ (ChangeError::UnknownRule { .. } | ChangeError::DefaultRule { .. })) => {
                prop_assert!(false, "SetRules answered a single-rule refusal: {}", e);
            }
            Err(ChangeError::InvalidRule { index, message, .. }) => {
                // The rule really lacks the fixture's shape.
                prop_assert!(index < raw.len());
                prop_assert!(RuleFile::try_from(raw[index].clone()).is_err(), "{}", message);
            }
            Ok(built) => {
                prop_assert_ne!(nsg, "nope");
                let files: Vec<RuleFile> = raw.into_iter().map(|r| RuleFile::try_from(r).expect("the change accepted its shape")).collect();
                check_rules(&built, nsg.trim(), &files)?;
            }
        }
        prop_assert!(start.elapsed() < CASE_TIME_BOUND, "{:?}", start.elapsed());
    }

    /// The same fields in fixture text (JSON, YAML and TOML renderings of one document): a
    /// load error with a 1-based position, or a topology in which each rule is in force or
    /// reported; the three syntaxes agree.
    #[test]
    fn rule_fields_in_fixture_text_are_parsed_or_reported(rules in prop::collection::vec(arb_rule_json(), 1..3)) {
        let rules = named(rules);
        let mut doc = serde_json::to_value(base().document.fixture()).expect("a fixture serialises");
        doc["nsgs"][0]["security_rules"] = Value::Array(rules);
        let mut texts = vec![(Format::Json, doc.to_string()), (Format::Yaml, serde_yaml_ng::to_string(&doc).expect("YAML"))];
        // TOML has no null and no integers beyond i64: such documents have no TOML rendering.
        if let Ok(t) = toml::to_string(&doc) {
            texts.push((Format::Toml, t));
        }
        let mut parsed: Vec<(Format, Fixture)> = Vec::new();
        for (format, text) in &texts {
            match Fixture::parse(text, *format) {
                Err(e) => {
                    prop_assert!(!e.message.is_empty(), "{:?}", format);
                    prop_assert!(e.line != Some(0) && e.column != Some(0), "{:?}: {}", format, e);
                }
                Ok(f) => {
                    let built = Topology::build(&f, tags().clone());
                    check_rules(&built, "nsg-apim", &f.nsgs[0].security_rules)?;
                    parsed.push((*format, f));
                }
            }
        }
        // One schema: whatever parses in two syntaxes is the same fixture.
        for w in parsed.windows(2) {
            prop_assert_eq!(&w[0].1, &w[1].1, "{:?} vs {:?}", w[0].0, w[1].0);
        }
    }
}
