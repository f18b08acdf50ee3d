//! Group 1: the ARM evaluator and importer, on generated templates and expressions and on
//! structural mutations of the inputs in `fixtures/arm/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use sim::arm::{import, ImportError, ImportOptions, ImportResult, Input};
use sim::fixture::{Fixture, Format};
use sim::Topology;

use crate::cases::fuzz_config;
use crate::{tags, CASE_TIME_BOUND};

/// Every code [`ImportError::code`] documents.
const ARM_CODES: &[&str] = &[
    "ARM_JSON_INVALID",
    "ARM_NOT_AZURE",
    "ARM_NO_PROPERTIES",
    "ARM_UNKNOWN_FUNCTION",
    "ARM_EXPRESSION",
    "ARM_PARAMETER_TYPE",
    "ARM_PARAMETER_MISSING",
    "ARM_PARAMETER_NOT_ALLOWED",
    "ARM_PARAMETER_UNDECLARED",
    "ARM_INVALID",
    "ARM_UNREPRESENTABLE",
    "ARM_MISSING_REFERENCE",
    "ARM_LIMIT_EXCEEDED",
    "ARM_CONFLICT",
];

const SCHEMA: &str =
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#";

// === expressions ===

/// An ARM expression, rendered as template text by [`Expr::render`].
#[derive(Clone, Debug)]
enum Expr {
    /// A number literal, as written (it may not fit any integer type).
    Num(&'static str),
    /// An integer literal.
    Int(i64),
    /// A string literal (quotes are escaped as `''` when rendered).
    Str(String),
    /// `name(args)`.
    Call(String, Vec<Expr>),
    /// `e.name`.
    Prop(Box<Expr>, &'static str),
    /// `e[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `n` levels of one wrapper around `e` (calls, `.a` or `[0]` accessors): deep nesting,
    /// around `sim::arm::Limit::ExpressionDepth`.
    Deep(Box<Expr>, u8, usize),
}

impl Expr {
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Expr::Num(n) => out.push_str(n),
            Expr::Int(i) => out.push_str(&i.to_string()),
            Expr::Str(s) => {
                out.push('\'');
                out.push_str(&s.replace('\'', "''"));
                out.push('\'');
            }
            Expr::Call(name, args) => {
                out.push_str(name);
                out.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    a.write(out);
                }
                out.push(')');
            }
            Expr::Prop(e, p) => {
                e.write(out);
                out.push('.');
                out.push_str(p);
            }
            Expr::Index(e, i) => {
                e.write(out);
                out.push('[');
                i.write(out);
                out.push(']');
            }
            Expr::Deep(e, kind, n) => match kind % 3 {
                0 => {
                    out.push_str(&"concat(".repeat(*n));
                    e.write(out);
                    out.push_str(&")".repeat(*n));
                }
                1 => {
                    e.write(out);
                    out.push_str(&".a".repeat(*n));
                }
                _ => {
                    e.write(out);
                    out.push_str(&"[0]".repeat(*n));
                }
            },
        }
    }

    /// The template string holding the expression.
    fn template_string(&self) -> String {
        format!("[{}]", self.render())
    }
}

/// Functions the evaluator knows (see `sim::arm`'s module docs).
const KNOWN_FUNCTIONS: &[&str] = &[
    "parameters",
    "variables",
    "concat",
    "format",
    "toLower",
    "toUpper",
    "resourceId",
    "subscriptionResourceId",
    "resourceGroup",
    "subscription",
    "uniqueString",
    "equals",
    "not",
    "and",
    "or",
    "if",
    "empty",
    "length",
    "json",
    "split",
    "last",
    "contains",
    "union",
    "createArray",
    "createObject",
    "coalesce",
    "cidrSubnet",
    "copyIndex",
    "true",
    "false",
];

/// Real ARM functions whose value is only known at deployment time (or not evaluated): unknowns.
const DEPLOYMENT_TIME: &[&str] = &["reference", "utcNow", "listKeys", "newGuid", "first"];

/// Number literals: boundaries of every integer type, overflow, odd spellings.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "24",
    "33",
    "800",
    "801",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "99999999999999999999999999",
    "00",
    "-0",
    "1.5",
    "1e3",
    "-",
];

