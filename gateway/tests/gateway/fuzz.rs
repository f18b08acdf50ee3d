//! The front door under generated and mutated raw HTTP/1.1 (item 6 of the hardening issue;
//! `sim/tests/fuzz.rs` fuzzes the model's inputs). Each case is one connection carrying one to
//! four requests back to back (a bounded pipelined request loop), built from parts that hit
//! every edge check — methods, targets with dot-segments and percent-escapes, versions,
//! repeated and malformed `Host`, `Content-Length` and `Transfer-Encoding`, chunk framings,
//! `Expect`, `Upgrade`, heads of over 100 fields, bare LF — then damaged by byte edits. The
//! client never closes first: every case ends when the gateway closes the connection, after an
//! error that ends it or at its idle limit (100 ms here), so a hang is a failure. Cases run in
//! batches of [`BATCH`] concurrent connections.
//!
//! The oracle: the gateway answers with a well-formed sequence of HTTP/1.x responses, or
//! closes, within a few seconds; each status is documented (200 from the echo backend, a
//! problem document whose code and status agree with the gateway's table, or one of hyper's
//! bodiless refusals); nothing follows a `connection: close` answer. After all cases: no
//! panic on any gateway thread, no client connection left open, every status counted in
//! `/metrics` documented, and a good request still served.
//!
//! Cases: 12 batches (384 connections) in CI, `VNETSIM_FUZZ_CASES` batches for a long run. The regression corpus below keeps
//! the hardening issue's HTTP inputs as explicit cases (and as seeds of the mutations); the
//! codes of most of them are pinned by `edge.rs` (malformed chunked bodies, missing and
//! repeated `Host`, over 100 header fields) and only checked against the oracle here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use gateway::error::ErrorCode;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Overrides the CI case count (the same variable as `sim`'s fuzz properties).
const FUZZ_CASES_VAR: &str = "VNETSIM_FUZZ_CASES";
/// Batches of [`BATCH`] connections per run in CI: a few seconds in a debug build.
const DEFAULT_CASES: u32 = 12;
/// Concurrent connections per case.
const BATCH: usize = 32;
/// How long one connection may take from connect to the gateway's close. Every input ends
/// within the limits of [`fuzz_limits`] (100 ms idle or header read, 150 ms body read, 1.5 s
/// response); the rest is margin for a loaded CI machine.
const EXCHANGE_BOUND: Duration = Duration::from_secs(5);
/// Name of the gateway runtime's threads, so the panic counter sees only the gateway's panics.
const GATEWAY_THREADS: &str = "fuzz-gateway";

/// Panics on threads named [`GATEWAY_THREADS`] (a connection task, the accept loop, a blocking
/// reload): tokio would swallow them into a closed connection.
static GATEWAY_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_gateway_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(GATEWAY_THREADS) {
                GATEWAY_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// [`fast_limits`] with a shorter header-read (and idle) limit and body-read limit: the
/// gateway's close ends each connection sooner.
fn fuzz_limits() -> gateway::LimitOverrides {
    gateway::LimitOverrides {
        header_read_timeout: Some(Duration::from_millis(100)),
        body_read_timeout: Some(Duration::from_millis(150)),
        ..fast_limits()
    }
}

fn fuzz_cases() -> u32 {
    std::env::var(FUZZ_CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

// === generated requests ===

/// One request, as parts; [`Req::bytes`] writes it (with `eol` as the line ending).
#[derive(Clone, Debug)]
struct Req {
    method: String,
    target: String,
    version: &'static str,
    headers: Vec<(String, String)>,
    /// Filler header fields `x-f{i}: 1` (over 100 fields in all crosses hyper's limit).
    fillers: usize,
    body: Vec<u8>,
    eol: &'static str,
}

impl Req {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} {}{}",
            self.method, self.target, self.version, self.eol
        )
        .into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}{}", self.eol).as_bytes());
        }
        for i in 0..self.fillers {
            out.extend_from_slice(format!("x-f{i}: 1{}", self.eol).as_bytes());
        }
        out.extend_from_slice(self.eol.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// Methods hyper parses (the gateway refuses `TRACE` and `CONNECT` itself).
const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

/// Path segments: the APIs, dot-segments in every spelling, escapes.
const SEGMENTS: &[&str] = &[
    "payments", "payments", "orders", "legacy", "x", "..", ".", "%2e", "%2E%2e", "%2e.", "%00",
    "%zz", "a;b", "", "x?q=1",
];

/// Most requests are well-formed but for one or two defects, so that inputs reach every stage
/// (hyper's parser, the edge checks, routing, the backend) rather than stopping at the first.
fn arb_target() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(select(SEGMENTS), 1..6).prop_map(|s| format!("/{}", s.join("/"))),
        3 => select(vec![
            "/payments/x", "/orders/1", "/payments/upload", "/orders/../legacy/x",
            "/legacy/../../admin", "/payments/%2e%2e/%2E%2e/x", "/..", "*", "/", "//payments",
            "http://api.payments.example/x", "orders.internal.contoso.com:443", "/payments/x?a=1&b",
        ]).prop_map(str::to_string),
        1 => prop_oneof![
            (1usize..9000).prop_map(|n| format!("/payments/{}", "a".repeat(n))),
            select(vec!["/payments/é", "/payments/\u{7f}", "/payments/#f", "/payments/%", "/a b"]).prop_map(str::to_string),
        ],
    ]
}

