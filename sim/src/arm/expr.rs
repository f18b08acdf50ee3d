//! The expression syntax of ARM templates: a JSON string `"[...]"` holds one expression made of
//! function calls, `'single-quoted'` strings (`''` escapes a quote), integers, property access
//! `.name` and indexing `[expr]`. `"[[..."` is a literal string starting with `[`.
//!
//! This module also knows which names are ARM template functions at all, and which of them
//! vnetsim evaluates ([`FnClass`]).

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    Str(String),
    Int(i64),
    /// A function call; the name as written (user functions are `namespace.name`).
    Call(String, Vec<Expr>),
    /// `.name` on a value.
    Member(Box<Expr>, String),
    /// `[index]` on a value.
    Index(Box<Expr>, Box<Expr>),
}

/// What a template string is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Template<'a> {
    /// A plain string (an escaped `[[` already unescaped).
    Literal(std::borrow::Cow<'a, str>),
    /// An expression: the text between the outer brackets.
    Expression(&'a str),
}

/// Splits a JSON string into literal or expression.
pub(crate) fn classify_string(s: &str) -> Template<'_> {
    if let Some(rest) = s.strip_prefix("[[") {
        return Template::Literal(format!("[{rest}").into());
    }
    if s.len() >= 2 && s.starts_with('[') && s.ends_with(']') {
        return Template::Expression(&s[1..s.len() - 1]);
    }
    Template::Literal(s.into())
}

/// Parses the inside of `[...]`.
pub(crate) fn parse(src: &str) -> Result<Expr, String> {
    let mut p = Parser {
        b: src.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let e = p.expr()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!(
            "unexpected `{}` at offset {} of the expression",
            &src[p.i..].chars().next().unwrap_or(' '),
            p.i
        ));
    }
    Ok(e)
}

/// Every function name called in an expression (for validation), outermost first.
pub(crate) fn calls(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Str(_) | Expr::Int(_) => {}
        Expr::Call(n, args) => {
            out.push(n.clone());
            for a in args {
                calls(a, out);
            }
        }
        Expr::Member(x, _) => calls(x, out),
        Expr::Index(x, i) => {
            calls(x, out);
            calls(i, out);
        }
    }
}

/// Deepest nesting accepted in one expression (keeps recursion bounded on hostile input).
const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression nested too deeply".into());
        }
        let mut e = self.primary()?;
        loop {
            self.ws();
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    self.ws();
                    let name = self.ident();
                    if name.is_empty() {
                        return Err("expected a property name after `.`".into());
                    }
                    e = Expr::Member(Box::new(e), name);
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    let idx = self.expr()?;
                    self.ws();
                    if self.peek() != Some(b']') {
                        return Err("expected `]`".into());
                    }
                    self.i += 1;
                    e = Expr::Index(Box::new(e), Box::new(idx));
                }
                _ => break,
            }
        }
        self.depth -= 1;
        Ok(e)
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
                self.i += 1;
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.b[start..self.i]).into_owned()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.ws();
        match self.peek() {
            None => Err("the expression is empty or ends too early".into()),
            Some(b'\'') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err("unterminated string literal".into()),
                        Some(b'\'') if self.b.get(self.i + 1) == Some(&b'\'') => {
                            out.push(b'\'');
                            self.i += 2;
                        }
                        Some(b'\'') => {
                            self.i += 1;
                            break;
                        }
                        Some(c) => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
                String::from_utf8(out)
                    .map(Expr::Str)
                    .map_err(|_| "string literal is not UTF-8".to_string())
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => {
                let start = self.i;
                self.i += 1;
                while matches!(self.peek(), Some(d) if d.is_ascii_digit()) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
                text.parse::<i64>()
                    .map(Expr::Int)
                    .map_err(|_| format!("`{text}` is not an integer"))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                // A function name; user-defined functions are `namespace.member`.
                let mut name = self.ident();
                while self.peek() == Some(b'.') {
                    let save = self.i;
                    self.i += 1;
                    let more = self.ident();
                    if more.is_empty() {
                        self.i = save;
                        break;
                    }
                    name.push('.');
                    name.push_str(&more);
                }
                self.ws();
                if self.peek() != Some(b'(') {
                    return Err(format!(
                        "`{name}` must be called as a function, `{name}(...)`"
                    ));
                }
                self.i += 1;
                let mut args = Vec::new();
                self.ws();
                if self.peek() == Some(b')') {
                    self.i += 1;
                    return Ok(Expr::Call(name, args));
                }
                loop {
                    args.push(self.expr()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b')') => {
                            self.i += 1;
                            return Ok(Expr::Call(name, args));
                        }
                        _ => return Err(format!("expected `,` or `)` in the call of `{name}`")),
                    }
                }
            }
            Some(c) => Err(format!("unexpected `{}`", c as char)),
        }
    }
}