/// String literals: addresses, format strings, text that looks like an expression (nested
/// `[...]`, the `[[` escape), quotes, unicode, empty.
const STRINGS: &[&str] = &[
    "10.0.0.0/16",
    "10.0.1.0/24",
    "fd00::/48",
    "westeurope",
    "a",
    "",
    "'",
    "[",
    "]",
    "[[x]",
    "[concat('a', 'b')]",
    "[variables('v0')]",
    "{0}",
    "{1}{0}{0}",
    "{99999999999}",
    ",",
    "Tcp",
    "*",
    "80-90",
    "Microsoft.Network/virtualNetworks",
    "é𝄞",
    "\u{0}",
];

/// Property names for `.name` accessors.
const PROPS: &[&str] = &[
    "a",
    "name",
    "location",
    "id",
    "subscriptionId",
    "length",
    "é",
];

/// How many variables (`v0`…) a generated template declares; expressions reference
/// `v0..=VARS` so some references dangle.
const VARS: usize = 6;

fn arb_function_name() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => select(KNOWN_FUNCTIONS).prop_map(str::to_string),
        2 => select(DEPLOYMENT_TIME).prop_map(str::to_string),
        1 => "[a-zA-Z][a-zA-Z0-9.]{0,10}",
    ]
}

fn arb_leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        2 => select(NUMBERS).prop_map(Expr::Num),
        1 => any::<i64>().prop_map(Expr::Int),
        3 => select(STRINGS).prop_map(|s| Expr::Str(s.to_string())),
        1 => "\\PC{0,12}".prop_map(Expr::Str),
        4 => (0..=VARS).prop_map(|i| Expr::Call("variables".into(), vec![Expr::Str(format!("v{i}"))])),
        2 => select(vec!["prefix", "count", "list", "PREFIX", "nope"])
            .prop_map(|p| Expr::Call("parameters".into(), vec![Expr::Str(p.into())])),
        1 => Just(Expr::Call("copyIndex".into(), vec![])),
        1 => Just(Expr::Call("resourceGroup".into(), vec![])),
    ]
}

/// Expressions up to a few levels deep, sometimes wrapped in a deep chain (50–300 levels).
fn arb_expr() -> impl Strategy<Value = Expr> {
    let tree = arb_leaf()
        .prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                4 => (arb_function_name(), prop::collection::vec(inner.clone(), 0..4))
                    .prop_map(|(f, args)| Expr::Call(f, args)),
                1 => (inner.clone(), select(PROPS)).prop_map(|(e, p)| Expr::Prop(Box::new(e), p)),
                1 => (inner.clone(), inner).prop_map(|(e, i)| Expr::Index(Box::new(e), Box::new(i))),
            ]
        })
        .boxed();
    prop_oneof![
        8 => tree.clone(),
        1 => (tree, any::<u8>(), 50usize..300).prop_map(|(e, k, n)| Expr::Deep(Box::new(e), k, n)),
    ]
}

/// A template value: an expression string, or a literal of any JSON type.
fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => arb_expr().prop_map(|e| Value::String(e.template_string())),
        2 => select(STRINGS).prop_map(|s| json!(s)),
        1 => arb_number(),
        1 => Just(json!(true)),
        1 => Just(Value::Null),
        1 => Just(json!([1, "a", {"b": [2]}])),
        1 => Just(json!({"a": "10.0.0.0/16", "name": "x"})),
    ]
}

/// A JSON number: integers at the boundaries of every type, floats.
fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        select(vec![0i64, 1, -1, 3, 800, 801, 100_000, i64::MAX, i64::MIN]).prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        Just(json!(1.5)),
        Just(json!(-1e300)),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

/// A `copy` count: a number or an expression.
fn arb_count() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => arb_number(),
        1 => arb_expr().prop_map(|e| Value::String(e.template_string())),
    ]
}

/// Wraps `v` in `depth` levels of arrays or objects (JSON nesting around the value-depth bound).
fn nest(v: Value, depth: usize, objects: bool) -> Value {
    (0..depth).fold(v, |v, _| {
        if objects {
            json!({ "a": v })
        } else {
            json!([v])
        }
    })
}

