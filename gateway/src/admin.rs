//! The admin listener (loopback only, HTTP/1.1 and HTTP/2):
//!
//! | request | token | answer |
//! |---|---|---|
//! | `GET /metrics` | no | Prometheus text |
//! | `GET /admin/flows` | yes | established flows, JSON, each with `now`: what the rules in force would decide for it as a new flow |
//! | `POST /admin/flows/flush` | yes | end the established flows (idle ones now, busy ones after their response): `{"flushed", "idle_closed"}` |
//! | `POST /admin/reload` | yes | empty body: run the owner's loader again; else the body is a fixture (TOML; JSON or YAML by `content-type`) |
//! | `GET /admin/nsgs`, `GET /admin/nsgs/{nsg}` | yes | NSGs: `{"name", "flush_connection", "security_rules"}` |
//! | `GET`/`PUT /admin/nsgs/{nsg}/security_rules` | yes | that NSG's custom rules; PUT *replaces* them all with a JSON array (the report lists `removed`) |
//! | `GET`/`PUT`/`DELETE /admin/nsgs/{nsg}/security_rules/{rule}` | yes | one rule: PUT adds (201) or replaces (200) it, the other rules stay; DELETE removes it |
//! | `GET /admin/faults` | yes | the fault rules in force: `{"seed", "rules": [...]}` |
//! | `POST /admin/faults` | yes | one fault rule (JSON, the fixture's keys): 201 added, 200 replaced (same name), 422 with `problems` when invalid |
//! | `DELETE /admin/faults/{name}`, `DELETE /admin/faults` | yes | remove one rule (404 when none has that name), or all |
//! | `GET /admin/journal` | yes | every request, oldest first: `{"entries": [...], "dropped"}` |
//!
//! Changes answer with a [`ChangeReport`]; a change with error findings answers 422 with the
//! findings and leaves the running state as it was. A missing or wrong bearer token answers
//! 401. Every error is an `application/problem+json` document. The NSG routes live in
//! `admin/rules.rs`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::debug;

use crate::error::Problem;
use crate::reload::{ReloadBody, ReloadError};
use crate::server::signalled;
use crate::state::{ChangeError, ChangeReport, Shared};

mod rules;

/// Largest admin request body: 8 MiB (a whole fixture).
pub const MAX_ADMIN_BODY: usize = 8 * 1024 * 1024;

type AdminResponse = Response<Full<Bytes>>;

