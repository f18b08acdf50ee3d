//! `vnetsim test`: passing and failing expectations, JUnit XML parsed back, bad input.

use std::path::Path;

use crate::support::{arg, cli, fixture, tempdir, write, TINY_STORAGE_ADDRESS, TINY_TAGS};

/// An expectations file in `dir` whose topology is the shipped default fixture.
fn expectations(dir: &Path, body: &str) -> std::path::PathBuf {
    let topo = fixture("default.toml");
    write(
        dir,
        "e.toml",
        &format!("topology = {:?}\n{body}", arg(&topo)),
    )
}

fn junit(path: &Path) -> String {
    std::fs::read_to_string(path).expect("the JUnit report was written")
}

/// The names listed by `[[expect]]` entries of a file, in order.
fn names_in(path: &Path) -> Vec<String> {
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["expect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shipped_expectations_pass_with_junit() {
    let dir = tempdir();
    let report = dir.path().join("report.xml");
    let file = fixture("default.expect.toml");
    let r = cli(&[
        "test",
        arg(&file),
        "--junit",
        arg(&report),
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let names = names_in(&file);
    assert!(names.len() >= 8);
    let j = r.json();
    assert_eq!(j["passed"], true);
    assert_eq!(j["total"], names.len());
    assert_eq!(j["failed"], 0);

    let xml = junit(&report);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(
        root.attribute("tests"),
        Some(names.len().to_string().as_str())
    );
    assert_eq!(root.attribute("failures"), Some("0"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let case_names: Vec<&str> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(
        case_names, names,
        "one test case per expectation, in file order"
    );
    assert!(doc.descendants().all(|n| !n.has_tag_name("failure")));
    // Written atomically: nothing else is left in the directory.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("report.xml")]);
}

#[test]
fn failing_expectation_exits_1_with_chain_and_junit_failure() {
    let dir = tempdir();
    // The name is full of XML markup: it must survive escaping unchanged.
    let tricky = "legacy <is> \"open\" & 'fine'";
    let file = expectations(
        dir.path(),
        &format!(
            "[[expect]]\nname = \"orders ok\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\n\n\
             [[expect]]\nname = {tricky:?}\nfrom = \"apim\"\nto = \"legacy:8080\"\nverdict = \"allow\"\nrule = \"securityRules/allow-backends-https\"\n"
        ),
    );
    let report = dir.path().join("junit.xml");
    let r = cli(&["test", arg(&file), "--junit", arg(&report)]);
    r.expect_code(1);
    assert!(r.stdout.contains("FAIL"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("verdict: expected Allow, got Deny (NSG_DENIED)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("rule: expected securityRules/allow-backends-https, got nsg-apim / securityRules/deny-legacy"), "{}", r.stdout);
    assert!(
        r.stdout.contains("1. nsg-apim on vnets/vnet-app/subnets/snet-apim (Outbound): securityRules/deny-legacy -> Deny"),
        "the actual chain: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("1 of 2 expectations passed, 1 failed"),
        "{}",
        r.stdout
    );

    let xml = junit(&report);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("2"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 2);
    assert!(
        cases[0].children().all(|c| !c.has_tag_name("failure")),
        "the first passed"
    );
    assert_eq!(cases[1].attribute("name"), Some(tricky));
    let failure = cases[1]
        .children()
        .find(|c| c.has_tag_name("failure"))
        .expect("a <failure>");
    let message = failure.attribute("message").unwrap();
    assert!(
        message.contains("verdict: expected Allow, got Deny"),
        "{message}"
    );
    let body = failure.text().unwrap();
    assert!(
        body.contains("nsg-apim") && body.contains("securityRules/deny-legacy -> Deny"),
        "{body}"
    );
    assert!(body.contains("=> Deny (NSG_DENIED)"), "{body}");

    // The JSON report says the same.
    let r = cli(&["test", arg(&file), "--output", "json"]);
    r.expect_code(1);
    let j = r.json();
    assert_eq!(j["passed"], false);
    assert_eq!(j["results"][1]["passed"], false);
    assert_eq!(
        j["results"][1]["actual"]["decided_by"]["rule"],
        "securityRules/deny-legacy"
    );
    assert_eq!(j["results"][1]["mismatches"].as_array().unwrap().len(), 2);
}

#[test]
fn a_bad_entry_is_an_error_test_case_and_the_others_run() {
    let dir = tempdir();
    // Line 2: a good entry; line 8: an unknown key (line 13); line 15: an unknown host.
    let file = expectations(
        dir.path(),
        "[[expect]]\nname = \"good\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\n\n\
         [[expect]]\nname = \"typo\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\nexpected_rule = \"x\"\n\n\
         [[expect]]\nname = \"nowhere\"\nfrom = \"apim\"\nto = \"ordrs:443\"\nverdict = \"Allow\"\n",
    );
    let f = arg(&file);
    let report = dir.path().join("junit.xml");
    let r = cli(&["test", f, "--junit", arg(&report)]);
    r.expect_code(2);
    assert!(r.stderr.contains(&format!("{f}:13:1:")), "{}", r.stderr);
    assert!(r.stdout.contains("expected_rule"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "{f}:18:6: expectation `nowhere`: destination `ordrs`"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("pass") && l.contains("good")),
        "{}",
        r.stdout
    );

    // The JUnit file is written: three cases in file order, two errors, times and lines.
    let xml = junit(&report);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(
        (
            suite.attribute("tests"),
            suite.attribute("failures"),
            suite.attribute("errors")
        ),
        (Some("3"), Some("0"), Some("2"))
    );
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<_> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(names, ["good", "typo", "nowhere"]);
    let lines: Vec<_> = cases.iter().map(|c| c.attribute("line").unwrap()).collect();
    assert_eq!(lines, ["3", "13", "18"]);
    for c in &cases {
        assert_eq!(c.attribute("file"), Some(f));
        let t: f64 = c.attribute("time").unwrap().parse().unwrap();
        assert!(t >= 0.0);
    }
    assert!(!cases[0].children().any(|n| n.has_tag_name("error")));
    let error = cases[1]
        .children()
        .find(|n| n.has_tag_name("error"))
        .expect("the bad entry is an error test case");
    assert!(error
        .attribute("message")
        .unwrap()
        .contains("expected_rule"));
    assert!(cases[2].children().any(|n| n.has_tag_name("error")));

    // JSON: the report with the error object beside it.
    let r = cli(&["test", f, "--output", "json"]);
    r.expect_code(2);
    let j = r.json();
    assert_eq!(j["error"]["code"], "BAD_EXPECTATION");
    assert_eq!(j["error"]["location"]["file"], f);
    assert_eq!(j["error"]["location"]["line"], 13);
    assert_eq!(
        (j["total"].as_u64(), j["errored"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(j["results"][0]["name"], "good");
    assert_eq!(j["results"][0]["line"], 3);
    assert_eq!(j["errors"][1]["name"], "nowhere");
}

#[test]
fn a_syntax_error_outside_the_entries_is_bad_input_without_a_report() {
    let dir = tempdir();
    let file = write(
        dir.path(),
        "e.toml",
        "topology = \n[[expect]]\nname = \"n\"\n",
    );
    let report = dir.path().join("junit.xml");
    let r = cli(&[
        "test",
        arg(&file),
        "--junit",
        arg(&report),
        "--output",
        "json",
    ]);
    r.expect_code(2);
    assert_eq!(r.json()["error"]["code"], "PARSE_ERROR");
    assert_eq!(r.json()["error"]["location"]["line"], 1);
    assert!(!report.exists(), "no report when the file itself is bad");
}

#[test]
fn nsg_names_the_nsg_whose_matched_rule_is_compared() {
    let dir = tempdir();
    // apim -> orders:443 crosses nsg-apim (outbound) and nsg-backend (inbound); the deciding
    // rule is nsg-backend's allow-apim-subnet.
    let entry = |name: &str, nsg: &str, rule: &str| {
        format!("[[expect]]\nname = \"{name}\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\nnsg = \"{nsg}\"\nrule = \"{rule}\"\n")
    };
    let body = [
        entry("apim side, bare", "nsg-apim", "allow-backends-https"),
        entry(
            "apim side, qualified",
            "NSG-APIM",
            "securityRules/allow-backends-https",
        ),
        entry("backend side", "nsg-backend", "allow-apim-subnet"),
    ]
    .concat();
    let file = expectations(dir.path(), &body);
    let r = cli(&["test", arg(&file)]);
    r.expect_code(0);
    // The wrong NSG's rule, and an NSG not on the path, are mismatches that say so.
    let body = [
        entry("wrong nsg", "nsg-backend", "allow-backends-https"),
        entry("not on path", "nsg-nowhere", "allow-backends-https"),
    ]
    .concat();
    let file = expectations(dir.path(), &body);
    let r = cli(&["test", arg(&file), "--output", "json"]);
    r.expect_code(1);
    let j = r.json();
    let m0 = j["results"][0]["mismatches"][0].as_str().unwrap();
    assert!(m0.contains("expected nsg-backend / allow-backends-https, got nsg-backend / securityRules/allow-apim-subnet"), "{m0}");
    let m1 = j["results"][1]["mismatches"][0].as_str().unwrap();
    assert!(
        m1.contains("nsg-nowhere is not on the flow's path (evaluated: nsg-apim, nsg-backend)"),
        "{m1}"
    );
    // Without `nsg`, a bare rule name is still refused (it must name the deciding rule fully).
    let file = expectations(
        dir.path(),
        "[[expect]]\nname = \"bare\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\nrule = \"allow-apim-subnet\"\n",
    );
    let r = cli(&["test", arg(&file)]);
    r.expect_code(2);
    assert!(r.stdout.contains("securityRules/<name>"), "{}", r.stdout);
}

#[test]
fn unresolvable_expectations_are_all_reported() {
    let dir = tempdir();
    let file = expectations(
        dir.path(),
        "[[expect]]\nname = \"a\"\nfrom = \"apim\"\nto = \"ordrs:443\"\nverdict = \"Allow\"\n\n\
         [[expect]]\nname = \"b\"\nfrom = \"10.0.9.9\"\nto = \"orders:443\"\nverdict = \"Deny\"\n",
    );
    let r = cli(&["test", arg(&file)]);
    r.expect_code(2);
    let f = arg(&file);
    assert!(
        r.stdout
            .contains(&format!("{f}:5:6: expectation `a`: destination `ordrs`")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("{f}:10:8: expectation `b`: source 10.0.9.9")),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("2 expectation(s) could not be evaluated"),
        "{}",
        r.stderr
    );
}

#[test]
fn topology_with_structural_errors_is_refused() {
    let dir = tempdir();
    let topo = fixture("invalid/subnet-overlap.toml");
    let file = write(
        dir.path(),
        "e.toml",
        &format!(
            "topology = {:?}\n[[expect]]\nname = \"n\"\nfrom = \"10.0.2.4\"\nto = \"10.0.2.5:443\"\nverdict = \"Allow\"\n",
            arg(&topo)
        ),
    );
    let r = cli(&["test", arg(&file)]);
    r.expect_code(2);
    assert!(r.stderr.contains("SUBNET_OVERLAP"), "{}", r.stderr);
}

#[test]
fn topology_is_relative_to_the_expectations_file() {
    let dir = tempdir();
    std::fs::copy(fixture("default.toml"), dir.path().join("net.toml")).unwrap();
    let file = write(
        dir.path(),
        "e.toml",
        "topology = \"net.toml\"\n[[expect]]\nname = \"n\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\n",
    );
    cli(&["test", arg(&file)]).expect_code(0);
    // A missing topology is bad input naming both files.
    std::fs::remove_file(dir.path().join("net.toml")).unwrap();
    let r = cli(&["test", arg(&file)]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("e.toml:1:12: topology:") && r.stderr.contains("net.toml"),
        "{}",
        r.stderr
    );
}

#[test]
fn service_tags_override_applies_to_test() {
    let dir = tempdir();
    let tags = write(dir.path(), "tags.json", TINY_TAGS);
    let file = expectations(
        dir.path(),
        &format!("[[expect]]\nname = \"storage\"\nfrom = \"apim\"\nto = \"{TINY_STORAGE_ADDRESS}:443\"\nverdict = \"Allow\"\nrule = \"securityRules/allow-storage\"\n"),
    );
    cli(&["test", arg(&file)]).expect_code(1);
    let r = cli(&[
        "test",
        arg(&file),
        "--service-tags",
        arg(&tags),
        "--output",
        "json",
    ]);
    r.expect_code(0);
    assert_eq!(r.json()["service_tags"]["change_number"], 4242);
}
