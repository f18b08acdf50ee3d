//! The topology flags every command shares (`#[command(flatten)]`), so `validate`, `check`,
//! `test`, `up` and `import` cannot drift: the inputs (a fixture, or Azure inputs detected from
//! content), the import options, and the service tag table.

use std::path::PathBuf;

use crate::{AzureOptions, LoadOptions, Loaded, TagSource};

/// Import options for Azure inputs, and the service tag table.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct AzureArgs {
    /// An ARM parameters file (`deploymentParameters.json` format) for the template inputs; repeatable, later files win.
    #[arg(long = "parameters", value_name = "FILE")]
    pub parameters: Vec<PathBuf>,
    /// A template parameter, read per its declared type (`int`, `bool`, `array`/`object` as JSON); repeatable, wins over --parameters.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub parameter: Vec<String>,
    /// A value for a deployment-time unknown: SUBJECT exactly as the unknown list prints it (each copy-loop instance is its own subject), VALUE as JSON, else a string; repeatable.
    #[arg(long = "set", value_name = "SUBJECT=VALUE", value_parser = parse_set)]
    pub set: Vec<String>,
    /// Subscription id for `subscription()`, `resourceId()` and the topology's subscription (default: the exports', else all zeros).
    #[arg(long, value_name = "ID")]
    pub subscription_id: Option<String>,
    /// Resource group name for `resourceGroup()` and `resourceId()` (default `vnetsim-rg`).
    #[arg(long, value_name = "NAME")]
    pub resource_group: Option<String>,
    /// Location for `resourceGroup().location` (default `westeurope`).
    #[arg(long, value_name = "REGION")]
    pub location: Option<String>,
    /// A ServiceTags_Public JSON file to use instead of the fixture's [service_tags] (or the built-in table).
    #[arg(long, value_name = "FILE")]
    pub service_tags: Option<PathBuf>,
    /// The most bytes read from any one file (inputs, parameters files, service tag files); each must also be a regular file.
    #[arg(long, value_name = "BYTES", default_value_t = gateway::file::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
}

fn parse_pair(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((n, _)) if !n.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!(
            "`{s}` is not NAME=VALUE (a template parameter's name, `=`, its value)"
        )),
    }
}

fn parse_set(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((n, _)) if !n.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!(
            "`{s}` is not SUBJECT=VALUE (an unknown's subject as `import` lists it, `=`, its value)"
        )),
    }
}

impl AzureArgs {
    /// The import options.
    pub fn azure(&self) -> AzureOptions {
        AzureOptions {
            parameter_files: self.parameters.clone(),
            parameters: self.parameter.clone(),
            subscription_id: self.subscription_id.clone(),
            resource_group: self.resource_group.clone(),
            location: self.location.clone(),
            sets: self.set.clone(),
        }
    }

    /// The service tag table for `--service-tags FILE`, else the fixture's choice.
    pub fn tags(&self) -> TagSource {
        super::tag_source(&self.service_tags)
    }

    /// Load options with these flags (and no upstream mappings).
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            tags: self.tags(),
            azure: self.azure(),
            max_file_bytes: self.max_file_bytes,
            ..LoadOptions::default()
        }
    }
}

/// The topology of a command: FIXTURE, `--input` and the import options.
#[derive(Debug, clap::Args)]
pub(crate) struct InputArgs {
    /// The topology: a vnetsim fixture (TOML, or JSON/YAML by extension), or Azure input detected from content — an ARM template, a parameters file, exported resource JSON, or a folder (every *.json in it).
    pub fixture: PathBuf,
    /// More Azure inputs merged with FIXTURE (a file or folder; repeatable).
    #[arg(long = "input", value_name = "PATH")]
    pub input: Vec<PathBuf>,
    #[command(flatten)]
    pub azure: AzureArgs,
}

impl InputArgs {
    /// FIXTURE, then every `--input`.
    pub fn paths(&self) -> Vec<PathBuf> {
        std::iter::once(self.fixture.clone())
            .chain(self.input.iter().cloned())
            .collect()
    }

    /// Loads the topology with `upstreams` (`--upstream`) applied.
    pub fn load(&self, upstreams: Vec<(String, String)>) -> Result<Loaded, crate::LoadError> {
        self.load_with(LoadOptions {
            upstreams,
            ..self.azure.load_options()
        })
    }

    /// Loads the topology with `options` (built from [`AzureArgs::load_options`]).
    pub fn load_with(&self, options: LoadOptions) -> Result<Loaded, crate::LoadError> {
        crate::load_inputs(&self.paths(), &options)
    }
}
