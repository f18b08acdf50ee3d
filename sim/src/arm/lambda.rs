//! Lambda functions and user-defined functions: the forms Bicep compiles `for` expressions,
//! `.?` chains and `func` declarations into. A lambda body is evaluated once per element with
//! its `lambdaVariables` bound ([`Loops::lambda`]); a user-defined function's `output.value` is
//! evaluated with its parameters bound ([`Loops::function`]), out of reach of the template's
//! parameters and variables (as ARM requires).
//!
//! Sources (Learn, "Lambda functions for ARM templates", and "User-defined functions in ARM
//! templates"): `filter`, `groupBy`, `map`, `mapValues`, `reduce`, `sort`, `toObject`; a lambda
//! may take an index as its last parameter for `filter`, `map` and `reduce`.

use std::sync::Arc;

use serde_json::Value;

use super::eval::{get_ci, Cx, Env, Loops};
use super::expr::Expr;
use super::json;
use super::value::Val;

/// A parsed `lambda('a', 'b', body)`.
struct Lambda<'e> {
    names: Vec<String>,
    body: &'e Expr,
}

fn as_lambda(e: &Expr) -> Option<Lambda<'_>> {
    let Expr::Call(n, args) = e else {
        return None;
    };
    if !n.eq_ignore_ascii_case("lambda") || args.len() < 2 {
        return None;
    }
    let (body, names) = args.split_last()?;
    let names = names
        .iter()
        .map(|a| match a {
            Expr::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Lambda { names, body })
}

// === impl Env (lambdas) ===

