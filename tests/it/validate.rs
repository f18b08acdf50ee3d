//! `vnetsim validate`: JSON shape, text table, exit codes 0/1/2, service tag tables.

use sim::{Assumption, ServiceTagTable};

use crate::support::{arg, cli, has_keys, keys, tempdir, write, TINY_TAGS};

#[test]
fn valid_fixture_json_shape() {
    let r = cli(&["validate", "fixtures/default.toml", "--output", "json"]);
    r.expect_code(0);
    let j = r.json();
    has_keys(&j, &["valid", "findings", "assumptions", "service_tags"]);
    assert_eq!(j["valid"], true);
    assert_eq!(j["findings"].as_array().unwrap().len(), 0);
    // Every assumption, as {code, message}, in declaration order.
    let a = j["assumptions"].as_array().unwrap();
    assert_eq!(a.len(), Assumption::ALL.len());
    for (v, expected) in a.iter().zip(Assumption::ALL) {
        assert_eq!(keys(v), ["code", "message"]);
        assert_eq!(v["code"], expected.code());
        assert_eq!(v["message"], expected.message());
    }
    let builtin = ServiceTagTable::builtin();
    assert_eq!(j["service_tags"]["source"], "built-in");
    assert_eq!(
        j["service_tags"]["change_number"].as_u64(),
        builtin.info().change_number
    );
}

#[test]
fn error_findings_exit_1_with_full_finding_shape() {
    let r = cli(&[
        "validate",
        "fixtures/invalid/subnet-too-small.toml",
        "--output",
        "json",
    ]);
    r.expect_code(1);
    let j = r.json();
    assert_eq!(j["valid"], false);
    let f = &j["findings"][0];
    assert_eq!(
        keys(f),
        [
            "code",
            "location",
            "message",
            "reference",
            "severity",
            "subject"
        ]
    );
    assert_eq!(f["code"], "SUBNET_TOO_SMALL");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["subject"], "vnets/vnet-app/subnets/snet-apim");
    assert!(f["message"].as_str().unwrap().contains("/27"), "{f}");
    assert!(f["reference"]
        .as_str()
        .unwrap()
        .starts_with("https://learn.microsoft.com/"));
}

