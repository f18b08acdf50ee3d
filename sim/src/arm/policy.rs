//! The backend an API's policy selects (issue 17), read before the APIs are mapped:
//! `Microsoft.ApiManagement/service/apis/policies` whose `properties.value` (format `xml` or
//! `rawxml`) has a `<set-backend-service backend-id="NAME"/>` (or `base-url="URL"`) directly
//! in `<inbound>` redirects the API to that backend: `Microsoft.ApiManagement/service/backends`
//! `NAME`'s `properties.url`. The policy "changes the backend service base URL of the incoming
//! request to a URL or backend specified in the policy"
//! (<https://learn.microsoft.com/azure/api-management/set-backend-service-policy>), so it wins
//! over the API's `serviceUrl`.
//!
//! Not statically known, so the API keeps its `serviceUrl` (the policy is listed as ignored with
//! the reason): a `set-backend-service` inside `<choose>` (conditional), a policy expression
//! (`@(…)`) as the backend, `xml-link`/`rawxml-link` formats (the policy is not in the template).
//! A policy that is not well-formed XML, or names a backend not among the inputs, is the error
//! finding `API_POLICY_INVALID` (API Management refuses to save such a policy).

use std::collections::BTreeMap;

use super::resource::{Kind, Res};
use super::value::Val;
use super::IgnoredResource;
use crate::finding::{Finding, FindingCode};

/// What the policies say, by `service/api` (lower case).
#[derive(Default)]
pub(crate) struct PolicyBackends {
    /// `service/api` → the backend URL its policy selects.
    pub urls: BTreeMap<String, String>,
    pub findings: Vec<Finding>,
    pub ignored: Vec<IgnoredResource>,
}

/// What one policy document selects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Selected {
    /// `backend-id="NAME"`.
    BackendId(String),
    /// `base-url="URL"`.
    BaseUrl(String),
    /// A `set-backend-service` the import cannot settle (why).
    Dynamic(String),
}

/// Replaces policy expressions (`@(…)`, `@{…}`) with `@expr`: in `rawxml` they are not XML
/// encoded (`condition="@(… == "x")"` is not well-formed XML as written). Brackets inside C#
/// string and character literals do not count.
fn neutralize(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 1 < b.len() {
        if b[i] == b'@' && (b[i + 1] == b'(' || b[i + 1] == b'{') {
            let (open, close) = if b[i + 1] == b'(' {
                (b'(', b')')
            } else {
                (b'{', b'}')
            };
            let mut depth = 0usize;
            let mut j = i + 1;
            let mut quote: Option<u8> = None;
            while j < b.len() {
                let c = b[j];
                match quote {
                    Some(_) if c == b'\\' => j += 1,
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == open => depth += 1,
                    None if c == close => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    None => {}
                }
                j += 1;
            }
            if j >= b.len() {
                // Unbalanced: leave it to the XML parser to report.
                break;
            }
            out.push_str(&raw[copied..i]);
            out.push_str("@expr");
            i = j + 1;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&raw[copied..]);
    out
}

/// The backend a policy document selects unconditionally in `<inbound>` (the last one wins, as
/// policies run in order); `None` when it selects none. `Err` when it is not well-formed XML.
pub(crate) fn selected(doc: &str, raw: bool) -> Result<Option<Selected>, String> {
    let text = if raw {
        neutralize(doc)
    } else {
        doc.to_string()
    };
    let parsed = roxmltree::Document::parse(&text).map_err(|e| e.to_string())?;
    let mut found = None;
    let inbound = parsed
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("inbound"));
    for section in inbound {
        for d in section.descendants() {
            if !d.has_tag_name("set-backend-service") {
                continue;
            }
            let conditional = d
                .ancestors()
                .take_while(|a| *a != section)
                .any(|a| a.has_tag_name("choose"));
            let pick = |v: &str, f: fn(String) -> Selected| {
                if v.trim_start().starts_with('@') {
                    Selected::Dynamic(format!("its set-backend-service names the backend with a policy expression (`{v}`), known only per request"))
                } else {
                    f(v.trim().to_string())
                }
            };
            let s = if conditional {
                Selected::Dynamic(
                    "its set-backend-service is inside <choose> (applies only when its condition holds)".into(),
                )
            } else if let Some(id) = d.attribute("backend-id") {
                pick(id, Selected::BackendId)
            } else if let Some(url) = d.attribute("base-url") {
                pick(url, Selected::BaseUrl)
            } else {
                return Err("set-backend-service needs base-url or backend-id".into());
            };
            // An unconditional selection wins over a conditional one seen earlier.
            if !(matches!(s, Selected::Dynamic(_))
                && matches!(found, Some(Selected::BackendId(_) | Selected::BaseUrl(_))))
            {
                found = Some(s);
            }
        }
    }
    Ok(found)
}