/// Serves the admin API until `shutdown`.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let (tcp, _peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    debug!(cause = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = signalled(&mut shutdown) => break,
        };
        while conns.try_join_next().is_some() {}
        let shared = shared.clone();
        let token = token.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                let token = token.clone();
                async move { Ok::<_, Infallible>(handle(shared, &token, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
    conns.shutdown().await;
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> AdminResponse {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn problem(code: &str, status: StatusCode, title: &str, detail: impl Into<String>) -> Problem {
    Problem::new(code, status, title, detail)
}

fn answer(p: &Problem) -> AdminResponse {
    p.to_response::<Full<Bytes>>()
}

/// The status of a refused change (one table).
fn change_problem(e: &ChangeError) -> Problem {
    let (code, status, title) = match e {
        ChangeError::Invalid { .. } => (
            "INVALID_CHANGE",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The new topology has error findings; nothing was applied",
        ),
        ChangeError::UnknownNsg(_) => ("UNKNOWN_NSG", StatusCode::NOT_FOUND, "No such NSG"),
        ChangeError::InvalidRules(_) => (
            "INVALID_RULES",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The rules do not follow the fixture schema",
        ),
        ChangeError::UnknownRule { .. } => {
            ("UNKNOWN_RULE", StatusCode::NOT_FOUND, "No such custom rule")
        }
        ChangeError::DefaultRule { .. } => (
            "DEFAULT_RULE",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Default rules cannot be changed or deleted",
        ),
        ChangeError::Load(ReloadError::Unreadable(_)) => (
            "FIXTURE_UNREADABLE",
            StatusCode::INTERNAL_SERVER_ERROR,
            "The fixture file could not be read",
        ),
        ChangeError::Load(ReloadError::Invalid(_)) => (
            "INVALID_FIXTURE",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The fixture could not be loaded",
        ),
        ChangeError::Load(ReloadError::NoInputs(_)) => (
            "NO_FIXTURE_PATH",
            StatusCode::BAD_REQUEST,
            "No fixture file to reload",
        ),
        ChangeError::NotLoopback { .. } => (
            "UPSTREAM_NOT_LOOPBACK",
            StatusCode::UNPROCESSABLE_ENTITY,
            "A backend maps to a non-loopback socket",
        ),
        ChangeError::Backend { .. } => (
            "INVALID_BACKEND",
            StatusCode::UNPROCESSABLE_ENTITY,
            "An API backend cannot be used",
        ),
        ChangeError::Echo { .. } | ChangeError::Tls(_) => (
            "CHANGE_FAILED",
            StatusCode::INTERNAL_SERVER_ERROR,
            "The change could not be applied",
        ),
    };
    let mut p = problem(code, status, title, e.to_string());
    if !e.findings().is_empty() {
        if let Ok(v) = serde_json::to_value(e.findings()) {
            p.extra.insert("findings".into(), v);
        }
    }
    p
}

/// Constant-time comparison of the presented token.
fn authorized<B>(req: &Request<B>, token: &str) -> bool {
    let Some(v) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, presented)) = v.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let (a, b) = (presented.trim().as_bytes(), token.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

async fn read_body(req: Request<Incoming>) -> Result<(http::request::Parts, Bytes), Problem> {
    let (parts, body) = req.into_parts();
    match Limited::new(body, MAX_ADMIN_BODY).collect().await {
        Ok(c) => Ok((parts, c.to_bytes())),
        Err(e) => Err(problem(
            "BAD_REQUEST",
            StatusCode::BAD_REQUEST,
            "The request body could not be read",
            format!("{e} (limit {MAX_ADMIN_BODY} bytes)"),
        )),
    }
}

/// Runs a (CPU-bound) change off the async threads; a refusal is already the answer.
async fn off_thread<T: Send + 'static>(
    shared: Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<T, ChangeError> + Send + 'static,
) -> Result<T, AdminResponse> {
    match tokio::task::spawn_blocking(move || f(&shared)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(answer(&change_problem(&e))),
        Err(e) => Err(answer(&problem(
            "CHANGE_FAILED",
            StatusCode::INTERNAL_SERVER_ERROR,
            "The change could not be applied",
            e.to_string(),
        ))),
    }
}

/// Runs a change off the async threads: 200 with its [`ChangeReport`], or the refusal.
async fn run_change(
    shared: Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<ChangeReport, ChangeError> + Send + 'static,
) -> AdminResponse {
    match off_thread(shared, f).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(r) => r,
    }
}

async fn handle(shared: Arc<Shared>, token: &str, req: Request<Incoming>) -> AdminResponse {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    if segments == ["metrics"] {
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed("GET");
        }
        let text = shared
            .res
            .metrics
            .render(&shared.res.pool_gauges(), shared.res.flows.memory());
        let mut r = Response::new(Full::new(Bytes::from(text)));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return r;
    }
    if segments.first() != Some(&"admin") {
        return not_found(&path);
    }
    if !authorized(&req, token) {
        let mut r = answer(&problem(
            "UNAUTHORIZED",
            StatusCode::UNAUTHORIZED,
            "A valid bearer token is required",
            "send `Authorization: Bearer <token>` with the admin token printed at start",
        ));
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vnetsim-admin\""),
        );
        return r;
    }
    match segments.as_slice() {
        ["admin", "flows"] => {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            let snapshot = shared.snapshot();
            json(StatusCode::OK, &shared.res.flows.list(&snapshot.topology))
        }
        ["admin", "flows", "flush"] => {
            if method != Method::POST {
                return method_not_allowed("POST");
            }
            json(StatusCode::OK, &shared.res.flush_flows())
        }
        ["admin", "reload"] => {
            if method != Method::POST {
                return method_not_allowed("POST");
            }
            let (parts, body) = match read_body(req).await {
                Ok(b) => b,
                Err(p) => return answer(&p),
            };
            if body.iter().all(u8::is_ascii_whitespace) {
                return run_change(shared, |s| s.reload(None)).await;
            }
            let media_type = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = match String::from_utf8(body.to_vec()) {
                Ok(t) => t,
                Err(_) => {
                    return answer(&problem(
                        "BAD_REQUEST",
                        StatusCode::BAD_REQUEST,
                        "The fixture is not UTF-8",
                        "send the fixture as UTF-8 text",
                    ))
                }
            };
            let body = ReloadBody { text, media_type };
            run_change(shared, move |s| s.reload(Some(&body))).await
        }
        ["admin", "faults"] => match method {
            Method::GET => json(StatusCode::OK, &shared.res.faults.info()),
            Method::DELETE => {
                shared.res.faults.clear();
                json(StatusCode::OK, &shared.res.faults.info())
            }
            Method::POST => {
                let body = match read_body(req).await {
                    Ok((_, b)) => b,
                    Err(p) => return answer(&p),
                };
                add_fault(&shared, &body)
            }
            _ => method_not_allowed("GET, POST, DELETE"),
        },
        ["admin", "faults", name] => {
            if method != Method::DELETE {
                return method_not_allowed("DELETE");
            }
            let name = rules::decode(name);
            if shared.res.faults.remove(&name) {
                json(StatusCode::OK, &shared.res.faults.info())
            } else {
                answer(&problem(
                    "UNKNOWN_FAULT",
                    StatusCode::NOT_FOUND,
                    "No such fault rule",
                    format!("no fault rule is named `{name}` (GET /admin/faults lists them)"),
                ))
            }
        }
        ["admin", "journal"] => {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            json(StatusCode::OK, &shared.res.journal.page())
        }
        ["admin", "nsgs", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| rules::decode(s)).collect();
            rules::handle(shared, &path, &rest, req).await
        }
        _ => not_found(&path),
    }
}

