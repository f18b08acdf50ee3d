//! Positions by format: each test writes the same two NSGs (the second with three rules) and
//! checks that the third rule of the second NSG is found on its own line.

use super::*;

fn line(map: &SourceMap, pointer: &str) -> Option<usize> {
    map.locate(pointer).and_then(|l| l.line)
}

#[test]
fn toml_entries_start_at_their_header() {
    let t = "[[nsgs]]\nname = \"a\"\n\n[[nsgs]]\nname = \"b\"\n\n[[nsgs.security_rules]]\nname = \"r1\"\n\n[[nsgs.security_rules]]\nname = \"r2\"\n\n[[nsgs.security_rules]]\nname = \"r3\"\npriority = 300\n\n[apim]\nname = \"x\"\nsubscription = { id = \"s\" }\n";
    let map = SourceMap::from_text("x.toml", t, Format::Toml);
    assert_eq!(line(&map, "/nsgs/1"), Some(4));
    assert_eq!(line(&map, "/nsgs/1/security_rules/0"), Some(7));
    // The third rule's own header, not the first rule's (the array's) position.
    assert_eq!(line(&map, "/nsgs/1/security_rules/2"), Some(13));
    assert_eq!(line(&map, "/nsgs/1/security_rules/2/priority"), Some(15));
    assert_eq!(line(&map, "/apim"), Some(17));
    assert_eq!(line(&map, "/apim/subscription/id"), Some(19));
    let at = map.locate("/nsgs/1/security_rules/2").unwrap();
    assert_eq!(at.file.as_deref(), Some("x.toml"));
    assert_eq!(at.column, Some(1));
    assert_eq!(at.pointer.as_deref(), Some("/nsgs/1/security_rules/2"));
    assert_eq!(at.to_string(), "x.toml:13");
}

#[test]
fn json_members_start_at_their_key() {
    let t = "{\n  \"nsgs\": [\n    {\"name\": \"a\"},\n    {\n      \"name\": \"b\",\n      \"security_rules\": [\n        {\"name\": \"r1\"},\n        {\"name\": \"r2\"},\n        {\n          \"name\": \"r3\",\n          \"priority\": 300\n        }\n      ]\n    }\n  ]\n}\n";
    let map = SourceMap::from_text("x.json", t, Format::Json);
    assert_eq!(line(&map, "/nsgs/1"), Some(4));
    assert_eq!(line(&map, "/nsgs/1/security_rules/1"), Some(8));
    assert_eq!(line(&map, "/nsgs/1/security_rules/2"), Some(9));
    assert_eq!(line(&map, "/nsgs/1/security_rules/2/priority"), Some(11));
    assert_eq!(
        map.locate("/nsgs/1/security_rules/1").unwrap().column,
        Some(9)
    );
}

#[test]
fn yaml_block_entries_are_found_by_their_lines() {
    // Both sequence styles: indented under the key, and at the key's own column.
    let t = "nsgs:\n  - name: a\n  - name: b\n    security_rules:\n    - name: r1\n    - name: r2\n    -   name: r3\n        priority: 300\n        description: |\n          name: not a key\n\n          --- not a document\n        destination_address_prefixes: [10.0.0.0/8]\napim:\n  name: x\n";
    let map = SourceMap::from_text("x.yaml", t, Format::Yaml);
    assert_eq!(line(&map, "/nsgs/1"), Some(3));
    assert_eq!(line(&map, "/nsgs/1/security_rules/0"), Some(5));
    assert_eq!(line(&map, "/nsgs/1/security_rules/2"), Some(7));
    assert_eq!(line(&map, "/nsgs/1/security_rules/2/priority"), Some(8));
    // A block scalar's lines (blank ones included) are neither keys nor document markers.
    assert_eq!(
        line(
            &map,
            "/nsgs/1/security_rules/2/destination_address_prefixes"
        ),
        Some(13)
    );
    assert_eq!(line(&map, "/apim/name"), Some(15));
    assert_eq!(
        map.locate("/nsgs/1/security_rules/2").unwrap().column,
        Some(5)
    );
}

