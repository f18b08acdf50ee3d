//! Source locations: findings, `check`'s deciding and matched rules, and load errors name the
//! file and the line of the entry they are about — the entry's own line, even deep in an array
//! of tables (the third rule of the second NSG).

use serde_json::{json, Value};

use crate::support::{arg, cli, fixture, tempdir, write};

/// A complete rule table (TOML) named `name` with `priority`, plus `extra` lines.
fn rule(name: &str, priority: u32, extra: &str) -> String {
    format!(
        "\n[[nsgs.security_rules]]\nname = \"{name}\"\npriority = {priority}\ndirection = \"Outbound\"\naccess = \"Allow\"\nprotocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_port_range = \"443\"\n{extra}"
    )
}

/// Two NSGs; the second holds three rules, the third with `third` as its destination lines.
/// Returns the text and the 1-based line of the third rule's `[[nsgs.security_rules]]` header.
fn deep_fixture(third_priority: u32, third: &str) -> (String, usize) {
    let dst = "destination_address_prefix = \"*\"\n";
    let text = format!(
        "[[nsgs]]\nname = \"nsg-a\"\n{}\n[[nsgs]]\nname = \"nsg-b\"\n{}{}{}",
        rule("a1", 100, dst),
        rule("r1", 100, dst),
        rule("r2", 200, dst),
        rule("r3", third_priority, third),
    );
    (text.clone(), header_line(&text, "name = \"r3\""))
}

/// The 1-based line of the last `[[nsgs.security_rules]]` header before the line `marker`.
fn header_line(text: &str, marker: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == marker)
        .unwrap_or_else(|| panic!("`{marker}` is in the text"));
    lines[..at]
        .iter()
        .rposition(|l| l.trim() == "[[nsgs.security_rules]]")
        .expect("a rule header above the marker")
        + 1
}

#[test]
fn a_finding_deep_in_a_fixture_names_its_rule_line() {
    let dir = tempdir();
    // r3 repeats r2's priority: RULE_PRIORITY_DUPLICATE about the second NSG's third rule.
    let (text, line) = deep_fixture(200, "destination_address_prefix = \"*\"\n");
    let p = write(dir.path(), "deep.toml", &text);
    let path = arg(&p);

    let r = cli(&["validate", path]);
    r.expect_code(1);
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("RULE_PRIORITY_DUPLICATE"))
        .unwrap_or_else(|| panic!("a finding row: {}", r.stdout));
    // `file:line:` first, then the row as before: severity, code, subject, message.
    assert!(row.starts_with(&format!("{path}:{line}: ")), "{row}");
    assert!(row.contains("nsgs/nsg-b/securityRules/r3"), "{row}");

    let r = cli(&["validate", path, "--output", "json"]);
    r.expect_code(1);
    let f = &r.json()["findings"][0];
    assert_eq!(f["code"], "RULE_PRIORITY_DUPLICATE");
    assert_eq!(
        f["location"],
        json!({"file": path, "line": line, "column": 1, "pointer": "/nsgs/1/security_rules/2"})
    );
}

