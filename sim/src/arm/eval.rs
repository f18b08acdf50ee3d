//! The expression evaluator: one template's parameters and variables (resolved lazily, with cycle
//! detection), copy-loop indices, and the functions in the list. Other ARM functions and
//! deployment-time values give *unknown* values; evaluation errors give *failed* values that
//! only stop the import if the importer reads them.
//!
//! Evaluation is bounded ([`super::limits`]): nesting depth, the size and depth of every value,
//! and the bytes evaluated in all. The first limit exceeded is kept ([`Env::limit_error`]) and
//! every later evaluation returns it at once, so the import fails with it even where a failed
//! value would otherwise go unread.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value;

use super::error::{ImportError, Location};
use super::expr::{self, classify_string, Expr, FnClass, Template};
use super::json;
use super::limits::Limit;
use super::params::{self, Provided};
use super::value::{Pending, Val, ENTRY_BYTES, VAL_BYTES};

/// The deployment scope: what `resourceGroup()` and `subscription()` return.
#[derive(Clone, Debug)]
pub(crate) struct DeployScope {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    /// Whether any of the three is a stand-in (no option given).
    pub defaulted: bool,
}

/// Copy-loop indices in effect.
#[derive(Clone, Debug, Default)]
pub(crate) struct Loops {
    /// The resource's own loop: `(copy name, index)`.
    pub resource: Option<(String, i64)>,
    /// Property and variable loops, innermost last.
    pub named: Vec<(String, i64)>,
    /// `lambdaVariables(name)` in effect, innermost last.
    pub lambda: Vec<(String, Val)>,
    /// Inside a user-defined function: its parameters (`parameters(name)` reads these, and
    /// the template's own parameters and variables are out of reach).
    pub function: Option<Arc<Vec<(String, Val)>>>,
}

impl Loops {
    fn with_named(&self, name: &str, i: i64) -> Loops {
        let mut l = self.clone();
        l.named.push((name.to_string(), i));
        l
    }
}

/// One template's evaluation environment.
pub(crate) struct Env<'a> {
    pub input: &'a str,
    pub doc: &'a Value,
    pub scope: &'a DeployScope,
    pub provided: &'a Provided,
    /// Declared parameters, by lower-cased name → (name as declared, declaration).
    decls: BTreeMap<String, (String, &'a Value)>,
    /// Resolved parameters; `None` while being resolved (cycle detection).
    param_cache: RefCell<BTreeMap<String, Option<Val>>>,
    var_cache: RefCell<BTreeMap<String, Option<Val>>>,
    /// Lower-cased `namespace.member` of user-defined functions.
    user_fns: BTreeSet<String>,
    /// Set when `resourceGroup()`/`subscription()`/`resourceId()` used a stand-in scope value.
    pub used_defaults: Cell<bool>,
    /// Set when a parameter passed as null took its default (`ASSUMPTION_NULL_MODULE_PARAMETER`).
    pub null_defaults: Cell<bool>,
    /// Lower-cased names of provided parameters this template declares.
    pub used_params: RefCell<BTreeSet<String>>,
    /// Evaluation nesting now ([`Limit::EvaluationDepth`]).
    depth: Cell<usize>,
    /// Approximate bytes of values evaluated so far ([`Limit::EvaluatedTotal`]).
    spent: Cell<usize>,
    /// The first limit exceeded; once set, every evaluation returns it.
    tripped: RefCell<Option<Arc<ImportError>>>,
    /// What `deployment().name` gives: the nested deployment's name, or for the top-level
    /// template its file name without extension — the name `az deployment group create`
    /// gives a deployment when `--name` is not passed (Learn, az deployment group create).
    deployment: String,
    /// RFC 6901 pointer of this template inside its input: empty for a top-level template,
    /// `/resources/…/properties/template` for a nested deployment's inline template.
    pub base: String,
    /// Which deployment instance this environment evaluates: the input's name for a top-level
    /// template, the nested deployment instance's key ([`Env::instance_key`]) for a nested one.
    pub(crate) instance: String,
    /// Outputs of nested deployment instances evaluated so far, by instance key, shared by
    /// every environment of one template tree so each instance is evaluated once; `None` while
    /// one is being evaluated (cycle detection). See module `nested::outputs`.
    pub(crate) outputs: Rc<RefCell<BTreeMap<String, Option<Val>>>>,
    /// This template's deployments by name (evaluated once, on the first `reference()` by
    /// name or id); `Some(None)` while being built.
    pub(crate) deployments: RefCell<super::nested::outputs::Index<'a>>,
}