/// `POST /admin/faults`: 201 added, 200 replaced, 422 when the JSON is not a fault rule or
/// the rule has problems (each with its finding code).
fn add_fault(shared: &Shared, body: &[u8]) -> AdminResponse {
    let rule: sim::FaultRule = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return answer(&problem(
                "INVALID_FAULT",
                StatusCode::UNPROCESSABLE_ENTITY,
                "The body is not a fault rule",
                format!("{e} (send one rule as JSON with the fixture's keys: name, target, kind, probability, ...)"),
            ))
        }
    };
    match shared.add_fault(&rule) {
        Ok(replaced) => {
            let status = if replaced {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            json(status, &shared.res.faults.info())
        }
        Err(e) => {
            let mut p = problem(
                "INVALID_FAULT",
                StatusCode::UNPROCESSABLE_ENTITY,
                "The fault rule is invalid; nothing was applied",
                e.to_string(),
            );
            let problems: Vec<serde_json::Value> = e
                .problems
                .iter()
                .map(|x| serde_json::json!({"code": x.code.as_str(), "message": x.message}))
                .collect();
            p.extra
                .insert("problems".into(), serde_json::Value::Array(problems));
            answer(&p)
        }
    }
}

fn not_found(path: &str) -> AdminResponse {
    answer(&problem(
        "NOT_FOUND",
        StatusCode::NOT_FOUND,
        "No such admin resource",
        format!("`{path}` is not an admin resource (see /admin/flows, /admin/flows/flush, /admin/reload, /admin/nsgs, /admin/nsgs/{{nsg}}, /admin/nsgs/{{nsg}}/security_rules, /admin/nsgs/{{nsg}}/security_rules/{{rule}}, /admin/faults, /admin/faults/{{name}}, /admin/journal, /metrics)"),
    ))
}

fn method_not_allowed(allow: &'static str) -> AdminResponse {
    let mut r = answer(&problem(
        "METHOD_NOT_ALLOWED",
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        format!("allowed: {allow}"),
    ));
    r.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri("/admin/flows");
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn bearer_token_checks() {
        assert!(authorized(&req(Some("Bearer s3cret")), "s3cret"));
        assert!(authorized(&req(Some("bearer s3cret")), "s3cret"));
        assert!(!authorized(&req(Some("Bearer s3cre")), "s3cret"));
        assert!(!authorized(&req(Some("Bearer s3cretX")), "s3cret"));
        assert!(!authorized(&req(Some("Basic s3cret")), "s3cret"));
        assert!(!authorized(&req(None), "s3cret"));
    }
}