/// One variable's definition: an expression, a literal, a nested value, or deep JSON.
fn arb_variable() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => arb_value(),
        1 => (arb_value(), 0usize..200, any::<bool>()).prop_map(|(v, d, o)| nest(v, d, o)),
        1 => prop::collection::vec(arb_value(), 0..4).prop_map(Value::Array),
    ]
}

/// Expressions that evaluate to `s` (so a template built of them imports): `s` split across
/// `concat`, through `format`, `toLower`, `if`, a parameter or variable defaulting to it, or
/// a deployment-time function whose value becomes an unknown marker.
fn sound_expression(s: &'static str, how: u8, at: usize) -> String {
    let at = if s.is_empty() { 0 } else { at % s.len() };
    let (a, b) = s.split_at(if s.is_char_boundary(at) { at } else { 0 });
    match how % 7 {
        0 => format!("[concat('{a}', '{b}')]"),
        1 => format!("[format('{{0}}{{1}}', '{a}', '{b}')]"),
        2 => format!("[toLower('{s}')]"),
        3 => format!("[if(equals(length('{s}'), {}), '{s}', 'x')]", s.len()),
        4 => format!("[first(createArray('{s}'))]"),
        5 => "[reference('pip').properties.ipAddress]".to_string(),
        _ => format!("[[{s}]"),
    }
}

/// A field that is usually sound — one of `valid`, or an expression evaluating to one — and
/// sometimes anything [`arb_value`] gives.
fn arb_field(valid: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        12 => select(valid).prop_map(|s| json!(s)),
        6 => (select(valid), any::<u8>(), any::<usize>()).prop_map(|(s, h, at)| json!(sound_expression(s, h, at))),
        1 => arb_value(),
    ]
    .boxed()
}

/// A security rule's properties, each field usually sound.
fn arb_rule_properties() -> impl Strategy<Value = Value> {
    (
        prop_oneof![6 => (100i64..=4096).prop_map(|p| json!(p)), 1 => arb_number(), 1 => arb_value()],
        arb_field(&["Inbound", "Outbound", "inbound"]),
        arb_field(&["Allow", "Deny"]),
        arb_field(&["Tcp", "Udp", "*", "Icmp"]),
        arb_field(&["*", "VirtualNetwork", "Internet", "10.0.1.0/24", "Storage", "10.0.2.4"]),
        arb_field(&["*", "VirtualNetwork", "AzureKeyVault", "10.0.2.0/24", "20.50.1.10"]),
        arb_field(&["*", "443", "80-90", "8080"]),
        any::<bool>(),
    )
        .prop_map(|(priority, direction, access, protocol, src, dst, port, plural)| {
            let mut p = json!({
                "priority": priority, "direction": direction, "access": access, "protocol": protocol,
                "sourceAddressPrefix": src, "sourcePortRange": "*",
            });
            if plural {
                p["destinationAddressPrefixes"] = json!([dst]);
                p["destinationPortRanges"] = json!([port]);
            } else {
                p["destinationAddressPrefix"] = dst;
                p["destinationPortRange"] = port;
            }
            p
        })
}