/// The `Host` fields of a request: usually one good one.
fn arb_host() -> impl Strategy<Value = Vec<(String, String)>> {
    let host = |v: &'static str| ("Host".to_string(), v.to_string());
    prop_oneof![
        12 => select(vec!["a", GATEWAY_HOST]).prop_map(move |v| vec![host(v)]),
        1 => Just(vec![]),
        1 => Just(vec![host("a"), host("b")]),
        1 => select(vec!["a/b", "", "a:99999", "[::1]:80", "a b", "é"]).prop_map(move |v| vec![host(v)]),
    ]
}

/// Other header fields: hop-by-hop and framing-adjacent ones, and malformed ones now and then.
fn arb_header() -> impl Strategy<Value = (String, String)> {
    let pair = |k: &'static str, vs: Vec<&'static str>| {
        select(vs).prop_map(move |v| (k.to_string(), v.to_string()))
    };
    prop_oneof![
        3 => pair("Connection", vec!["close", "keep-alive", "upgrade", "Upgrade, close", "te"]),
        1 => pair("Upgrade", vec!["websocket", "h2c", "HTTP/2.0"]),
        2 => pair("Expect", vec!["100-continue", "200-ok", ""]),
        1 => pair("TE", vec!["trailers", "gzip"]),
        1 => pair("Content-Length", vec!["0", "-1", "abc", "5, 5", "99999999999999999999", "+5"]),
        1 => pair("Transfer-Encoding", vec!["gzip, chunked", "chunked, chunked", "identity", "", "Chunked"]),
        3 => pair("Accept", vec!["*/*", "application/json"]),
        1 => prop_oneof![
            pair("x-obs-fold", vec!["a\r\n b", "a\n\tb"]),
            pair("bad name", vec!["1"]),
            pair("x-nul", vec!["a\u{0}b", "\u{7f}"]),
            (1usize..20_000).prop_map(|n| ("x-big".to_string(), "v".repeat(n))),
        ],
    ]
}

