//! Loading a fixture: from a path ([`load_path`]) or from text with a name ([`load_str`]).
//!
//! This module owns the file-system side of a fixture — reading it, choosing the syntax by the
//! file name's extension, finding the service tag file it names — and leaves the schema and the
//! checks to [`sim::fixture`] and [`sim::topology`]. Every error names the file, and the position
//! in it when the parser knows one (`fixtures/x.toml:12:3: unknown field ...`).
//!
//! Every entry point also takes Azure's own formats ([`load_inputs`]): ARM templates,
//! parameters files and exported resource JSON, detected from content, one or several files or
//! a folder of `*.json`, imported by [`sim::arm::import`] (see [`crate::azure`]). The import's
//! findings join the topology's; what it ignored, the unknown values and its assumptions travel
//! in [`Loaded`].
//!
//! # Files read on a topology's behalf
//! Every file this module reads — inputs, `--parameters` files, service tag files — goes through
//! [`gateway::file::read_to_string`]: it must be a regular file (a FIFO or a device such as
//! `/dev/zero` is refused before it is opened, and the handle is opened non-blocking), and at most
//! [`LoadOptions::max_file_bytes`] bytes are read (default
//! [`gateway::file::DEFAULT_MAX_FILE_BYTES`], 64 MiB). Which files the text of a topology may
//! name at all is [`FileRefs`]: any for the user's own inputs, none for a reload body unless
//! `vnetsim up --reload-body-files` allows relative paths inside the started fixture's folder.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use sim::arm::{IgnoredResource, ImportError, Unknown};
use sim::fixture::{Fixture, Format};
use sim::sort_findings;
use sim::SourceMap;
use sim::TagTableError;
use sim::{Assumption, Built, Finding, ServiceTagTable, Topology};

use crate::azure::{import_files, read_inputs, AzureOptions, InputFile};

/// Where the service tag table comes from.
#[derive(Clone, Debug, Default)]
pub enum TagSource {
    /// The file named by the fixture's `[service_tags] file` (relative to the fixture's
    /// directory), or the built-in table when the fixture names none.
    #[default]
    Fixture,
    /// A `ServiceTags_Public` JSON file that overrides the fixture's choice.
    File(PathBuf),
    /// A table already in memory (overrides the fixture's choice).
    Table(ServiceTagTable),
}

/// Who asked for a service tag file: used to name both files in an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagOrigin {
    /// The fixture's `[service_tags] file` key.
    Fixture(String),
    /// An override given for the fixture (`--service-tags FILE`).
    Override(String),
}

impl fmt::Display for TagOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagOrigin::Fixture(fx) => write!(f, "named by [service_tags] file in {fx}"),
            TagOrigin::Override(fx) => write!(f, "given as the service tag table for {fx}"),
        }
    }
}

