//! The NSG routes of the admin listener: reading NSGs and their rules, replacing a rule list,
//! and putting or deleting one rule. Every edit is a typed `sim::Change` that `sim` applies
//! (through [`Shared`]); this file only reads requests and picks statuses.

use std::sync::Arc;

use http::header::{HeaderValue, LOCATION};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use sim::RawRule;

use super::{
    answer, change_problem, json, method_not_allowed, not_found, off_thread, problem, read_body,
    run_change, AdminResponse,
};
use crate::error::Problem;
use crate::state::{ChangeError, NsgInfo, RulePut, Shared};

/// Serves `/admin/nsgs/...`; `rest` is the path after `nsgs`, percent-decoded per segment.
pub(super) async fn handle(
    shared: Arc<Shared>,
    path: &str,
    rest: &[String],
    req: Request<Incoming>,
) -> AdminResponse {
    let method = req.method().clone();
    match rest {
        [] => {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            json(StatusCode::OK, &NsgInfo::all(&shared.snapshot().document))
        }
        [nsg] => {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            match NsgInfo::named(&shared.snapshot().document, nsg) {
                Some(n) => json(StatusCode::OK, &n),
                None => answer(&change_problem(&ChangeError::UnknownNsg(nsg.clone()))),
            }
        }
        [nsg, list] if list == "security_rules" => rule_list(shared, nsg.clone(), req).await,
        [nsg, list, rule @ ..] if list == "security_rules" => {
            // `defaultSecurityRules/AllowVnetOutBound` spans two segments: `sim` refuses it.
            one_rule(shared, path, nsg.clone(), rule.join("/"), req).await
        }
        _ => not_found(path),
    }
}

/// `GET` / `PUT /admin/nsgs/{nsg}/security_rules`: the custom rules, or all of them replaced.
async fn rule_list(shared: Arc<Shared>, nsg: String, req: Request<Incoming>) -> AdminResponse {
    let method = req.method().clone();
    match method {
        Method::GET => match NsgInfo::named(&shared.snapshot().document, &nsg) {
            Some(n) => json(StatusCode::OK, &n.security_rules),
            None => answer(&change_problem(&ChangeError::UnknownNsg(nsg))),
        },
        Method::PUT => {
            let (_, body) = match read_body(req).await {
                Ok(b) => b,
                Err(p) => return answer(&p),
            };
            let rules: Vec<RawRule> = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return answer(&problem(
                        "BAD_REQUEST",
                        StatusCode::BAD_REQUEST,
                        "The body is not a JSON array of security rules",
                        e.to_string(),
                    ))
                }
            };
            run_change(shared, move |s| s.set_nsg_rules(&nsg, &rules)).await
        }
        _ => method_not_allowed("GET, PUT"),
    }
}

/// `GET` / `PUT` / `DELETE /admin/nsgs/{nsg}/security_rules/{rule}`.
async fn one_rule(
    shared: Arc<Shared>,
    path: &str,
    nsg: String,
    rule: String,
    req: Request<Incoming>,
) -> AdminResponse {
    let method = req.method().clone();
    match method {
        Method::GET => {
            let Some(n) = NsgInfo::named(&shared.snapshot().document, &nsg) else {
                return answer(&change_problem(&ChangeError::UnknownNsg(nsg)));
            };
            match n
                .security_rules
                .into_iter()
                .find(|r| r.name.eq_ignore_ascii_case(&rule))
            {
                Some(r) => json(StatusCode::OK, &r),
                None => answer(&change_problem(&ChangeError::UnknownRule {
                    nsg: n.name,
                    name: rule,
                })),
            }
        }
        Method::PUT => {
            let (_, body) = match read_body(req).await {
                Ok(b) => b,
                Err(p) => return answer(&p),
            };
            let raw = match rule_body(&body, &rule) {
                Ok(r) => r,
                Err(p) => return answer(&p),
            };
            match off_thread(shared, move |s| s.put_nsg_rule(&nsg, raw)).await {
                Ok((report, RulePut::Replaced)) => json(StatusCode::OK, &report),
                Ok((report, RulePut::Created)) => {
                    let mut r = json(StatusCode::CREATED, &report);
                    if let Ok(v) = HeaderValue::from_str(path) {
                        r.headers_mut().insert(LOCATION, v);
                    }
                    r
                }
                Err(r) => r,
            }
        }
        Method::DELETE => run_change(shared, move |s| s.delete_nsg_rule(&nsg, &rule)).await,
        _ => method_not_allowed("GET, PUT, DELETE"),
    }
}