/// A body with its framing headers: none, `Content-Length` (right or wrong), or chunked
/// (good framings and each way they break).
fn arb_body() -> impl Strategy<Value = (Vec<(String, String)>, Vec<u8>)> {
    let cl = |n: usize| vec![("Content-Length".to_string(), n.to_string())];
    let chunked = || vec![("Transfer-Encoding".to_string(), "chunked".to_string())];
    prop_oneof![
        6 => Just((vec![], vec![])),
        3 => prop::collection::vec(any::<u8>(), 0..64).prop_map(move |b| (cl(b.len()), b)),
        3 => select(vec![
            "5\r\nhello\r\n0\r\n\r\n",
            "0\r\n\r\n",
            "5;ext=1\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n",
            "zz\r\nhello\r\n0\r\n\r\n",
            "5\r\nhelloEXTRA\r\n0\r\n\r\n",
            "5\nhello\n0\n\n",
            "a\r\nhel",
            "FFFFFFFFFFFFFFFFFFFF\r\nx\r\n",
            "-5\r\nhello\r\n0\r\n\r\n",
        ]).prop_map(move |b| (chunked(), b.as_bytes().to_vec())),
        1 => (0usize..100, prop::collection::vec(any::<u8>(), 0..64)).prop_map(move |(n, b)| (cl(n), b)),
    ]
}

fn arb_req() -> impl Strategy<Value = Req> {
    (
        prop_oneof![12 => select(METHODS), 1 => select(vec!["get", "G ET", "", "BREW"])],
        arb_target(),
        prop_oneof![12 => Just("HTTP/1.1"), 2 => Just("HTTP/1.0"), 1 => select(vec!["HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "http/1.1", ""])],
        (arb_host(), prop::collection::vec(arb_header(), 0..4)),
        prop_oneof![12 => Just(0usize), 1 => 90usize..130],
        arb_body(),
        prop_oneof![19 => Just("\r\n"), 1 => Just("\n")],
    )
        .prop_map(
            |(method, target, version, (host, others), fillers, (framing, body), eol)| Req {
                method: method.to_string(),
                target,
                version,
                headers: host.into_iter().chain(framing).chain(others).collect(),
                fillers,
                body,
                eol,
            },
        )
}

/// A byte edit of the connection's input.
#[derive(Clone, Debug)]
enum Damage {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                select(vec![
                    "\r\n",
                    "\n",
                    "\r",
                    ":",
                    " ",
                    "\u{0}",
                    "\r\n\r\n",
                    "Host: b\r\n"
                ])
                .prop_map(|s| s.as_bytes().to_vec()),
                prop::collection::vec(any::<u8>(), 1..8),
            ],
        )
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<prop::sample::Index>(), 1usize..16).prop_map(|(i, n)| Damage::Delete(i, n)),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
    ]
}

fn damage(mut bytes: Vec<u8>, edits: &[Damage]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Damage::Flip(i, b) if len > 0 => bytes[i.index(len)] = *b,
            Damage::Insert(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Damage::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Damage::Truncate(i) if len > 0 => bytes.truncate(i.index(len)),
            _ => {}
        }
    }
    bytes
}

/// One connection's input: one to four requests, damaged or not.
fn arb_case() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(arb_req(), 1..=4),
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(arb_damage(), 1..4)],
    )
        .prop_map(|(reqs, edits)| damage(reqs.iter().flat_map(Req::bytes).collect(), &edits))
}

// === the oracle ===