/// Why a fixture could not be loaded. Every variant is bad input (`validate`/`check` exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The fixture file could not be read.
    #[error("{}: cannot read the fixture: {source}", path.display())]
    Read {
        /// The fixture path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The fixture does not parse (syntax, unknown key, wrong type, missing key, unknown value).
    #[error("{}", at(name, error.line, error.column, &error.message))]
    Parse {
        /// The fixture's path or name.
        name: String,
        /// The parser's error with line and column.
        error: sim::fixture::LoadError,
    },
    /// The service tag file could not be read.
    #[error("{}: cannot read the service tag file ({origin}): {source}", path.display())]
    TagsRead {
        /// The service tag file.
        path: PathBuf,
        /// Which fixture asked for it, and how.
        origin: TagOrigin,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The service tag file is not a valid `ServiceTags_Public` document. When it is not that
    /// format at all the message says so without quoting the file (it may be any file the
    /// topology named).
    #[error("{}: {} ({origin}; expected the ServiceTags_Public format: {{\"changeNumber\": N, \"values\": [{{\"name\": ..., \"properties\": {{\"addressPrefixes\": [...]}}}}]}})", path.display(), tags_problem(source))]
    TagsParse {
        /// The service tag file.
        path: PathBuf,
        /// Which fixture asked for it, and how.
        origin: TagOrigin,
        /// What is wrong with it.
        #[source]
        source: Box<TagTableError>,
    },
    /// The topology's text names a file it may not name ([`FileRefs`]): a reload body naming any
    /// file without `--reload-body-files`, or, with it, a path outside the fixture's folder.
    #[error("{name}: {key} = {path:?}: {reason}")]
    FileRef {
        /// The topology's name (`request-body.toml` for a reload body).
        name: String,
        /// The key naming the file (`[service_tags] file`, `[gateway] tls_cert`, ...).
        key: &'static str,
        /// The path as written.
        path: String,
        /// Why it is refused, and what is allowed.
        reason: String,
    },
    /// A Bicep file (by extension or content): vnetsim reads the ARM JSON Bicep compiles to.
    #[error("{}: this is Bicep source; compile it first: `az bicep build --file {}`{}", path.display(), path.display(), match beside { Some(j) => format!(" (then give {}, which sits beside it)", j.display()), None => " and give the .json it writes".to_string() })]
    Bicep {
        /// The Bicep file.
        path: PathBuf,
        /// `X.json` beside `X.bicep`, when it exists.
        beside: Option<PathBuf>,
    },
    /// A folder given as input could not be listed.
    #[error("{}: cannot list the folder: {source}", path.display())]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A folder given as input has no `*.json` file.
    #[error("{}: the folder has no *.json file (expected ARM templates, parameters files or exported Azure resource JSON)", path.display())]
    EmptyDir {
        /// The folder.
        path: PathBuf,
    },
    /// A `--parameters FILE` could not be read.
    #[error("{}: cannot read the parameters file (--parameters): {source}", path.display())]
    ReadParameters {
        /// The parameters file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An input that is not an Azure format was given together with others (only Azure inputs
    /// merge; a vnetsim fixture stands alone).
    #[error("{}: not an ARM template, parameters file or exported Azure resource JSON (a vnetsim fixture is given alone, not with other inputs{}); several inputs must all be Azure JSON", path.display(), if others.is_empty() { String::new() } else { format!(": {}", others.join(", ")) })]
    NotAzure {
        /// The input that is not Azure JSON.
        path: PathBuf,
        /// The other inputs given with it.
        others: Vec<String>,
    },
    /// Import options were given for a vnetsim fixture, which has no parameters to read them.
    #[error("{name}: {} appl{} only to Azure inputs (ARM templates, exported resources); this is a vnetsim fixture", options.join(", "), if options.len() == 1 { "ies" } else { "y" })]
    AzureOptionsForFixture {
        /// The fixture.
        name: String,
        /// The options given (`--parameters`, `--location`, ...).
        options: Vec<&'static str>,
    },
    /// The Azure inputs could not be imported.
    #[error("{source} [{}]", source.code())]
    Import {
        /// The importer's error: input, line:col and JSON pointer, and what was expected.
        #[source]
        source: Box<ImportError>,
    },
    /// An `--upstream HOST:PORT=ADDR` mapping names no backend of the topology.
    #[error("{name}: --upstream {target}={upstream}: {message}")]
    Upstream {
        /// The topology's name.
        name: String,
        /// `HOST:PORT` as given.
        target: String,
        /// The local server as given.
        upstream: String,
        /// What is wrong.
        message: String,
    },
}

/// What is wrong with a service tag file, without quoting a file that is not one.
fn tags_problem(e: &TagTableError) -> String {
    match e {
        TagTableError::Format(detail) => format!("not a ServiceTags_Public document: {detail}"),
        other => other.to_string(),
    }
}

/// `name:line:col: message`, or `name: message` when the position is unknown.
pub(crate) fn at(name: &str, line: Option<usize>, column: Option<usize>, message: &str) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{name}:{l}:{c}: {message}"),
        (Some(l), None) => format!("{name}:{l}: {message}"),
        _ => format!("{name}: {message}"),
    }
}

/// A fixture loaded and built: the topology with every finding, and where it came from.
#[derive(Clone, Debug)]
#[must_use]
pub struct Loaded {
    /// The fixture's path as given, or its in-memory name; messages about it start with this.
    pub name: String,
    /// The topology and every finding about it (sorted, errors first).
    pub built: Built,
    /// The service tag file that was read, if any (else the built-in table or one in memory).
    pub tags_file: Option<PathBuf>,
    /// The vnetsim fixture file, when the topology came from one (relative paths in it, such as
    /// `[gateway] tls_cert`, are read from its folder; the gateway reloads it); `None` for Azure
    /// inputs and text.
    pub fixture_path: Option<PathBuf>,
    /// The Azure input files that were imported (empty for a vnetsim fixture).
    pub azure_inputs: Vec<PathBuf>,
    /// Resources of the Azure inputs that vnetsim does not model.
    pub ignored: Vec<IgnoredResource>,
    /// Values of the Azure inputs known only at deployment time, held as `<unknown:POINTER>`
    /// markers in the topology.
    pub unknowns: Vec<Unknown>,
    /// Assumptions the import relied on (dynamic private addresses, deployment scope defaults).
    pub import_assumptions: Vec<Assumption>,
    /// The inputs and options this was loaded from: [`Recipe::load`] runs the same load again
    /// (what a bodiless `POST /admin/reload` does).
    pub recipe: Recipe,
}

/// The inputs of a load.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// Files or folders, as given to [`load_inputs`].
    Paths(Vec<PathBuf>),
    /// Text with a name (its extension chooses the syntax; Azure JSON is detected from
    /// content), relative paths in it read from `base_dir`.
    Text {
        /// The name used in messages.
        name: String,
        /// The text.
        text: String,
        /// Where relative paths in it are read from (`None`: the current directory).
        base_dir: Option<PathBuf>,
    },
}

/// The one loader's whole input: the inputs and the options. Every command, the harness and a
/// gateway reload turn inputs into a topology through [`Recipe::load`].
#[derive(Clone, Debug)]
pub struct Recipe {
    /// What to read.
    pub inputs: Inputs,
    /// How (service tags, import options, `--upstream` mappings).
    pub options: LoadOptions,
}

