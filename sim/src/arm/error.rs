//! Why an import failed, and where: every error names the input, the RFC 6901 pointer of the
//! offending value and, when the text has it, its line and column.

use std::fmt;

use serde::Serialize;

use super::limits::Limit;

/// A place in one input: its display name, the RFC 6901 pointer of a value, and the value's
/// 1-based line and column when known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The input's display name (a file name, or `--parameter` for command-line values).
    pub input: String,
    /// RFC 6901 JSON pointer (`""` is the whole document).
    pub pointer: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
}

impl Location {
    /// A location without line and column (filled in later from the input text).
    pub fn new(input: impl Into<String>, pointer: impl Into<String>) -> Location {
        Location {
            input: input.into(),
            pointer: pointer.into(),
            line: None,
            column: None,
        }
    }
}

/// The same place as a [`crate::source::Location`] (the form findings and verdicts carry).
impl From<&Location> for crate::source::Location {
    fn from(at: &Location) -> crate::source::Location {
        crate::source::Location {
            file: Some(at.input.clone()),
            line: at.line,
            column: at.column,
            pointer: Some(at.pointer.clone()),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        let p = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, " ({p})")
    }
}

/// An input that cannot be turned into a topology. The CLI exits with status 2 on any of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The text is not valid JSON.
    #[error("{at}: not valid JSON: {message}")]
    Json {
        /// Where parsing stopped (line and column from the parser, pointer of the value being read).
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// Valid JSON, but none of the Azure formats vnetsim reads.
    #[error("{input}: {reason}")]
    NotAzure {
        /// The input's display name.
        input: String,
        /// What the text looks like instead.
        reason: String,
    },
    /// A resource as `az resource list` prints it: no `properties`, so its content is unknown.
    #[error("{at}: {resource_type} `{name}` carries no properties (the `az resource list` form), so its content is unknown; run `{command}` (or `az resource show --ids {id}`) for the full form")]
    NoProperties {
        /// The resource.
        at: Location,
        /// Its type.
        resource_type: String,
        /// Its name.
        name: String,
        /// Its resource id (`<id>` when the export has none).
        id: String,
        /// The type's own command that prints the full form.
        command: String,
    },
    /// An expression calls a name that is not an ARM template function.
    #[error("{at}: `{name}` is not an ARM template function (in `{expression}`)")]
    UnknownFunction {
        /// The string holding the expression.
        at: Location,
        /// The name called.
        name: String,
        /// The whole expression.
        expression: String,
    },
    /// An expression does not parse, or fails when evaluated (wrong argument types, a missing
    /// property, an index out of range, ...).
    #[error("{at}: {message} (in `{expression}`)")]
    Expression {
        /// The string holding the expression.
        at: Location,
        /// The whole expression.
        expression: String,
        /// What is wrong.
        message: String,
    },
    /// A parameter value does not have the declared type.
    #[error("{at}: parameter `{name}` is declared `{expected}` but the value is {found}")]
    ParameterType {
        /// The value (in a parameters file, on the command line, or a `defaultValue`).
        at: Location,
        /// Parameter name.
        name: String,
        /// Declared type.
        expected: String,
        /// What was given.
        found: String,
    },
    /// A parameter without a default value was not given.
    #[error("{at}: parameter `{name}` has no defaultValue and no value was given; pass --parameters FILE or --parameter {name}=VALUE")]
    ParameterMissing {
        /// The parameter's declaration.
        at: Location,
        /// Parameter name.
        name: String,
    },
    /// A parameter value is not one of its `allowedValues`.
    #[error(
        "{at}: parameter `{name}` is {value}, which is not one of its allowedValues {allowed}"
    )]
    ParameterNotAllowed {
        /// The value.
        at: Location,
        /// Parameter name.
        name: String,
        /// The value as JSON.
        value: String,
        /// The allowed values as JSON.
        allowed: String,
    },
    /// A parameter was given that no template declares.
    #[error("{at}: parameter `{name}` is not declared by any template among the inputs")]
    ParameterUndeclared {
        /// Where it was given.
        at: Location,
        /// Parameter name.
        name: String,
    },
    /// A value Azure would refuse, or one vnetsim cannot read (e.g. a protocol `Foo`).
    #[error("{at}: {message}")]
    Invalid {
        /// The value.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// A value known only at deployment time where the topology has no way to say "unknown": a
    /// resource name, `condition`, `copy` count, rule priority or direction, SKU, ...
    #[error("{at}: {what} is not known before deployment ({reason}, in `{expression}`); vnetsim cannot model it as unknown")]
    Unrepresentable {
        /// The value.
        at: Location,
        /// What it is (e.g. "the priority of rule `r`").
        what: String,
        /// The expression.
        expression: String,
        /// Why it is unknown.
        reason: String,
    },
    /// A resource refers to one that is not among the inputs (a subnet's VNet, a subnet's NSG, a
    /// NIC's subnet, the APIM instance's subnet).
    #[error("{at}: {message}")]
    MissingReference {
        /// The referring value.
        at: Location,
        /// What is missing and which command or template would provide it.
        message: String,
    },
    /// An input exceeds a limit of ARM templates, or one of vnetsim's bounds on evaluation
    /// (value size, nesting, total work): see [`Limit`].
    #[error("{at}: {found}; {limit}")]
    LimitExceeded {
        /// Where: the template (`/`), the section (`/variables`) or the string whose
        /// evaluation went over.
        at: Location,
        /// Which limit.
        limit: Limit,
        /// What was found ("the template declares 3000 variables").
        found: String,
    },
    /// The same resource twice with different content.
    #[error("{kind} `{name}` is defined twice with different content: {first} and {second}")]
    Conflict {
        /// Resource kind (e.g. "NSG").
        kind: String,
        /// Resource name.
        name: String,
        /// The first definition.
        first: Location,
        /// The second definition.
        second: Location,
    },
}

