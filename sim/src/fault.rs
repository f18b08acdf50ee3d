//! Seeded faults on the backend leg (`[faults]`): the rule shape users write ([`FaultRule`]),
//! its one validation against a topology ([`Topology::check_fault`], used by the build stage
//! for the fixture's rules and by the gateway for rules added live), and the fault *decision*
//! as pure logic ([`fires`], [`draw`]): whether a rule applies to its `counter`-th request (or
//! new connection) is a function of `(seed, rule name, counter)` only, so a run is repeatable.
//!
//! Applying a fault (resetting a socket, stalling, trickling a body) is the gateway's job; this
//! module only says which fault, with which parameters, and when.
//!
//! Faults are a testing aid, not Azure behaviour: no Azure page describes them. What they let you
//! exercise is: Learn, "Backends in API Management"
//! (<https://learn.microsoft.com/azure/api-management/backends>, cited by the `FAULT_*` finding
//! codes) — circuit breaker rules trip on backend failure status codes and, with
//! `acceptRetryAfter`, honour the backend's `Retry-After` (the `status` kind with
//! `retry_after_s`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::finding::FindingCode;
use crate::proto::azure_enum;
use crate::topology::Topology;

azure_enum!(
    /// What a fault does to the backend leg.
    FaultKind, "fault kind",
    "latency, reset, timeout, status, slow_body, bandwidth, tls_untrusted, tls_wrong_name, close_mid_body, refuse",
    {
        Latency => "latency",
        Reset => "reset",
        Timeout => "timeout",
        Status => "status",
        SlowBody => "slow_body",
        Bandwidth => "bandwidth",
        TlsUntrusted => "tls_untrusted",
        TlsWrongName => "tls_wrong_name",
        CloseMidBody => "close_mid_body",
        Refuse => "refuse",
    }
);

impl FaultKind {
    /// Whether `probability` counts new backend connections (`reset`, `refuse`, `timeout`,
    /// `tls_*`) rather than requests (`latency`, `status`, `slow_body`, `bandwidth`,
    /// `close_mid_body`).
    pub fn is_connection_level(self) -> bool {
        matches!(
            self,
            FaultKind::Reset
                | FaultKind::Refuse
                | FaultKind::Timeout
                | FaultKind::TlsUntrusted
                | FaultKind::TlsWrongName
        )
    }
}

/// `[faults]`: the seed every decision derives from, and the rules.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsFile {
    /// Every random choice of every rule derives from this seed (default 0).
    #[serde(default)]
    pub seed: u64,
    /// The rules, in the order they are tried (the first that fires applies).
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// `[[faults.rules]]`, and the JSON body of `POST /admin/faults` (the same keys).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The rule's name (unique; `DELETE /admin/faults/{name}` names it).
    pub name: String,
    /// `host:port`: a `[[hosts]]` name or one of its DNS names, and a service port.
    pub target: String,
    /// What the fault does.
    pub kind: FaultKind,
    /// Share of requests (HTTP-level kinds) or new connections (connection-level kinds) it
    /// applies to, 0.0–1.0 (default 1.0).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub probability: f64,
    /// `latency`: added delay before the request goes upstream; `slow_body`: pause before
    /// each piece of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// `latency`: up to this much more, drawn from the seed per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// `status`: the status the backend answers with (200–599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `status`: a `Retry-After` header, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// `bandwidth`: the response body's rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_s: Option<u64>,
    /// `slow_body`: the size of each piece (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_bytes: Option<u64>,
    /// `close_mid_body`: body bytes sent before the connection closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_bytes: Option<u64>,
}