/// One parsed response.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header fields, names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses the bytes a connection received as HTTP/1.x responses. `complete`: the gateway
/// closed cleanly (a reset may cut the last response short, which is then tolerated).
fn parse_answers(bytes: &[u8], complete: bool) -> Result<Vec<Answer>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some(end) = find(rest, b"\r\n\r\n") else {
            return if complete {
                Err(format!(
                    "a head without its end: {:?}",
                    String::from_utf8_lossy(rest)
                ))
            } else {
                Ok(out)
            };
        };
        let head = std::str::from_utf8(&rest[..end]).map_err(|e| format!("head not UTF-8: {e}"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let ok_version =
            status_line.starts_with("HTTP/1.1 ") || status_line.starts_with("HTTP/1.0 ");
        let status: u16 = status_line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .filter(|_| ok_version && status_line.as_bytes().get(12).is_none_or(|b| *b == b' '))
            .ok_or_else(|| format!("not a status line: {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines {
            let (k, v) = line
                .split_once(':')
                .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| format!("not a header field: {line:?}"))?;
            if line.contains('\n') || line.contains('\r') {
                return Err(format!("a bare CR or LF in {line:?}"));
            }
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
        at += end + 4;
        let mut a = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        let chunked = a
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if (100..200).contains(&status) || status == 204 || status == 304 {
            // No body.
        } else if chunked {
            loop {
                let Some(line_end) = find(&bytes[at..], b"\r\n") else {
                    return if complete {
                        Err("a chunk size line cut short".into())
                    } else {
                        Ok(out)
                    };
                };
                let size_text = std::str::from_utf8(&bytes[at..at + line_end]).unwrap_or("?");
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| format!("a bad chunk size {size_text:?}"))?;
                at += line_end + 2;
                if size == 0 {
                    // Trailers, then the empty line.
                    let Some(t_end) = find(&bytes[at..], b"\r\n") else {
                        return if complete {
                            Err("the last chunk cut short".into())
                        } else {
                            Ok(out)
                        };
                    };
                    at += t_end + 2;
                    if t_end != 0 {
                        let Some(t_end) = find(&bytes[at..], b"\r\n\r\n") else {
                            return if complete {
                                Err("trailers cut short".into())
                            } else {
                                Ok(out)
                            };
                        };
                        at += t_end + 4;
                    }
                    break;
                }
                if bytes.len() < at + size + 2 {
                    return if complete {
                        Err("a chunk cut short".into())
                    } else {
                        Ok(out)
                    };
                }
                a.body.extend_from_slice(&bytes[at..at + size]);
                if &bytes[at + size..at + size + 2] != b"\r\n" {
                    return Err("chunk data longer than its size".into());
                }
                at += size + 2;
            }
        } else if let Some(len) = a.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("a bad content-length {len:?}"))?;
            if bytes.len() < at + len {
                return if complete {
                    Err("a body shorter than its content-length".into())
                } else {
                    Ok(out)
                };
            }
            a.body = bytes[at..at + len].to_vec();
            at += len;
        } else {
            // Delimited by the close.
            a.body = bytes[at..].to_vec();
            at = bytes.len();
        }
        let closes = a
            .header("connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("close"));
        out.push(a);
        if closes && at < bytes.len() {
            return Err(format!(
                "{} bytes after a `connection: close` answer",
                bytes.len() - at
            ));
        }
    }
    Ok(out)
}

/// Whether a status is one the gateway documents.
fn documented(status: u16) -> bool {
    status == 200
        || status == 100
        || BARE_REFUSALS.contains(&status)
        || ErrorCode::ALL.iter().any(|c| c.status().as_u16() == status)
}

/// hyper's own answers to heads it cannot parse (no body, no problem document): 400 for a bad
/// method, target, version or header, 414 for a target too long, 431 as the echo backend's
/// parser refuses a forwarded head of over 100 fields.
const BARE_REFUSALS: &[u16] = &[400, 414, 431];

/// Checks one answer against the gateway's contract.
fn check_answer(a: &Answer) -> Result<(), String> {
    if !documented(a.status) {
        return Err(format!("undocumented status {}", a.status));
    }
    if a.status >= 400 {
        let problem = a
            .header("content-type")
            .is_some_and(|t| t == gateway::error::PROBLEM_JSON);
        if problem {
            let doc: Value = serde_json::from_slice(&a.body)
                .map_err(|e| format!("a problem body that is not JSON: {e}"))?;
            let code = doc["code"].as_str().unwrap_or_default();
            let known = ErrorCode::ALL
                .iter()
                .find(|c| c.as_str() == code)
                .ok_or_else(|| format!("an undocumented code {code:?}"))?;
            if known.status().as_u16() != a.status {
                return Err(format!("{code} answered with {}", a.status));
            }
        } else if !(BARE_REFUSALS.contains(&a.status) && a.body.is_empty()) {
            return Err(format!("a {} without a problem document", a.status));
        }
    }
    Ok(())
}