impl Recipe {
    /// Runs the load.
    ///
    /// # Errors
    /// As [`load_inputs`] and [`load_str`].
    pub fn load(&self) -> Result<Loaded, LoadError> {
        match &self.inputs {
            Inputs::Paths(paths) => load_inputs(paths, &self.options),
            Inputs::Text {
                name,
                text,
                base_dir,
            } => load_text(name, text, base_dir.as_deref(), &self.options),
        }
    }

    /// The folder relative paths of the inputs are read from: the first input's folder, or
    /// the text's base folder.
    pub fn base_dir(&self) -> Option<PathBuf> {
        match &self.inputs {
            Inputs::Paths(paths) => paths.first().map(|p| {
                if p.is_dir() {
                    p.clone()
                } else {
                    match p.parent() {
                        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                        _ => PathBuf::from("."),
                    }
                }
            }),
            Inputs::Text { base_dir, .. } => base_dir.clone(),
        }
    }

    /// The same options with `text` in place of the inputs (a reload body): the name's
    /// extension follows the media type (`json`, `yaml`, else TOML). The body may name no file
    /// ([`FileRefs::Refused`]) unless this recipe allows it ([`LoadOptions::reload_body_files`]),
    /// and then only relative paths inside this recipe's folder ([`FileRefs::InsideBase`]).
    /// Import options apply only when the text is Azure JSON.
    pub fn with_text(&self, text: &str, media_type: Option<&str>) -> Recipe {
        let ext = match media_type.unwrap_or("") {
            m if m.contains("json") => "json",
            m if m.contains("yaml") => "yaml",
            _ => "toml",
        };
        let mut options = self.options.clone();
        if sim::arm::detect(text).is_none() || ext != "json" {
            options.azure = AzureOptions::default();
        }
        options.file_refs = if self.options.reload_body_files {
            FileRefs::InsideBase
        } else {
            FileRefs::Refused
        };
        Recipe {
            inputs: Inputs::Text {
                name: format!("request-body.{ext}"),
                text: text.to_string(),
                base_dir: self.base_dir(),
            },
            options,
        }
    }
}

/// The gateway's reload hook: a bodiless reload runs this load again (every start option —
/// `--upstream`, `--service-tags`, `--parameter(s)`, `--input` — included); a body replaces the
/// inputs ([`Recipe::with_text`]). A file that is not a regular file, is over the size cap or is
/// not text is bad input (`422 INVALID_FIXTURE`), as is a body naming a file it may not name;
/// only a file that cannot be read at all is `500 FIXTURE_UNREADABLE`.
impl gateway::Reload for Recipe {
    fn reload(&self, body: Option<&gateway::ReloadBody>) -> Result<Built, gateway::ReloadError> {
        let loaded = match body {
            None => self.load(),
            Some(b) => self.with_text(&b.text, b.media_type.as_deref()).load(),
        };
        loaded.map(|l| l.built).map_err(|e| match &e {
            LoadError::Read { source, .. }
            | LoadError::TagsRead { source, .. }
            | LoadError::ReadParameters { source, .. }
                if bad_file(source) =>
            {
                gateway::ReloadError::Invalid(e.to_string())
            }
            LoadError::Read { .. }
            | LoadError::TagsRead { .. }
            | LoadError::ReadDir { .. }
            | LoadError::ReadParameters { .. } => gateway::ReloadError::Unreadable(e.to_string()),
            _ => gateway::ReloadError::Invalid(e.to_string()),
        })
    }
}

/// Whether a read failed because of what the path names (not a regular file, over the cap, not
/// text) rather than because it could not be read: the former is bad input.
fn bad_file(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::FileTooLarge | io::ErrorKind::InvalidData
    )
}

// === impl Loaded ===

impl Loaded {
    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.built.topology
    }

    /// Every finding, sorted (errors first).
    pub fn findings(&self) -> &[Finding] {
        &self.built.findings
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.built.has_errors()
    }

    /// Error findings that make flow evaluation untrustworthy (everything but the APIM
    /// preflight); a command that evaluates flows refuses the fixture when there are any.
    pub fn structural_errors(&self) -> Vec<&Finding> {
        self.built.structural_errors()
    }

    /// Whether the topology came from Azure inputs.
    pub fn is_azure(&self) -> bool {
        !self.azure_inputs.is_empty()
    }

    /// The assumptions answers about this topology rest on. For a vnetsim fixture, every
    /// [`Assumption`] (a fixture may itself have been imported, so the import's are kept); for
    /// Azure inputs, the model's own followed by the import assumptions this import relied on
    /// (those it did not rely on provably do not apply).
    pub fn assumptions(&self) -> Vec<Assumption> {
        if !self.is_azure() {
            return Assumption::ALL.to_vec();
        }
        let mut v: Vec<Assumption> = Assumption::ALL
            .iter()
            .copied()
            .filter(|a| !IMPORT_ASSUMPTIONS.contains(a))
            .collect();
        v.extend(self.import_assumptions.iter().copied());
        v
    }
}