/// Where the expression being evaluated is.
pub(crate) struct Cx<'c> {
    pub pointer: &'c str,
    pub text: &'c str,
}

// === impl Env ===

impl<'a> Env<'a> {
    pub fn new(
        input: &'a str,
        doc: &'a Value,
        scope: &'a DeployScope,
        provided: &'a Provided,
    ) -> Env<'a> {
        let mut decls = BTreeMap::new();
        if let Some(ps) = get_ci(doc, "parameters").and_then(Value::as_object) {
            for (k, v) in ps {
                decls.insert(k.to_ascii_lowercase(), (k.clone(), v));
            }
        }
        let mut user_fns = BTreeSet::new();
        if let Some(fs) = get_ci(doc, "functions").and_then(Value::as_array) {
            for ns in fs {
                let Some(n) = get_ci(ns, "namespace").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(members) = get_ci(ns, "members").and_then(Value::as_object) {
                    for m in members.keys() {
                        user_fns.insert(format!("{n}.{m}").to_ascii_lowercase());
                    }
                }
            }
        }
        Env {
            input,
            doc,
            scope,
            provided,
            decls,
            param_cache: RefCell::new(BTreeMap::new()),
            var_cache: RefCell::new(BTreeMap::new()),
            user_fns,
            used_defaults: Cell::new(false),
            null_defaults: Cell::new(false),
            used_params: RefCell::new(BTreeSet::new()),
            depth: Cell::new(0),
            spent: Cell::new(0),
            tripped: RefCell::new(None),
            deployment: input
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(input)
                .trim_end_matches(".json")
                .to_string(),
            base: String::new(),
            instance: input.to_string(),
            outputs: Rc::default(),
            deployments: RefCell::default(),
        }
    }

    /// Sets where this template sits inside its input (a nested deployment's template).
    pub fn with_base(mut self, base: String) -> Self {
        self.base = base;
        self
    }

    /// A nested template's environment continues its parent's evaluation budget and depth, so
    /// nesting cannot multiply the bounds ([`Limit::EvaluatedTotal`], [`Limit::EvaluationDepth`]).
    pub fn continue_from(mut self, parent: &Env<'_>) -> Self {
        self.spent.set(parent.spent.get());
        self.depth.set(parent.depth.get() + 1);
        self.outputs = parent.outputs.clone();
        self
    }

    /// Sets which deployment instance this environment evaluates ([`Env::instance_key`]).
    pub fn with_instance(mut self, key: String) -> Self {
        self.instance = key;
        self
    }

    /// The key of the instance of the deployment at `pointer` (this template's resource) that
    /// `loops` selects: unique in the template tree.
    pub(crate) fn instance_key(&self, pointer: &str, loops: &Loops) -> String {
        match &loops.resource {
            Some((_, i)) => format!("{}|{pointer}[{i}]", self.instance),
            None => format!("{}|{pointer}", self.instance),
        }
    }

    /// Hands the budget a nested environment spent back to its parent.
    pub fn absorb(&self, nested: &Env<'_>) {
        self.spent.set(nested.spent.get());
        if let Some(e) = nested.tripped.borrow().clone() {
            self.tripped.borrow_mut().get_or_insert(e);
        }
    }

    /// `pointer` (relative to this template) as a pointer into the input.
    pub fn at(&self, pointer: &str) -> String {
        format!("{}{pointer}", self.base)
    }

    /// Sets what `deployment().name` gives (a nested deployment's name).
    pub fn with_deployment_name(mut self, name: String) -> Self {
        self.deployment = name;
        self
    }

    /// `deployment().name`.
    pub fn deployment_name(&self) -> String {
        self.deployment.clone()
    }

    /// The first limit evaluation exceeded, if any.
    pub fn limit_error(&self) -> Option<ImportError> {
        self.tripped.borrow().as_deref().cloned()
    }

    /// The kept limit error as a failed value, when one was exceeded.
    fn stopped(&self) -> Option<Val> {
        self.tripped.borrow().clone().map(Val::Failed)
    }

    /// Records that `limit` was exceeded at `pointer` (the first excess is kept) and returns it
    /// as a failed value.
    pub(crate) fn exceed(&self, pointer: &str, limit: Limit, found: impl Into<String>) -> Val {
        if let Some(v) = self.stopped() {
            return v;
        }
        let e = Arc::new(ImportError::LimitExceeded {
            at: Location::new(self.input, pointer),
            limit,
            found: found.into(),
        });
        *self.tripped.borrow_mut() = Some(e.clone());
        Val::Failed(e)
    }

    /// Counts `bytes` more evaluated bytes; the limit error once the total is over.
    pub(crate) fn spend(&self, bytes: usize, pointer: &str) -> Option<Val> {
        let total = self.spent.get().saturating_add(bytes);
        self.spent.set(total);
        (total > Limit::EvaluatedTotal.maximum()).then(|| {
            self.exceed(
                pointer,
                Limit::EvaluatedTotal,
                format!("evaluating the template produced more than {total} bytes of values"),
            )
        })
    }

    /// `v` when it is within [`Limit::ValueSize`] and [`Limit::ValueDepth`] and the total
    /// stays within [`Limit::EvaluatedTotal`]; else the limit error.
    pub(crate) fn charge(&self, v: Val, pointer: &str) -> Val {
        if let Some(stop) = self.stopped() {
            return stop;
        }
        match v.measure(Limit::ValueSize.maximum(), Limit::ValueDepth.maximum()) {
            Ok(bytes) => self.spend(bytes, pointer).unwrap_or(v),
            Err(limit) => self.exceed(
                pointer,
                limit,
                format!("a value ({}) grows past the limit", v.type_name()),
            ),
        }
    }

    /// The limit error when values of `bytes` in all would be over [`Limit::ValueSize`]:
    /// checked before a function builds its result from its arguments, so the result is
    /// never allocated.
    pub(crate) fn check_size(&self, bytes: usize, pointer: &str, what: &str) -> Option<Val> {
        (bytes > Limit::ValueSize.maximum()).then(|| {
            self.exceed(
                pointer,
                Limit::ValueSize,
                format!("{what} would take about {bytes} bytes"),
            )
        })
    }

    /// Whether `name` (lower-cased `namespace.member`) is a user-defined function.
    pub fn is_user_function(&self, name: &str) -> bool {
        self.user_fns.contains(&name.to_ascii_lowercase())
    }

    /// Declared parameter names, as declared.
    pub fn parameter_names(&self) -> Vec<String> {
        self.decls.values().map(|(n, _)| n.clone()).collect()
    }

    pub(crate) fn fail(&self, cx: &Cx<'_>, message: impl Into<String>) -> Val {
        Val::Failed(Arc::new(ImportError::Expression {
            at: Location::new(self.input, cx.pointer),
            expression: cx.text.to_string(),
            message: message.into(),
        }))
    }

    pub(crate) fn unknown(&self, cx: &Cx<'_>, reason: impl Into<String>) -> Val {
        Val::Unknown(Arc::new(Pending {
            input: self.input.to_string(),
            pointer: cx.pointer.to_string(),
            expression: cx.text.to_string(),
            reason: reason.into(),
        }))
    }

    /// Evaluates a JSON value of the template at `pointer`: strings that are expressions are
    /// evaluated, and `copy` arrays in objects expand into properties.
    pub fn eval_node(&self, v: &Value, pointer: &str, loops: &Loops) -> Val {
        if let Some(stop) = self.stopped() {
            return stop;
        }
        if !matches!(v, Value::Array(_) | Value::Object(_)) {
            return self.eval_leaf(v, pointer, loops);
        }
        // Arrays and objects nest evaluation like expressions do (a variable's object can hold
        // an expression that references the next variable).
        let depth = self.depth.get() + 1;
        if depth > Limit::EvaluationDepth.maximum() {
            return self.too_deep(pointer, depth);
        }
        self.depth.set(depth);
        let v = self.eval_container(v, pointer, loops);
        self.depth.set(depth - 1);
        v
    }

    fn too_deep(&self, pointer: &str, depth: usize) -> Val {
        self.exceed(
            pointer,
            Limit::EvaluationDepth,
            format!(
                "evaluation nests more than {} levels deep (JSON, expressions, and \
                 variables()/parameters() references within each other)",
                depth - 1
            ),
        )
    }

    fn eval_leaf(&self, v: &Value, pointer: &str, loops: &Loops) -> Val {
        match v {
            Value::String(s) => self.eval_string(s, pointer, loops),
            other => Val::from_json(other),
        }
    }

    fn eval_container(&self, v: &Value, pointer: &str, loops: &Loops) -> Val {
        match v {
            Value::String(s) => self.eval_string(s, pointer, loops),
            Value::Array(a) => {
                if let Some(stop) = self.spend(VAL_BYTES * a.len(), pointer) {
                    return stop;
                }
                Val::Arr(
                    a.iter()
                        .enumerate()
                        .map(|(i, x)| self.eval_node(x, &json::index(pointer, i), loops))
                        .collect(),
                )
            }
            Value::Object(o) => {
                if let Some(stop) = self.spend(ENTRY_BYTES * o.len(), pointer) {
                    return stop;
                }
                let mut out = Vec::with_capacity(o.len());
                for (k, x) in o {
                    let p = json::key(pointer, k);
                    match x {
                        Value::Array(specs) if k.eq_ignore_ascii_case("copy") => {
                            for (j, spec) in specs.iter().enumerate() {
                                let sp = json::index(&p, j);
                                let (name, val) = self.property_copy(spec, &sp, loops);
                                out.push((name, val));
                            }
                        }
                        _ => out.push((k.clone(), self.eval_node(x, &p, loops))),
                    }
                }
                Val::Obj(out)
            }
            other => Val::from_json(other),
        }
    }

    /// A property (or variable) loop `{name, count, input}`: the property `name` holding the
    /// array of `input` evaluated for each index.
    fn property_copy(&self, spec: &Value, pointer: &str, loops: &Loops) -> (String, Val) {
        let cx = Cx {
            pointer,
            text: "copy",
        };
        let name = match get_ci(spec, "name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                return (
                    String::new(),
                    self.fail(&cx, "a copy element needs a `name`"),
                )
            }
        };
        let count_ptr = json::key(pointer, "count");
        let count = match get_ci(spec, "count") {
            Some(c) => self.eval_node(c, &count_ptr, loops),
            None => return (name, self.fail(&cx, "a copy element needs a `count`")),
        };
        let max = Limit::CopyCount.maximum() as i64;
        let n = match count {
            Val::Int(n) if (0..=max).contains(&n) => n,
            Val::Int(n) if n > max => {
                let found = format!("copy loop `{name}` has count {n}");
                return (name, self.exceed(&count_ptr, Limit::CopyCount, found));
            }
            Val::Int(n) => return (name, self.fail(&cx, format!("copy count {n} is negative"))),
            p @ (Val::Unknown(_) | Val::Failed(_)) => return (name, p),
            other => {
                let t = other.type_name();
                return (
                    name,
                    self.fail(&cx, format!("copy count is {t}, not an int")),
                );
            }
        };
        let Some(input) = get_ci(spec, "input") else {
            return (name, self.fail(&cx, "a copy element needs an `input`"));
        };
        let ip = json::key(pointer, "input");
        let mut items = Vec::new();
        for i in 0..n {
            let item = self.eval_node(input, &ip, &loops.with_named(&name, i));
            if let Some(stop) = self.stopped() {
                return (name, stop);
            }
            items.push(item);
        }
        (name, self.charge(Val::Arr(items), pointer))
    }

    /// Evaluates one JSON string. An unknown result that came from elsewhere (a parameter's
    /// default, a variable) is re-anchored here, so the pointer names the field that uses it.
    pub fn eval_string(&self, s: &str, pointer: &str, loops: &Loops) -> Val {
        let text = match classify_string(s) {
            Template::Literal(l) => {
                return match self.spend(VAL_BYTES + l.len(), pointer) {
                    Some(stop) => stop,
                    None => Val::Str(l.into_owned()),
                }
            }
            Template::Expression(t) => t,
        };
        let cx = Cx { pointer, text };
        let e = match expr::parse(text) {
            Ok(e) => e,
            Err(expr::ParseError::Syntax(m)) => return self.fail(&cx, m),
            Err(expr::ParseError::Limit { limit, found }) => {
                return self.exceed(pointer, limit, found)
            }
        };
        match self.eval(&e, &cx, loops) {
            Val::Unknown(u) if u.pointer != pointer || u.input != self.input => {
                Val::Unknown(Arc::new(Pending {
                    input: self.input.to_string(),
                    pointer: pointer.to_string(),
                    expression: text.to_string(),
                    reason: format!("{} (via {}#{})", u.reason, u.input, u.pointer),
                }))
            }
            v => v,
        }
    }

    /// Evaluates `e` one level deeper, charging its value ([`Env::charge`]).
    pub(crate) fn eval(&self, e: &Expr, cx: &Cx<'_>, loops: &Loops) -> Val {
        if let Some(stop) = self.stopped() {
            return stop;
        }
        let depth = self.depth.get() + 1;
        if depth > Limit::EvaluationDepth.maximum() {
            return self.too_deep(cx.pointer, depth);
        }
        self.depth.set(depth);
        let v = self.eval_inner(e, cx, loops);
        self.depth.set(depth - 1);
        self.charge(v, cx.pointer)
    }

    fn eval_inner(&self, e: &Expr, cx: &Cx<'_>, loops: &Loops) -> Val {
        match e {
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::Int(i) => Val::Int(*i),
            Expr::Member(x, name) if super::nested::outputs::is_runtime_member(x, name) => {
                self.unknown(cx, "`reference()` is known only at deployment time")
            }
            Expr::Member(x, name) => {
                let v = self.eval(x, cx, loops);
                match &v {
                    Val::Unknown(_) | Val::Failed(_) => v,
                    Val::Obj(o) => match v.get(name) {
                        Some(m) => m.clone(),
                        None => {
                            let keys: Vec<&str> = o.iter().map(|(k, _)| k.as_str()).collect();
                            self.fail(
                                cx,
                                format!(
                                    "property `{name}` does not exist (the object has: {})",
                                    keys.join(", ")
                                ),
                            )
                        }
                    },
                    other => {
                        let t = other.type_name();
                        self.fail(cx, format!("cannot read `.{name}` of {t}"))
                    }
                }
            }
            Expr::Index(x, i) => {
                let v = self.eval(x, cx, loops);
                let i = self.eval(i, cx, loops);
                if v.is_pending() {
                    return v;
                }
                if i.is_pending() {
                    return i;
                }
                match (&v, &i) {
                    (Val::Arr(a), Val::Int(n)) => {
                        match usize::try_from(*n).ok().and_then(|n| a.get(n)) {
                            Some(x) => x.clone(),
                            None => self.fail(
                                cx,
                                format!("index {n} is out of range (length {})", a.len()),
                            ),
                        }
                    }
                    (Val::Obj(_), Val::Str(k)) => match v.get(k) {
                        Some(x) => x.clone(),
                        None => self.fail(cx, format!("property `{k}` does not exist")),
                    },
                    _ => {
                        let (tv, ti) = (v.type_name(), i.type_name());
                        self.fail(cx, format!("cannot index {tv} with {ti}"))
                    }
                }
            }
            Expr::Call(name, args) => self.call(name, args, cx, loops),
        }
    }

    fn call(&self, name: &str, args: &[Expr], cx: &Cx<'_>, loops: &Loops) -> Val {
        let lower = name.to_ascii_lowercase();
        if lower.contains('.') {
            return if self.is_user_function(&lower) {
                let vals: Vec<Val> = args.iter().map(|a| self.eval(a, cx, loops)).collect();
                self.user_function(name, &vals, cx)
            } else {
                Val::Failed(Arc::new(ImportError::UnknownFunction {
                    at: Location::new(self.input, cx.pointer),
                    name: name.to_string(),
                    expression: cx.text.to_string(),
                }))
            };
        }
        if lower == "reference" {
            // A nested deployment's outputs are evaluated; any other resource's runtime state
            // stays unknown (module `nested::outputs`).
            let vals: Vec<Val> = args.iter().map(|a| self.eval(a, cx, loops)).collect();
            return self.reference_call(name, &vals, cx);
        }
        match expr::classify(&lower) {
            None => {
                return Val::Failed(Arc::new(ImportError::UnknownFunction {
                    at: Location::new(self.input, cx.pointer),
                    name: name.to_string(),
                    expression: cx.text.to_string(),
                }))
            }
            Some(FnClass::DeploymentTime) => {
                return self.unknown(cx, format!("`{name}()` is known only at deployment time"))
            }
            Some(FnClass::NotEvaluated) => {
                return self.unknown(
                    cx,
                    format!("`{name}()` is an ARM function outside the set vnetsim evaluates"),
                )
            }
            Some(FnClass::Evaluated) => {}
        }
        // Lambdas are evaluated per element, with their variables bound.
        if let Some(v) = self.lambda_call(&lower, name, args, cx, loops) {
            return v;
        }
        // Lazy functions first: they evaluate only the arguments they need.
        match lower.as_str() {
            "if" => {
                if args.len() != 3 {
                    return self.fail(cx, "if() takes 3 arguments");
                }
                return match self.eval(&args[0], cx, loops) {
                    Val::Bool(true) => self.eval(&args[1], cx, loops),
                    Val::Bool(false) => self.eval(&args[2], cx, loops),
                    p @ (Val::Unknown(_) | Val::Failed(_)) => p,
                    o => self.fail(
                        cx,
                        format!("if() needs a bool condition, got {}", o.type_name()),
                    ),
                };
            }
            "and" | "or" => {
                if args.len() < 2 {
                    return self.fail(cx, format!("{lower}() takes at least 2 arguments"));
                }
                let decisive = lower == "or";
                let mut pending = None;
                for a in args {
                    match self.eval(a, cx, loops) {
                        Val::Bool(b) if b == decisive => return Val::Bool(decisive),
                        Val::Bool(_) => {}
                        p @ Val::Failed(_) => return p,
                        p @ Val::Unknown(_) => {
                            pending.get_or_insert(p);
                        }
                        o => {
                            return self
                                .fail(cx, format!("{lower}() needs bools, got {}", o.type_name()))
                        }
                    }
                }
                return pending.unwrap_or(Val::Bool(!decisive));
            }
            "coalesce" => {
                for a in args {
                    match self.eval(a, cx, loops) {
                        Val::Null => {}
                        v => return v,
                    }
                }
                return Val::Null;
            }
            _ => {}
        }
        let vals: Vec<Val> = args.iter().map(|a| self.eval(a, cx, loops)).collect();
        if let (Some(bound), "parameters") = (&loops.function, lower.as_str()) {
            return match vals.as_slice() {
                [Val::Str(n)] => bound
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| {
                        self.fail(cx, format!("the function has no parameter `{n}`"))
                    }),
                _ => self.fail(cx, "parameters() takes the name of a parameter"),
            };
        }
        if matches!(lower.as_str(), "parameters" | "variables") {
            // Internal: kept out of `functions::apply`, whose frame is large in unoptimised
            // builds; a reference chain recurses through here once per hop.
            return self.reference(&lower, &vals, cx);
        }
        super::functions::apply(self, &lower, name, &vals, cx.pointer, cx.text, loops)
    }

    /// `parameters(name)` or `variables(name)` with its argument evaluated.
    fn reference(&self, lower: &str, args: &[Val], cx: &Cx<'_>) -> Val {
        let name = match args {
            [Val::Str(n)] => n,
            [p] if p.is_pending() => return p.clone(),
            [o] => {
                let t = o.type_name();
                return self.fail(
                    cx,
                    format!("argument 1 of {lower}() must be a string, got {t}"),
                );
            }
            _ => {
                let n = args.len();
                return self.fail(cx, format!("{lower}() takes 1 argument(s), got {n}"));
            }
        };
        if lower == "variables" {
            return self.variable(name, cx.pointer, cx.text);
        }
        match self.parameter(name) {
            Some(v) => {
                self.used_params
                    .borrow_mut()
                    .insert(name.to_ascii_lowercase());
                v
            }
            None => self.fail(cx, format!("parameter `{name}` is not declared")),
        }
    }

    // --- entry points used by `functions` ---

    pub(crate) fn fail_at(&self, pointer: &str, text: &str, message: impl Into<String>) -> Val {
        self.fail(&Cx { pointer, text }, message)
    }

    pub(crate) fn unknown_at(&self, pointer: &str, text: &str, reason: impl Into<String>) -> Val {
        self.unknown(&Cx { pointer, text }, reason)
    }

    /// `parameters(name)`.
    pub(crate) fn parameter(&self, name: &str) -> Option<Val> {
        let key = name.to_ascii_lowercase();
        if let Some(c) = self.param_cache.borrow().get(&key) {
            return Some(c.clone().unwrap_or_else(|| {
                Val::Failed(Arc::new(ImportError::Invalid {
                    at: Location::new(self.input, json::key(&self.at("/parameters"), name)),
                    message: format!("parameter `{name}` depends on itself"),
                }))
            }));
        }
        let (declared, decl) = self.decls.get(&key)?.clone();
        self.param_cache.borrow_mut().insert(key.clone(), None);
        let v = params::resolve(self, &declared, decl);
        self.param_cache.borrow_mut().insert(key, Some(v.clone()));
        Some(v)
    }

    /// `variables(name)`.
    pub(crate) fn variable(&self, name: &str, pointer: &str, text: &str) -> Val {
        let key = name.to_ascii_lowercase();
        if let Some(c) = self.var_cache.borrow().get(&key) {
            return c.clone().unwrap_or_else(|| {
                self.fail_at(
                    pointer,
                    text,
                    format!("variable `{name}` depends on itself"),
                )
            });
        }
        let Some(vars) = get_ci(self.doc, "variables").and_then(Value::as_object) else {
            return self.fail_at(
                pointer,
                text,
                format!("variable `{name}` is not declared (the template has no variables)"),
            );
        };
        self.var_cache.borrow_mut().insert(key.clone(), None);
        let mut found = None;
        for (k, v) in vars {
            if k.eq_ignore_ascii_case("copy") {
                if let Value::Array(specs) = v {
                    for (j, spec) in specs.iter().enumerate() {
                        let n = get_ci(spec, "name").and_then(Value::as_str).unwrap_or("");
                        if n.eq_ignore_ascii_case(name) {
                            let p = json::index(&self.at("/variables/copy"), j);
                            found = Some(self.property_copy(spec, &p, &Loops::default()).1);
                        }
                    }
                }
            } else if k.eq_ignore_ascii_case(name) {
                found = Some(self.eval_node(
                    v,
                    &json::key(&self.at("/variables"), k),
                    &Loops::default(),
                ));
            }
        }
        let v = found.unwrap_or_else(|| {
            self.fail_at(pointer, text, format!("variable `{name}` is not declared"))
        });
        self.var_cache.borrow_mut().insert(key, Some(v.clone()));
        v
    }

    /// `copyIndex([loopName], [offset])`.
    pub(crate) fn copy_index(&self, loops: &Loops, name: Option<&str>) -> Option<i64> {
        match name {
            None => loops.resource.as_ref().map(|(_, i)| *i),
            Some(n) => loops
                .named
                .iter()
                .rev()
                .find(|(m, _)| m.eq_ignore_ascii_case(n))
                .or(loops
                    .resource
                    .as_ref()
                    .filter(|(m, _)| m.eq_ignore_ascii_case(n)))
                .map(|(_, i)| *i),
        }
    }
}

