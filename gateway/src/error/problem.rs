//! The RFC 9457 problem document every failure is answered with.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde::Serialize;

use super::PROBLEM_JSON;

/// The policy part of a problem document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyFields {
    /// The deciding NSG, or `null` when no NSG decided (e.g. `NO_ROUTE`).
    pub nsg: Option<String>,
    /// The deciding rule.
    pub rule: Option<String>,
    /// Its priority.
    pub priority: Option<u32>,
}

/// An RFC 9457 problem document: `{"type","title","status","code","detail"}`, plus
/// `"nsg","rule","priority"` on policy outcomes and any extra members.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    /// A URI naming the problem kind.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Fixed per code.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable code.
    pub code: String,
    /// What happened this time.
    pub detail: String,
    /// The verdict's NSG, rule and priority (policy outcomes only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyFields>,
    /// Extra members (e.g. `findings` on a refused change).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

// === impl Problem ===

impl Problem {
    /// A problem with a code, status, title and detail.
    pub fn new(
        code: &str,
        status: StatusCode,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            type_uri: format!(
                "urn:vnetsim:problem:{}",
                code.to_ascii_lowercase().replace('_', "-")
            ),
            title: title.into(),
            status: status.as_u16(),
            code: code.to_string(),
            detail: detail.into(),
            policy: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Bytes {
        // Serializing plain strings and numbers cannot fail; an empty object is a safe fallback.
        Bytes::from(serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec()))
    }

    /// A response carrying this problem.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut resp = Response::new(B::from(self.to_bytes()));
        *resp.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}