#[test]
fn unknown_pointers_fall_back_to_an_ancestor() {
    let t = "[[nsgs]]\nname = \"a\"\n";
    let map = SourceMap::from_text("x.toml", t, Format::Toml);
    // No `security_rules` in the text: the NSG itself is the nearest entry.
    let at = map.locate("/nsgs/0/security_rules/4").unwrap();
    assert_eq!((at.line, at.pointer.as_deref()), (Some(1), Some("/nsgs/0")));
    // Nothing at all: the file and the pointer asked for, no line.
    let at = map.locate("/apim").unwrap();
    assert_eq!(
        (at.file.as_deref(), at.line, at.pointer.as_deref()),
        (Some("x.toml"), None, Some("/apim"))
    );
    assert_eq!(at.to_string(), "x.toml");
}

#[test]
fn broken_text_still_names_the_file() {
    for (t, f) in [
        ("[[nsgs]\n", Format::Toml),
        ("{\"nsgs\": [", Format::Json),
        ("- : : -\n  ]]", Format::Yaml),
    ] {
        let at = SourceMap::from_text("bad", t, f).locate("/nsgs/0").unwrap();
        assert_eq!(at.file.as_deref(), Some("bad"), "{t}");
    }
}

#[test]
fn imported_maps_only_know_their_entries() {
    let arm = Location {
        file: Some("t.json".into()),
        line: Some(12),
        column: Some(5),
        pointer: Some("/resources/1".into()),
    };
    let map = SourceMap::imported([("/nsgs/0".to_string(), arm.clone())]);
    // A rule without its own entry is placed on its NSG's resource.
    assert_eq!(map.locate("/nsgs/0/security_rules/3"), Some(arm));
    // The imported fixture was never written: nothing else is located.
    assert_eq!(map.locate("/vnets/0"), None);
}

#[test]
fn without_forgets_a_subtree() {
    let t =
        "[[nsgs]]\nname = \"a\"\n[[nsgs.security_rules]]\nname = \"r\"\n[[nsgs]]\nname = \"b\"\n";
    let map = SourceMap::from_text("x.toml", t, Format::Toml).without("/nsgs/0/security_rules");
    assert_eq!(line(&map, "/nsgs/0/security_rules/0"), Some(1));
    assert_eq!(line(&map, "/nsgs/1"), Some(5));
}

#[test]
fn without_item_renumbers_the_items_after_it() {
    let t = "[[nsgs]]\nname = \"a\"\n[[nsgs.security_rules]]\nname = \"r0\"\n[[nsgs.security_rules]]\nname = \"r1\"\n[[nsgs.security_rules]]\nname = \"r2\"\n[[nsgs]]\nname = \"b\"\n";
    let full = SourceMap::from_text("x.toml", t, Format::Toml);
    assert_eq!(line(&full, "/nsgs/0/security_rules/2"), Some(7));
    let map = full.without_item("/nsgs/0/security_rules", 1);
    // r0 keeps its line; r2 is item 1 now and keeps its own line.
    assert_eq!(line(&map, "/nsgs/0/security_rules/0"), Some(3));
    assert_eq!(line(&map, "/nsgs/0/security_rules/1"), Some(7));
    // No item 2 is left: it is located at an ancestor, not at r2's old line.
    assert_ne!(line(&map, "/nsgs/0/security_rules/2"), Some(7));
    // Other lists are untouched.
    assert_eq!(line(&map, "/nsgs/1"), Some(9));
}

#[test]
fn in_memory_fixtures_know_only_the_pointer() {
    let at = SourceMap::default().locate("/hosts/2").unwrap();
    assert_eq!(at.file, None);
    assert_eq!(at.pointer.as_deref(), Some("/hosts/2"));
    assert_eq!(at.to_string(), "/hosts/2");
    assert_eq!(at.file_line(), None);
}