#[test]
fn a_load_error_deep_in_a_fixture_names_its_rule_line() {
    let dir = tempdir();
    let both =
        "destination_address_prefix = \"*\"\ndestination_address_prefixes = [\"10.0.0.0/8\"]\n";
    for (case, third) in [("both forms", both), ("neither form", "")] {
        let (text, line) = deep_fixture(300, third);
        let p = write(dir.path(), "deep.toml", &text);
        let r = cli(&["validate", arg(&p), "--output", "json"]);
        r.expect_code(2);
        // The third rule's own header, not the NSG's first rule (the array's position).
        let expected = format!("error: {}:{line}:1: rule `r3`: ", p.display());
        assert!(r.stderr.starts_with(&expected), "{case}: {}", r.stderr);
        let e = r.json_error();
        assert_eq!(
            (e["code"].as_str(), e["location"]["line"].as_u64()),
            (Some("PARSE_ERROR"), Some(line as u64)),
            "{case}: {e}"
        );

        // The same fixture as JSON: the rule's opening brace.
        let doc: toml::Value = toml::from_str(&text).expect("well-formed TOML");
        let json = serde_json::to_string_pretty(&doc).unwrap();
        let p = write(dir.path(), "deep.json", &json);
        let lines: Vec<&str> = json.lines().collect();
        let name = lines
            .iter()
            .position(|l| l.contains("\"r3\""))
            .expect("r3 is in the JSON");
        let brace = lines[..name]
            .iter()
            .rposition(|l| l.trim() == "{")
            .expect("the rule's opening brace")
            + 1;
        let r = cli(&["validate", arg(&p)]);
        r.expect_code(2);
        assert!(
            r.stderr
                .starts_with(&format!("error: {}:{brace}:", p.display())),
            "{case}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("rule `r3`"), "{case}: {}", r.stderr);
    }
}

fn check_json(fixture: &str, to: &str) -> Value {
    let r = cli(&[
        "check", fixture, "--from", "apim", "--to", to, "--output", "json",
    ]);
    r.json()
}

#[test]
fn check_locates_the_deciding_rule_in_the_default_fixture() {
    let text = std::fs::read_to_string(fixture("default.toml")).unwrap();
    let line = |rule: &str| header_line(&text, &format!("name = \"{rule}\""));

    // Allowed: the backend NSG's inbound rule decides; the APIM NSG's outbound rule matched first.
    let j = check_json("fixtures/default.toml", "orders:443");
    assert_eq!(j["decided_by"]["rule"], "securityRules/allow-apim-subnet");
    let at = &j["decided_by"]["location"];
    assert_eq!(at["line"], line("allow-apim-subnet"), "{at}");
    assert_eq!(at["file"], "fixtures/default.toml");
    assert_eq!(at["column"], 3, "the header is indented by two spaces");
    let ev = j["evaluated"].as_array().unwrap();
    for e in ev {
        let name = e["matched_rule"].as_str().unwrap();
        let rule = name.strip_prefix("securityRules/").expect("a custom rule");
        assert_eq!(e["location"]["line"], line(rule), "{e}");
        assert_eq!(e["location"]["file"], "fixtures/default.toml");
    }
    assert_eq!(ev[1]["location"], *at, "the last NSG's match decides");

    // Denied: the deny rule, in JSON and in the text explanation.
    let j = check_json("fixtures/default.toml", "legacy:8080");
    assert_eq!(j["decided_by"]["location"]["line"], line("deny-legacy"));
    let r = cli(&[
        "check",
        "fixtures/default.toml",
        "--from",
        "apim",
        "--to",
        "legacy:8080",
    ]);
    let rule_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Rule "))
        .expect("a Rule line");
    assert!(
        rule_line.ends_with(&format!(
            " at fixtures/default.toml:{}",
            line("deny-legacy")
        )),
        "{rule_line}"
    );

    // A default rule is in no file: its location is null (orders' outbound NSG lets the flow
    // out by AllowVnetOutBound, then the backend NSG denies it inbound).
    let r = cli(&[
        "check",
        "fixtures/default.toml",
        "--from",
        "orders",
        "--to",
        "legacy:8080",
        "--output",
        "json",
    ]);
    let ev = &r.json()["evaluated"];
    assert_eq!(
        ev[0]["matched_rule"],
        "defaultSecurityRules/AllowVnetOutBound"
    );
    assert!(ev[0]["location"].is_null(), "{ev}");
    assert_eq!(ev[1]["location"]["line"], line("deny-vnet-inbound"), "{ev}");
}

#[test]
fn every_finding_of_the_broken_fixtures_is_located() {
    let mut dir: Vec<_> = std::fs::read_dir(fixture("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    dir.sort();
    for p in dir {
        let rel = format!(
            "fixtures/invalid/{}",
            p.file_name().unwrap().to_str().unwrap()
        );
        let r = cli(&["validate", &rel, "--output", "json"]);
        let lines = std::fs::read_to_string(&p).unwrap().lines().count();
        for f in r.json()["findings"].as_array().unwrap() {
            let at = &f["location"];
            assert_eq!(at["file"], rel.as_str(), "{f}");
            let line = at["line"].as_u64().unwrap_or_else(|| panic!("a line: {f}"));
            assert!((1..=lines as u64).contains(&line), "{f}");
            assert!(at["pointer"].as_str().is_some_and(|p| p.starts_with('/')));
        }
    }
}

#[test]
fn azure_inputs_are_located_in_the_template() {
    let template = "fixtures/arm/apim-integration.json";
    let r = cli(&[
        "check",
        template,
        "--parameters",
        "fixtures/arm/apim-integration.parameters.json",
        "--from",
        "apim",
        "--to",
        "8.8.8.8:443",
        "--output",
        "json",
    ]);
    let j = r.json();
    let d = &j["decided_by"];
    assert_eq!(d["rule"], "securityRules/Deny-Internet-Outbound", "{d}");
    let at = &d["location"];
    assert_eq!(at["file"], template);
    // An ARM pointer into the template, and the line where that resource starts.
    let pointer = at["pointer"].as_str().unwrap();
    assert!(pointer.starts_with("/resources/"), "{at}");
    let text = std::fs::read_to_string(crate::support::root().join(template)).unwrap();
    let line = at["line"].as_u64().unwrap() as usize;
    let rest: Vec<&str> = text.lines().skip(line - 1).take(5).collect();
    assert_eq!(rest[0].trim(), "{", "{at}: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("Deny-Internet-Outbound")),
        "{rest:?}"
    );

    // An import finding is located at the export that caused it.
    let r = cli(&["validate", "fixtures/arm/exports", "--output", "json"]);
    let j = r.json();
    let f = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "PEERING_NOT_CONNECTED")
        .expect("the export's peering to a VNet outside the inputs");
    assert_eq!(f["location"]["file"], "fixtures/arm/exports/vnet-prod.json");
    assert_eq!(
        f["location"]["pointer"],
        "/properties/virtualNetworkPeerings/0"
    );
    assert!(f["location"]["line"].as_u64().is_some_and(|l| l > 1), "{f}");
}