fn ignore(out: &mut PolicyBackends, r: &Res, reason: String) {
    out.ignored.push(r.ignored(reason));
}

fn invalid(out: &mut PolicyBackends, r: &Res, message: String) {
    out.findings.push(
        Finding::new(
            FindingCode::ApiPolicyInvalid,
            format!("{}/{}", r.ty, r.name),
            message,
        )
        .at(Some((&r.at).into())),
    );
}

/// Reads the backends and API policies among `resources`.
pub(crate) fn read(resources: &[Res]) -> PolicyBackends {
    let mut out = PolicyBackends::default();
    // `service/backend` (lower case) → URL.
    let mut backends: BTreeMap<String, String> = BTreeMap::new();
    for r in resources.iter().filter(|r| r.kind == Kind::ApimBackend) {
        match r.props().0.get("url").and_then(Val::as_str) {
            Some(u) if !u.trim().is_empty() => {
                backends.insert(r.name.to_ascii_lowercase(), u.trim().to_string());
            }
            _ => ignore(
                &mut out,
                r,
                "the backend's url is missing or known only at deployment time".into(),
            ),
        }
    }
    let mut used: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for r in resources.iter().filter(|r| r.kind == Kind::ApimApiPolicy) {
        let parts: Vec<&str> = r.name.split('/').collect();
        let [service, api, _] = parts[..] else {
            ignore(
                &mut out,
                r,
                format!("`{}` is not SERVICE/API/policy", r.name),
            );
            continue;
        };
        let p = r.props().0;
        let format = p
            .get("format")
            .and_then(Val::as_str)
            .unwrap_or("xml")
            .to_ascii_lowercase();
        let raw = match format.as_str() {
            "xml" => false,
            "rawxml" => true,
            other => {
                ignore(
                    &mut out,
                    r,
                    format!("policy format `{other}`: the policy is not in the inputs"),
                );
                continue;
            }
        };
        let Some(doc) = p.get("value").and_then(Val::as_str) else {
            ignore(
                &mut out,
                r,
                "the policy's value is missing or known only at deployment time".into(),
            );
            continue;
        };
        let key = format!("{service}/{api}").to_ascii_lowercase();
        match selected(doc, raw) {
            Err(e) => invalid(
                &mut out,
                r,
                format!("the policy of API `{api}` is not well-formed XML ({format}): {e}; the API keeps its serviceUrl"),
            ),
            Ok(None) => {}
            Ok(Some(Selected::Dynamic(why))) => ignore(
                &mut out,
                r,
                format!("{why}; the API keeps its serviceUrl"),
            ),
            Ok(Some(Selected::BaseUrl(u))) => {
                out.urls.insert(key, u);
            }
            Ok(Some(Selected::BackendId(id))) => {
                match backends.get(&format!("{service}/{id}").to_ascii_lowercase()) {
                    Some(u) => {
                        out.urls.insert(key, u.clone());
                        used.insert(format!("{service}/{id}").to_ascii_lowercase());
                    }
                    None => invalid(
                        &mut out,
                        r,
                        format!("the policy of API `{api}` selects backend `{id}`, which is not among the inputs (add its Microsoft.ApiManagement/service/backends resource)"),
                    ),
                }
            }
        }
    }
    // A backend no policy selects changes no API: say so.
    for r in resources.iter().filter(|r| r.kind == Kind::ApimBackend) {
        let name = r.name.to_ascii_lowercase();
        if backends.contains_key(&name) && !used.contains(&name) {
            ignore(
                &mut out,
                r,
                "no API policy among the inputs selects this backend (set-backend-service backend-id)"
                    .into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Learn, set-backend-service: the policy statement's `backend-id` form ("Either base-url or
    /// backend-id must be present"), in the default policy document.
    const LEARN_BACKEND_ID: &str = r#"<policies>
    <inbound>
        <set-backend-service backend-id="my-backend" />
        <base />
    </inbound>
    <backend><base /></backend>
    <outbound><base /></outbound>
    <on-error><base /></on-error>
</policies>"#;

    /// Learn, set-backend-service, "Route request based on value in query string": a base URL
    /// chosen inside `<choose>` (the page's example, not XML-encoded as `rawxml` takes it).
    const LEARN_CHOOSE: &str = r#"<policies>
    <inbound>
        <choose>
            <when condition="@(context.Request.Url.Query.GetValueOrDefault("version") == "2013-05")">
                <set-backend-service base-url="http://contoso.com/api/8.2/" />
            </when>
            <when condition="@(context.Request.Url.Query.GetValueOrDefault("version") == "2014-03")">
                <set-backend-service base-url="http://contoso.com/api/9.1/" />
            </when>
        </choose>
        <base />
    </inbound>
</policies>"#;

    #[test]
    fn backend_id_directly_in_inbound_is_selected() {
        assert_eq!(
            selected(LEARN_BACKEND_ID, false),
            Ok(Some(Selected::BackendId("my-backend".into())))
        );
        let base = LEARN_BACKEND_ID.replace(
            r#"backend-id="my-backend""#,
            r#"base-url="http://10.0.2.4/api""#,
        );
        assert_eq!(
            selected(&base, false),
            Ok(Some(Selected::BaseUrl("http://10.0.2.4/api".into())))
        );
    }

    #[test]
    fn rawxml_policy_expressions_parse_and_choose_is_conditional() {
        // Not XML-encoded: only `rawxml` reads it.
        assert!(selected(LEARN_CHOOSE, false).is_err());
        match selected(LEARN_CHOOSE, true) {
            Ok(Some(Selected::Dynamic(why))) => assert!(why.contains("choose"), "{why}"),
            other => panic!("{other:?}"),
        }
        // The same in `xml` format, encoded.
        let encoded = LEARN_CHOOSE
            .replace("\"version\"", "&quot;version&quot;")
            .replace("\"2013-05\"", "&quot;2013-05&quot;")
            .replace("\"2014-03\"", "&quot;2014-03&quot;");
        assert!(matches!(
            selected(&encoded, false),
            Ok(Some(Selected::Dynamic(_)))
        ));
        // An unconditional selection after a conditional one wins.
        let both = LEARN_CHOOSE.replace(
            "<base />\n    </inbound>",
            "<set-backend-service backend-id=\"b1\" />\n    </inbound>",
        );
        assert_eq!(
            selected(&both, true),
            Ok(Some(Selected::BackendId("b1".into())))
        );
    }

    #[test]
    fn expressions_as_backend_and_missing_attributes() {
        let expr = r#"<policies><inbound><set-backend-service backend-id="@(context.Variables.GetValueOrDefault<string>("b"))" /></inbound></policies>"#;
        assert!(matches!(
            selected(expr, true),
            Ok(Some(Selected::Dynamic(_)))
        ));
        let none = "<policies><inbound><set-backend-service /></inbound></policies>";
        assert!(selected(none, false).unwrap_err().contains("backend-id"));
        assert_eq!(
            selected("<policies><inbound><base/></inbound></policies>", false),
            Ok(None)
        );
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        for bad in [
            "",
            "<policies>",
            "<policies><inbound></policies>",
            "@(",
            "<a b=\"1\" b=\"2\"/>",
            "\u{0}",
        ] {
            assert!(selected(bad, true).is_err(), "{bad:?}");
            assert!(selected(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn neutralize_keeps_plain_text_and_balances_strings() {
        assert_eq!(neutralize("a@b (c)"), "a@b (c)");
        assert_eq!(neutralize(r#"x="@(f(")") + 1)" y"#), r#"x="@expr" y"#);
        assert_eq!(neutralize("@{ return 1; }z"), "@exprz");
        assert_eq!(neutralize("@(unbalanced"), "@(unbalanced");
    }
}