/// Writes `input`, then reads until the gateway closes: the bytes, and whether the close was
/// clean (EOF rather than a reset).
async fn exchange(addr: SocketAddr, input: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // Write errors are fine: the gateway may answer and close before reading everything.
    let _ = tokio::time::timeout(EXCHANGE_BOUND, tcp.write_all(input)).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) => return true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return false,
            }
        }
    };
    match tokio::time::timeout(EXCHANGE_BOUND, read_all).await {
        Ok(clean) => Ok((out, clean)),
        Err(_) => Err(format!(
            "neither answered nor closed within {EXCHANGE_BOUND:?}"
        )),
    }
}

/// The whole oracle for one connection's input.
async fn check_case(addr: SocketAddr, input: &[u8]) -> Result<Vec<Answer>, String> {
    let (bytes, clean) = exchange(addr, input).await?;
    let answers = parse_answers(&bytes, clean)?;
    for a in &answers {
        check_answer(a)?;
    }
    Ok(answers)
}

/// Runs `inputs` on concurrent connections: the number of answers, or the first failure with
/// its input.
async fn check_batch(addr: SocketAddr, inputs: Vec<Vec<u8>>) -> Result<Vec<usize>, String> {
    let mut set = tokio::task::JoinSet::new();
    for (i, input) in inputs.into_iter().enumerate() {
        set.spawn(async move {
            let r = check_case(addr, &input)
                .await
                .map(|a| a.len())
                .map_err(|e| format!("{e}\ninput: {:?}", String::from_utf8_lossy(&input)));
            (i, r)
        });
    }
    let mut counts = Vec::new();
    while let Some(done) = set.join_next().await {
        let (i, r) = done.map_err(|e| format!("a client task failed: {e}"))?;
        counts.push((i, r?));
    }
    counts.sort_unstable();
    Ok(counts.into_iter().map(|(_, n)| n).collect())
}

/// Statuses counted in `vnetsim_gateway_requests_total`.
fn counted_statuses(metrics: &str) -> Vec<u16> {
    metrics
        .lines()
        .filter(|l| l.starts_with("vnetsim_gateway_requests_total{"))
        .filter_map(|l| l.split("status=\"").nth(1)?.get(..3)?.parse().ok())
        .collect()
}

