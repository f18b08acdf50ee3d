//! The strict ARM functions (all arguments evaluated first): their argument checks and results.
//! `if`, `and`, `or` and `coalesce` are lazy, and `parameters` and `variables` are references;
//! they live in [`super::eval`].

use super::eval::{cidr_subnet, unique_string, Env, Loops};
use super::limits::Limit;
use super::value::{equal, Val, VAL_BYTES};

/// Applies function `lower` (lower-cased; `name` as written) to evaluated arguments.
pub(crate) fn apply(
    env: &Env<'_>,
    lower: &str,
    name: &str,
    args: &[Val],
    pointer: &str,
    text: &str,
    loops: &Loops,
) -> Val {
    let fail = |m: String| env.fail_at(pointer, text, m);
    let arity = |min: usize, max: usize| -> Option<Val> {
        (args.len() < min || args.len() > max).then(|| {
            fail(if min == max {
                format!("{name}() takes {min} argument(s), got {}", args.len())
            } else {
                format!(
                    "{name}() takes {min} to {max} arguments, got {}",
                    args.len()
                )
            })
        })
    };
    // Functions that look inside arrays and objects handle unknown members themselves; the
    // rest need every argument known.
    let lenient = matches!(
        lower,
        "createarray"
            | "createobject"
            | "concat"
            | "union"
            | "length"
            | "empty"
            | "last"
            | "contains"
    );
    let lenient = lenient || super::builtins::LENIENT.contains(&lower);
    if !lenient {
        if let Some(p) = args.iter().find(|a| a.is_pending()) {
            return p.clone();
        }
    }
    // Functions whose result holds (or repeats the text of) their arguments: refused before the
    // result is built when it would be over the value limit, so it is never allocated (a
    // template doubling a string through variables would otherwise reach gigabytes).
    if matches!(
        lower,
        "concat"
            | "union"
            | "createarray"
            | "createobject"
            | "resourceid"
            | "subscriptionresourceid"
            | "extensionresourceid"
            | "uniquestring"
            | "tolower"
            | "toupper"
    ) {
        let what = format!("the result of {name}()");
        if let Some(stop) = env.check_size(args_bytes(args), pointer, &what) {
            return stop;
        }
    }
    let s = |i: usize| -> Result<&str, Val> {
        match &args[i] {
            Val::Str(s) => Ok(s),
            p if p.is_pending() => Err(p.clone()),
            o => Err(fail(format!(
                "argument {} of {name}() must be a string, got {}",
                i + 1,
                o.type_name()
            ))),
        }
    };
    let n = |i: usize| -> Result<i64, Val> {
        match &args[i] {
            Val::Int(v) => Ok(*v),
            p if p.is_pending() => Err(p.clone()),
            o => Err(fail(format!(
                "argument {} of {name}() must be an int, got {}",
                i + 1,
                o.type_name()
            ))),
        }
    };
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(v) => return v,
            }
        };
    }
    match lower {
        "concat" => {
            if args.is_empty() {
                return fail("concat() takes at least 1 argument".into());
            }
            if args.iter().all(|a| matches!(a, Val::Arr(_))) {
                let mut out = Vec::new();
                for a in args {
                    if let Val::Arr(x) = a {
                        out.extend(x.iter().cloned());
                    }
                }
                return Val::Arr(out);
            }
            if let Some(p) = args.iter().find(|a| a.is_pending()) {
                return p.clone();
            }
            if args.iter().any(|a| matches!(a, Val::Arr(_))) {
                return fail("concat() takes all arrays or all strings".into());
            }
            let mut out = String::new();
            for a in args {
                match a.display_text() {
                    Some(t) => out.push_str(&t),
                    None => return a.first_pending().cloned().unwrap_or(Val::Null),
                }
            }
            Val::Str(out)
        }
        "format" => {
            if args.is_empty() {
                return fail("format() takes a format string".into());
            }
            format(env, tri!(s(0)), &args[1..], pointer, text)
        }
        "tolower" | "toupper" => {
            if let Some(e) = arity(1, 1) {
                return e;
            }
            let v = tri!(s(0));
            Val::Str(if lower == "tolower" {
                v.to_lowercase()
            } else {
                v.to_uppercase()
            })
        }
        "resourceid" | "subscriptionresourceid" => {
            let mut parts = Vec::with_capacity(args.len());
            for i in 0..args.len() {
                parts.push(tri!(s(i)).to_string());
            }
            match resource_id(env, &parts, lower == "subscriptionresourceid") {
                Ok(id) => Val::Str(id),
                Err(m) => fail(m),
            }
        }
        "extensionresourceid" => {
            let mut parts = Vec::with_capacity(args.len());
            for i in 0..args.len() {
                parts.push(tri!(s(i)).to_string());
            }
            match extension_resource_id(&parts) {
                Ok(id) => Val::Str(id),
                Err(m) => fail(m),
            }
        }
        "resourcegroup" => {
            if let Some(e) = arity(0, 0) {
                return e;
            }
            let sc = env.scope;
            env.used_defaults
                .set(env.used_defaults.get() || sc.defaulted);
            obj(vec![
                (
                    "id",
                    Val::Str(format!(
                        "/subscriptions/{}/resourceGroups/{}",
                        sc.subscription_id, sc.resource_group
                    )),
                ),
                ("name", Val::Str(sc.resource_group.clone())),
                (
                    "type",
                    Val::Str("Microsoft.Resources/resourceGroups".into()),
                ),
                ("location", Val::Str(sc.location.clone())),
                ("tags", Val::Obj(Vec::new())),
                (
                    "properties",
                    obj(vec![("provisioningState", Val::Str("Succeeded".into()))]),
                ),
            ])
        }
        "subscription" => {
            if let Some(e) = arity(0, 0) {
                return e;
            }
            let sc = env.scope;
            env.used_defaults
                .set(env.used_defaults.get() || sc.defaulted);
            let tenant = env.unknown_at(
                pointer,
                text,
                "the tenant id is known only at deployment time",
            );
            let display = env.unknown_at(
                pointer,
                text,
                "the subscription's display name is known only at deployment time",
            );
            obj(vec![
                (
                    "id",
                    Val::Str(format!("/subscriptions/{}", sc.subscription_id)),
                ),
                ("subscriptionId", Val::Str(sc.subscription_id.clone())),
                ("tenantId", tenant),
                ("displayName", display),
            ])
        }
        "uniquestring" => {
            if args.is_empty() {
                return fail("uniqueString() takes at least 1 argument".into());
            }
            let mut parts = Vec::new();
            for i in 0..args.len() {
                parts.push(tri!(s(i)));
            }
            Val::Str(unique_string(&parts))
        }
        "equals" => {
            if let Some(e) = arity(2, 2) {
                return e;
            }
            match equal(&args[0], &args[1]) {
                Some(b) => Val::Bool(b),
                None => pending_of(&args[..2]),
            }
        }
        "not" => {
            if let Some(e) = arity(1, 1) {
                return e;
            }
            match &args[0] {
                Val::Bool(b) => Val::Bool(!b),
                o => fail(format!("not() needs a bool, got {}", o.type_name())),
            }
        }
        "empty" => {
            if let Some(e) = arity(1, 1) {
                return e;
            }
            match &args[0] {
                Val::Null => Val::Bool(true),
                Val::Str(x) => Val::Bool(x.is_empty()),
                Val::Arr(x) => Val::Bool(x.is_empty()),
                Val::Obj(x) => Val::Bool(x.is_empty()),
                p @ (Val::Unknown(_) | Val::Failed(_)) => p.clone(),
                o => fail(format!(
                    "empty() needs a string, array or object, got {}",
                    o.type_name()
                )),
            }
        }
        "length" => {
            if let Some(e) = arity(1, 1) {
                return e;
            }
            match &args[0] {
                Val::Str(x) => Val::Int(x.chars().count() as i64),
                Val::Arr(x) => Val::Int(x.len() as i64),
                Val::Obj(x) => Val::Int(x.len() as i64),
                p @ (Val::Unknown(_) | Val::Failed(_)) => p.clone(),
                o => fail(format!(
                    "length() needs a string, array or object, got {}",
                    o.type_name()
                )),
            }
        }
        "json" => {
            if let Some(e) = arity(1, 1) {
                return e;
            }
            match serde_json::from_str::<serde_json::Value>(tri!(s(0))) {
                Ok(v) => Val::from_json(&v),
                Err(e) => fail(format!("json(): {e}")),
            }
        }
        "split" => {
            if let Some(e) = arity(2, 2) {
                return e;
            }
            let input = tri!(s(0));
            let delims: Vec<String> = match &args[1] {
                Val::Str(d) => vec![d.clone()],
                Val::Arr(ds) if ds.iter().all(|d| matches!(d, Val::Str(_))) => ds
                    .iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect(),
                o => {
                    return fail(format!(
                        "split() needs a string or array of strings as delimiter, got {}",
                        o.type_name()
                    ))
                }
            };
            match split(input, &delims, Limit::ValueSize.maximum()) {
                Ok(parts) => Val::Arr(parts.into_iter().map(Val::Str).collect()),
                Err(bytes) => env
                    .check_size(bytes, pointer, "the result of split()")
                    .unwrap_or(Val::Null),
            }
        }
        "last" => {
            if let Some(e) = arity(1, 1) {
                return e;
            }
            match &args[0] {
                Val::Arr(x) => x.last().cloned().unwrap_or(Val::Null),
                Val::Str(x) => Val::Str(x.chars().last().map(String::from).unwrap_or_default()),
                p @ (Val::Unknown(_) | Val::Failed(_)) => p.clone(),
                o => fail(format!(
                    "last() needs an array or string, got {}",
                    o.type_name()
                )),
            }
        }
        "contains" => {
            if let Some(e) = arity(2, 2) {
                return e;
            }
            contains(env, &args[0], &args[1], pointer, text)
        }
        "union" => {
            if args.len() < 2 {
                return fail("union() takes at least 2 arguments".into());
            }
            if let Some(p) = args.iter().find(|a| a.is_pending()) {
                return p.clone();
            }
            if args.iter().all(|a| matches!(a, Val::Obj(_))) {
                let mut acc = Val::Obj(Vec::new());
                for a in args {
                    acc = merge(acc, a);
                }
                acc
            } else if args.iter().all(|a| matches!(a, Val::Arr(_))) {
                let mut out: Vec<Val> = Vec::new();
                for a in args {
                    if let Val::Arr(x) = a {
                        for item in x {
                            // Each item is compared with every kept one: the comparisons count
                            // as evaluated bytes, so a union of huge arrays stays bounded.
                            if let Some(stop) = env.spend(out.len() * VAL_BYTES, pointer) {
                                return stop;
                            }
                            if !out.iter().any(|o| equal(o, item) == Some(true)) {
                                out.push(item.clone());
                            }
                        }
                    }
                }
                Val::Arr(out)
            } else {
                fail("union() takes all objects or all arrays".into())
            }
        }
        "createarray" => Val::Arr(args.to_vec()),
        "createobject" => {
            if !args.len().is_multiple_of(2) {
                return fail("createObject() takes key/value pairs".into());
            }
            let mut out = Vec::new();
            for pair in args.chunks(2) {
                match &pair[0] {
                    Val::Str(k) => out.push((k.clone(), pair[1].clone())),
                    p if p.is_pending() => return p.clone(),
                    o => {
                        return fail(format!(
                            "createObject() keys must be strings, got {}",
                            o.type_name()
                        ))
                    }
                }
            }
            Val::Obj(out)
        }
        "cidrsubnet" => {
            if let Some(e) = arity(3, 3) {
                return e;
            }
            match cidr_subnet(tri!(s(0)), tri!(n(1)), tri!(n(2))) {
                Ok(c) => Val::Str(c),
                Err(m) => fail(format!("cidrSubnet(): {m}")),
            }
        }
        "copyindex" => {
            if let Some(e) = arity(0, 2) {
                return e;
            }
            let (loop_name, offset) = match args {
                [] => (None, 0),
                [Val::Int(o)] => (None, *o),
                [Val::Str(l)] => (Some(l.as_str()), 0),
                [Val::Str(l), Val::Int(o)] => (Some(l.as_str()), *o),
                _ => {
                    return fail(
                        "copyIndex() takes an optional loop name and an optional int offset".into(),
                    )
                }
            };
            match env.copy_index(loops, loop_name) {
                Some(i) => i
                    .checked_add(offset)
                    .map_or_else(|| fail("copyIndex() offset overflows".into()), Val::Int),
                None => fail(match loop_name {
                    Some(l) => format!("copyIndex('{l}') is used outside the copy loop `{l}`"),
                    None => "copyIndex() is used outside a resource copy loop".into(),
                }),
            }
        }
        _ => super::builtins::apply(env, lower, name, args, pointer, text)
            .unwrap_or_else(|| fail(format!("`{name}()` has no implementation"))),
    }
}