/// A generated template: parameters, variables (with a variable copy loop) referencing each
/// other, a VNet with a subnet, an NSG with rules (optionally in a resource copy loop), a NIC
/// and an APIM instance, in `languageVersion` 1.0 or 2.0.
fn arb_template() -> impl Strategy<Value = String> {
    let var = prop_oneof![
        2 => arb_field(&["10.0.0.0/16", "westeurope", "a", "Tcp"]),
        1 => (0..=VARS).prop_map(|j| json!(format!("[variables('v{j}')]"))),
        1 => arb_variable(),
    ];
    let count = prop_oneof![3 => (0i64..4).prop_map(|n| json!(n)), 1 => arb_count()];
    (
        prop::collection::vec(var, 0..=VARS),
        prop::option::of((count.clone(), arb_field(&["10.0.0.0/16", "a"]))),
        (
            arb_field(&["10.0.0.0/16", "fd00:10::/48"]),
            prop_oneof![3 => arb_field(&["10.0.1.0/24", "10.0.2.0/27"]), 1 => Just(json!("[cidrSubnet(parameters('prefix'), 24, 1)]"))],
            prop_oneof![4 => Just(json!("v")), 1 => arb_value()],
        ),
        prop::collection::vec(arb_rule_properties(), 0..3),
        prop::option::of(count),
        (arb_field(&["10.0.1.4", "10.0.1.10"]), arb_field(&["StandardV2", "PremiumV2", "Developer"]), any::<bool>()),
        (
            arb_field(&["10.0.0.0/16"]),
            prop_oneof![3 => Just(None), 1 => prop::collection::vec(arb_value(), 0..3).prop_map(Some)],
        ),
    )
        .prop_map(
            |(vars, var_copy, (space, subnet, name), rules, res_copy, (nic_ip, sku, symbolic), (default, allowed))| {
                let mut variables = Map::new();
                for (i, v) in vars.into_iter().enumerate() {
                    variables.insert(format!("v{i}"), v);
                }
                if let Some((count, input)) = var_copy {
                    variables.insert("copy".into(), json!([{ "name": "many", "count": count, "input": input }]));
                }
                let mut prefix = json!({ "type": "string", "defaultValue": default });
                if let Some(allowed) = allowed {
                    prefix["allowedValues"] = Value::Array(allowed);
                }
                let rules: Vec<Value> = rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| json!({ "name": format!("r{i}"), "properties": p }))
                    .collect();
                let mut nsg = json!({
                    "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01",
                    "name": "nsg", "location": "[resourceGroup().location]",
                    "properties": { "securityRules": rules }
                });
                if let Some(count) = res_copy {
                    nsg["name"] = json!("[concat('nsg', copyIndex())]");
                    nsg["copy"] = json!({ "name": "nsgs", "count": count });
                }
                let vnet = json!({
                    "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01",
                    "name": name, "location": "westeurope",
                    "properties": {
                        "addressSpace": { "addressPrefixes": [space] },
                        "subnets": [{ "name": "s", "properties": { "addressPrefix": subnet,
                            "delegations": [{ "name": "d", "properties": { "serviceName": "Microsoft.Web/serverFarms" } }] } }]
                    }
                });
                let nic = json!({
                    "type": "Microsoft.Network/networkInterfaces", "apiVersion": "2023-09-01",
                    "name": "nic", "location": "westeurope",
                    "properties": { "ipConfigurations": [{ "name": "ip", "properties": {
                        "privateIPAllocationMethod": "Static", "privateIPAddress": nic_ip,
                        "subnet": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's')]" } } }] }
                });
                let apim = json!({
                    "type": "Microsoft.ApiManagement/service", "apiVersion": "2024-05-01",
                    "name": "apim", "location": "westeurope",
                    "sku": { "name": sku, "capacity": 1 },
                    "properties": { "virtualNetworkType": "External",
                        "virtualNetworkConfiguration": { "subnetResourceId": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's')]" } }
                });
                let resources = if symbolic {
                    json!({ "vnet": vnet, "nsg": nsg, "nic": nic, "apim": apim })
                } else {
                    json!([vnet, nsg, nic, apim])
                };
                let mut t = json!({
                    "$schema": SCHEMA,
                    "contentVersion": "1.0.0.0",
                    "parameters": {
                        "prefix": prefix,
                        "count": { "type": "int", "defaultValue": 2 },
                        "list": { "type": "array", "defaultValue": ["10.0.0.0/16", 3] }
                    },
                    "variables": variables,
                    "resources": resources
                });
                if symbolic {
                    t["languageVersion"] = json!("2.0");
                }
                t.to_string()
            },
        )
}

/// Imports `text` on a thread with a 2 MiB stack (a reload's stack on Tokio's blocking pool):
/// a stack overflow aborts the test binary, a panic fails the case.
fn import_bounded(
    name: &str,
    text: String,
) -> Result<Result<ImportResult, Box<ImportError>>, String> {
    let name = name.to_string();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            import(&[Input::new(name, text)], &ImportOptions::default()).map_err(Box::new)
        })
        .expect("a thread")
        .join()
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into())
        })
}