impl Env<'_> {
    /// Calls `lambda` with `values` bound to its parameters, in order (extra parameters, such as
    /// an unused index, are left out; missing ones are an error).
    fn apply_lambda(&self, l: &Lambda<'_>, values: &[Val], cx: &Cx<'_>, loops: &Loops) -> Val {
        if l.names.len() > values.len() {
            return self.fail(
                cx,
                format!(
                    "the lambda takes {} parameter(s); this function passes at most {}",
                    l.names.len(),
                    values.len()
                ),
            );
        }
        let mut inner = loops.clone();
        for (n, v) in l.names.iter().zip(values) {
            inner.lambda.push((n.clone(), v.clone()));
        }
        self.eval(l.body, cx, &inner)
    }

    /// `map`, `filter`, `reduce`, `sort`, `toObject`, `mapValues`, `groupBy` and
    /// `lambdaVariables`; `None` for any other function.
    pub(crate) fn lambda_call(
        &self,
        lower: &str,
        name: &str,
        args: &[Expr],
        cx: &Cx<'_>,
        loops: &Loops,
    ) -> Option<Val> {
        let want = |n: usize| -> Option<Val> {
            (args.len() != n).then(|| self.fail(cx, format!("{name}() takes {n} arguments")))
        };
        let lambda_at = |i: usize| -> Result<Lambda<'_>, Val> {
            args.get(i).and_then(as_lambda).ok_or_else(|| {
                self.fail(
                    cx,
                    format!("argument {} of {name}() must be a lambda(...)", i + 1),
                )
            })
        };
        macro_rules! tri {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(v) => return Some(v),
                }
            };
        }
        let array = |v: Val| -> Result<Vec<Val>, Val> {
            match v {
                Val::Arr(a) => Ok(a),
                p @ (Val::Unknown(_) | Val::Failed(_)) => Err(p),
                o => Err(self.fail(
                    cx,
                    format!("{name}() needs an array, got {}", o.type_name()),
                )),
            }
        };
        Some(match lower {
            "lambdavariables" => {
                if let Some(e) = want(1) {
                    return Some(e);
                }
                match self.eval(&args[0], cx, loops) {
                    Val::Str(n) => loops
                        .lambda
                        .iter()
                        .rev()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&n))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| {
                            self.fail(cx, format!("lambdaVariables('{n}') is outside its lambda"))
                        }),
                    p if p.is_pending() => p,
                    o => self.fail(
                        cx,
                        format!("lambdaVariables() needs a name, got {}", o.type_name()),
                    ),
                }
            }
            "lambda" => self.fail(
                cx,
                "lambda() can only be an argument of filter, groupBy, map, mapValues, reduce, sort or toObject",
            ),
            "map" | "filter" => {
                if let Some(e) = want(2) {
                    return Some(e);
                }
                let items = tri!(array(self.eval(&args[0], cx, loops)));
                let l = tri!(lambda_at(1));
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let r = self.apply_lambda(&l, &[item.clone(), Val::Int(i as i64)], cx, loops);
                    if lower == "map" {
                        if matches!(r, Val::Failed(_)) {
                            return Some(r);
                        }
                        out.push(r);
                        continue;
                    }
                    match r {
                        Val::Bool(true) => out.push(item),
                        Val::Bool(false) => {}
                        p @ (Val::Unknown(_) | Val::Failed(_)) => return Some(p),
                        o => {
                            return Some(self.fail(
                                cx,
                                format!("the filter() lambda must give a bool, got {}", o.type_name()),
                            ))
                        }
                    }
                }
                Val::Arr(out)
            }
            "reduce" => {
                if let Some(e) = want(3) {
                    return Some(e);
                }
                let items = tri!(array(self.eval(&args[0], cx, loops)));
                let mut acc = self.eval(&args[1], cx, loops);
                let l = tri!(lambda_at(2));
                for (i, item) in items.into_iter().enumerate() {
                    acc = self.apply_lambda(&l, &[acc, item, Val::Int(i as i64)], cx, loops);
                    if acc.is_pending() {
                        return Some(acc);
                    }
                }
                acc
            }
            "sort" => {
                if let Some(e) = want(2) {
                    return Some(e);
                }
                let items = tri!(array(self.eval(&args[0], cx, loops)));
                let l = tri!(lambda_at(1));
                tri!(self.merge_sort(items, &l, cx, loops).map(Val::Arr))
            }
            "toobject" => {
                if args.len() != 2 && args.len() != 3 {
                    return Some(self.fail(cx, "toObject() takes 2 or 3 arguments"));
                }
                let items = tri!(array(self.eval(&args[0], cx, loops)));
                let key = tri!(lambda_at(1));
                let value = if args.len() == 3 {
                    Some(tri!(lambda_at(2)))
                } else {
                    None
                };
                let mut out: Vec<(String, Val)> = Vec::new();
                for item in items {
                    let k = match self.apply_lambda(&key, std::slice::from_ref(&item), cx, loops) {
                        Val::Str(k) => k,
                        p @ (Val::Unknown(_) | Val::Failed(_)) => return Some(p),
                        o => {
                            return Some(self.fail(
                                cx,
                                format!("toObject() keys must be strings, got {}", o.type_name()),
                            ))
                        }
                    };
                    let v = match &value {
                        Some(l) => self.apply_lambda(l, &[item], cx, loops),
                        None => item,
                    };
                    // A later element with the same key replaces the earlier one.
                    out.retain(|(x, _)| !x.eq_ignore_ascii_case(&k));
                    out.push((k, v));
                }
                Val::Obj(out)
            }
            "mapvalues" => {
                if let Some(e) = want(2) {
                    return Some(e);
                }
                let o = match self.eval(&args[0], cx, loops) {
                    Val::Obj(o) => o,
                    p @ (Val::Unknown(_) | Val::Failed(_)) => return Some(p),
                    o => {
                        return Some(self.fail(
                            cx,
                            format!("mapValues() needs an object, got {}", o.type_name()),
                        ))
                    }
                };
                let l = tri!(lambda_at(1));
                Val::Obj(
                    o.into_iter()
                        .map(|(k, v)| {
                            let r = self.apply_lambda(&l, &[v], cx, loops);
                            (k, r)
                        })
                        .collect(),
                )
            }
            "groupby" => {
                if let Some(e) = want(2) {
                    return Some(e);
                }
                let items = tri!(array(self.eval(&args[0], cx, loops)));
                let l = tri!(lambda_at(1));
                let mut out: Vec<(String, Val)> = Vec::new();
                for item in items {
                    let k = match self.apply_lambda(&l, std::slice::from_ref(&item), cx, loops) {
                        Val::Str(k) => k,
                        p @ (Val::Unknown(_) | Val::Failed(_)) => return Some(p),
                        o => match o.display_text() {
                            Some(t) => t,
                            None => return Some(self.fail(cx, "groupBy() key is not a string")),
                        },
                    };
                    match out.iter_mut().find(|(x, _)| x.eq_ignore_ascii_case(&k)) {
                        Some((_, Val::Arr(a))) => a.push(item),
                        _ => out.push((k, Val::Arr(vec![item]))),
                    }
                }
                Val::Obj(out)
            }
            _ => return None,
        })
    }

    /// A stable merge sort whose order is the lambda's `less(a, b)`; never relies on the lambda
    /// being a total order (a user's lambda need not be), so it cannot panic or loop.
    fn merge_sort(
        &self,
        items: Vec<Val>,
        l: &Lambda<'_>,
        cx: &Cx<'_>,
        loops: &Loops,
    ) -> Result<Vec<Val>, Val> {
        if items.len() <= 1 {
            return Ok(items);
        }
        let mut left = items;
        let right = left.split_off(left.len() / 2);
        let left = self.merge_sort(left, l, cx, loops)?;
        let right = self.merge_sort(right, l, cx, loops)?;
        let mut out = Vec::with_capacity(left.len() + right.len());
        let (mut a, mut b) = (left.into_iter().peekable(), right.into_iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            // `y` goes first only when it is strictly less than `x` (stability).
            match self.apply_lambda(l, &[y.clone(), x.clone()], cx, loops) {
                Val::Bool(true) => out.push(b.next().expect("peeked")),
                Val::Bool(false) => out.push(a.next().expect("peeked")),
                p @ (Val::Unknown(_) | Val::Failed(_)) => return Err(p),
                o => {
                    return Err(self.fail(
                        cx,
                        format!("the sort() lambda must give a bool, got {}", o.type_name()),
                    ))
                }
            }
        }
        out.extend(a);
        out.extend(b);
        Ok(out)
    }

    /// Calls user-defined function `name` (`namespace.member`) with evaluated arguments: its
    /// `output.value` is evaluated with the parameters bound.
    pub(crate) fn user_function(&self, name: &str, args: &[Val], cx: &Cx<'_>) -> Val {
        let Some((ns, member)) = name.split_once('.') else {
            return self.fail(cx, format!("`{name}` is not namespace.member"));
        };
        let found = get_ci(self.doc, "functions")
            .and_then(Value::as_array)
            .and_then(|fs| {
                fs.iter().enumerate().find_map(|(i, f)| {
                    let n = get_ci(f, "namespace").and_then(Value::as_str)?;
                    if !n.eq_ignore_ascii_case(ns) {
                        return None;
                    }
                    let members = get_ci(f, "members")?.as_object()?;
                    let (k, def) = members
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(member))?;
                    Some((i, k.clone(), def))
                })
            });
        let Some((i, key, def)) = found else {
            return self.fail(
                cx,
                format!("user-defined function `{name}` is not declared"),
            );
        };
        let declared: Vec<String> = get_ci(def, "parameters")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| get_ci(p, "name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if declared.len() != args.len() {
            return self.fail(
                cx,
                format!(
                    "`{name}()` takes {} argument(s), got {}",
                    declared.len(),
                    args.len()
                ),
            );
        }
        let Some(value) = get_ci(def, "output").and_then(|o| get_ci(o, "value")) else {
            return self.fail(
                cx,
                format!("user-defined function `{name}` has no output value"),
            );
        };
        let pointer = json::key(
            &json::key(
                &json::key(&json::index(&self.at("/functions"), i), "members"),
                &key,
            ),
            "output",
        );
        let loops = Loops {
            function: Some(Arc::new(
                declared.into_iter().zip(args.iter().cloned()).collect(),
            )),
            ..Loops::default()
        };
        self.eval_node(value, &json::key(&pointer, "value"), &loops)
    }
}