fn obj(pairs: Vec<(&str, Val)>) -> Val {
    Val::Obj(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// The first unknown or failed value among `vals` (deep).
fn pending_of(vals: &[Val]) -> Val {
    vals.iter()
        .find_map(Val::first_pending)
        .cloned()
        .unwrap_or(Val::Null)
}

/// `resourceId([subscriptionId], [resourceGroupName], type, name1, name2, ...)` and
/// `subscriptionResourceId([subscriptionId], type, name1, ...)`. The type is the first argument
/// containing `/`; a trailing `/` on it is tolerated.
fn resource_id(
    env: &Env<'_>,
    parts: &[String],
    subscription_level: bool,
) -> Result<String, String> {
    let what = if subscription_level {
        "subscriptionResourceId"
    } else {
        "resourceId"
    };
    let Some(t) = parts.iter().position(|p| p.contains('/')) else {
        return Err(format!(
            "{what}() needs a resource type such as 'Microsoft.Network/virtualNetworks'"
        ));
    };
    let sc = env.scope;
    let (sub, rg) = match (subscription_level, t) {
        (false, 0) => (sc.subscription_id.clone(), Some(sc.resource_group.clone())),
        (false, 1) => (sc.subscription_id.clone(), Some(parts[0].clone())),
        (false, 2) => (parts[0].clone(), Some(parts[1].clone())),
        (true, 0) => (sc.subscription_id.clone(), None),
        (true, 1) => (parts[0].clone(), None),
        _ => {
            return Err(format!(
                "{what}() takes at most {} scope arguments before the type",
                if subscription_level { 1 } else { 2 }
            ))
        }
    };
    if t == 0 || (!subscription_level && t == 1) {
        env.used_defaults
            .set(env.used_defaults.get() || sc.defaulted);
    }
    let ty = parts[t].trim().trim_end_matches('/');
    let segs: Vec<&str> = ty.split('/').collect();
    if segs.len() < 2 || segs.iter().any(|s| s.is_empty()) {
        return Err(format!("`{}` is not a resource type", parts[t]));
    }
    let names: Vec<&str> = parts[t + 1..].iter().flat_map(|n| n.split('/')).collect();
    if names.len() != segs.len() - 1 {
        return Err(format!(
            "resource type `{ty}` needs {} name segment(s), got {}",
            segs.len() - 1,
            names.len()
        ));
    }
    let mut id = format!("/subscriptions/{sub}");
    if let Some(rg) = rg {
        id.push_str(&format!("/resourceGroups/{rg}"));
    }
    id.push_str(&format!("/providers/{}", segs[0]));
    for (s, n) in segs[1..].iter().zip(names) {
        id.push_str(&format!("/{s}/{n}"));
    }
    Ok(id)
}

/// `extensionResourceId(resourceId, resourceType, resourceName1, …)`: `{resourceId}/providers/
/// {namespace}/{type}/{name}…` (Learn, "Resource functions for ARM templates",
/// extensionResourceId; Bicep emits it for a module deployed to another resource group:
/// `extensionResourceId(format('/subscriptions/{0}/resourceGroups/{1}', …),
/// 'Microsoft.Resources/deployments', NAME)`).
fn extension_resource_id(parts: &[String]) -> Result<String, String> {
    let [scope, ty, names @ ..] = parts else {
        return Err("extensionResourceId() takes a resource id, a type and names".into());
    };
    let ty = ty.trim().trim_end_matches('/');
    let segs: Vec<&str> = ty.split('/').collect();
    if segs.len() < 2 || segs.iter().any(|s| s.is_empty()) {
        return Err(format!("`{ty}` is not a resource type"));
    }
    let names: Vec<&str> = names.iter().flat_map(|n| n.split('/')).collect();
    if names.len() != segs.len() - 1 {
        return Err(format!(
            "resource type `{ty}` needs {} name segment(s), got {}",
            segs.len() - 1,
            names.len()
        ));
    }
    let mut id = format!("{}/providers/{}", scope.trim_end_matches('/'), segs[0]);
    for (s, n) in segs[1..].iter().zip(names) {
        id.push_str(&format!("/{s}/{n}"));
    }
    Ok(id)
}

/// Widest padding `format()` produces (keeps a hostile `{0,999999999}` from allocating).
const MAX_WIDTH: usize = 1024;

/// Approximate bytes of `args` together, counted up to just past [`Limit::ValueSize`].
fn args_bytes(args: &[Val]) -> usize {
    let max = Limit::ValueSize.maximum();
    let mut total = 0usize;
    for a in args {
        let left = max.saturating_sub(total);
        total += a
            .measure(left, Limit::ValueDepth.maximum() + 1)
            .unwrap_or(left + 1);
        if total > max {
            break;
        }
    }
    total
}

/// .NET composite formatting: `{n}`, `{n,align}`, `{n:Dk}`, `{{` and `}}`.
fn format(env: &Env<'_>, fmt: &str, args: &[Val], pointer: &str, text: &str) -> Val {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        // A format string can repeat an argument many times (`{0}{0}{0}...`).
        if let Some(stop) = env.check_size(out.len(), pointer, "the result of format()") {
            return stop;
        }
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut spec = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(x) => spec.push(x),
                        None => {
                            return env.fail_at(
                                pointer,
                                text,
                                format!("format string `{fmt}` has an unclosed `{{`"),
                            )
                        }
                    }
                }
                let (head, fmt_spec) = match spec.split_once(':') {
                    Some((h, f)) => (h, Some(f)),
                    None => (spec.as_str(), None),
                };
                let (idx, align) = match head.split_once(',') {
                    Some((i, a)) => (i, a.trim().parse::<i64>().ok()),
                    None => (head, None),
                };
                let Some(arg) = idx.trim().parse::<usize>().ok().and_then(|i| args.get(i)) else {
                    return env.fail_at(
                        pointer,
                        text,
                        format!("format item `{{{spec}}}` has no matching argument"),
                    );
                };
                let piece = match (fmt_spec, arg) {
                    (None, a) => match a.display_text() {
                        Some(t) => t,
                        None => return a.first_pending().cloned().unwrap_or(Val::Null),
                    },
                    (Some(f), Val::Int(v)) if f.starts_with(['D', 'd']) => {
                        let width: usize = f[1..].parse::<usize>().unwrap_or(0).min(MAX_WIDTH);
                        let digits = format!("{:0width$}", v.unsigned_abs());
                        if *v < 0 {
                            format!("-{digits}")
                        } else {
                            digits
                        }
                    }
                    (Some(f), _) => {
                        return env.unknown_at(
                            pointer,
                            text,
                            format!("format specifier `{f}` is not evaluated by vnetsim"),
                        )
                    }
                };
                let width = align.map_or(0, |w| {
                    usize::try_from(w.unsigned_abs()).map_or(MAX_WIDTH, |w| w.min(MAX_WIDTH))
                });
                match align {
                    Some(w) if w > 0 => out.push_str(&format!("{piece:>width$}")),
                    Some(w) if w < 0 => out.push_str(&format!("{piece:<width$}")),
                    _ => out.push_str(&piece),
                }
            }
            '}' => {
                return env.fail_at(
                    pointer,
                    text,
                    format!("format string `{fmt}` has an unmatched `}}`"),
                )
            }
            c => out.push(c),
        }
    }
    Val::Str(out)
}

