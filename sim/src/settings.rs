//! The gateway's settings as the model holds them: `[gateway]` parsed once, at build time, into
//! typed values (listen addresses as [`SocketAddr`]s, timeouts as [`Duration`]s). The gateway
//! reads these and never the file's strings.

use std::net::SocketAddr;
use std::time::Duration;

use crate::fixture::{DenyMode, GatewayFile};

/// `[gateway]`, typed. `None` means "the gateway's documented default".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySettings {
    /// The gateway host name (its certificate's name when `tls`).
    pub hostname: String,
    /// Front door address (a loopback socket; `None`: `127.0.0.1:0`).
    pub listen: Option<ListenAddr>,
    /// Admin listener address (a loopback socket; `None`: `127.0.0.1:0`).
    pub admin_listen: Option<ListenAddr>,
    /// Serve HTTPS at the front door.
    pub tls: bool,
    /// PEM certificate chain for the front door, relative to the topology's folder.
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<String>,
    /// Admin bearer token (`None`: random per start).
    pub admin_token: Option<String>,
    /// Whether `upstream` sockets may be non-loopback.
    pub allow_non_loopback_upstreams: bool,
    /// The limits and what a denied flow gets (`None`: the gateway's documented default).
    pub limits: GatewayLimits,
}

/// The gateway's limits as a topology (or a caller overriding it) gives them: `None` means
/// "not given here". The gateway merges a caller's overrides over the topology's and fills the
/// rest with its documented defaults (`gateway::config::Limits::resolve`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Largest request head, bytes.
    pub max_header_bytes: Option<usize>,
    /// Largest request body, bytes.
    pub max_body_bytes: Option<u64>,
    /// Most concurrent client connections.
    pub max_connections: Option<usize>,
    /// Time a client has to send its request head.
    pub header_read_timeout: Option<Duration>,
    /// Time a client has to send its whole body once its head arrived.
    pub body_read_timeout: Option<Duration>,
    /// Backend connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Backend response-head timeout.
    pub response_timeout: Option<Duration>,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_grace: Option<Duration>,
    /// What a denied new flow gets.
    pub deny_mode: Option<DenyMode>,
    /// Entries the request journal keeps.
    pub journal_size: Option<usize>,
}

/// A socket the gateway *listens* on — never confused with an upstream socket it dials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings::from_file(&GatewayFile::default()).0
    }
}

impl GatewaySettings {
    /// The typed settings of `[gateway]`, and the keys whose listener is not a loopback
    /// socket address (`(key, value)`; those listeners are `None`, and the build reports
    /// `GATEWAY_LISTEN_INVALID`). Durations of 0 ms are kept as 0; the gateway raises them to
    /// its smallest usable value.
    pub fn from_file(g: &GatewayFile) -> (GatewaySettings, Vec<(&'static str, String)>) {
        let mut invalid = Vec::new();
        let mut listen = |key: &'static str, v: &Option<String>| -> Option<ListenAddr> {
            let v = v.as_ref()?;
            match v.trim().parse::<SocketAddr>() {
                Ok(sa) if sa.ip().is_loopback() => Some(ListenAddr(sa)),
                _ => {
                    invalid.push((key, v.clone()));
                    None
                }
            }
        };
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        let settings = GatewaySettings {
            hostname: g.hostname.clone(),
            listen: listen("listen", &g.listen),
            admin_listen: listen("admin_listen", &g.admin_listen),
            tls: g.tls,
            tls_cert: g.tls_cert.clone(),
            tls_key: g.tls_key.clone(),
            admin_token: g.admin_token.clone(),
            allow_non_loopback_upstreams: g.allow_non_loopback_upstreams,
            limits: GatewayLimits {
                max_header_bytes: g.max_header_bytes,
                max_body_bytes: g.max_body_bytes,
                max_connections: g.max_connections,
                header_read_timeout: ms(g.header_read_timeout_ms),
                body_read_timeout: ms(g.body_read_timeout_ms),
                connect_timeout: ms(g.connect_timeout_ms),
                response_timeout: ms(g.response_timeout_ms),
                shutdown_grace: ms(g.shutdown_grace_ms),
                deny_mode: Some(g.deny_mode),
                journal_size: g.journal_size,
            },
        };
        (settings, invalid)
    }
}

/// A live change to a topology ([`crate::Topology::apply`]): typed, not strings. Rule names
/// compare case-insensitively, as Azure's do.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Replace one NSG's custom rules (the default rules stay): rules not in `rules` are removed.
    SetRules {
        /// The NSG's name (case-insensitive).
        nsg: String,
        /// The new custom rules, in the fixture's shape.
        rules: Vec<crate::fixture::RawRule>,
    },
    /// Add one custom rule, or replace the custom rule of the same name in place; the NSG's
    /// other rules stay.
    PutRule {
        /// The NSG's name (case-insensitive).
        nsg: String,
        /// The rule, in the fixture's shape; its `name` says which rule it adds or replaces.
        /// (Boxed: a rule is much larger than the other variants.)
        rule: Box<crate::fixture::RawRule>,
    },
    /// Remove one custom rule; the NSG's other rules stay.
    DeleteRule {
        /// The NSG's name (case-insensitive).
        nsg: String,
        /// The rule's name (`securityRules/<name>` is accepted too).
        name: String,
    },
}

/// Why a [`Change`] could not be made (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No NSG has that name.
    #[error("no NSG named `{0}`")]
    UnknownNsg(String),
    /// A rule does not have the fixture's shape (a missing direction, two address forms, ...).
    #[error("nsgs/{nsg}: rule {index}: {message}")]
    InvalidRule {
        /// The NSG.
        nsg: String,
        /// The rule's position in the change (0-based).
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The NSG has no custom rule of that name.
    #[error("nsgs/{nsg}: no custom rule named `{name}`")]
    UnknownRule {
        /// The NSG.
        nsg: String,
        /// The name asked for.
        name: String,
    },
    /// The name is one of Azure's six default rules (`AllowVnetOutBound`,
    /// `defaultSecurityRules/DenyAllInBound`, ...): those cannot be changed or removed, only
    /// overridden by a custom rule with a lower priority number, under another name.
    #[error("nsgs/{nsg}: `{name}` is a default rule; default rules cannot be changed or deleted (override one with a custom rule of a lower priority number)")]
    DefaultRule {
        /// The NSG.
        nsg: String,
        /// The name asked for.
        name: String,
    },
}

/// What an applied rule change did to the NSG's custom rules, by rule name (in the NSG's
/// spelling). Serialized beside a change report: `{"created": [], "replaced": ["r"], "removed": []}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleChanges {
    /// Rules that did not exist before.
    pub created: Vec<String>,
    /// Rules that existed and were written again (changed or not).
    pub replaced: Vec<String>,
    /// Rules that no longer exist.
    pub removed: Vec<String>,
}

/// An applied [`Change`]: the new topology with every finding of it, and what the change did
/// to the rules.
#[derive(Debug)]
#[must_use]
pub struct Applied {
    /// The new topology and its findings (the caller decides whether findings refuse it).
    pub built: crate::topology::Built,
    /// The rules created, replaced and removed.
    pub rules: RuleChanges,
}