/// Member of a JSON object by key, case-insensitively.
pub(crate) fn get_ci<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let o = v.as_object()?;
    o.get(key).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// `cidrSubnet(network, newPrefixLength, index)`.
pub(crate) fn cidr_subnet(network: &str, new_len: i64, index: i64) -> Result<String, String> {
    let net: ipnet::IpNet = network
        .trim()
        .parse()
        .map_err(|_| format!("`{network}` is not a CIDR range"))?;
    let net = net.trunc();
    let max = i64::from(net.max_prefix_len());
    let len = i64::from(net.prefix_len());
    if new_len < len || new_len > max {
        return Err(format!(
            "new prefix length {new_len} must lie between {len} and {max}"
        ));
    }
    let shift = |bits: i64| u32::try_from(bits).ok().and_then(|b| 1u128.checked_shl(b));
    let idx = u128::try_from(index).map_err(|_| format!("subnet index {index} is negative"))?;
    if shift(new_len - len).is_some_and(|count| idx >= count) {
        return Err(format!(
            "subnet index {index} is out of range: {network} holds 2^{} /{new_len} subnets",
            new_len - len
        ));
    }
    let offset = if idx == 0 {
        0
    } else {
        shift(max - new_len)
            .and_then(|step| idx.checked_mul(step))
            .ok_or_else(|| format!("subnet index {index} is out of range"))?
    };
    let start = match net.network() {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
    .checked_add(offset)
    .ok_or_else(|| format!("subnet index {index} is out of range"))?;
    let addr: IpAddr = match net.network() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(
            u32::try_from(start).map_err(|_| "address overflow")?,
        )),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(start)),
    };
    Ok(format!("{addr}/{new_len}"))
}