fn one() -> f64 {
    1.0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
fn is_one(p: &f64) -> bool {
    (*p - 1.0).abs() < f64::EPSILON
}

/// `slow_body`'s piece size when `chunk_bytes` is not given.
pub const DEFAULT_CHUNK_BYTES: u64 = 64;

impl FaultRule {
    /// A rule with probability 1 and no parameters (set the kind's parameters on it).
    ///
    /// ```
    /// use sim::{FaultKind, FaultRule};
    /// let r = FaultRule::new("r", "orders:443", FaultKind::Reset);
    /// assert_eq!(r.probability, 1.0);
    /// ```
    pub fn new(name: impl Into<String>, target: impl Into<String>, kind: FaultKind) -> FaultRule {
        FaultRule {
            name: name.into(),
            target: target.into(),
            kind,
            probability: 1.0,
            latency_ms: None,
            jitter_ms: None,
            status: None,
            retry_after_s: None,
            bytes_per_s: None,
            chunk_bytes: None,
            after_bytes: None,
        }
    }
}

// === impl FaultRule (builder) ===

impl FaultRule {
    /// Sets `probability`.
    #[must_use]
    pub fn probability(mut self, p: f64) -> FaultRule {
        self.probability = p;
        self
    }
    /// Sets `latency_ms`.
    #[must_use]
    pub fn latency_ms(mut self, ms: u64) -> FaultRule {
        self.latency_ms = Some(ms);
        self
    }
    /// Sets `jitter_ms`.
    #[must_use]
    pub fn jitter_ms(mut self, ms: u64) -> FaultRule {
        self.jitter_ms = Some(ms);
        self
    }
    /// Sets `status`.
    #[must_use]
    pub fn status(mut self, status: u16) -> FaultRule {
        self.status = Some(status);
        self
    }
    /// Sets `retry_after_s`.
    #[must_use]
    pub fn retry_after_s(mut self, s: u64) -> FaultRule {
        self.retry_after_s = Some(s);
        self
    }
    /// Sets `bytes_per_s`.
    #[must_use]
    pub fn bytes_per_s(mut self, n: u64) -> FaultRule {
        self.bytes_per_s = Some(n);
        self
    }
    /// Sets `chunk_bytes`.
    #[must_use]
    pub fn chunk_bytes(mut self, n: u64) -> FaultRule {
        self.chunk_bytes = Some(n);
        self
    }
    /// Sets `after_bytes`.
    #[must_use]
    pub fn after_bytes(mut self, n: u64) -> FaultRule {
        self.after_bytes = Some(n);
        self
    }
}

/// What a checked fault does, with its parameters typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Delay the request by `latency` plus up to `jitter` (drawn per request).
    Latency {
        /// Fixed delay.
        latency: Duration,
        /// Largest extra delay.
        jitter: Duration,
    },
    /// The backend answers `status` (with `Retry-After` when given) without the request
    /// reaching it.
    Status {
        /// The status.
        status: u16,
        /// `Retry-After`, seconds.
        retry_after_s: Option<u64>,
    },
    /// The body arrives in pieces of `chunk` bytes, each after `pause`.
    SlowBody {
        /// Pause before each piece.
        pause: Duration,
        /// Piece size.
        chunk: u64,
    },
    /// The body arrives at `bytes_per_s`.
    Bandwidth {
        /// Rate.
        bytes_per_s: u64,
    },
    /// The head and `after_bytes` of the body (never the whole body), then the connection
    /// closes.
    CloseMidBody {
        /// Body bytes sent.
        after_bytes: u64,
    },
    /// The TCP connection is reset by the backend.
    Reset,
    /// The connection is refused.
    Refuse,
    /// The backend accepts and never answers.
    Timeout,
    /// The backend presents a certificate from a CA the gateway does not trust.
    TlsUntrusted,
    /// The backend presents a certificate from the local CA for another name.
    TlsWrongName,
}

/// A fault rule checked against a topology: its target resolved to a host and port.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// The rule as written (what `GET /admin/faults` lists).
    pub rule: FaultRule,
    /// The `[[hosts]]` name the target resolved to.
    pub host: String,
    /// The service port.
    pub port: u16,
    /// What it does.
    pub action: FaultAction,
}

impl Fault {
    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.rule.name
    }
    /// The rule's kind.
    pub fn kind(&self) -> FaultKind {
        self.rule.kind
    }
}

/// The faults in force: the seed and the checked rules (see [`Topology::faults`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSet {
    /// The seed of every decision.
    pub seed: u64,
    /// The rules, in order.
    pub rules: Vec<Fault>,
}

/// One problem of a fault rule: its finding code and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultProblem {
    /// `FAULT_TARGET_UNKNOWN`, `FAULT_PROBABILITY_INVALID`, `FAULT_PARAMETER_MISSING` or
    /// `FAULT_PARAMETER_INVALID`.
    pub code: FindingCode,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for FaultProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

// === impl Topology (faults) ===

impl Topology {
    /// The faults of the fixture's `[faults]` that passed [`Topology::check_fault`].
    pub fn faults(&self) -> &FaultSet {
        &self.faults
    }

