//! Azure inputs on the file-system side: which paths a command was given (files, folders of
//! `*.json`), which of them are Azure formats (detected from content by [`sim::arm::detect`]),
//! and the import options (`--parameters`, `--parameter`, `--subscription-id`,
//! `--resource-group`, `--location`). The import itself is [`sim::arm::import`]; this module
//! reads the files it needs and names them in every error.

use std::path::{Path, PathBuf};

use sim::arm::{ImportOptions, ImportResult, Input, InputKind};

use crate::load::LoadError;

/// The import options of every command that reads Azure inputs (the CLI's shared flags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AzureOptions {
    /// `--parameters FILE` (ARM `deploymentParameters` files, in order; later files win).
    pub parameter_files: Vec<PathBuf>,
    /// `--parameter name=value` (in order; these win over files), read per the declared type.
    pub parameters: Vec<String>,
    /// `--subscription-id`: `subscription().subscriptionId` and the fixture's `[subscription]`.
    pub subscription_id: Option<String>,
    /// `--resource-group`: `resourceGroup().name`.
    pub resource_group: Option<String>,
    /// `--location`: `resourceGroup().location`.
    pub location: Option<String>,
    /// `--set SUBJECT=VALUE`: values for deployment-time unknowns (SUBJECT as the unknown list
    /// prints it; VALUE is JSON, else a string).
    pub sets: Vec<String>,
}

impl AzureOptions {
    /// The command-line names of the options that are set (to say which ones a vnetsim fixture
    /// cannot use).
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.parameter_files.is_empty() {
            v.push("--parameters");
        }
        if !self.parameters.is_empty() {
            v.push("--parameter");
        }
        if self.subscription_id.is_some() {
            v.push("--subscription-id");
        }
        if self.resource_group.is_some() {
            v.push("--resource-group");
        }
        if self.location.is_some() {
            v.push("--location");
        }
        if !self.sets.is_empty() {
            v.push("--set");
        }
        v
    }

    /// Adds `other` on top of these options: its files and pairs come after (and so win), its
    /// scope values replace these when set.
    pub fn merged_with(&self, other: &AzureOptions) -> AzureOptions {
        let mut m = self.clone();
        m.parameter_files
            .extend(other.parameter_files.iter().cloned());
        m.parameters.extend(other.parameters.iter().cloned());
        m.sets.extend(other.sets.iter().cloned());
        if other.subscription_id.is_some() {
            m.subscription_id.clone_from(&other.subscription_id);
        }
        if other.resource_group.is_some() {
            m.resource_group.clone_from(&other.resource_group);
        }
        if other.location.is_some() {
            m.location.clone_from(&other.location);
        }
        m
    }
}

/// One file given to a command, read, with what its content is.
#[derive(Clone, Debug)]
pub struct InputFile {
    /// The path as given (or found in a folder).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// The Azure format detected from its content; `None` for anything else (a vnetsim fixture).
    pub kind: Option<InputKind>,
}

impl InputFile {
    /// The name used in messages: the path as given.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Whether a file name says "vnetsim fixture" outright (`.toml`, `.yaml`, `.yml`): such a file
/// is never taken for Azure JSON, even when a comment mentions `deploymentTemplate.json`.
fn fixture_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["toml", "yaml", "yml"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

fn bicep_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("bicep") || e.eq_ignore_ascii_case("bicepparam"))
}

/// Whether text reads as Bicep: its first statement (after `//` and `/* */` comments and
/// `@decorator` lines) starts with a Bicep keyword. No TOML, JSON or YAML fixture does: a TOML
/// key cannot be followed by a second bare word, JSON starts with `{` or `[`, and a YAML key
/// ends in `:`.
pub fn looks_like_bicep(text: &str) -> bool {
    const KEYWORDS: [&str; 11] = [
        "targetScope",
        "param",
        "var",
        "resource",
        "module",
        "output",
        "metadata",
        "import",
        "type",
        "func",
        "using",
    ];
    let mut in_block = false;
    for line in text.lines().take(200) {
        let l = line.trim();
        if in_block {
            in_block = !l.contains("*/");
            continue;
        }
        if l.is_empty() || l.starts_with("//") || l.starts_with('@') {
            continue;
        }
        if l.starts_with("/*") {
            in_block = !l.contains("*/");
            continue;
        }
        let mut words = l.split_whitespace();
        let first = words.next().unwrap_or("");
        let second = words.next().unwrap_or("");
        return KEYWORDS.contains(&first)
            && (first == "targetScope" || (!second.is_empty() && !second.starts_with('=')));
    }
    false
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Expands the paths a command was given (a folder stands for every `*.json` file directly in
/// it, sorted by name), reads every file and detects its format from content.
///
/// # Errors
/// [`LoadError::Read`] for a file that cannot be read (or is not a regular file, or holds more
/// than `max_file_bytes`: see [`gateway::file::read_to_string`]), [`LoadError::ReadDir`] for a
/// folder that cannot be listed, [`LoadError::EmptyDir`] for a folder without `*.json` files.
pub fn read_inputs(paths: &[PathBuf], max_file_bytes: u64) -> Result<Vec<InputFile>, LoadError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|source| LoadError::ReadDir {
                path: p.clone(),
                source,
            })?;
            let mut found = Vec::new();
            for e in entries {
                let e = e.map_err(|source| LoadError::ReadDir {
                    path: p.clone(),
                    source,
                })?;
                let path = e.path();
                if path.is_file() && is_json(&path) {
                    found.push(path);
                }
            }
            if found.is_empty() {
                return Err(LoadError::EmptyDir { path: p.clone() });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text = gateway::file::read_to_string(&path, max_file_bytes).map_err(|source| {
                LoadError::Read {
                    path: path.clone(),
                    source,
                }
            })?;
            let kind = if fixture_extension(&path) {
                None
            } else {
                sim::arm::detect(&text)
            };
            if kind.is_none()
                && (bicep_extension(&path)
                    || (!fixture_extension(&path) && looks_like_bicep(&text)))
            {
                let json = path.with_extension("json");
                return Err(LoadError::Bicep {
                    beside: json.is_file().then_some(json),
                    path,
                });
            }
            Ok(InputFile { path, text, kind })
        })
        .collect()
}