/// How vnetsim treats a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FnClass {
    /// Evaluated (the list in the issue).
    Evaluated,
    /// A real ARM function whose value exists only at deployment time (`reference`, `list*`, ...).
    DeploymentTime,
    /// A real ARM function vnetsim does not evaluate.
    NotEvaluated,
}

/// The functions vnetsim evaluates, lower-cased.
pub(crate) const EVALUATED: &[&str] = &[
    "parameters",
    "variables",
    "concat",
    "format",
    "tolower",
    "toupper",
    "resourceid",
    "subscriptionresourceid",
    "resourcegroup",
    "subscription",
    "uniquestring",
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
    "createarray",
    "createobject",
    "coalesce",
    "cidrsubnet",
    "copyindex",
];

/// ARM functions whose values exist only during a deployment, lower-cased (`list*` is matched
/// by prefix). Source: Learn, "ARM template functions" (resource and deployment functions).
const DEPLOYMENT_TIME: &[&str] = &[
    "reference",
    "references",
    "deployment",
    "deployer",
    "environment",
    "utcnow",
    "newguid",
    "pickzones",
    "providers",
    "managementgroup",
    "tenant",
];

/// The other ARM template functions, lower-cased. Source: Learn, "ARM template functions"
/// (array, CIDR, comparison, date, lambda, logical, numeric, object, resource, string).
const OTHER_ARM: &[&str] = &[
    "add",
    "array",
    "base64",
    "base64tojson",
    "base64tostring",
    "bool",
    "cidrhost",
    "datauri",
    "datauritostring",
    "datetimeadd",
    "datetimefromepoch",
    "datetimetoepoch",
    "div",
    "endswith",
    "extensionresourceid",
    "false",
    "filter",
    "first",
    "flatten",
    "float",
    "greater",
    "greaterorequals",
    "groupby",
    "guid",
    "indexof",
    "indexfromend",
    "int",
    "intersection",
    "items",
    "join",
    "lambda",
    "lambdavariables",
    "lastindexof",
    "less",
    "lessorequals",
    "managementgroupresourceid",
    "map",
    "mapvalues",
    "max",
    "min",
    "mod",
    "mul",
    "null",
    "objectkeys",
    "padleft",
    "parsecidr",
    "range",
    "reduce",
    "replace",
    "shallowmerge",
    "skip",
    "sort",
    "startswith",
    "string",
    "sub",
    "substring",
    "take",
    "tenantresourceid",
    "toobject",
    "trim",
    "true",
    "tryget",
    "tryindexfromend",
    "uri",
    "uricomponent",
    "uricomponenttostring",
];

/// Classifies a (non-namespaced) function name; `None` when it is not an ARM function.
pub(crate) fn classify(name: &str) -> Option<FnClass> {
    let n = name.to_ascii_lowercase();
    if EVALUATED.contains(&n.as_str()) {
        Some(FnClass::Evaluated)
    } else if DEPLOYMENT_TIME.contains(&n.as_str()) || (n.starts_with("list") && n.len() > 4) {
        Some(FnClass::DeploymentTime)
    } else if OTHER_ARM.contains(&n.as_str()) {
        Some(FnClass::NotEvaluated)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_calls_members_and_indexes() {
        let e = parse("concat(parameters('a')[0].b, 'it''s', -3)").unwrap();
        let Expr::Call(name, args) = e else {
            panic!("not a call")
        };
        assert_eq!(name, "concat");
        assert_eq!(args[1], Expr::Str("it's".into()));
        assert_eq!(args[2], Expr::Int(-3));
        assert!(matches!(&args[0], Expr::Member(_, m) if m == "b"));
        assert!(matches!(parse("ns.fn(1)").unwrap(), Expr::Call(n, _) if n == "ns.fn"));
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(parse("concat('a'").is_err());
        assert!(parse("true").unwrap_err().contains("called as a function"));
        assert!(parse("'x' 'y'").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn strings_classify() {
        assert_eq!(classify_string("[[x]"), Template::Literal("[x]".into()));
        assert_eq!(classify_string("[f()]"), Template::Expression("f()"));
        assert_eq!(classify_string("[x"), Template::Literal("[x".into()));
        assert_eq!(classify("toLower"), Some(FnClass::Evaluated));
        assert_eq!(classify("listKeys"), Some(FnClass::DeploymentTime));
        assert_eq!(classify("tryGet"), Some(FnClass::NotEvaluated));
        assert_eq!(classify("concatenate"), None);
        assert_eq!(classify("list"), None);
    }
}