#[test]
fn warnings_alone_keep_a_fixture_valid() {
    let r = cli(&[
        "validate",
        "fixtures/invalid/dependency-blocked.toml",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["valid"], true);
    assert_eq!(j["findings"][0]["code"], "DEPENDENCY_BLOCKED");
    assert_eq!(j["findings"][0]["severity"], "warning");
    // The warning names the rule that blocks the dependency (decided by the NSG engine).
    assert!(j["findings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("deny-storage"));
}

#[test]
fn text_output_is_a_sorted_table_with_a_summary() {
    let r = cli(&[
        "validate",
        "fixtures/invalid/subnet-capacity-insufficient.toml",
    ]);
    r.expect_code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    // Rows start with `file:line:`, then the severity column.
    let severity = |l: &str| l.split_whitespace().nth(1).map(str::to_string);
    assert!(
        lines[0].starts_with("LOCATION") && lines[0].contains(" SEVERITY "),
        "{}",
        r.stdout
    );
    assert!(
        severity(lines[1]).as_deref() == Some("error")
            && lines[1].contains("SUBNET_CAPACITY_INSUFFICIENT"),
        "{}",
        r.stdout
    );
    assert!(
        severity(lines[2]).as_deref() == Some("warning")
            && lines[2].contains("SUBNET_BELOW_RECOMMENDED"),
        "errors first: {}",
        r.stdout
    );
    let last = lines.last().unwrap();
    assert!(
        last.contains("invalid") && last.contains("1 error, 1 warning"),
        "{last}"
    );

    let r = cli(&["validate", "fixtures/default.toml"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("fixtures/default.toml: valid"),
        "{}",
        r.stdout
    );
}

#[test]
fn syntax_error_exits_2_with_file_line_column() {
    let dir = tempdir();
    let p = write(
        dir.path(),
        "broken.toml",
        "[[vnets]]\nname = \"v\"\nregion = westeurope\n",
    );
    let r = cli(&["validate", arg(&p)]);
    r.expect_code(2);
    assert!(r.stdout.is_empty(), "nothing on stdout: {}", r.stdout);
    let expected = format!("{}:3:", p.display());
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
}

#[test]
fn unknown_key_exits_2_naming_the_key_and_position() {
    let dir = tempdir();
    let p = write(
        dir.path(),
        "typo.toml",
        "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\naddres_prefix = \"x\"\n",
    );
    let r = cli(&["validate", arg(&p), "--output", "json"]);
    r.expect_code(2);
    let e = r.json_error();
    assert_eq!(
        (
            e["code"].as_str(),
            e["location"]["line"].as_u64(),
            e["location"]["column"].as_u64()
        ),
        (Some("PARSE_ERROR"), Some(5), Some(1))
    );
    assert!(
        r.stderr.contains(&format!("{}:5:1:", p.display())),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("addres_prefix"), "{}", r.stderr);
}

#[test]
fn unreadable_fixture_exits_2_naming_the_path() {
    let r = cli(&["validate", "fixtures/no-such-fixture.toml"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("fixtures/no-such-fixture.toml"),
        "{}",
        r.stderr
    );
}

#[test]
fn service_tags_override_is_used_and_named() {
    let dir = tempdir();
    let tags = write(dir.path(), "tags.json", TINY_TAGS);
    let r = cli(&[
        "validate",
        "fixtures/default.toml",
        "--output",
        "json",
        "--service-tags",
        arg(&tags),
    ]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["service_tags"]["source"], "file");
    assert_eq!(j["service_tags"]["change_number"], 4242);

    // A table without AzureKeyVault makes the default fixture's allow-keyvault rule invalid:
    // proof that rules are resolved against the override.
    let no_kv = write(
        dir.path(),
        "no-kv.json",
        &TINY_TAGS.replace("\"AzureKeyVault\"", "\"Other\""),
    );
    let r = cli(&[
        "validate",
        "fixtures/default.toml",
        "--output",
        "json",
        "--service-tags",
        arg(&no_kv),
    ]);
    r.expect_code(1);
    let j = r.json();
    assert_eq!(j["findings"][0]["code"], "RULE_UNKNOWN_SERVICE_TAG");
    assert_eq!(
        j["findings"][0]["subject"],
        "nsgs/nsg-apim/securityRules/allow-keyvault"
    );
}

#[test]
fn malformed_service_tags_exit_2_naming_both_files() {
    let dir = tempdir();
    let tags = write(dir.path(), "tags.json", "{\"values\": []}");
    let r = cli(&[
        "validate",
        "fixtures/default.toml",
        "--service-tags",
        arg(&tags),
    ]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("tags.json") && r.stderr.contains("fixtures/default.toml"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("changeNumber"),
        "says what was expected: {}",
        r.stderr
    );
}

#[test]
fn fixture_service_tag_file_is_relative_to_the_fixture() {
    let dir = tempdir();
    write(dir.path(), "tags.json", TINY_TAGS);
    let text = std::fs::read_to_string(crate::support::fixture("default.toml")).unwrap();
    let p = write(
        dir.path(),
        "with-tags.toml",
        &format!("{text}\n[service_tags]\nfile = \"tags.json\"\n"),
    );
    // Run from the package root: the file is found next to the fixture, not in the cwd.
    let r = cli(&["validate", arg(&p), "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.json()["service_tags"]["change_number"], 4242);
    // A missing file names the fixture and the tag file.
    std::fs::remove_file(dir.path().join("tags.json")).unwrap();
    let r = cli(&["validate", arg(&p)]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("with-tags.toml") && r.stderr.contains("tags.json"),
        "{}",
        r.stderr
    );
}

#[test]
fn help_lists_the_commands() {
    let r = cli(&["--help"]);
    r.expect_code(0);
    assert!(r.stdout.contains("Usage: vnetsim"), "{}", r.stdout);
    for cmd in ["validate", "check", "test"] {
        assert!(r.stdout.contains(cmd), "{}", r.stdout);
    }
    // A command without its required arguments is a usage error: exit 2, usage on stderr.
    let r = cli(&["check", "fixtures/default.toml"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--from"), "{}", r.stderr);
}