/// Assumptions that only an import makes.
const IMPORT_ASSUMPTIONS: [Assumption; 4] = [
    Assumption::ServicePublicAddress,
    Assumption::DynamicPrivateAddress,
    Assumption::DeploymentScopeDefaults,
    Assumption::NullModuleParameter,
];

/// Everything a command needs to turn its inputs into a topology.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The service tag table.
    pub tags: TagSource,
    /// Options for Azure inputs (refused for a vnetsim fixture).
    pub azure: AzureOptions,
    /// `--upstream HOST:PORT=127.0.0.1:N` mappings, applied with [`sim::arm::set_upstream`]
    /// before the topology is built.
    pub upstreams: Vec<(String, String)>,
    /// The most bytes read from any one file (`--max-file-bytes`; default
    /// [`gateway::file::DEFAULT_MAX_FILE_BYTES`], 64 MiB, which fits the ~4 MB official
    /// `ServiceTags_Public` file many times over).
    pub max_file_bytes: u64,
    /// Which files the text of the inputs may name (default [`FileRefs::Any`]).
    pub file_refs: FileRefs,
    /// Whether a reload body may name files inside this load's folder (`vnetsim up
    /// --reload-body-files`); without it, [`Recipe::with_text`] refuses every file reference.
    pub reload_body_files: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            tags: TagSource::default(),
            azure: AzureOptions::default(),
            upstreams: Vec::new(),
            max_file_bytes: gateway::file::DEFAULT_MAX_FILE_BYTES,
            file_refs: FileRefs::default(),
            reload_body_files: false,
        }
    }
}

/// Which files the text of a topology may name: `[service_tags] file`, `[gateway] tls_cert`
/// and `tls_key`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileRefs {
    /// Any path, relative ones read from the topology's folder: the user's own inputs.
    #[default]
    Any,
    /// None ([`LoadError::FileRef`]): a reload body, unless the admin allowed files.
    Refused,
    /// Relative paths that stay inside the base folder once `..` and symbolic links are
    /// resolved; each is replaced by its resolved path, so the file read later is the one
    /// checked. A reload body under `vnetsim up --reload-body-files`.
    InsideBase,
}

/// Loads one or more inputs: a single vnetsim fixture (TOML, JSON or YAML), or Azure inputs —
/// ARM templates, parameters files and exported resources, files or folders of `*.json` —
/// detected from content and merged by [`sim::arm::import`].
///
/// # Errors
/// [`LoadError`] naming the file and position: unreadable files, a fixture mixed with other
/// inputs, import options for a fixture, parse and import errors, service tag files, upstream
/// mappings that name no backend.
///
/// ```
/// use vnetsim::load::{load_inputs, LoadOptions};
/// let arm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/arm");
/// let loaded = load_inputs(
///     &[arm.join("apim-integration.json"), arm.join("apim-integration.parameters.json")],
///     &LoadOptions::default(),
/// )?;
/// assert!(loaded.is_azure() && !loaded.has_errors());
/// assert_eq!(loaded.topology().hosts().len(), 4);
/// # Ok::<(), vnetsim::LoadError>(())
/// ```
pub fn load_inputs(paths: &[PathBuf], options: &LoadOptions) -> Result<Loaded, LoadError> {
    let files = read_inputs(paths, options.max_file_bytes)?;
    let name = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let recipe = Recipe {
        inputs: Inputs::Paths(paths.to_vec()),
        options: options.clone(),
    };
    load_files(files, name, recipe)
}

/// Loads text as [`load_inputs`] loads a file: a vnetsim fixture (syntax by `name`'s
/// extension) or Azure JSON detected from content; relative paths in it are read from
/// `base_dir`.
///
/// # Errors
/// As [`load_inputs`].
pub fn load_text(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
    options: &LoadOptions,
) -> Result<Loaded, LoadError> {
    let path = PathBuf::from(name);
    let kind = if Format::from_file_name(name) == Format::Json {
        sim::arm::detect(text)
    } else {
        None
    };
    let recipe = Recipe {
        inputs: Inputs::Text {
            name: name.to_string(),
            text: text.to_string(),
            base_dir: base_dir.map(Path::to_path_buf),
        },
        options: options.clone(),
    };
    if kind.is_none() {
        let given = options.azure.given();
        if !given.is_empty() {
            return Err(LoadError::AzureOptionsForFixture {
                name: name.to_string(),
                options: given,
            });
        }
        return load_fixture(name, text, base_dir, recipe);
    }
    let files = vec![InputFile {
        path,
        text: text.to_string(),
        kind,
    }];
    load_files(files, name.to_string(), recipe)
}