/// The oracle of every ARM case: no panic, bounded time, a documented code on error with a
/// 1-based position when it has one; an imported fixture builds without panicking and reads
/// back from its TOML unchanged.
fn check_import(name: &str, text: String) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let outcome = import_bounded(name, text);
    let elapsed = start.elapsed();
    prop_assert!(elapsed < CASE_TIME_BOUND, "import took {:?}", elapsed);
    match outcome {
        Err(panic) => prop_assert!(false, "import panicked: {}", panic),
        Ok(Err(e)) => {
            prop_assert!(
                ARM_CODES.contains(&e.code()),
                "undocumented code {}",
                e.code()
            );
            prop_assert!(!e.to_string().is_empty());
            if let Some(at) = e.location() {
                prop_assert!(at.line != Some(0) && at.column != Some(0), "{}", e);
            }
        }
        Ok(Ok(r)) => {
            let built = Topology::build(&r.fixture, tags().clone());
            for f in &built.findings {
                prop_assert_eq!(f.severity, f.code.severity());
            }
            // Markers and odd strings alike survive the fixture's own syntax.
            if let Ok(toml) = r.fixture.to_toml() {
                prop_assert_eq!(
                    Fixture::parse(&toml, Format::Toml),
                    Ok(r.fixture.clone()),
                    "{}",
                    toml
                );
            }
            let built_elapsed = start.elapsed();
            prop_assert!(
                built_elapsed < CASE_TIME_BOUND,
                "import and build took {:?}",
                built_elapsed
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_config(96))]

    /// Generated templates import, or fail with a documented code, in bounded time.
    #[test]
    fn arm_generated_templates_import_or_fail_with_a_code(t in arb_template()) {
        check_import("gen.json", t)?;
    }

    /// Any generated expression, in the one field every template has (a VNet's address
    /// space), gives a value, an unknown or a coded error.
    #[test]
    fn arm_generated_expressions_evaluate_or_fail_with_a_code(e in arb_expr(), vars in prop::collection::vec(arb_variable(), 0..=VARS)) {
        let variables: Map<String, Value> =
            vars.into_iter().enumerate().map(|(i, v)| (format!("v{i}"), v)).collect();
        let t = json!({
            "$schema": SCHEMA,
            "parameters": { "prefix": { "type": "string", "defaultValue": "10.0.0.0/16" } },
            "variables": variables,
            "resources": [{ "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
                "properties": { "addressSpace": { "addressPrefixes": [e.template_string()] } } }]
        });
        check_import("expr.json", t.to_string())?;
    }
}

// === mutations of real inputs ===

fn fixtures_arm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/arm")
}

/// Seeds: every JSON file of `fixtures/arm/` (templates, parameters files, exports, the broken
/// ones), plus short forms of the regression templates (a variable chain, a doubling
/// chain, an accessor chain), parsed as JSON values.
fn seeds() -> &'static [(String, Value)] {
    static S: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    S.get_or_init(|| {
        let mut out = Vec::new();
        for dir in [fixtures_arm(), fixtures_arm().join("exports"), fixtures_arm().join("bad")] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("a directory entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for p in files {
                let text = std::fs::read_to_string(&p).expect("a seed file");
                // The deliberately broken JSON is no tree to mutate.
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    out.push((p.file_name().unwrap().to_string_lossy().into_owned(), v));
                }
            }
        }
        let template = |variables: Value, prefix: &str| {
            json!({ "$schema": SCHEMA, "contentVersion": "1.0.0.0", "variables": variables,
                "resources": [{ "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
                    "properties": { "addressSpace": { "addressPrefixes": [prefix] } } }] })
        };
        let chain: Map<String, Value> = (0..30)
            .map(|i| {
                let v = if i == 0 { json!("10.0.0.0/16") } else { json!(format!("[variables('v{}')]", i - 1)) };
                (format!("v{i}"), v)
            })
            .collect();
        out.push(("chain.json".into(), template(chain.into(), "[variables('v29')]")));
        let doubling: Map<String, Value> = (0..8)
            .map(|i| {
                let v = if i == 0 {
                    json!("aaaaaaaaaa")
                } else {
                    json!(format!("[concat(variables('v{0}'), variables('v{0}'))]", i - 1))
                };
                (format!("v{i}"), v)
            })
            .collect();
        out.push(("doubling.json".into(), template(doubling.into(), "[if(empty(variables('v7')), '10.0.0.0/16', '10.1.0.0/16')]")));
        out.push((
            "accessors.json".into(),
            template(json!({ "o": { "a": { "a": "10.0.0.0/16" } } }), &format!("[variables('o'){}]", ".a".repeat(2))),
        ));
        assert!(out.len() >= 8, "the seed corpus is in fixtures/arm/");
        out
    })
}

