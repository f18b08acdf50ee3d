//! The reload hook: the gateway's owner loads topologies (files, formats, load options such as
//! `--upstream` and `--service-tags`); the gateway only applies what it is given. A bodiless
//! `POST /admin/reload` asks the hook to run the start's load again; a body replaces the
//! inputs and the other start options still apply.

use std::fmt;
use std::sync::Arc;

use sim::Built;

/// A reload request's body: a topology in any format the owner's loader reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadBody {
    /// The text.
    pub text: String,
    /// The request's `Content-Type`, when given (`application/json`, `application/yaml`, ...).
    pub media_type: Option<String>,
}

/// Why the owner's loader produced no topology.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// There is nothing to reload from (no hook, no inputs): `400 NO_FIXTURE_PATH`.
    #[error("{0}")]
    NoInputs(String),
    /// An input could not be read: `500 FIXTURE_UNREADABLE`.
    #[error("{0}")]
    Unreadable(String),
    /// The input is not a topology (syntax, schema, import): `422 INVALID_FIXTURE`.
    #[error("{0}")]
    Invalid(String),
}

/// The owner's loader.
pub trait Reload: Send + Sync {
    /// Runs the load the gateway was started from again (`body` is `None`), or the same load
    /// with `body` in place of the inputs.
    ///
    /// # Errors
    /// [`ReloadError`] saying what could not be read or parsed; findings are not errors here
    /// (they travel in the [`Built`], and the gateway refuses error findings itself).
    fn reload(&self, body: Option<&ReloadBody>) -> Result<Built, ReloadError>;
}

/// A shared [`Reload`] as [`crate::StartOptions`] holds it.
#[derive(Clone)]
pub struct ReloadHook(pub Arc<dyn Reload>);

impl fmt::Debug for ReloadHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadHook(..)")
    }
}