    /// Checks one fault rule against this topology: the target names a host and one of its
    /// service ports, the probability is within 0–1, the kind has its parameters (and no
    /// parameter of another kind). The one check of the fixture's rules and of rules added
    /// live.
    ///
    /// ```
    /// use sim::{fixture::{Fixture, Format}, FaultKind, FaultRule, ServiceTagTable, Topology};
    /// let f = Fixture::parse("[[hosts]]\nname = \"orders\"\naddress = \"203.0.113.5\"\n[[hosts.services]]\nport = 80\nserve = \"echo\"\n", Format::Toml).unwrap();
    /// let t = Topology::build(&f, ServiceTagTable::builtin()).topology;
    /// assert!(t.check_fault(&FaultRule::new("r", "orders:80", FaultKind::Reset)).is_ok());
    /// let bad = t.check_fault(&FaultRule::new("r", "orders:81", FaultKind::Latency)).unwrap_err();
    /// let codes: Vec<_> = bad.iter().map(|p| p.code.as_str()).collect();
    /// assert_eq!(codes, ["FAULT_TARGET_UNKNOWN", "FAULT_PARAMETER_MISSING"]);
    /// ```
    ///
    /// # Errors
    /// Every problem found, each with its finding code.
    pub fn check_fault(&self, r: &FaultRule) -> Result<Fault, Vec<FaultProblem>> {
        let mut problems = Vec::new();
        let mut problem = |code, message: String| problems.push(FaultProblem { code, message });
        let name_ok = !r.name.is_empty()
            && r.name.len() <= 80
            && r.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            problem(
                FindingCode::FaultParameterInvalid,
                format!(
                    "name `{}` must be 1-80 characters of letters, digits, `-`, `_` and `.`",
                    r.name
                ),
            );
        }
        let target = self.fault_target(&r.target);
        let tls = match &target {
            Ok((_, _, tls)) => Some(*tls),
            Err(m) => {
                problem(FindingCode::FaultTargetUnknown, m.clone());
                None
            }
        };
        if !(r.probability.is_finite() && (0.0..=1.0).contains(&r.probability)) {
            problem(
                FindingCode::FaultProbabilityInvalid,
                format!(
                    "probability {} must be a number from 0.0 to 1.0",
                    r.probability
                ),
            );
        }
        let ms = Duration::from_millis;
        let need = |v: Option<u64>, key: &str, problem: &mut dyn FnMut(FindingCode, String)| {
            if v.is_none() {
                problem(
                    FindingCode::FaultParameterMissing,
                    format!("kind `{}` needs `{key}`", r.kind),
                );
            }
            v.unwrap_or(0)
        };
        let action = match r.kind {
            FaultKind::Latency => FaultAction::Latency {
                latency: ms(need(r.latency_ms, "latency_ms", &mut problem)),
                jitter: ms(r.jitter_ms.unwrap_or(0)),
            },
            FaultKind::Status => {
                let status = need(r.status.map(u64::from), "status", &mut problem);
                if r.status.is_some() && !(200..=599).contains(&status) {
                    problem(
                        FindingCode::FaultParameterInvalid,
                        format!("status {status} must be a final status, 200-599"),
                    );
                }
                FaultAction::Status {
                    status: u16::try_from(status).unwrap_or(500),
                    retry_after_s: r.retry_after_s,
                }
            }
            FaultKind::SlowBody => {
                let chunk = r.chunk_bytes.unwrap_or(DEFAULT_CHUNK_BYTES);
                if chunk == 0 {
                    problem(
                        FindingCode::FaultParameterInvalid,
                        "chunk_bytes must be at least 1".to_string(),
                    );
                }
                FaultAction::SlowBody {
                    pause: ms(need(r.latency_ms, "latency_ms", &mut problem)),
                    chunk: chunk.max(1),
                }
            }
            FaultKind::Bandwidth => {
                let rate = need(r.bytes_per_s, "bytes_per_s", &mut problem);
                if r.bytes_per_s == Some(0) {
                    problem(
                        FindingCode::FaultParameterInvalid,
                        "bytes_per_s must be at least 1".to_string(),
                    );
                }
                FaultAction::Bandwidth {
                    bytes_per_s: rate.max(1),
                }
            }
            FaultKind::CloseMidBody => FaultAction::CloseMidBody {
                after_bytes: need(r.after_bytes, "after_bytes", &mut problem),
            },
            FaultKind::Reset => FaultAction::Reset,
            FaultKind::Refuse => FaultAction::Refuse,
            FaultKind::Timeout => FaultAction::Timeout,
            FaultKind::TlsUntrusted => FaultAction::TlsUntrusted,
            FaultKind::TlsWrongName => FaultAction::TlsWrongName,
        };
        if matches!(r.kind, FaultKind::TlsUntrusted | FaultKind::TlsWrongName) && tls == Some(false)
        {
            problem(
                FindingCode::FaultParameterInvalid,
                format!(
                    "kind `{}` needs a TLS service, and `{}` is not `tls = true`",
                    r.kind, r.target
                ),
            );
        }
        for (key, given, used) in [
            (
                "latency_ms",
                r.latency_ms.is_some(),
                matches!(r.kind, FaultKind::Latency | FaultKind::SlowBody),
            ),
            (
                "jitter_ms",
                r.jitter_ms.is_some(),
                r.kind == FaultKind::Latency,
            ),
            ("status", r.status.is_some(), r.kind == FaultKind::Status),
            (
                "retry_after_s",
                r.retry_after_s.is_some(),
                r.kind == FaultKind::Status,
            ),
            (
                "bytes_per_s",
                r.bytes_per_s.is_some(),
                r.kind == FaultKind::Bandwidth,
            ),
            (
                "chunk_bytes",
                r.chunk_bytes.is_some(),
                r.kind == FaultKind::SlowBody,
            ),
            (
                "after_bytes",
                r.after_bytes.is_some(),
                r.kind == FaultKind::CloseMidBody,
            ),
        ] {
            if given && !used {
                problem(
                    FindingCode::FaultParameterInvalid,
                    format!("`{key}` does nothing for kind `{}`", r.kind),
                );
            }
        }
        match target {
            Ok((host, port, _)) if problems.is_empty() => Ok(Fault {
                rule: r.clone(),
                host,
                port,
                action,
            }),
            _ => Err(problems),
        }
    }

    /// `host:port` → the `[[hosts]]` name, the port and whether that service speaks TLS.
    fn fault_target(&self, target: &str) -> Result<(String, u16, bool), String> {
        let Some((host, port)) = target.trim().rsplit_once(':') else {
            return Err(format!(
                "target `{target}` must be host:port (a [[hosts]] name or DNS name, and a service port)"
            ));
        };
        let Ok(port) = port.parse::<u16>() else {
            return Err(format!("target `{target}`: `{port}` is not a port"));
        };
        let Some(h) = self.host_by_name_or_dns(host) else {
            return Err(format!(
                "target `{target}`: no [[hosts]] entry is named `{host}` or has it as a DNS name"
            ));
        };
        let h = &self.hosts[h];
        match h.services.iter().find(|s| s.port == port) {
            Some(s) => Ok((h.name.clone(), port, s.tls)),
            None => Err(format!(
                "target `{target}`: host `{}` has no service on port {port}",
                h.name
            )),
        }
    }
}

