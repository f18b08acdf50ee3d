//! The built-in service tag table is the whole official `ServiceTags_Public` file (issue 16,
//! class 4): a rule on `Storage` matches Storage addresses of every region, every regional form
//! (`Storage.EastAsia`) is a valid rule address, and the explained verdict names the table and
//! changeNumber that defined the deciding tag.
//!
//! Azure: "the service tag **Storage** represents Azure Storage for the entire cloud, but
//! **Storage.WestUS** narrows the range to only the storage IP address ranges from the WestUS
//! region" (Learn, "Virtual network service tags",
//! https://learn.microsoft.com/azure/virtual-network/service-tags-overview). The tags and their
//! prefixes are those of the downloadable file ("Discover service tags by using downloadable JSON
//! files", same page), here `ServiceTags_Public_20251028.json`, changeNumber 375.

use std::net::IpAddr;

use sim::fixture::{Fixture, Format};
use sim::{Built, Flow, ServiceTagTable, Topology, VerdictCode};

/// A VM subnet whose NSG denies outbound TCP 443 to `TAG` and allows the rest.
const FIXTURE: &str = r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]

[[vnets.subnets]]
name = "vms"
address_prefix = "10.0.1.0/24"
nsg = "n"

[[hosts]]
name = "vm"
address = "10.0.1.4"

[[nsgs]]
name = "n"

[[nsgs.security_rules]]
name = "deny-tag"
priority = 100
direction = "Outbound"
access = "Deny"
protocol = "Tcp"
source_address_prefix = "*"
source_port_range = "*"
destination_address_prefix = "TAG"
destination_port_range = "443"
"#;

fn build(tag: &str, tags: ServiceTagTable) -> Built {
    let text = FIXTURE.replace("TAG", tag);
    let f = Fixture::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("fixture: {e}\n{text}"));
    Topology::build(&f, tags)
}

fn vm() -> IpAddr {
    "10.0.1.4".parse().unwrap()
}

/// `(region tag, one address of it)` for every `Storage.*` regional tag of a table.
fn storage_regions(t: &ServiceTagTable) -> Vec<(String, IpAddr)> {
    t.iter()
        .filter(|tag| tag.name.starts_with("Storage.") && !tag.region.is_empty())
        .map(|tag| {
            let p = tag.prefixes.first().expect("a regional tag has prefixes");
            (tag.name.clone(), p.first())
        })
        .collect()
}

/// Every address must be denied by `deny-tag` on both paths (verdict-only and explaining).
fn assert_denied_by_tag(t: &Topology, samples: &[(String, IpAddr)]) {
    for (region, dst) in samples {
        let f = Flow::tcp(vm(), 60000, *dst, 443);
        let d = t.decide(&f);
        assert_eq!(d.code, VerdictCode::NsgDenied, "{region} {dst}: {d:?}");
        let v = t.evaluate(&f);
        let rule = v.decided_by.as_ref().map(|r| r.rule.as_str());
        assert_eq!(rule, Some("securityRules/deny-tag"), "{region} {dst}");
    }
}

#[test]
fn storage_matches_every_region_of_the_builtin_table() {
    let b = build("Storage", ServiceTagTable::builtin());
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    let samples = storage_regions(b.topology.service_tags());
    // The official file has Storage in dozens of regions (the old subset had five).
    assert!(samples.len() > 50, "{} Storage regions", samples.len());
    assert!(samples.iter().any(|(n, _)| n == "Storage.EastAsia"));
    assert_denied_by_tag(&b.topology, &samples);
}

#[test]
fn storage_matches_every_region_of_the_corpus_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../shared/corpus/ryanborMSFT_AzureServiceTagsJson/Public/ServiceTags_Public_20251028.json",
    );
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "SKIPPED storage_matches_every_region_of_the_corpus_file: {} is absent",
            path.display()
        );
        return;
    };
    // Samples taken from the JSON file itself, checked against the BUILT-IN table.
    let json = ServiceTagTable::from_json(&text).expect("the corpus file parses");
    let samples = storage_regions(&json);
    let b = build("Storage", ServiceTagTable::builtin());
    assert_eq!(
        samples.len(),
        storage_regions(b.topology.service_tags()).len()
    );
    assert_denied_by_tag(&b.topology, &samples);
}

