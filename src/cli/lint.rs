//! `vnetsim lint FIXTURE [--fail-on LEVEL] [--output text|json|sarif]`: findings per NSG rule
//! from set algebra over each rule list ([`sim::Topology::lint`]); SARIF 2.1.0 so CI systems
//! annotate the pull request at the rule's file and line.

use clap::ValueEnum;
use serde_json::{json, Value};
use sim::{LintCode, LintFinding, LintSeverity};

use super::inputs::InputArgs;
use super::output::{out, refuse_fixture};
use super::space;
use super::{Output, Status};

/// Output formats of `lint`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LintOutput {
    /// A readable table.
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

impl LintOutput {
    /// As the CLI's common output format (errors on bad input are JSON for JSON and SARIF).
    pub(crate) fn common(self) -> Output {
        match self {
            LintOutput::Text => Output::Text,
            LintOutput::Json | LintOutput::Sarif => Output::Json,
        }
    }
}

/// The lowest severity that makes `lint` exit 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    /// Only errors.
    Error,
    /// Warnings and errors.
    #[default]
    Warning,
    /// Any finding.
    Info,
    /// Never (exit 0 whatever is found).
    Never,
}

impl FailOn {
    fn fails(self, s: LintSeverity) -> bool {
        match self {
            FailOn::Error => s >= LintSeverity::Error,
            FailOn::Warning => s >= LintSeverity::Warning,
            FailOn::Info => true,
            FailOn::Never => false,
        }
    }
}

/// Arguments of `lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    inputs: InputArgs,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    fail_on: FailOn,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub(crate) output: LintOutput,
}

fn finding_json(f: &LintFinding) -> Value {
    json!({
        "code": f.code,
        "severity": f.severity,
        "nsg": f.nsg,
        "context": f.context,
        "direction": f.direction,
        "rule": f.rule,
        "message": f.message,
        "hint": f.hint,
        "related": f.related,
        "example": f.example.as_ref().map(space::flow_json),
        "location": f.location,
    })
}

/// The SARIF 2.1.0 log of `findings`: one rule per lint code, one result per finding located at
/// the rule's file and line (and its resource path as a logical location).
pub(crate) fn sarif(findings: &[LintFinding]) -> Value {
    let level = |s: LintSeverity| match s {
        LintSeverity::Error => "error",
        LintSeverity::Warning => "warning",
        LintSeverity::Info => "note",
    };
    let rules: Vec<Value> = LintCode::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "shortDescription": { "text": c.as_str() },
                "help": { "text": c.hint() },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut loc = serde_json::Map::new();
            if let Some(file) = f.location.as_ref().and_then(|l| l.file.clone()) {
                let mut phys = json!({ "artifactLocation": { "uri": file.replace('\\', "/") } });
                if let Some(line) = f.location.as_ref().and_then(|l| l.line) {
                    let mut region = json!({ "startLine": line });
                    if let Some(col) = f.location.as_ref().and_then(|l| l.column) {
                        region["startColumn"] = json!(col);
                    }
                    phys["region"] = region;
                }
                loc.insert("physicalLocation".into(), phys);
            }
            loc.insert(
                "logicalLocations".into(),
                json!([{ "fullyQualifiedName": format!("nsgs/{}/{}", f.nsg, f.rule), "kind": "resource" }]),
            );
            json!({
                "ruleId": f.code.as_str(),
                "level": level(f.severity),
                "message": { "text": format!("{}. Fix: {}.", f.message, f.hint) },
                "locations": [Value::Object(loc)],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "vnetsim",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let loaded = a.inputs.load(Vec::new())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        refuse_fixture(&loaded.name, &structural, a.output.common());
        return Ok(Status::BadInput);
    }
    let findings = loaded.topology().lint();
    match a.output {
        LintOutput::Json => {
            let doc = json!({ "findings": findings.iter().map(finding_json).collect::<Vec<_>>() });
            out(&serde_json::to_string_pretty(&doc)?)?
        }
        LintOutput::Sarif => out(&serde_json::to_string_pretty(&sarif(&findings))?)?,
        LintOutput::Text if findings.is_empty() => out("No lint findings.")?,
        LintOutput::Text => {
            let mut s = String::new();
            for f in &findings {
                let at = f
                    .location
                    .as_ref()
                    .and_then(sim::Location::file_line)
                    .map_or(String::new(), |l| format!("{l}: "));
                s.push_str(&format!(
                    "{at}{} {} nsgs/{}/{}{}: {}\n    fix: {}\n",
                    f.severity.as_str(),
                    f.code,
                    f.nsg,
                    f.rule,
                    f.context
                        .as_ref()
                        .map_or(String::new(), |c| format!(" ({c})")),
                    f.message,
                    f.hint
                ));
                if let Some(e) = &f.example {
                    s.push_str(&format!("    example: {e}\n"));
                }
            }
            out(s.trim_end())?
        }
    }
    Ok(if findings.iter().any(|f| a.fail_on.fails(f.severity)) {
        Status::Negative
    } else {
        Status::Success
    })
}