impl ImportError {
    /// A stable code for scripts: `ARM_JSON_INVALID`, `ARM_NOT_AZURE`, `ARM_NO_PROPERTIES`,
    /// `ARM_UNKNOWN_FUNCTION`, `ARM_EXPRESSION`, `ARM_PARAMETER_TYPE`, `ARM_PARAMETER_MISSING`,
    /// `ARM_PARAMETER_NOT_ALLOWED`, `ARM_PARAMETER_UNDECLARED`, `ARM_INVALID`,
    /// `ARM_UNREPRESENTABLE`, `ARM_MISSING_REFERENCE`, `ARM_LIMIT_EXCEEDED` or `ARM_CONFLICT`.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::Json { .. } => "ARM_JSON_INVALID",
            ImportError::NotAzure { .. } => "ARM_NOT_AZURE",
            ImportError::NoProperties { .. } => "ARM_NO_PROPERTIES",
            ImportError::UnknownFunction { .. } => "ARM_UNKNOWN_FUNCTION",
            ImportError::Expression { .. } => "ARM_EXPRESSION",
            ImportError::ParameterType { .. } => "ARM_PARAMETER_TYPE",
            ImportError::ParameterMissing { .. } => "ARM_PARAMETER_MISSING",
            ImportError::ParameterNotAllowed { .. } => "ARM_PARAMETER_NOT_ALLOWED",
            ImportError::ParameterUndeclared { .. } => "ARM_PARAMETER_UNDECLARED",
            ImportError::Invalid { .. } => "ARM_INVALID",
            ImportError::Unrepresentable { .. } => "ARM_UNREPRESENTABLE",
            ImportError::MissingReference { .. } => "ARM_MISSING_REFERENCE",
            ImportError::LimitExceeded { .. } => "ARM_LIMIT_EXCEEDED",
            ImportError::Conflict { .. } => "ARM_CONFLICT",
        }
    }

    /// Where the error is (the first definition for a conflict); `None` for [`ImportError::NotAzure`].
    pub fn location(&self) -> Option<&Location> {
        match self {
            ImportError::NotAzure { .. } => None,
            ImportError::Conflict { first, .. } => Some(first),
            ImportError::Json { at, .. }
            | ImportError::NoProperties { at, .. }
            | ImportError::UnknownFunction { at, .. }
            | ImportError::Expression { at, .. }
            | ImportError::ParameterType { at, .. }
            | ImportError::ParameterMissing { at, .. }
            | ImportError::ParameterNotAllowed { at, .. }
            | ImportError::ParameterUndeclared { at, .. }
            | ImportError::Invalid { at, .. }
            | ImportError::Unrepresentable { at, .. }
            | ImportError::MissingReference { at, .. }
            | ImportError::LimitExceeded { at, .. } => Some(at),
        }
    }

    /// Every location in the error, to fill in line and column.
    pub(crate) fn locations_mut(&mut self) -> Vec<&mut Location> {
        match self {
            ImportError::NotAzure { .. } => Vec::new(),
            ImportError::Conflict { first, second, .. } => vec![first, second],
            ImportError::Json { at, .. }
            | ImportError::NoProperties { at, .. }
            | ImportError::UnknownFunction { at, .. }
            | ImportError::Expression { at, .. }
            | ImportError::ParameterType { at, .. }
            | ImportError::ParameterMissing { at, .. }
            | ImportError::ParameterNotAllowed { at, .. }
            | ImportError::ParameterUndeclared { at, .. }
            | ImportError::Invalid { at, .. }
            | ImportError::Unrepresentable { at, .. }
            | ImportError::MissingReference { at, .. }
            | ImportError::LimitExceeded { at, .. } => vec![at],
        }
    }
}