#[test]
fn a_regional_form_of_any_region_is_valid_and_narrows() {
    let b = build("Storage.EastAsia", ServiceTagTable::builtin());
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    let t = &b.topology;
    let east_asia = t.service_tags().get("Storage.EastAsia").unwrap().prefixes[0].first();
    let west_europe = t.service_tags().get("Storage.WestEurope").unwrap().prefixes[0].first();
    assert_denied_by_tag(t, &[("Storage.EastAsia".into(), east_asia)]);
    // Another region's Storage address is not in Storage.EastAsia: the default rules decide.
    let v = t.evaluate(&Flow::tcp(vm(), 60000, west_europe, 443));
    assert_eq!(v.code, VerdictCode::Allowed, "{v}");
}

#[test]
fn the_verdict_names_the_table_that_decided() {
    let b = build("storage.eastasia", ServiceTagTable::builtin());
    let t = &b.topology;
    let dst = t.service_tags().get("Storage.EastAsia").unwrap().prefixes[0].first();
    let v = t.evaluate(&Flow::tcp(vm(), 60000, dst, 443));
    let d = v.decided_by.as_ref().expect("a rule decided");
    assert_eq!(d.tags.len(), 1);
    let tag = &d.tags[0];
    assert_eq!(
        (tag.side, tag.tag.as_str()),
        ("destination", "Storage.EastAsia")
    );
    assert!(tag.tag_change_number.is_some());
    assert_eq!(
        tag.table,
        "built-in ServiceTags_Public changeNumber 375 (2025-10-28)"
    );
    let text = v.to_string();
    assert!(
        text.contains("Tag       destination `Storage.EastAsia` (tag changeNumber "),
        "{text}"
    );
    assert!(
        text.ends_with("Service tags: built-in ServiceTags_Public changeNumber 375 (2025-10-28)"),
        "{text}"
    );
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["decided_by"]["tags"][0]["tag"], "Storage.EastAsia");
    assert_eq!(j["service_tags"]["date"], "2025-10-28");
    // A rule without a table tag has no `tags` key.
    let other = t.evaluate(&Flow::tcp(vm(), 60000, "10.0.1.5".parse().unwrap(), 443));
    let j = serde_json::to_value(&other).unwrap();
    assert!(j["decided_by"].get("tags").is_none(), "{j}");
}

#[test]
fn a_user_file_replaces_the_builtin_table() {
    let file = r#"{"changeNumber": 7, "cloud": "Public", "values": [
      {"name": "Storage", "id": "Storage", "properties": {"changeNumber": 2, "region": "",
       "addressPrefixes": ["20.60.0.0/16"]}}]}"#;
    let tags = ServiceTagTable::from_json(file)
        .unwrap()
        .with_file_name("my-tags.json");
    // The user's table knows no regional forms: `Storage.EastAsia` is unknown there.
    let b = build("Storage.EastAsia", tags.clone());
    let codes: Vec<&str> = b.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ["RULE_UNKNOWN_SERVICE_TAG"]);
    assert!(b.findings[0]
        .message
        .contains("file my-tags.json: ServiceTags_Public changeNumber 7"));
    let b = build("Storage", tags);
    let v = b
        .topology
        .evaluate(&Flow::tcp(vm(), 60000, "20.60.1.1".parse().unwrap(), 443));
    assert_eq!(v.code, VerdictCode::NsgDenied);
    assert_eq!(
        v.decided_by.unwrap().tags[0].table,
        "file my-tags.json: ServiceTags_Public changeNumber 7"
    );
}