/// The rule a single-rule `PUT` carries: a JSON object in the fixture's rule shape whose
/// `name`, when given, is the path's (ASCII case-insensitively); the path's spelling is used.
/// Not JSON or not an object: 400. A `name` that differs, or an object that is not a rule
/// (an unknown key, a wrong type, no priority): 422.
fn rule_body(body: &[u8], rule: &str) -> Result<RawRule, Box<Problem>> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(problem(
            "BAD_REQUEST",
            StatusCode::BAD_REQUEST,
            "The body is not a JSON object (one security rule)",
            e.to_string(),
        ))
    })?;
    let Some(obj) = v.as_object_mut() else {
        return Err(Box::new(problem(
            "BAD_REQUEST",
            StatusCode::BAD_REQUEST,
            "The body is not a JSON object (one security rule)",
            "send one rule as a JSON object in the fixture's shape",
        )));
    };
    match obj.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(n)) if n.eq_ignore_ascii_case(rule) => {}
        Some(other) => {
            return Err(Box::new(problem(
                "RULE_NAME_MISMATCH",
                StatusCode::UNPROCESSABLE_ENTITY,
                "The rule's name differs from the path's",
                format!("the path names rule `{rule}` but the body's `name` is {other}; leave `name` out or make it the path's"),
            )))
        }
    }
    obj.insert("name".into(), Value::String(rule.to_string()));
    serde_json::from_value(v).map_err(|e| {
        Box::new(change_problem(&ChangeError::InvalidRules(format!(
            "rule `{rule}`: {e}"
        ))))
    })
}

/// A path segment with its `%XX` escapes decoded (`defaultSecurityRules%2FX` is
/// `defaultSecurityRules/X`); a malformed escape stays as written.
pub(super) fn decode(segment: &str) -> String {
    let hex = |c: u8| char::from(c).to_digit(16);
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(
            decode("defaultSecurityRules%2FAllowVnetOutBound"),
            "defaultSecurityRules/AllowVnetOutBound"
        );
        assert_eq!(decode("deny%2dall"), "deny-all");
        // Malformed or cut-short escapes stay as written.
        assert_eq!(decode("a%zz"), "a%zz");
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%"), "%");
    }

    #[test]
    fn a_rule_body_takes_the_paths_name() {
        let rule = r#"{"priority":100,"direction":"Outbound","access":"Deny","protocol":"Tcp","source_address_prefix":"*","source_port_range":"*","destination_address_prefix":"*","destination_port_range":"*"}"#;
        // No name: the path's.
        assert_eq!(
            rule_body(rule.as_bytes(), "deny-all").unwrap().name,
            "deny-all"
        );
        // The same name in another case: the path's spelling.
        let named = rule.replacen('{', r#"{"name":"DENY-ALL","#, 1);
        assert_eq!(
            rule_body(named.as_bytes(), "deny-all").unwrap().name,
            "deny-all"
        );
        // Another name: 422.
        let other = rule.replacen('{', r#"{"name":"allow-all","#, 1);
        let p = rule_body(other.as_bytes(), "deny-all").unwrap_err();
        assert_eq!((p.status, p.code.as_str()), (422, "RULE_NAME_MISMATCH"));
        // Not a rule (no priority): 422; not an object or not JSON: 400.
        let p = rule_body(br#"{"access":"Deny"}"#, "x").unwrap_err();
        assert_eq!((p.status, p.code.as_str()), (422, "INVALID_RULES"));
        assert_eq!(rule_body(b"[]", "x").unwrap_err().status, 400);
        assert_eq!(rule_body(b"{", "x").unwrap_err().status, 400);
    }
}
