//! `vnetsim import INPUT…`: the vnetsim TOML fixture equivalent to Azure inputs, written
//! atomically to `-o FILE` (never over an existing file without `--force`) or to stdout, with
//! every ignored resource, unknown value (grouped by cause and resource), assumption and import
//! finding on stderr (or in the `--output json` document), and what `validate` finds in the
//! result (`findings`, apart from the import's own `import_findings`). Exit code 0 written,
//! 1 written but the topology has error findings, 2 bad input.

use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use sim::fixture::ServiceTagsFile;
use sim::ServiceTagTable;

use super::inputs::AzureArgs;
use super::output::{findings_table, import_notes, out};
use super::{Output, Status};

/// Arguments of `vnetsim import`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Azure inputs, detected from content: ARM templates, parameters files, exported resource JSON, or folders (every *.json in them); all are merged into one topology.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    azure: AzureArgs,
    /// Write the TOML fixture to FILE (atomically) instead of stdout.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite FILE when it exists.
    #[arg(long)]
    force: bool,
    /// Format of the report (text on stderr, or one JSON document on stdout).
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: Output,
}

impl Args {
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

/// `target` relative to the folder `base` (both made absolute), for `[service_tags] file`,
/// which is read relative to the fixture; the absolute path when they share no root.
fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let (Ok(t), Ok(b)) = (std::path::absolute(target), std::path::absolute(base)) else {
        return target.to_path_buf();
    };
    let t: Vec<Component> = t.components().collect();
    let b: Vec<Component> = b.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return t.iter().collect();
    }
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    rel
}

/// The comment block at the top of the written fixture: where it came from.
fn header(a: &Args, unknowns: usize) -> String {
    let inputs: Vec<String> = a.inputs.iter().map(|p| p.display().to_string()).collect();
    let mut h = format!(
        "# Imported by `vnetsim import` from: {}\n",
        inputs.join(", ")
    );
    for p in &a.azure.parameters {
        h.push_str(&format!("# --parameters {}\n", p.display()));
    }
    for p in &a.azure.parameter {
        h.push_str(&format!("# --parameter {p}\n"));
    }
    if unknowns > 0 {
        h.push_str(&format!(
            "# {unknowns} value(s) are unknown until deployment: written as \"<unknown:POINTER>\"; flows that depend on them are Indeterminate.\n"
        ));
    }
    h.push('\n');
    h
}

#[derive(Serialize)]
struct Report<'a> {
    output: Option<&'a Path>,
    inputs: &'a [PathBuf],
    /// The import's own findings (`CLASSIC_TIER_VNET`, `PEERING_NOT_CONNECTED`, ...).
    import_findings: &'a [sim::Finding],
    /// What `validate` finds in the imported topology.
    findings: &'a [sim::Finding],
    /// Whether the imported topology has no error findings (exit code 0).
    valid: bool,
    unknown_groups: &'a [sim::arm::UnknownGroup],
    ignored: &'a [sim::arm::IgnoredResource],
    unknowns: &'a [sim::arm::Unknown],
    assumptions: &'a [sim::Assumption],
    toml: &'a str,
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    if let Some(o) = &a.out {
        if o.exists() && !a.force {
            anyhow::bail!(
                "{}: the output file exists; pass --force to overwrite it (or choose another -o FILE)",
                o.display()
            );
        }
    }
    let max = a.azure.max_file_bytes;
    let mut result = crate::azure::import_paths(&a.inputs, &a.azure.azure(), max)?;
    if let Some(tags) = &a.azure.service_tags {
        // Check it now, so the fixture never names a file that does not load.
        let text = gateway::file::read_to_string(tags, max)
            .with_context(|| format!("{}: cannot read the service tag file", tags.display()))?;
        ServiceTagTable::from_json(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (given as --service-tags; expected the ServiceTags_Public format)",
                tags.display()
            )
        })?;
        let base = match a.out.as_deref().and_then(Path::parent) {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file = relative_to(tags, &base);
        result.fixture.service_tags = Some(ServiceTagsFile {
            file: Some(file.to_string_lossy().replace('\\', "/")),
        });
    }
    let body = result.fixture.to_toml().map_err(|e| {
        anyhow::anyhow!(
            "the imported topology cannot be written as TOML: {}",
            e.message
        )
    })?;
    let text = format!("{}{body}", header(a, result.unknowns.len()));
    // The same validation `validate` runs on these inputs, its findings kept apart from the
    // import's own.
    let loaded = crate::load_inputs(&a.inputs, &a.azure.load_options())?;
    let validation: Vec<sim::Finding> = loaded
        .findings()
        .iter()
        .filter(|f| !result.findings.contains(f))
        .cloned()
        .collect();
    let valid = !loaded.has_errors();
    let groups = sim::arm::group_unknowns(&result.unknowns);
    if let Some(o) = &a.out {
        crate::atomic::write(o, text.as_bytes())?;
    }
    match a.output {
        Output::Json => out(&serde_json::to_string_pretty(&Report {
            output: a.out.as_deref(),
            inputs: &a.inputs,
            import_findings: &result.findings,
            findings: &validation,
            valid,
            unknown_groups: &groups,
            ignored: &result.ignored,
            unknowns: &result.unknowns,
            assumptions: &result.assumptions,
            toml: &text,
        })?)?,
        Output::Text => {
            if a.out.is_none() {
                out(text.trim_end())?;
            }
            if !result.findings.is_empty() {
                eprintln!("Import findings:\n{}\n", findings_table(&result.findings));
            }
            if !validation.is_empty() {
                eprintln!(
                    "Validation of the imported topology (as `vnetsim validate`):\n{}\n",
                    findings_table(&validation)
                );
            }
            if let Some(notes) =
                import_notes(&result.ignored, &result.unknowns, &result.assumptions)
            {
                eprintln!("{notes}\n");
            }
            let f = &result.fixture;
            eprintln!(
                "imported {} VNet(s), {} NSG(s), {} host(s), {} API(s){}; {} ignored, {} unknown",
                f.vnets.len(),
                f.nsgs.len(),
                f.hosts.len(),
                f.apis.len(),
                a.out
                    .as_ref()
                    .map_or(String::new(), |o| format!(" into {}", o.display())),
                result.ignored.len(),
                result.unknowns.len()
            );
            if !valid {
                eprintln!("the imported topology has error findings (exit code 1)");
            }
        }
    }
    Ok(if valid {
        Status::Success
    } else {
        Status::Negative
    })
}

#[cfg(test)]
mod tests {
    use super::relative_to;
    use std::path::{Path, PathBuf};

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_to(Path::new("/a/b/tags.json"), Path::new("/a/c")),
            PathBuf::from("../b/tags.json")
        );
        assert_eq!(
            relative_to(Path::new("/a/tags.json"), Path::new("/a")),
            PathBuf::from("tags.json")
        );
    }
}