/// One step on the way to a JSON node.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Idx(usize),
}

/// Every node's path, in document order (the root first).
fn paths(v: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    here.push(Seg::Key(k.clone()));
                    walk(c, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    here.push(Seg::Idx(i));
                    walk(c, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn node_mut<'v>(v: &'v mut Value, path: &[Seg]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::Idx(i) => v.get_mut(*i),
    })
}

/// A structural edit of a JSON document.
#[derive(Clone, Debug)]
enum Mutation {
    /// Replace a node with a generated value (usually an expression string).
    Replace(usize, Value),
    /// Replace a node with a number at a type's boundary.
    Number(usize, Value),
    /// Wrap a node in levels of arrays or objects.
    Wrap(usize, usize, bool),
    /// Remove a node from its object or array.
    Remove(usize),
    /// Append a copy of a node to its array, or to the array it is in.
    Duplicate(usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        5 => (any::<usize>(), arb_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => (any::<usize>(), arb_number()).prop_map(|(i, v)| Mutation::Number(i, v)),
        1 => (any::<usize>(), 1usize..160, any::<bool>()).prop_map(|(i, d, o)| Mutation::Wrap(i, d, o)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Duplicate),
    ]
}

fn mutate(doc: &mut Value, m: &Mutation) {
    let all = paths(doc);
    let pick = |i: usize| all[i % all.len()].clone();
    match m {
        Mutation::Replace(i, v) | Mutation::Number(i, v) => {
            if let Some(n) = node_mut(doc, &pick(*i)) {
                *n = v.clone();
            }
        }
        Mutation::Wrap(i, depth, objects) => {
            if let Some(n) = node_mut(doc, &pick(*i)) {
                *n = nest(n.take(), *depth, *objects);
            }
        }
        Mutation::Remove(i) | Mutation::Duplicate(i) => {
            let path = pick(*i);
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            let Some(parent) = node_mut(doc, parent) else {
                return;
            };
            match (parent, last, m) {
                (Value::Object(o), Seg::Key(k), Mutation::Remove(_)) => {
                    o.remove(k);
                }
                (Value::Array(a), Seg::Idx(j), Mutation::Remove(_)) => {
                    a.remove(*j);
                }
                (Value::Array(a), Seg::Idx(j), _) => {
                    let copy = a[*j].clone();
                    a.push(copy);
                }
                (Value::Object(o), Seg::Key(k), _) => {
                    let copy = o[k].clone();
                    o.insert(format!("{k}2"), copy);
                }
                _ => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(fuzz_config(96))]

    /// Structural mutations of every template, parameters file and export in `fixtures/arm/`
    /// (and of the regression shapes) import or fail with a documented code, in bounded time.
    #[test]
    fn arm_mutated_inputs_import_or_fail_with_a_code(
        seed in any::<prop::sample::Index>(), edits in prop::collection::vec(arb_mutation(), 1..6),
    ) {
        let (name, doc) = &seeds()[seed.index(seeds().len())];
        let mut doc = doc.clone();
        for m in &edits {
            mutate(&mut doc, m);
        }
        check_import(name, doc.to_string())?;
    }
}

#[test]
fn every_arm_seed_imports_or_fails_with_a_code() {
    // The unmutated corpus goes through the same oracle: a seed that panics would hide behind
    // its mutations.
    // These must import: a seed that fails would make its mutations test the failure path only.
    let must_import = [
        "apim-integration.json",
        "chain.json",
        "doubling.json",
        "accessors.json",
    ];
    for (name, doc) in seeds() {
        let r = import_bounded(name, doc.to_string()).unwrap_or_else(|p| panic!("{name}: {p}"));
        // Alone, a parameters file or a child resource's export lacks what it refers to.
        if let Err(e) = r {
            assert!(ARM_CODES.contains(&e.code()), "{name}: {}", e.code());
            assert!(!must_import.contains(&name.as_str()), "{name}: {e}");
        }
    }
    for name in must_import {
        assert!(seeds().iter().any(|(n, _)| n == name), "{name} is a seed");
    }
}
