//! The rest of the ARM template functions Bicep's compiled output uses (issue 17): array,
//! object, string, numeric, comparison, CIDR and deployment functions. Each follows its Learn
//! reference page ("ARM template functions - arrays | objects | string | numeric | comparison |
//! CIDR | deployment | resource"); the unit tests are those pages' documented examples.

use super::eval::{cidr_host, parse_cidr, unique_string, Env};
use super::value::{equal, Val};

/// Functions of this module that look at unknown members themselves (the others need every
/// argument known).
pub(crate) const LENIENT: &[&str] = &[
    "tryget",
    "items",
    "objectkeys",
    "shallowmerge",
    "flatten",
    "take",
    "skip",
    "first",
    "array",
    "null",
    "true",
    "false",
    "tryindexfromend",
    "indexfromend",
    "intersection",
];

/// `lower` applied to evaluated arguments; `None` when the name is not one of this module's.
pub(crate) fn apply(
    env: &Env<'_>,
    lower: &str,
    name: &str,
    args: &[Val],
    pointer: &str,
    text: &str,
) -> Option<Val> {
    let fail = |m: String| env.fail_at(pointer, text, m);
    let arity = |min: usize, max: usize| -> Option<Val> {
        (args.len() < min || args.len() > max).then(|| {
            fail(format!(
                "{name}() takes {min} to {max} argument(s), got {}",
                args.len()
            ))
        })
    };
    macro_rules! check {
        ($min:expr, $max:expr) => {
            if let Some(e) = arity($min, $max) {
                return Some(e);
            }
        };
    }
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(m) => return Some(fail(m)),
            }
        };
    }
    let s = |i: usize| -> Result<&str, String> {
        args[i].as_str().ok_or_else(|| {
            format!(
                "argument {} of {name}() must be a string, got {}",
                i + 1,
                args[i].type_name()
            )
        })
    };
    let n = |i: usize| -> Result<i64, String> {
        match &args[i] {
            Val::Int(v) => Ok(*v),
            o => Err(format!(
                "argument {} of {name}() must be an int, got {}",
                i + 1,
                o.type_name()
            )),
        }
    };
    // Lenient functions: a pending container stops them, a pending member does not.
    if LENIENT.contains(&lower) {
        if let Some(p) = args.first().filter(|a| a.is_pending()) {
            return Some(p.clone());
        }
    }
    Some(match lower {
        "null" => {
            check!(0, 0);
            Val::Null
        }
        "true" | "false" => {
            check!(0, 0);
            Val::Bool(lower == "true")
        }
        "tryget" => {
            check!(2, 64);
            let mut cur = args[0].clone();
            for k in &args[1..] {
                if k.is_pending() {
                    return Some(k.clone());
                }
                cur = match (&cur, k) {
                    (Val::Null, _) => return Some(Val::Null),
                    (Val::Obj(_), Val::Str(key)) => cur.get(key).cloned().unwrap_or(Val::Null),
                    (Val::Arr(a), Val::Int(i)) => usize::try_from(*i)
                        .ok()
                        .and_then(|i| a.get(i))
                        .cloned()
                        .unwrap_or(Val::Null),
                    (p, _) if p.is_pending() => return Some(p.clone()),
                    (o, k) => {
                        return Some(fail(format!(
                            "tryGet() cannot look up {} in {}",
                            k.type_name(),
                            o.type_name()
                        )))
                    }
                };
            }
            cur
        }
        "array" => {
            check!(1, 1);
            match &args[0] {
                Val::Arr(_) => args[0].clone(),
                // Learn: array(object) gives an array of that object.
                v => Val::Arr(vec![v.clone()]),
            }
        }
        "bool" => {
            check!(1, 1);
            match &args[0] {
                Val::Bool(b) => Val::Bool(*b),
                Val::Int(i) => Val::Bool(*i != 0),
                Val::Str(x) if x.eq_ignore_ascii_case("true") => Val::Bool(true),
                Val::Str(x) if x.eq_ignore_ascii_case("false") => Val::Bool(false),
                o => return Some(fail(format!("bool() cannot convert {}", o.type_name()))),
            }
        }
        "int" => {
            check!(1, 1);
            match &args[0] {
                Val::Int(i) => Val::Int(*i),
                Val::Str(x) => tri!(x
                    .trim()
                    .parse::<i64>()
                    .map(Val::Int)
                    .map_err(|_| format!("int(): `{x}` is not an integer"))),
                o => return Some(fail(format!("int() cannot convert {}", o.type_name()))),
            }
        }
        "string" => {
            check!(1, 1);
            match args[0].display_text() {
                Some(t) => Val::Str(t),
                None => args[0].first_pending().cloned().unwrap_or(Val::Null),
            }
        }
        "first" => {
            check!(1, 1);
            match &args[0] {
                Val::Arr(a) => a.first().cloned().unwrap_or(Val::Null),
                Val::Str(x) => Val::Str(x.chars().next().map(String::from).unwrap_or_default()),
                o => {
                    return Some(fail(format!(
                        "first() needs an array or string, got {}",
                        o.type_name()
                    )))
                }
            }
        }
        "take" | "skip" => {
            check!(2, 2);
            let k = tri!(n(1)).max(0);
            let k = usize::try_from(k).unwrap_or(usize::MAX);
            match &args[0] {
                Val::Arr(a) => {
                    let k = k.min(a.len());
                    Val::Arr(if lower == "take" {
                        a[..k].to_vec()
                    } else {
                        a[k..].to_vec()
                    })
                }
                Val::Str(x) => {
                    let chars: Vec<char> = x.chars().collect();
                    let k = k.min(chars.len());
                    Val::Str(if lower == "take" {
                        chars[..k].iter().collect()
                    } else {
                        chars[k..].iter().collect()
                    })
                }
                o => {
                    return Some(fail(format!(
                        "{name}() needs an array or string, got {}",
                        o.type_name()
                    )))
                }
            }
        }
        "indexof" | "lastindexof" => {
            check!(2, 2);
            let last = lower == "lastindexof";
            match (&args[0], &args[1]) {
                (Val::Str(h), Val::Str(needle)) => {
                    // Learn: the string search is case-insensitive.
                    let (h, needle) = (h.to_lowercase(), needle.to_lowercase());
                    let found = if last {
                        h.rfind(&needle)
                    } else {
                        h.find(&needle)
                    };
                    Val::Int(found.map_or(-1, |b| h[..b].chars().count() as i64))
                }
                (Val::Arr(a), item) => {
                    let mut idx: Box<dyn Iterator<Item = (usize, &Val)>> = if last {
                        Box::new(a.iter().enumerate().rev())
                    } else {
                        Box::new(a.iter().enumerate())
                    };
                    match idx.find_map(|(i, x)| match equal(x, item) {
                        Some(true) => Some(Some(i)),
                        Some(false) => None,
                        None => Some(None),
                    }) {
                        Some(Some(i)) => Val::Int(i as i64),
                        Some(None) => return Some(pending(&[args[0].clone(), args[1].clone()])),
                        None => Val::Int(-1),
                    }
                }
                (o, _) => {
                    return Some(fail(format!(
                        "{name}() needs a string or array, got {}",
                        o.type_name()
                    )))
                }
            }
        }
        "join" => {
            check!(2, 2);
            let delim = tri!(s(1));
            let Val::Arr(a) = &args[0] else {
                return Some(fail(format!(
                    "join() needs an array, got {}",
                    args[0].type_name()
                )));
            };
            let mut parts = Vec::with_capacity(a.len());
            for x in a {
                match x {
                    Val::Str(t) => parts.push(t.clone()),
                    Val::Int(_) | Val::Bool(_) => parts.push(x.display_text().unwrap_or_default()),
                    p if p.is_pending() => return Some(p.clone()),
                    o => return Some(fail(format!("join() needs strings, got {}", o.type_name()))),
                }
            }
            let bytes: usize = parts.iter().map(String::len).sum::<usize>() + delim.len() * a.len();
            if let Some(stop) = env.check_size(bytes, pointer, "the result of join()") {
                return Some(stop);
            }
            Val::Str(parts.join(delim))
        }
        "replace" => {
            check!(3, 3);
            let (x, old, new) = (tri!(s(0)), tri!(s(1)), tri!(s(2)));
            if old.is_empty() {
                return Some(fail("replace(): the string to replace is empty".into()));
            }
            let grows = new.len().saturating_sub(old.len()) * x.matches(old).count();
            if let Some(stop) = env.check_size(x.len() + grows, pointer, "the result of replace()")
            {
                return Some(stop);
            }
            Val::Str(x.replace(old, new))
        }
        "substring" => {
            check!(1, 3);
            let x: Vec<char> = tri!(s(0)).chars().collect();
            let start = if args.len() > 1 { tri!(n(1)) } else { 0 };
            let len = if args.len() > 2 {
                tri!(n(2))
            } else {
                x.len() as i64 - start
            };
            if start < 0 || len < 0 || start + len > x.len() as i64 {
                return Some(fail(format!(
                    "substring(): start {start} and length {len} lie outside the string (length {})",
                    x.len()
                )));
            }
            Val::Str(x[start as usize..(start + len) as usize].iter().collect())
        }
        "startswith" | "endswith" => {
            check!(2, 2);
            let (x, y) = (tri!(s(0)).to_lowercase(), tri!(s(1)).to_lowercase());
            Val::Bool(if lower == "startswith" {
                x.starts_with(&y)
            } else {
                x.ends_with(&y)
            })
        }
        "trim" => {
            check!(1, 1);
            Val::Str(tri!(s(0)).trim().to_string())
        }
        "padleft" => {
            check!(2, 3);
            let x = match &args[0] {
                Val::Int(_) | Val::Str(_) => args[0].display_text().unwrap_or_default(),
                o => {
                    return Some(fail(format!(
                        "padLeft() needs a string or int, got {}",
                        o.type_name()
                    )))
                }
            };
            let total = usize::try_from(tri!(n(1))).unwrap_or(0).min(16 * 1024);
            let pad = if args.len() > 2 {
                tri!(s(2)).chars().next().unwrap_or(' ')
            } else {
                ' '
            };
            let have = x.chars().count();
            let mut out: String = std::iter::repeat_n(pad, total.saturating_sub(have)).collect();
            out.push_str(&x);
            Val::Str(out)
        }
        "range" => {
            check!(2, 2);
            let (start, count) = (tri!(n(0)), tri!(n(1)));
            // Learn: count is at most 10000; start + count at most 2147483647.
            if !(0..=10_000).contains(&count) || start.saturating_add(count) > 2_147_483_647 {
                return Some(fail(format!(
                    "range({start}, {count}): the count must lie in 0..=10000 and start + count ≤ 2147483647"
                )));
            }
            Val::Arr((start..start + count).map(Val::Int).collect())
        }
        "objectkeys" => {
            check!(1, 1);
            match &args[0] {
                Val::Obj(o) => Val::Arr(o.iter().map(|(k, _)| Val::Str(k.clone())).collect()),
                o => {
                    return Some(fail(format!(
                        "objectKeys() needs an object, got {}",
                        o.type_name()
                    )))
                }
            }
        }
        "items" => {
            check!(1, 1);
            match &args[0] {
                Val::Obj(o) => {
                    // Learn: items() returns the entries sorted by key.
                    let mut entries: Vec<&(String, Val)> = o.iter().collect();
                    entries.sort_by_key(|a| a.0.to_lowercase());
                    Val::Arr(
                        entries
                            .into_iter()
                            .map(|(k, v)| {
                                Val::Obj(vec![
                                    ("key".into(), Val::Str(k.clone())),
                                    ("value".into(), v.clone()),
                                ])
                            })
                            .collect(),
                    )
                }
                o => {
                    return Some(fail(format!(
                        "items() needs an object, got {}",
                        o.type_name()
                    )))
                }
            }
        }
        "shallowmerge" => {
            check!(1, 1);
            let Val::Arr(objs) = &args[0] else {
                return Some(fail(format!(
                    "shallowMerge() needs an array of objects, got {}",
                    args[0].type_name()
                )));
            };
            let mut out: Vec<(String, Val)> = Vec::new();
            for o in objs {
                match o {
                    Val::Obj(entries) => {
                        for (k, v) in entries {
                            match out.iter_mut().find(|(x, _)| x.eq_ignore_ascii_case(k)) {
                                Some((_, old)) => *old = v.clone(),
                                None => out.push((k.clone(), v.clone())),
                            }
                        }
                    }
                    Val::Null => {}
                    p if p.is_pending() => return Some(p.clone()),
                    o => {
                        return Some(fail(format!(
                            "shallowMerge() needs objects, got {}",
                            o.type_name()
                        )))
                    }
                }
            }
            Val::Obj(out)
        }
        "flatten" => {
            check!(1, 1);
            let Val::Arr(outer) = &args[0] else {
                return Some(fail(format!(
                    "flatten() needs an array of arrays, got {}",
                    args[0].type_name()
                )));
            };
            let mut out = Vec::new();
            for a in outer {
                match a {
                    Val::Arr(x) => out.extend(x.iter().cloned()),
                    p if p.is_pending() => return Some(p.clone()),
                    o => {
                        return Some(fail(format!(
                            "flatten() needs arrays, got {}",
                            o.type_name()
                        )))
                    }
                }
            }
            Val::Arr(out)
        }
        "intersection" => {
            if args.len() < 2 {
                return Some(fail("intersection() takes at least 2 arguments".into()));
            }
            if let Some(p) = args.iter().find(|a| a.is_pending()) {
                return Some(p.clone());
            }
            match &args[0] {
                Val::Arr(first) => {
                    let mut out: Vec<Val> = Vec::new();
                    for x in first {
                        let everywhere = args[1..].iter().all(|o| match o {
                            Val::Arr(a) => a.iter().any(|y| equal(x, y) == Some(true)),
                            _ => false,
                        });
                        if everywhere && !out.iter().any(|y| equal(x, y) == Some(true)) {
                            out.push(x.clone());
                        }
                    }
                    Val::Arr(out)
                }
                Val::Obj(first) => Val::Obj(
                    first
                        .iter()
                        .filter(|(k, v)| {
                            args[1..]
                                .iter()
                                .all(|o| o.get(k).is_some_and(|w| equal(v, w) == Some(true)))
                        })
                        .cloned()
                        .collect(),
                ),
                o => {
                    return Some(fail(format!(
                        "intersection() needs arrays or objects, got {}",
                        o.type_name()
                    )))
                }
            }
        }
        "tryindexfromend" | "indexfromend" => {
            check!(2, 2);
            let i = tri!(n(1));
            let Val::Arr(a) = &args[0] else {
                return Some(fail(format!(
                    "{name}() needs an array, got {}",
                    args[0].type_name()
                )));
            };
            let got = usize::try_from(i)
                .ok()
                .filter(|i| *i >= 1)
                .and_then(|i| a.len().checked_sub(i))
                .and_then(|j| a.get(j))
                .cloned();
            match (got, lower) {
                (Some(v), _) => v,
                (None, "tryindexfromend") => Val::Null,
                (None, _) => {
                    return Some(fail(format!(
                        "indexFromEnd(): {i} is out of range (length {})",
                        a.len()
                    )))
                }
            }
        }
        "add" | "sub" | "mul" | "div" | "mod" => {
            check!(2, 2);
            let (a, b) = (tri!(n(0)), tri!(n(1)));
            let r = match lower {
                "add" => a.checked_add(b),
                "sub" => a.checked_sub(b),
                "mul" => a.checked_mul(b),
                "div" => a.checked_div(b),
                _ => a.checked_rem(b),
            };
            tri!(r
                .map(Val::Int)
                .ok_or_else(|| format!("{name}({a}, {b}) overflows or divides by zero")))
        }
        "min" | "max" => {
            let ints: Vec<i64> = match args {
                [Val::Arr(a)] => a
                    .iter()
                    .map(|x| match x {
                        Val::Int(i) => Ok(*i),
                        o => Err(o.type_name()),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|t| format!("{name}() needs ints, got {t}")),
                _ => args
                    .iter()
                    .map(|x| match x {
                        Val::Int(i) => Ok(*i),
                        o => Err(o.type_name()),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|t| format!("{name}() needs ints, got {t}")),
            }
            .unwrap_or_else(|_| Vec::new());
            let r = if lower == "min" {
                ints.iter().min()
            } else {
                ints.iter().max()
            };
            tri!(r
                .copied()
                .map(Val::Int)
                .ok_or_else(|| format!("{name}() needs at least one int")))
        }
        "greater" | "greaterorequals" | "less" | "lessorequals" => {
            check!(2, 2);
            let ord = match (&args[0], &args[1]) {
                (Val::Int(a), Val::Int(b)) => a.cmp(b),
                (Val::Str(a), Val::Str(b)) => a.cmp(b),
                (a, b) => {
                    return Some(fail(format!(
                        "{name}() compares two ints or two strings, got {} and {}",
                        a.type_name(),
                        b.type_name()
                    )))
                }
            };
            use std::cmp::Ordering::*;
            Val::Bool(match lower {
                "greater" => ord == Greater,
                "greaterorequals" => ord != Less,
                "less" => ord == Less,
                _ => ord != Greater,
            })
        }
        "guid" | "newguid" => {
            let mut parts: Vec<String> = Vec::new();
            if lower == "newguid" {
                check!(0, 0);
                // Deterministic: the same template gives the same value on every import.
                parts.push(format!("newGuid:{pointer}"));
            } else {
                check!(1, 64);
                for i in 0..args.len() {
                    parts.push(tri!(s(i)).to_string());
                }
            }
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            Val::Str(guid(&refs))
        }
        "parsecidr" => {
            check!(1, 1);
            tri!(parse_cidr(tri!(s(0))))
        }
        "cidrhost" => {
            check!(2, 2);
            Val::Str(tri!(cidr_host(tri!(s(0)), tri!(n(1)))))
        }
        "environment" => {
            check!(0, 0);
            environment()
        }
        "deployment" => {
            check!(0, 0);
            let name = env.deployment_name();
            Val::Obj(vec![
                ("name".into(), Val::Str(name)),
                (
                    "properties".into(),
                    Val::Obj(vec![
                        ("templateHash".into(), Val::Str(unique_string(&[env.input]))),
                        // Present only when the template is deployed from a URI (Learn).
                        (
                            "templateLink".into(),
                            env.unknown_at(
                                pointer,
                                text,
                                "deployment().properties.templateLink exists only when the template is deployed from a URI",
                            ),
                        ),
                        ("parameters".into(), Val::Obj(Vec::new())),
                        ("mode".into(), Val::Str("Incremental".into())),
                        ("provisioningState".into(), Val::Str("Accepted".into())),
                    ]),
                ),
            ])
        }
        _ => return None,
    })
}

fn pending(vals: &[Val]) -> Val {
    vals.iter()
        .find_map(Val::first_pending)
        .cloned()
        .unwrap_or(Val::Null)
}

/// A deterministic GUID from the arguments (two MurmurHash64A halves, version and variant bits
/// set as a name-based UUID). Like [`unique_string`], stable across imports but not guaranteed
/// to equal Azure's own `guid()` value.
pub(crate) fn guid(parts: &[&str]) -> String {
    let a = unique_string(parts);
    let b = unique_string(&[&a, "guid"]);
    let hex = |s: &str| -> u64 {
        s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
            (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let (hi, lo) = (hex(&a), hex(&b));
    let hi = (hi & !0xF000) | 0x5000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// `environment()` for the public cloud, as Learn's example output shows it (static: vnetsim
/// models Azure public cloud only). Its `suffixes` build the privatelink zone names AVM uses.
pub(crate) fn environment() -> Val {
    let j = serde_json::json!({
        "name": "AzureCloud",
        "gallery": "https://gallery.azure.com/",
        "graph": "https://graph.windows.net/",
        "portal": "https://portal.azure.com",
        "graphAudience": "https://graph.windows.net/",
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "batch": "https://batch.core.windows.net/",
        "media": "https://rest.media.azure.net",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
        "resourceManager": "https://management.azure.com/",
        "authentication": {
            "loginEndpoint": "https://login.microsoftonline.com/",
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD"
        },
        "suffixes": {
            "acrLoginServer": ".azurecr.io",
            "azureDatalakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "azureDatalakeStoreFileSystem": "azuredatalakestore.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net",
            "keyvaultDns": ".vault.azure.net",
            "sqlServerHostname": ".database.windows.net",
            "storage": "core.windows.net"
        }
    });
    Val::from_json(&j)
}

#[cfg(test)]
mod tests;