// === the decision ===

/// FNV-1a of a rule name: the rule's stream, independent of its position in the list.
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The splitmix64 finalizer: a bijective mix with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `stream`-th 64-bit value of rule `rule`'s `counter`-th decision under `seed`: a pure
/// function of its arguments (stream 0 decides whether the rule fires; stream 1 draws the
/// latency jitter).
///
/// ```
/// assert_eq!(sim::fault_draw(42, "r", 7, 1), sim::fault_draw(42, "r", 7, 1));
/// assert_ne!(sim::fault_draw(42, "r", 7, 1), sim::fault_draw(43, "r", 7, 1));
/// ```
pub fn draw(seed: u64, rule: &str, counter: u64, stream: u64) -> u64 {
    let base = mix(seed ^ name_hash(rule).rotate_left(17));
    mix(base
        .wrapping_add(counter.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(mix(stream.wrapping_add(0x632b_e59b_d9b4_e019))))
}

/// Whether rule `rule` applies to its `counter`-th request (or new connection): true with
/// `probability`, decided by [`draw`] alone (1.0 always fires, 0.0 never).
///
/// ```
/// let hits = (0..10_000).filter(|&c| sim::fault_fires(7, "slow", c, 0.3)).count();
/// assert!((2_700..3_300).contains(&hits));
/// assert!(sim::fault_fires(7, "slow", 0, 1.0) && !sim::fault_fires(7, "slow", 0, 0.0));
/// ```
pub fn fires(seed: u64, rule: &str, counter: u64, probability: f64) -> bool {
    if probability >= 1.0 {
        return true;
    }
    if probability <= 0.0 || probability.is_nan() {
        return false;
    }
    // 53 random bits as a float in [0, 1).
    #[allow(clippy::cast_precision_loss)] // < 2^53: exact
    let unit = (draw(seed, rule, counter, 0) >> 11) as f64 / (1u64 << 53) as f64;
    unit < probability
}

/// The latency a `latency` fault adds to its `counter`-th request: `latency` plus a jitter
/// drawn uniformly from `0..=jitter` (whole milliseconds).
pub fn latency_for(
    seed: u64,
    rule: &str,
    counter: u64,
    latency: Duration,
    jitter: Duration,
) -> Duration {
    let j = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if j == 0 {
        return latency;
    }
    let extra = draw(seed, rule, counter, 1) % j.saturating_add(1);
    latency + Duration::from_millis(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_a_function_of_seed_rule_and_counter() {
        let a: Vec<bool> = (0..64).map(|c| fires(42, "r", c, 0.5)).collect();
        let b: Vec<bool> = (0..64).map(|c| fires(42, "r", c, 0.5)).collect();
        assert_eq!(a, b);
        // Another seed or another rule name is another stream.
        let c: Vec<bool> = (0..64).map(|c| fires(43, "r", c, 0.5)).collect();
        let d: Vec<bool> = (0..64).map(|c| fires(42, "s", c, 0.5)).collect();
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn probability_is_the_share_that_fires() {
        for p in [0.01, 0.3, 0.5, 0.9] {
            let n = 20_000u32;
            let hits = (0..u64::from(n)).filter(|&c| fires(1, "x", c, p)).count();
            let share = f64::from(u32::try_from(hits).unwrap()) / f64::from(n);
            assert!((share - p).abs() < 0.02, "p {p}: share {share}");
        }
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let l = Duration::from_millis(100);
        let j = Duration::from_millis(20);
        let all: Vec<Duration> = (0..500).map(|c| latency_for(3, "l", c, l, j)).collect();
        assert!(all.iter().all(|d| *d >= l && *d <= l + j));
        assert!(all.iter().any(|d| *d > l + Duration::from_millis(10)));
        assert_eq!(latency_for(3, "l", 0, l, Duration::ZERO), l);
    }

    proptest::proptest! {
        /// A rule that fires at probability p fires at every larger p (one uniform draw is
        /// compared with p), 1.0 always fires and 0.0 never does; the jittered latency stays
        /// within its bounds.
        #[test]
        fn firing_is_monotone_in_probability(
            seed in proptest::prelude::any::<u64>(),
            name in "[a-z0-9-]{1,12}",
            counter in proptest::prelude::any::<u64>(),
            p in 0.0f64..1.0,
            q in 0.0f64..1.0,
            jitter in 0u64..1000,
        ) {
            let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
            if fires(seed, &name, counter, lo) {
                proptest::prop_assert!(fires(seed, &name, counter, hi));
            }
            proptest::prop_assert!(fires(seed, &name, counter, 1.0));
            proptest::prop_assert!(!fires(seed, &name, counter, 0.0));
            let base = Duration::from_millis(10);
            let d = latency_for(seed, &name, counter, base, Duration::from_millis(jitter));
            proptest::prop_assert!(d >= base && d <= base + Duration::from_millis(jitter));
        }
    }

    #[test]
    fn the_build_checks_every_rule_and_keeps_the_good_ones() {
        use crate::fixture::{Fixture, Format};
        let f = Fixture::parse(
            r#"
[[hosts]]
name = "web"
address = "203.0.113.5"
dns = ["web.example.com"]
  [[hosts.services]]
  port = 80
  serve = "echo"

[faults]
seed = 3
  [[faults.rules]]
  name = "ok"
  target = "WEB.example.com:80"
  kind = "RESET"
  [[faults.rules]]
  name = "OK"
  target = "web:80"
  kind = "refuse"
  [[faults.rules]]
  name = "tls-on-plain"
  target = "web:80"
  kind = "tls_wrong_name"
  [[faults.rules]]
  name = "bad name!"
  target = "web:80"
  kind = "timeout"
"#,
            Format::Toml,
        )
        .unwrap();
        let built = Topology::build(&f, crate::ServiceTagTable::builtin());
        let set = built.topology.faults();
        assert_eq!(set.seed, 3);
        // The DNS name resolves to the [[hosts]] name; the other three are refused.
        assert_eq!(set.rules.len(), 1);
        assert_eq!((set.rules[0].host.as_str(), set.rules[0].port), ("web", 80));
        let codes: Vec<(&str, &str)> = built
            .findings
            .iter()
            .map(|f| (f.code.as_str(), f.subject.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("NAME_DUPLICATE", "faults/rules/OK"),
                ("FAULT_PARAMETER_INVALID", "faults/rules/bad name!"),
                ("FAULT_PARAMETER_INVALID", "faults/rules/tls-on-plain"),
            ]
        );
    }

    #[test]
    fn kinds_parse_case_insensitively_and_know_their_level() {
        assert_eq!(
            "SLOW_BODY".parse::<FaultKind>().unwrap(),
            FaultKind::SlowBody
        );
        assert!("bogus".parse::<FaultKind>().is_err());
        let conn: Vec<&str> = FaultKind::ALL
            .iter()
            .filter(|k| k.is_connection_level())
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            conn,
            [
                "reset",
                "timeout",
                "tls_untrusted",
                "tls_wrong_name",
                "refuse"
            ]
        );
    }
}