fn net_of(cidr: &str) -> Result<ipnet::IpNet, String> {
    cidr.trim()
        .parse::<ipnet::IpNet>()
        .map_err(|_| format!("`{cidr}` is not a CIDR range"))
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// `parseCidr(network)`: `network`, `netmask`, `broadcast` (IPv4 only), `firstUsable`,
/// `lastUsable` and `cidr` (Learn, "CIDR functions for ARM templates": IPv4 first/last usable
/// leave out the network and broadcast addresses; IPv6 has no broadcast and uses them all).
pub(crate) fn parse_cidr(cidr: &str) -> Result<Val, String> {
    let net = net_of(cidr)?.trunc();
    let v4 = net.network().is_ipv4();
    let (first, last) = (to_u128(net.network()), to_u128(net.broadcast()));
    let mut out = vec![
        ("network".to_string(), Val::Str(net.network().to_string())),
        ("netmask".to_string(), Val::Str(net.netmask().to_string())),
    ];
    if v4 {
        out.push(("broadcast".into(), Val::Str(net.broadcast().to_string())));
    }
    let (fu, lu) = if v4 && net.prefix_len() < 31 {
        (first + 1, last - 1)
    } else {
        (first, last)
    };
    out.push((
        "firstUsable".into(),
        Val::Str(from_u128(v4, fu).to_string()),
    ));
    out.push(("lastUsable".into(), Val::Str(from_u128(v4, lu).to_string())));
    out.push(("cidr".into(), Val::Int(i64::from(net.prefix_len()))));
    Ok(Val::Obj(out))
}

/// `cidrHost(network, hostIndex)`: the usable address at `hostIndex` (0 is the first usable:
/// the network address plus one; Learn's example `cidrHost('10.144.3.0/24', 0..4)`).
pub(crate) fn cidr_host(cidr: &str, index: i64) -> Result<String, String> {
    let net = net_of(cidr)?.trunc();
    let v4 = net.network().is_ipv4();
    let idx = u128::try_from(index).map_err(|_| format!("host index {index} is negative"))?;
    let first = to_u128(net.network());
    let last = to_u128(net.broadcast());
    let addr = first
        .checked_add(idx)
        .and_then(|a| a.checked_add(1))
        .filter(|a| if v4 { *a < last } else { *a <= last })
        .ok_or_else(|| format!("host index {index} is outside {cidr}"))?;
    Ok(from_u128(v4, addr).to_string())
}

/// A deterministic 13-character `[a-z2-7]` hash of the arguments joined with `-` (MurmurHash64A,
/// seed 0, base32). Deterministic, but not guaranteed to equal Azure's own `uniqueString`.
pub(crate) fn unique_string(parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let h = murmur64a(parts.join("-").as_bytes());
    (0..13)
        .map(|i| {
            let idx = if i < 12 {
                (h >> (59 - 5 * i)) & 31
            } else {
                (h & 0xF) << 1
            };
            ALPHABET[usize::try_from(idx).unwrap_or(0)] as char
        })
        .collect()
}

fn murmur64a(data: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = (data.len() as u64).wrapping_mul(M);
    let chunks = data.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("chunks_exact yields 8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= u64::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_subnet_matches_the_docs() {
        // Learn, cidrSubnet example: cidrSubnet('10.144.0.0/20', 24, 0..) → 10.144.0.0/24, ...
        assert_eq!(
            cidr_subnet("10.144.0.0/20", 24, 0).unwrap(),
            "10.144.0.0/24"
        );
        assert_eq!(
            cidr_subnet("10.144.0.0/20", 24, 15).unwrap(),
            "10.144.15.0/24"
        );
        assert!(cidr_subnet("10.144.0.0/20", 24, 16).is_err());
        assert!(cidr_subnet("10.144.0.0/20", 19, 0).is_err());
        assert_eq!(cidr_subnet("fd00::/48", 64, 1).unwrap(), "fd00:0:0:1::/64");
        // Extreme lengths do not overflow.
        assert_eq!(cidr_subnet("::/0", 128, 5).unwrap(), "::5/128");
        assert_eq!(cidr_subnet("::/0", 0, 0).unwrap(), "::/0");
        assert!(cidr_subnet("::/0", 1, 2).is_err());
    }

    #[test]
    fn unique_string_is_stable() {
        let a = unique_string(&["/subscriptions/x/resourceGroups/rg"]);
        assert_eq!(a.len(), 13);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(a, unique_string(&["/subscriptions/x/resourceGroups/rg"]));
        assert_ne!(a, unique_string(&["/subscriptions/y/resourceGroups/rg"]));
    }
}