/// `input` split at every delimiter; `Err(bytes)` as soon as the pieces would take more than
/// `max` bytes (each piece costs a value's inline size, so `split(s, '')`-like inputs of many
/// one-character delimiters are bounded too).
fn split(input: &str, delims: &[String], max: usize) -> Result<Vec<String>, usize> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    let b = input.as_bytes();
    'outer: while i < b.len() {
        for d in delims.iter().filter(|d| !d.is_empty()) {
            if input[i..].starts_with(d.as_str()) {
                let bytes = (out.len() + 1) * VAL_BYTES + i;
                if bytes > max {
                    return Err(bytes);
                }
                out.push(std::mem::take(&mut cur));
                i += d.len();
                continue 'outer;
            }
        }
        let ch = input[i..].chars().next().expect("i is a char boundary");
        cur.push(ch);
        i += ch.len_utf8();
    }
    out.push(cur);
    Ok(out)
}

fn contains(env: &Env<'_>, container: &Val, item: &Val, pointer: &str, text: &str) -> Val {
    match container {
        p @ (Val::Unknown(_) | Val::Failed(_)) => p.clone(),
        Val::Str(s) => match item.display_text() {
            Some(t) if !matches!(item, Val::Arr(_) | Val::Obj(_)) => Val::Bool(s.contains(&t)),
            _ if item.is_pending() => item.clone(),
            _ => env.fail_at(
                pointer,
                text,
                "contains() on a string needs a string to look for",
            ),
        },
        Val::Arr(a) => {
            let mut pending = None;
            for x in a {
                match equal(x, item) {
                    Some(true) => return Val::Bool(true),
                    Some(false) => {}
                    None => {
                        pending.get_or_insert_with(|| pending_of(&[x.clone(), item.clone()]));
                    }
                }
            }
            pending.unwrap_or(Val::Bool(false))
        }
        Val::Obj(_) => match item {
            Val::Str(k) => Val::Bool(container.get(k).is_some()),
            p if p.is_pending() => p.clone(),
            o => env.fail_at(
                pointer,
                text,
                format!(
                    "contains() on an object needs a string key, got {}",
                    o.type_name()
                ),
            ),
        },
        o => env.fail_at(
            pointer,
            text,
            format!(
                "contains() needs a string, array or object, got {}",
                o.type_name()
            ),
        ),
    }
}

