//! The corpus table (issue 17): every ARM template JSON under `../shared/corpus` is imported
//! (with the `vnetsim-example.parameters.json` beside it, when there is one) and what came of
//! it — fixture entries mapped, resources ignored, unknown values, the parameters it still
//! needs — is one row of a table. The table is `docs/corpus.md`'s; this test regenerates it and
//! fails when the committed table differs (`VNETSIM_BLESS=1` rewrites it). Skips, saying so,
//! when the corpus is absent.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sim::arm::{detect, import, ImportOptions, Input, InputKind};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_root() -> PathBuf {
    repo().join("../shared/corpus")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn input(path: &Path) -> Input {
    Input::new(
        path.file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned(),
        std::fs::read_to_string(path).expect("readable"),
    )
}

/// Parameters a template declares without a default that `given` does not provide.
fn needed(template: &Value, given: Option<&Value>) -> Vec<String> {
    let ci = |v: &Value, k: &str| -> Option<Value> {
        v.as_object()?
            .iter()
            .find(|(x, _)| x.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let Some(Value::Object(ps)) = ci(template, "parameters") else {
        return Vec::new();
    };
    let given = given.and_then(|g| ci(g, "parameters"));
    let mut out: Vec<String> = ps
        .iter()
        .filter(|(_, d)| ci(d, "defaultValue").is_none())
        .filter(|(_, d)| ci(d, "nullable") != Some(Value::Bool(true)))
        .filter(|(n, _)| given.as_ref().and_then(|g| ci(g, n)).is_none())
        .map(|(n, _)| n.clone())
        .collect();
    out.sort();
    out
}

/// One row: path, parameters file used, outcome, mapped, ignored, unknowns, needed.
fn row(root: &Path, path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    if detect(&text) != Some(InputKind::Template) {
        return None;
    }
    let rel = path
        .strip_prefix(root)
        .expect("under root")
        .to_string_lossy()
        .replace('\\', "/");
    let params = path.with_file_name("vnetsim-example.parameters.json");
    let params = params.is_file().then_some(params);
    let template: Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    let pdoc: Option<Value> = params
        .as_ref()
        .and_then(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok());
    let need = needed(&template, pdoc.as_ref());
    let options = ImportOptions {
        parameter_files: params.iter().map(|p| input(p)).collect(),
        ..ImportOptions::default()
    };
    let (outcome, mapped, ignored, unknowns) = match import(&[input(path)], &options) {
        Ok(r) => {
            let f = &r.fixture;
            let mapped = f.vnets.len()
                + f.vnets.iter().map(|v| v.subnets.len()).sum::<usize>()
                + f.nsgs.len()
                + f.nsgs.iter().map(|n| n.security_rules.len()).sum::<usize>()
                + f.application_security_groups.len()
                + f.hosts.len()
                + usize::from(f.apim.is_some())
                + f.apis.len()
                + f.private_dns_zones.len();
            (
                "imported".to_string(),
                mapped.to_string(),
                r.ignored.len().to_string(),
                r.unknowns.len().to_string(),
            )
        }
        Err(e) => (
            format!("refused: `{}`", e.code()),
            "-".into(),
            "-".into(),
            "-".into(),
        ),
    };
    let pfile = if params.is_some() {
        "example"
    } else {
        "defaults"
    };
    let need = if need.is_empty() {
        String::new()
    } else {
        need.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "| `{rel}` | {pfile} | {outcome} | {mapped} | {ignored} | {unknowns} | {need} |"
    ))
}

const BEGIN: &str = "<!-- corpus-table:begin -->";
const END: &str = "<!-- corpus-table:end -->";

#[test]
fn corpus_table_matches_docs() {
    let root = corpus_root();
    if !root.is_dir() {
        println!("skipped: ../shared/corpus not found ({})", root.display());
        return;
    }
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut table = String::from(
        "| template | parameters | outcome | mapped | ignored | unknowns | still needs |\n|---|---|---|---|---|---|---|\n",
    );
    for f in &files {
        if let Some(r) = row(&root, f) {
            table.push_str(&r);
            table.push('\n');
        }
    }
    println!("{table}");
    let doc_path = repo().join("docs/corpus.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/corpus.md has no {BEGIN} … {END} block");
    };
    let current = doc[b + BEGIN.len()..e].trim();
    if std::env::var_os("VNETSIM_BLESS").is_some() {
        let new = format!(
            "{}{BEGIN}\n{}{END}{}",
            &doc[..b],
            table,
            &doc[e + END.len()..]
        );
        std::fs::write(&doc_path, new).expect("writable");
        return;
    }
    assert_eq!(
        current,
        table.trim(),
        "docs/corpus.md's table is out of date: run with VNETSIM_BLESS=1 and review the diff"
    );
}