fn load_files(files: Vec<InputFile>, name: String, recipe: Recipe) -> Result<Loaded, LoadError> {
    let options = &recipe.options;
    if let [InputFile {
        path,
        text,
        kind: None,
    }] = files.as_slice()
    {
        let given = options.azure.given();
        if !given.is_empty() {
            return Err(LoadError::AzureOptionsForFixture {
                name,
                options: given,
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut loaded =
            load_fixture(&path.display().to_string(), text, Some(dir), recipe.clone())?;
        loaded.fixture_path = Some(path.clone());
        return Ok(loaded);
    }
    let result = import_files(&files, &options.azure, options.max_file_bytes)?;
    let mut fixture = result.fixture;
    let base_dir = recipe.base_dir();
    check_file_refs(&mut fixture, &name, base_dir.as_deref(), options.file_refs)?;
    apply_upstreams(&mut fixture, &name, &options.upstreams)?;
    let (table, tags_file) = tag_table(&fixture, &name, None, options)?;
    let mut built = Topology::build_with_source(&fixture, table, result.source);
    built.findings.extend(result.findings);
    sort_findings(&mut built.findings);
    Ok(Loaded {
        name,
        built,
        tags_file,
        fixture_path: None,
        azure_inputs: files.into_iter().map(|f| f.path).collect(),
        ignored: result.ignored,
        unknowns: result.unknowns,
        import_assumptions: result.assumptions,
        recipe,
    })
}

fn apply_upstreams(
    fixture: &mut Fixture,
    name: &str,
    upstreams: &[(String, String)],
) -> Result<(), LoadError> {
    for (target, upstream) in upstreams {
        sim::arm::set_upstream(fixture, target, upstream).map_err(|message| {
            LoadError::Upstream {
                name: name.to_string(),
                target: target.clone(),
                upstream: upstream.clone(),
                message,
            }
        })?;
    }
    Ok(())
}

/// Loads a fixture file. The syntax follows the extension (`.json`, `.yaml`/`.yml`, else TOML);
/// `[service_tags] file` is read relative to the fixture's directory. Azure inputs (an ARM
/// template, exported resources, a folder of them) are imported as by [`load_inputs`].
///
/// # Errors
/// [`LoadError`] naming the file (and line:col for parse errors).
///
/// ```no_run
/// let loaded = vnetsim::load_path("fixtures/default.toml".as_ref(), &vnetsim::TagSource::Fixture)?;
/// assert!(!loaded.has_errors());
/// # Ok::<(), vnetsim::LoadError>(())
/// ```
pub fn load_path(path: &Path, tags: &TagSource) -> Result<Loaded, LoadError> {
    load_inputs(
        &[path.to_path_buf()],
        &LoadOptions {
            tags: tags.clone(),
            ..LoadOptions::default()
        },
    )
}

/// Loads a fixture from text. `name` is used in messages and chooses the syntax by its
/// extension (`orders.json` is JSON; a name without a known extension is TOML). A relative
/// `[service_tags] file` is read from `base_dir`, or from the current directory when `None`.
///
/// # Errors
/// [`LoadError`] naming `name` (with line:col for parse errors) or the service tag file.
///
/// ```
/// use vnetsim::{load_str, TagSource};
/// let text = "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n";
/// let loaded = load_str("inline.toml", text, None, &TagSource::Fixture).unwrap();
/// assert_eq!(loaded.topology().vnets()[0].name, "v");
///
/// let err = load_str("inline.toml", "[[vnets]]\nnmae = 1\n", None, &TagSource::Fixture).unwrap_err();
/// assert!(err.to_string().starts_with("inline.toml:2:1: "), "{err}");
/// ```
pub fn load_str(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
    tags: &TagSource,
) -> Result<Loaded, LoadError> {
    load_text(
        name,
        text,
        base_dir,
        &LoadOptions {
            tags: tags.clone(),
            ..LoadOptions::default()
        },
    )
}

fn load_fixture(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
    recipe: Recipe,
) -> Result<Loaded, LoadError> {
    let options = &recipe.options;
    let format = Format::from_file_name(name);
    let mut fixture = Fixture::parse(text, format).map_err(|error| LoadError::Parse {
        name: name.to_string(),
        error,
    })?;
    check_file_refs(&mut fixture, name, base_dir, options.file_refs)?;
    apply_upstreams(&mut fixture, name, &options.upstreams)?;
    let (table, tags_file) = tag_table(&fixture, name, base_dir, options)?;
    Ok(Loaded {
        name: name.to_string(),
        built: Topology::build_with_source(
            &fixture,
            table,
            SourceMap::from_text(name, text, format),
        ),
        tags_file,
        fixture_path: None,
        azure_inputs: Vec::new(),
        ignored: Vec::new(),
        unknowns: Vec::new(),
        import_assumptions: Vec::new(),
        recipe,
    })
}

/// Applies `refs` to the files `fixture` names (see [`FileRefs`]).
fn check_file_refs(
    fixture: &mut Fixture,
    name: &str,
    base_dir: Option<&Path>,
    refs: FileRefs,
) -> Result<(), LoadError> {
    if refs == FileRefs::Any {
        return Ok(());
    }
    let mut slots: Vec<(&'static str, &mut String)> = Vec::new();
    if let Some(f) = fixture.service_tags.as_mut().and_then(|s| s.file.as_mut()) {
        slots.push(("[service_tags] file", f));
    }
    if let Some(g) = fixture.gateway.as_mut() {
        if let Some(c) = g.tls_cert.as_mut() {
            slots.push(("[gateway] tls_cert", c));
        }
        if let Some(k) = g.tls_key.as_mut() {
            slots.push(("[gateway] tls_key", k));
        }
    }
    for (key, slot) in slots {
        let refused = |reason: String| LoadError::FileRef {
            name: name.to_string(),
            key,
            path: slot.clone(),
            reason,
        };
        if refs == FileRefs::Refused {
            return Err(refused(
                "a reload body may not name files unless `vnetsim up` was started with \
                 --reload-body-files (then only relative paths inside the fixture's folder)"
                    .into(),
            ));
        }
        let resolved = inside(base_dir, slot).map_err(refused)?;
        *slot = resolved.to_string_lossy().into_owned();
    }
    Ok(())
}

/// `rel` resolved inside `base`: relative, without `..`, and (symbolic links followed) still
/// under `base`.
fn inside(base: Option<&Path>, rel: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let Some(base) = base else {
        return Err("no folder to resolve it in (the gateway was not started from files)".into());
    };
    let p = Path::new(rel);
    if !p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(
            "only relative paths inside the fixture's folder are allowed (no absolute path, no `..`)"
                .into(),
        );
    }
    let base = base
        .canonicalize()
        .map_err(|e| format!("the fixture's folder cannot be resolved: {e}"))?;
    let full = base
        .join(p)
        .canonicalize()
        .map_err(|e| format!("cannot be resolved inside the fixture's folder: {e}"))?;
    if !full.starts_with(&base) {
        return Err("resolves (through a symbolic link) outside the fixture's folder".into());
    }
    Ok(full)
}

fn tag_table(
    fixture: &Fixture,
    name: &str,
    base_dir: Option<&Path>,
    options: &LoadOptions,
) -> Result<(ServiceTagTable, Option<PathBuf>), LoadError> {
    let max = options.max_file_bytes;
    match &options.tags {
        TagSource::Table(t) => Ok((t.clone(), None)),
        TagSource::File(p) => read_tags(p, TagOrigin::Override(name.to_string()), max),
        TagSource::Fixture => {
            match fixture
                .service_tags
                .as_ref()
                .and_then(|s| s.file.as_deref())
            {
                None => Ok((ServiceTagTable::builtin(), None)),
                Some(file) => {
                    let p = match base_dir {
                        Some(d) => d.join(file),
                        None => PathBuf::from(file),
                    };
                    read_tags(&p, TagOrigin::Fixture(name.to_string()), max)
                }
            }
        }
    }
}

fn read_tags(
    path: &Path,
    origin: TagOrigin,
    max: u64,
) -> Result<(ServiceTagTable, Option<PathBuf>), LoadError> {
    let text = match gateway::file::read_to_string(path, max) {
        Ok(t) => t,
        Err(source) => {
            return Err(LoadError::TagsRead {
                path: path.to_path_buf(),
                origin,
                source,
            })
        }
    };
    match ServiceTagTable::from_json(&text) {
        Ok(t) => Ok((
            t.with_file_name(&path.to_string_lossy()),
            Some(path.to_path_buf()),
        )),
        Err(source) => Err(LoadError::TagsParse {
            path: path.to_path_buf(),
            origin,
            source: Box::new(quiet(source, &text)),
        }),
    }
}

/// `e` without quoting the file when the file is not a `ServiceTags_Public` document at all
/// (the JSON parser's message can quote values: a path mistaken for a tag file, such as
/// `/etc/passwd`, must not show up in an error). A document of the right shape with a bad prefix
/// keeps its message (it names the tag and the prefix of a tag file).
fn quiet(e: TagTableError, text: &str) -> TagTableError {
    match e {
        TagTableError::Format(_) => {
            TagTableError::Format(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(j) => format!(
                    "the text is not JSON (line {}, column {})",
                    j.line(),
                    j.column()
                ),
                Ok(_) => "JSON, but not of that shape".into(),
            })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGS: &str = r#"{"changeNumber": 7, "cloud": "Public", "values": [
        {"name": "Storage", "properties": {"addressPrefixes": ["20.60.0.0/16"]}}]}"#;
    const FIXTURE_WITH_TAGS: &str = "[service_tags]\nfile = \"tags.json\"\n\n[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n";

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary directory")
    }

    #[test]
    fn parse_errors_carry_name_line_and_column() {
        let e = load_str(
            "x.toml",
            "[apim]\nname = \"a\"\nsku = \"Gold\"\nregion = \"westeurope\"\n",
            None,
            &TagSource::Fixture,
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("x.toml:3:"), "{s}");
        assert!(s.contains("StandardV2"), "says what was expected: {s}");
    }

    /// Issue 16, class 5: an `--upstream` for a host outside the topology is reported as what it
    /// is (the root cause, naming the host), before any finding about the APIs — not as
    /// `API_BACKEND_NO_SERVICE` on the API whose backend lacks a service.
    #[test]
    fn an_upstream_for_an_unknown_host_is_the_root_cause() {
        let dir = temp();
        let path = dir.path().join("f.toml");
        let text = "[[hosts]]\nname = \"orders\"\naddress = \"52.10.20.30\"\n\n[[apis]]\nname = \"o\"\npath = \"/o\"\nbackend = \"http://52.10.20.30:8080\"\n";
        std::fs::write(&path, text).unwrap();
        let options = |target: &str| LoadOptions {
            upstreams: vec![(target.to_string(), "127.0.0.1:9000".to_string())],
            ..LoadOptions::default()
        };
        let Err(e) = load_inputs(std::slice::from_ref(&path), &options("ordres:8080")) else {
            panic!("an unknown host is bad input");
        };
        let s = e.to_string();
        assert!(matches!(e, LoadError::Upstream { .. }), "{s}");
        assert!(s.contains("no host of the topology is `ordres`"), "{s}");
        assert!(!s.contains("API_BACKEND_NO_SERVICE"), "{s}");
        // The right host clears API_BACKEND_NO_SERVICE: the upstream is its service.
        let loaded = load_inputs(&[path], &options("orders:8080")).unwrap();
        assert!(!loaded.has_errors(), "{:?}", loaded.findings());
    }

    #[test]
    fn format_follows_the_name() {
        let json = r#"{"vnets": [{"name": "v", "region": "westeurope", "address_space": ["10.0.0.0/16"]}]}"#;
        assert!(load_str("f.json", json, None, &TagSource::Fixture).is_ok());
        // The same text is not TOML: the name decides the parser.
        assert!(load_str("f.toml", json, None, &TagSource::Fixture).is_err());
        let yaml =
            "vnets:\n  - name: v\n    region: westeurope\n    address_space: [10.0.0.0/16]\n";
        assert!(load_str("f.YML", yaml, None, &TagSource::Fixture).is_ok());
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = temp();
        let p = dir.path().join("nope.toml");
        let e = load_path(&p, &TagSource::Fixture).unwrap_err();
        assert!(matches!(e, LoadError::Read { .. }));
        assert!(e.to_string().contains("nope.toml"), "{e}");
    }

    #[test]
    fn service_tag_file_is_relative_to_the_fixture() {
        let dir = temp();
        std::fs::write(dir.path().join("tags.json"), TAGS).unwrap();
        let fx = dir.path().join("f.toml");
        std::fs::write(&fx, FIXTURE_WITH_TAGS).unwrap();
        let l = load_path(&fx, &TagSource::Fixture).unwrap();
        assert_eq!(l.topology().service_tags().info().change_number, Some(7));
        assert_eq!(
            l.tags_file.as_deref(),
            Some(dir.path().join("tags.json").as_path())
        );
    }

    #[test]
    fn override_wins_and_errors_name_both_files() {
        let dir = temp();
        let fx = dir.path().join("f.toml");
        std::fs::write(&fx, FIXTURE_WITH_TAGS).unwrap();
        // The fixture's own file is missing: the error names it and the fixture.
        let e = load_path(&fx, &TagSource::Fixture).unwrap_err().to_string();
        assert!(e.contains("tags.json") && e.contains("f.toml"), "{e}");
        // An override is used instead of the (missing) file the fixture names.
        let other = dir.path().join("other.json");
        std::fs::write(
            &other,
            TAGS.replace("\"changeNumber\": 7", "\"changeNumber\": 9"),
        )
        .unwrap();
        let l = load_path(&fx, &TagSource::File(other.clone())).unwrap();
        assert_eq!(l.topology().service_tags().info().change_number, Some(9));
        // A malformed override names both files and the expected format.
        std::fs::write(&other, "{\"values\": []}").unwrap();
        let e = load_path(&fx, &TagSource::File(other)).unwrap_err();
        assert!(matches!(e, LoadError::TagsParse { .. }));
        let s = e.to_string();
        assert!(
            s.contains("other.json") && s.contains("f.toml") && s.contains("changeNumber"),
            "{s}"
        );
    }

    /// A fixture naming `file` as its service tag file, loaded from `dir`.
    fn with_tag_file(dir: &Path, file: &str) -> Result<Loaded, LoadError> {
        let fx = dir.join("f.toml");
        std::fs::write(
            &fx,
            FIXTURE_WITH_TAGS.replace("\"tags.json\"", &format!("{file:?}")),
        )
        .unwrap();
        load_path(&fx, &TagSource::Fixture)
    }

    #[cfg(unix)]
    #[test]
    fn tag_files_must_be_regular_files() {
        let dir = temp();
        let fifo = dir.path().join("fifo.json");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let t = std::time::Instant::now();
        for file in ["/dev/zero", fifo.to_str().unwrap()] {
            let e = with_tag_file(dir.path(), file).unwrap_err();
            // Refused as bad input (kind, not text), naming the file and why.
            assert!(
                matches!(&e, LoadError::TagsRead { source, .. } if bad_file(source)),
                "{e:?}"
            );
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        // Neither was read: /dev/zero never ends and an unopened FIFO blocks.
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = temp();
        std::fs::write(dir.path().join("tags.json"), TAGS).unwrap();
        let fx = dir.path().join("f.toml");
        std::fs::write(&fx, FIXTURE_WITH_TAGS).unwrap();
        let options = LoadOptions {
            max_file_bytes: 64,
            ..LoadOptions::default()
        };
        // The fixture itself is over 64 bytes.
        let e = load_inputs(std::slice::from_ref(&fx), &options).unwrap_err();
        assert!(
            matches!(&e, LoadError::Read { source, .. } if source.kind() == io::ErrorKind::FileTooLarge),
            "{e:?}"
        );
        // With room for the fixture only, the (longer) tag file is refused.
        assert!(TAGS.len() > FIXTURE_WITH_TAGS.len());
        let options = LoadOptions {
            max_file_bytes: FIXTURE_WITH_TAGS.len() as u64,
            ..options
        };
        let e = load_inputs(&[fx], &options).unwrap_err();
        assert!(
            matches!(&e, LoadError::TagsRead { source, .. } if source.kind() == io::ErrorKind::FileTooLarge),
            "{e:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_tag_file_is_not_quoted() {
        let dir = temp();
        let other = dir.path().join("secret.txt");
        std::fs::write(&other, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let e = with_tag_file(dir.path(), other.to_str().unwrap()).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("not a ServiceTags_Public document"), "{s}");
        assert!(!s.contains("root:"), "the file's content leaked: {s}");
        // JSON whose values would be quoted by the parser ("invalid type: string ...").
        std::fs::write(&other, r#"{"changeNumber": "root:x:0:0", "values": []}"#).unwrap();
        let e = with_tag_file(dir.path(), other.to_str().unwrap()).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("root:"), "{e:?}");
    }

    fn started(dir: &Path, reload_body_files: bool) -> Recipe {
        let fx = dir.join("f.toml");
        std::fs::write(
            &fx,
            "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n",
        )
        .unwrap();
        Recipe {
            inputs: Inputs::Paths(vec![fx]),
            options: LoadOptions {
                reload_body_files,
                ..LoadOptions::default()
            },
        }
    }

    fn reload(recipe: &Recipe, text: &str) -> Result<Built, gateway::ReloadError> {
        gateway::Reload::reload(
            recipe,
            Some(&gateway::ReloadBody {
                text: text.to_string(),
                media_type: None,
            }),
        )
    }

    #[test]
    fn a_reload_body_names_no_file_unless_allowed() {
        let dir = temp();
        std::fs::write(dir.path().join("tags.json"), TAGS).unwrap();
        let recipe = started(dir.path(), false);
        for body in [
            FIXTURE_WITH_TAGS.to_string(),
            FIXTURE_WITH_TAGS.replace("tags.json", "/dev/zero"),
            "[gateway]\ntls = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n".to_string(),
        ] {
            let e = reload(&recipe, &body).unwrap_err();
            // 422 INVALID_FIXTURE, saying how to allow it.
            assert!(
                matches!(&e, gateway::ReloadError::Invalid(m) if m.contains("--reload-body-files")),
                "{e:?}"
            );
        }
        // A bodiless reload still reads the started fixture's own files.
        assert!(gateway::Reload::reload(&recipe, None).is_ok());
    }

    #[test]
    fn allowed_body_files_stay_inside_the_fixture_folder() {
        let dir = temp();
        std::fs::write(dir.path().join("tags.json"), TAGS).unwrap();
        let recipe = started(dir.path(), true);
        // A relative path inside the folder is read.
        let built = reload(&recipe, FIXTURE_WITH_TAGS).unwrap();
        assert_eq!(built.topology.service_tags().info().change_number, Some(7));
        let outside = temp();
        std::fs::write(outside.path().join("tags.json"), TAGS).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            outside.path().join("tags.json"),
            dir.path().join("link.json"),
        )
        .unwrap();
        let escapes = [
            "/etc/passwd".to_string(),
            "../x/tags.json".to_string(),
            outside.path().join("tags.json").display().to_string(),
            #[cfg(unix)]
            "link.json".to_string(),
        ];
        for file in escapes {
            let body = FIXTURE_WITH_TAGS.replace("tags.json", &file);
            let e = reload(&recipe, &body).unwrap_err();
            assert!(
                matches!(&e, gateway::ReloadError::Invalid(m) if m.contains("[service_tags] file")),
                "{file}: {e:?}"
            );
        }
    }

    #[test]
    fn table_in_memory_is_used_as_is() {
        let t = ServiceTagTable::from_json(TAGS).unwrap();
        let l = load_str("mem.toml", FIXTURE_WITH_TAGS, None, &TagSource::Table(t)).unwrap();
        assert_eq!(l.topology().service_tags().info().change_number, Some(7));
        assert!(l.tags_file.is_none());
    }
}