/// Imports Azure input files (already read) into one fixture, reading the `--parameters` files
/// of `options` (each at most `max_file_bytes`).
///
/// # Errors
/// [`LoadError::NotAzure`] when a file is not an Azure format, [`LoadError::Read`] for a
/// parameters file that cannot be read, [`LoadError::Import`] with the importer's error (input,
/// line:col and JSON pointer).
pub fn import_files(
    files: &[InputFile],
    options: &AzureOptions,
    max_file_bytes: u64,
) -> Result<ImportResult, LoadError> {
    if let Some(f) = files.iter().find(|f| f.kind.is_none()) {
        return Err(LoadError::NotAzure {
            path: f.path.clone(),
            others: files
                .iter()
                .filter(|o| o.path != f.path)
                .map(InputFile::name)
                .collect(),
        });
    }
    let inputs: Vec<Input> = files
        .iter()
        .map(|f| Input::new(f.name(), f.text.clone()))
        .collect();
    let mut parameter_files = Vec::with_capacity(options.parameter_files.len());
    for p in &options.parameter_files {
        let text = gateway::file::read_to_string(p, max_file_bytes).map_err(|source| {
            LoadError::ReadParameters {
                path: p.clone(),
                source,
            }
        })?;
        parameter_files.push(Input::new(p.display().to_string(), text));
    }
    let opts = ImportOptions {
        subscription_id: options.subscription_id.clone(),
        resource_group: options.resource_group.clone(),
        location: options.location.clone(),
        parameter_files,
        parameters: options.parameters.clone(),
        sets: options.sets.clone(),
    };
    sim::arm::import(&inputs, &opts).map_err(|source| LoadError::Import {
        source: Box::new(source),
    })
}

/// Reads and imports Azure inputs: what `vnetsim import` writes out as TOML.
///
/// # Errors
/// As [`read_inputs`] and [`import_files`].
pub fn import_paths(
    paths: &[PathBuf],
    options: &AzureOptions,
    max_file_bytes: u64,
) -> Result<ImportResult, LoadError> {
    import_files(
        &read_inputs(paths, max_file_bytes)?,
        options,
        max_file_bytes,
    )
}

/// `--upstream HOST:PORT=127.0.0.1:N` split into its two sides.
///
/// # Errors
/// A message saying what was expected when there is no `=` or a side is empty.
pub fn parse_upstream(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((t, u)) if !t.trim().is_empty() && !u.trim().is_empty() => {
            Ok((t.trim().to_string(), u.trim().to_string()))
        }
        _ => Err(format!(
            "`{s}` is not HOST:PORT=127.0.0.1:N (a backend of the topology, `=`, a local server's address)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = gateway::file::DEFAULT_MAX_FILE_BYTES;

    fn arm(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/arm")
            .join(rel)
    }

    #[test]
    fn folders_expand_to_sorted_json_files() {
        let files = read_inputs(&[arm("exports")], MAX).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 5);
        assert!(files.iter().all(|f| f.kind == Some(InputKind::Resources)));
    }

    #[test]
    fn content_decides_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("template.txt");
        std::fs::copy(arm("apim-integration.json"), &p).unwrap();
        let f = read_inputs(&[p], MAX).unwrap();
        assert_eq!(f[0].kind, Some(InputKind::Template));
        // A .toml file is a fixture even if it mentions the schema in a comment.
        let t = dir.path().join("f.toml");
        std::fs::write(&t, "# from deploymentTemplate.json\n[[vnets]]\n").unwrap();
        assert_eq!(read_inputs(&[t], MAX).unwrap()[0].kind, None);
    }

    #[test]
    fn empty_folder_and_bad_upstream_say_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_inputs(&[dir.path().to_path_buf()], MAX).unwrap_err();
        assert!(e.to_string().contains("*.json"), "{e}");
        assert!(parse_upstream("orders:443")
            .unwrap_err()
            .contains("HOST:PORT=127.0.0.1:N"));
        assert_eq!(
            parse_upstream("orders:443=127.0.0.1:9000").unwrap(),
            ("orders:443".into(), "127.0.0.1:9000".into())
        );
    }

    #[test]
    fn options_merge_later_wins() {
        let a = AzureOptions {
            parameters: vec!["a=1".into()],
            location: Some("westeurope".into()),
            ..AzureOptions::default()
        };
        let b = AzureOptions {
            parameters: vec!["a=2".into()],
            location: Some("northeurope".into()),
            ..AzureOptions::default()
        };
        let m = a.merged_with(&b);
        assert_eq!(m.parameters, ["a=1", "a=2"]);
        assert_eq!(m.location.as_deref(), Some("northeurope"));
        assert_eq!(m.given(), ["--parameter", "--location"]);
    }
}

#[cfg(test)]
mod doc_examples {
    use super::*;

    #[test]
    fn import_paths_reads_a_template() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/arm");
        let max = gateway::file::DEFAULT_MAX_FILE_BYTES;
        let r = import_paths(
            &[dir.join("apim-integration.json")],
            &AzureOptions::default(),
            max,
        )
        .unwrap();
        assert_eq!(r.fixture.vnets[0].name, "contoso-vnet");
        assert!(r.fixture.to_toml().unwrap().contains("[[vnets]]"));
    }
}
