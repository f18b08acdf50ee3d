//! NSG resources and their security rules, in both export shapes: singular and plural fields
//! (null or empty means unused), ASG references by id, unknown values as markers, and the
//! check of an export's `defaultSecurityRules` against vnetsim's own.

use std::str::FromStr;

use super::{invalid, known_array, props_of, read, unrepresentable, Got, Mapper, NsgDef};
use crate::arm::error::{ImportError, Location};
use crate::arm::json;
use crate::arm::resource::Res;
use crate::arm::value::Val;
use crate::finding::{Finding, FindingCode};
use crate::fixture::{RawRule, RuleFile};
use crate::proto::{Access, Direction, RuleProtocol};

// === impl Mapper (NSGs) ===

impl Mapper {
    pub(super) fn nsg(&mut self, r: &Res) -> Result<NsgDef, ImportError> {
        let (p, pp) = r.props();
        let fp = json::key(&pp, "flushConnection");
        let flush_connection = match read(p.get("flushConnection"))? {
            Got::Missing => false,
            Got::Known(Val::Bool(b)) => *b,
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &fp,
                    format!("flushConnection must be a bool, got {}", o.type_name()),
                ))
            }
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("flushConnection of NSG `{}`", r.name),
                ))
            }
        };
        let mut rules = Vec::new();
        let rp = json::key(&pp, "securityRules");
        let items = known_array(p.get("securityRules"), &r.at, &rp, "securityRules", || {
            format!("the rule list of NSG `{}`", r.name)
        })?;
        for (i, item) in items.iter().enumerate() {
            rules.push(self.rule(item, &json::index(&rp, i), &r.at, &r.name, None)?);
        }
        if let Some(Val::Arr(defaults)) = p.get("defaultSecurityRules") {
            let at = Location::new(r.at.input.clone(), json::key(&pp, "defaultSecurityRules"));
            self.check_defaults(&r.name, defaults, &at);
        }
        Ok(NsgDef {
            name: r.name.clone(),
            flush_connection,
            rules,
        })
    }

    /// A security rule: inline in an NSG, or a child resource (`name` given from the resource).
    pub(crate) fn rule(
        &mut self,
        item: &Val,
        pointer: &str,
        at: &Location,
        nsg: &str,
        name: Option<&str>,
    ) -> Result<RuleFile, ImportError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => self.name(
                item.get("name"),
                at,
                &json::key(pointer, "name"),
                &format!("the name of a rule of NSG `{nsg}`"),
            )?,
        };
        let subject = format!("nsgs/{nsg}/security_rules/{name}");
        let (p, pp) = props_of(item, pointer);
        let field = |k: &str| json::key(&pp, k);
        let priority = match read(p.get("priority"))? {
            Got::Known(Val::Int(i)) => *i,
            Got::Known(Val::Str(s)) if s.trim().parse::<i64>().is_ok() => {
                s.trim().parse::<i64>().unwrap_or_default()
            }
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!(
                        "the priority of rule `{name}` (it decides which rules are examined first)"
                    ),
                ))
            }
            Got::Missing => return Err(invalid(at, &pp, format!("rule `{name}` has no priority"))),
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("priority"),
                    format!("priority must be an int, got {}", o.type_name()),
                ))
            }
        };
        let direction = match read(p.get("direction"))? {
            Got::Known(Val::Str(s)) => Direction::from_str(s)
                .map_err(|e| invalid(at, &field("direction"), e.to_string()))?,
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("the direction of rule `{name}`"),
                ))
            }
            Got::Missing => {
                return Err(invalid(at, &pp, format!("rule `{name}` has no direction")))
            }
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("direction"),
                    format!("direction must be a string, got {}", o.type_name()),
                ))
            }
        };
        // Unknown access or protocol: the rule is kept widened (Deny, `*`) and its source ports
        // become the marker, so every flow that reaches it and matches the rest is unknown.
        let mut rule_markers = Vec::new();
        let access = match read(p.get("access"))? {
            Got::Known(Val::Str(s)) => {
                Access::from_str(s).map_err(|e| invalid(at, &field("access"), e.to_string()))?
            }
            Got::Unknown(u) => match self.supplied(&format!("{subject}/access")) {
                Some(serde_json::Value::String(s)) => Access::from_str(&s)
                    .map_err(|e| invalid(at, &field("access"), format!("--set: {e}")))?,
                _ => {
                    rule_markers.push(self.mark(&u, &format!("{subject}/access")));
                    Access::Deny
                }
            },
            Got::Missing => return Err(invalid(at, &pp, format!("rule `{name}` has no access"))),
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("access"),
                    format!("access must be a string, got {}", o.type_name()),
                ))
            }
        };
        let protocol = match read(p.get("protocol"))? {
            Got::Known(Val::Str(s)) => RuleProtocol::from_str(s)
                .map_err(|e| invalid(at, &field("protocol"), e.to_string()))?,
            Got::Unknown(u) => match self.supplied(&format!("{subject}/protocol")) {
                Some(serde_json::Value::String(s)) => RuleProtocol::from_str(&s)
                    .map_err(|e| invalid(at, &field("protocol"), format!("--set: {e}")))?,
                _ => {
                    rule_markers.push(self.mark(&u, &format!("{subject}/protocol")));
                    RuleProtocol::Any
                }
            },
            Got::Missing => return Err(invalid(at, &pp, format!("rule `{name}` has no protocol"))),
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("protocol"),
                    format!("protocol must be a string, got {}", o.type_name()),
                ))
            }
        };
        let mut raw = RawRule {
            name: name.clone(),
            priority,
            direction: Some(direction),
            access: Some(access),
            protocol: Some(protocol),
            ..RawRule::default()
        };
        for side in ["source", "destination"] {
            let (one, many, asgs) = self.address_side(p, &pp, at, side, &subject)?;
            let (range, ranges) = self.port_side(p, &pp, at, side, &subject)?;
            if side == "source" {
                raw.source_address_prefix = one;
                raw.source_address_prefixes = many;
                raw.source_application_security_groups = asgs;
                raw.source_port_range = range;
                raw.source_port_ranges = ranges;
            } else {
                raw.destination_address_prefix = one;
                raw.destination_address_prefixes = many;
                raw.destination_application_security_groups = asgs;
                raw.destination_port_range = range;
                raw.destination_port_ranges = ranges;
            }
        }
        if !rule_markers.is_empty() {
            raw.source_port_range = None;
            raw.source_port_ranges = Some(rule_markers);
        }
        raw.description = match read(p.get("description"))? {
            Got::Known(Val::Str(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        RuleFile::try_from(raw).map_err(|m| invalid(at, &pp, m))
    }

    /// One side's address: `(prefix, prefixes, asgs)`, exactly one set.
    #[allow(clippy::type_complexity)]
    fn address_side(
        &mut self,
        p: &Val,
        pp: &str,
        at: &Location,
        side: &str,
        subject: &str,
    ) -> Result<(Option<String>, Option<Vec<String>>, Option<Vec<String>>), ImportError> {
        let sub = format!("{subject}/{side}");
        let k1 = format!("{side}AddressPrefix");
        let k2 = format!("{side}AddressPrefixes");
        let k3 = format!("{side}ApplicationSecurityGroups");
        let single_unknown = matches!(p.get(&k1), Some(Val::Unknown(_)));
        let plural_unknown = matches!(p.get(&k2), Some(Val::Unknown(_)));
        let asgs_unknown = matches!(p.get(&k3), Some(Val::Unknown(_)));
        let one = self.text(p.get(&k1), at, &json::key(pp, &k1), &sub, &k1)?;
        let many = self.texts(p.get(&k2), at, &json::key(pp, &k2), &sub, &k2)?;
        let asgs = self.asg_list(p.get(&k3), at, &json::key(pp, &k3), &sub)?;
        let mut markers = Vec::new();
        let mut known: Vec<(&str, Vec<String>)> = Vec::new();
        for (key, unknown, v) in [
            (&k1, single_unknown, one.map(|x| vec![x])),
            (&k2, plural_unknown, many),
            (&k3, asgs_unknown, asgs),
        ] {
            match (unknown, v) {
                (true, Some(m)) => markers.extend(m),
                (false, Some(items)) => known.push((key.as_str(), items)),
                _ => {}
            }
        }
        if known.len() > 1 {
            return Err(invalid(
                at,
                pp,
                format!(
                    "rule `{subject}` sets both {} and {}; Azure accepts one of them",
                    known[0].0, known[1].0
                ),
            ));
        }
        let is_asgs = known.first().is_some_and(|(k, _)| *k == k3.as_str());
        let is_single = known.first().is_some_and(|(k, _)| *k == k1.as_str());
        Ok(match (known.pop(), markers.is_empty()) {
            (None, true) => {
                return Err(invalid(
                    at,
                    pp,
                    format!("rule `{subject}` has no {side} address ({k1}, {k2} or {k3})"),
                ));
            }
            (Some((_, items)), true) if is_single => (items.into_iter().next(), None, None),
            (Some((_, items)), true) if is_asgs => (None, None, Some(items)),
            (Some((_, items)), true) => (None, Some(items), None),
            (Some((_, mut items)), false) if is_asgs => {
                items.extend(markers);
                (None, None, Some(items))
            }
            (Some((_, mut items)), false) => {
                items.extend(markers);
                (None, Some(items), None)
            }
            (None, false) if markers.len() == 1 && single_unknown => (markers.pop(), None, None),
            (None, false) => (None, Some(markers), None),
        })
    }

    /// One side's ports: `(range, ranges)`, exactly one set.
    fn port_side(
        &mut self,
        p: &Val,
        pp: &str,
        at: &Location,
        side: &str,
        subject: &str,
    ) -> Result<(Option<String>, Option<Vec<String>>), ImportError> {
        let sub = format!("{subject}/{side}_ports");
        let k1 = format!("{side}PortRange");
        let k2 = format!("{side}PortRanges");
        let single_unknown = matches!(p.get(&k1), Some(Val::Unknown(_)));
        let plural_unknown = matches!(p.get(&k2), Some(Val::Unknown(_)));
        let one = self.text(p.get(&k1), at, &json::key(pp, &k1), &sub, &k1)?;
        let many = self.texts(p.get(&k2), at, &json::key(pp, &k2), &sub, &k2)?;
        let mut markers = Vec::new();
        let mut known_one = None;
        let mut known_many = None;
        match (single_unknown, one) {
            (true, Some(m)) => markers.push(m),
            (false, Some(x)) => known_one = Some(x),
            _ => {}
        }
        match (plural_unknown, many) {
            (true, Some(m)) => markers.extend(m),
            (false, Some(x)) => known_many = Some(x),
            _ => {}
        }
        Ok(match (known_one, known_many, markers.is_empty()) {
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    at,
                    pp,
                    format!("rule `{subject}` sets both {k1} and {k2}; Azure accepts one of them"),
                ));
            }
            (None, None, true) => {
                return Err(invalid(
                    at,
                    pp,
                    format!("rule `{subject}` has no {side} port ({k1} or {k2})"),
                ));
            }
            (Some(x), None, true) => (Some(x), None),
            (None, Some(xs), true) => (None, Some(xs)),
            (Some(x), None, false) => (None, Some(std::iter::once(x).chain(markers).collect())),
            (None, Some(mut xs), false) => {
                xs.extend(markers);
                (None, Some(xs))
            }
            (None, None, false) if markers.len() == 1 && single_unknown => (markers.pop(), None),
            (None, None, false) => (None, Some(markers)),
        })
    }

    /// ASG references `[{ "id": ... }]` → names (markers for unknown ones).
    pub(super) fn asg_list(
        &mut self,
        v: Option<&Val>,
        at: &Location,
        pointer: &str,
        subject: &str,
    ) -> Result<Option<Vec<String>>, ImportError> {
        match read(v)? {
            Got::Missing => Ok(None),
            Got::Unknown(p) => Ok(Some(vec![self.mark(&p, subject)])),
            Got::Known(Val::Arr(a)) if a.is_empty() => Ok(None),
            Got::Known(Val::Arr(a)) => {
                let mut out = Vec::new();
                for (i, x) in a.iter().enumerate() {
                    if let Some(n) = self.reference(
                        Some(x),
                        "applicationSecurityGroups",
                        at,
                        &json::index(pointer, i),
                        subject,
                    )? {
                        if !crate::arm::is_marker(&n)
                            && !self
                                .referenced_asgs
                                .iter()
                                .any(|a| a.eq_ignore_ascii_case(&n))
                        {
                            self.referenced_asgs.push(n.clone());
                        }
                        out.push(n);
                    }
                }
                Ok((!out.is_empty()).then_some(out))
            }
            Got::Known(o) => Err(invalid(
                at,
                pointer,
                format!(
                    "application security groups must be an array, got {}",
                    o.type_name()
                ),
            )),
        }
    }

    /// Compares an export's `defaultSecurityRules` (at `at`) with the six rules vnetsim applies.
    fn check_defaults(&mut self, nsg: &str, defaults: &[Val], at: &Location) {
        let expected = crate::nsg::default_rules();
        let norm_addr = |s: &str| -> String {
            let t = s.trim();
            if t == "*" || t == "0.0.0.0/0" || t.eq_ignore_ascii_case("any") {
                "*".into()
            } else {
                t.to_ascii_lowercase()
            }
        };
        let norm_port = |s: &str| -> String {
            if s.trim() == "0-65535" {
                "*".into()
            } else {
                s.trim().to_string()
            }
        };
        let mut seen = Vec::new();
        for (i, item) in defaults.iter().enumerate() {
            let (p, _) = props_of(item, "");
            let item_at =
                Some((&Location::new(at.input.clone(), json::index(&at.pointer, i))).into());
            let name = item
                .get("name")
                .and_then(Val::as_str)
                .unwrap_or("")
                .to_string();
            let subject = format!("nsgs/{nsg}/defaultSecurityRules/{name}");
            let Some(e) = expected.iter().find(|e| e.name.eq_ignore_ascii_case(&name)) else {
                self.findings.push(Finding::new(
                    FindingCode::DefaultRulesMismatch,
                    subject,
                    format!("the export lists default rule `{name}`, which is not one of the six default rules vnetsim applies"),
                ).at(item_at));
                continue;
            };
            seen.push(e.name.clone());
            let s = |k: &str| p.get(k).and_then(Val::as_str).unwrap_or("").to_string();
            let mut diffs = Vec::new();
            if p.get("priority")
                .and_then(|v| if let Val::Int(i) = v { Some(*i) } else { None })
                != Some(i64::from(e.priority))
            {
                diffs.push(format!("priority (vnetsim: {})", e.priority));
            }
            if !s("direction").eq_ignore_ascii_case(e.direction.as_str()) {
                diffs.push(format!("direction (vnetsim: {})", e.direction));
            }
            if !s("access").eq_ignore_ascii_case(e.access.as_str()) {
                diffs.push(format!("access (vnetsim: {})", e.access));
            }
            if RuleProtocol::from_str(&s("protocol")).ok() != Some(e.protocol) {
                diffs.push(format!("protocol (vnetsim: {})", e.protocol));
            }
            for (k, spec) in [
                ("sourceAddressPrefix", &e.source),
                ("destinationAddressPrefix", &e.destination),
            ] {
                let want = norm_addr(spec.text.first().map_or("*", String::as_str));
                if norm_addr(&s(k)) != want {
                    diffs.push(format!("{k} (vnetsim: {})", spec.text.join(", ")));
                }
            }
            for k in ["sourcePortRange", "destinationPortRange"] {
                if norm_port(&s(k)) != "*" {
                    diffs.push(format!("{k} (vnetsim: *)"));
                }
            }
            if !diffs.is_empty() {
                self.findings.push(Finding::new(
                    FindingCode::DefaultRulesMismatch,
                    subject,
                    format!("the export's default rule `{name}` differs from vnetsim's in {}; vnetsim evaluates its own", diffs.join(", ")),
                ).at(item_at));
            }
        }
        for e in &expected {
            if !seen.iter().any(|s| s == &e.name) {
                self.findings.push(
                    Finding::new(
                        FindingCode::DefaultRulesMismatch,
                        format!("nsgs/{nsg}/defaultSecurityRules/{}", e.name),
                        format!(
                        "the export's defaultSecurityRules lack `{}`; vnetsim applies it anyway",
                        e.name
                    ),
                    )
                    .at(Some(at.into())),
                );
            }
        }
    }
}