/// `union` of two objects: later keys win; nested objects merge.
fn merge(acc: Val, next: &Val) -> Val {
    let (Val::Obj(mut a), Val::Obj(b)) = (acc, next) else {
        return next.clone();
    };
    for (k, v) in b {
        match a.iter_mut().find(|(ak, _)| ak.eq_ignore_ascii_case(k)) {
            Some((_, old)) if matches!((&*old, v), (Val::Obj(_), Val::Obj(_))) => {
                let prev = std::mem::replace(old, Val::Null);
                *old = merge(prev, v);
            }
            Some((_, old)) => *old = v.clone(),
            None => a.push((k.clone(), v.clone())),
        }
    }
    Val::Obj(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_dotnet() {
        let m = usize::MAX;
        assert_eq!(
            split("a/b//c", &["/".into()], m).unwrap(),
            vec!["a", "b", "", "c"]
        );
        assert_eq!(
            split("a-b_c", &["-".into(), "_".into()], m).unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(split("", &[",".into()], m).unwrap(), vec![""]);
        // Many pieces cost their inline size: refused once over the cap.
        assert!(split(&",".repeat(1000), &[",".into()], 100 * VAL_BYTES).is_err());
    }

    #[test]
    fn merge_is_recursive_and_last_wins() {
        let a = Val::from_json(&serde_json::json!({"x": {"a": 1, "b": 2}, "y": 1}));
        let b = Val::from_json(&serde_json::json!({"X": {"b": 3}, "z": 4}));
        let m = merge(a, &b);
        assert_eq!(
            m.to_json(),
            serde_json::json!({"x": {"a": 1, "b": 3}, "y": 1, "z": 4})
        );
    }
}