fn gauge(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

// === the regression corpus ===

/// What a corpus input must get: a status and problem code where this harness pins them.
type Expected = Option<(u16, &'static str)>;

/// The hardening issue's HTTP inputs: the expected status and code where this harness pins
/// them, `None` where `edge.rs` does.
const CORPUS: &[(&str, &[u8], Expected)] = &[
    (
        "dot-segments out of one API into a path no API serves",
        b"GET /orders/../legacy/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Some((404, "NO_API")),
    ),
    (
        "dot-segments above the root",
        b"GET /legacy/../../admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Some((400, "PATH_TRAVERSAL")),
    ),
    (
        "a bad chunk size",
        b"POST /payments/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        None,
    ),
    (
        "chunk data longer than declared",
        b"POST /payments/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloEXTRA\r\n0\r\n\r\n",
        None,
    ),
    (
        "a chunked body cut short",
        b"POST /payments/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhel",
        None,
    ),
    (
        "bare LF in the chunk framing",
        b"POST /payments/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        None,
    ),
    (
        "no Host",
        b"GET /payments/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        None,
    ),
    (
        "two Host headers",
        b"GET /payments/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        None,
    ),
];

/// The corpus entry of over 100 header fields (built, not written out).
fn many_fields() -> Vec<u8> {
    Req {
        method: "GET".into(),
        target: "/payments/x".into(),
        version: "HTTP/1.1",
        headers: vec![("Host".into(), "a".into())],
        fillers: 120,
        body: Vec::new(),
        eol: "\r\n",
    }
    .bytes()
}

// === the tests ===

#[test]
fn raw_requests_get_a_well_formed_answer_or_a_close() {
    count_gateway_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(GATEWAY_THREADS)
        .enable_all()
        .build()
        .expect("a runtime");
    let gw = rt.block_on(start(&Topo::default(), opts().limits(fuzz_limits())));
    let addr = gw.addr();

    // The regression corpus first: explicit inputs, explicit expectations.
    let mut corpus: Vec<(&str, Vec<u8>, Expected)> = CORPUS
        .iter()
        .map(|(w, b, e)| (*w, b.to_vec(), *e))
        .collect();
    corpus.push(("over 100 header fields", many_fields(), None));
    let counts = rt
        .block_on(check_batch(
            addr,
            corpus.iter().map(|c| c.1.clone()).collect(),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    for ((what, input, expected), n) in corpus.iter().zip(counts) {
        // Every input of the corpus gets exactly one answer.
        assert_eq!(n, 1, "{what}");
        if let Some((status, code)) = expected {
            let answers = rt
                .block_on(check_case(addr, input))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let a = &answers[0];
            assert_eq!(a.status, *status, "{what}");
            let doc: Value = serde_json::from_slice(&a.body).expect("a problem document");
            assert_eq!(doc["code"], *code, "{what}");
        }
    }

    // Then the generated and damaged inputs.
    let mut runner = TestRunner::new(Config {
        cases: fuzz_cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let answered = std::cell::Cell::new(0usize);
    let batch = prop::collection::vec(arb_case(), BATCH);
    let result = runner.run(&batch, |inputs| {
        // The HTTP/2 preface switches protocols: its answer is not HTTP/1.
        prop_assume!(!inputs.iter().any(|i| i.starts_with(b"PRI * HTTP/2.0")));
        let counts = rt
            .block_on(check_batch(addr, inputs))
            .map_err(TestCaseError::fail)?;
        answered.set(answered.get() + counts.iter().sum::<usize>());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator reaches past the edge checks: many inputs are answered at all.
    assert!(answered.get() > 0, "no case got an answer");

    // Nothing panicked on a gateway thread, and the gateway is whole.
    assert_eq!(
        GATEWAY_PANICS.load(Ordering::SeqCst),
        0,
        "a gateway task panicked"
    );
    let ok = rt.block_on(get(&gw, "/payments/x"));
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["host"], "payments");
    rt.block_on(eventually("every client connection to close", || {
        gauge(&gw.metrics_text(), "vnetsim_gateway_client_connections") == Some(0)
    }));
    let metrics = gw.metrics_text();
    let statuses = counted_statuses(&metrics);
    assert!(!statuses.is_empty(), "{metrics}");
    for s in statuses {
        assert!(documented(s), "counted an undocumented status {s}");
    }
    rt.block_on(gw.shutdown());
}

#[test]
fn the_response_parser_tells_answers_from_garbage() {
    // The oracle's own checks: a well-formed pair of answers passes...
    let two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 17\r\nconnection: close\r\n\r\n{\"code\":\"NO_API\"}";
    let answers = parse_answers(two, true).expect("two answers");
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 404]
    );
    assert!(answers.iter().all(|a| check_answer(a).is_ok()));
    // ...and after a reset, a last answer cut short is tolerated (not after a clean close).
    let cut = &two[..two.len() - 5];
    assert_eq!(
        parse_answers(cut, false)
            .expect("a prefix of answers")
            .len(),
        1
    );
    assert!(parse_answers(cut, true).is_err());
    // ...a chunked one too...
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    assert_eq!(parse_answers(chunked, true).unwrap()[0].body, b"ok");
    // ...and each kind of damage is caught.
    for bad in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok"[..],
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"hello",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokk\r\n0\r\n\r\n",
    ] {
        assert!(
            parse_answers(bad, true).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // A 502 without its problem document, or a code answered with another status, breaks
    // the contract.
    let bare_502 = Answer {
        status: 502,
        headers: vec![],
        body: vec![],
    };
    assert!(check_answer(&bare_502).is_err());
    let wrong = Answer {
        status: 400,
        headers: vec![("content-type".into(), gateway::error::PROBLEM_JSON.into())],
        body: br#"{"code":"NO_API"}"#.to_vec(),
    };
    assert!(check_answer(&wrong).is_err());
    assert!(!documented(418));
}
