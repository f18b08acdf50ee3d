//! The expression syntax of ARM templates: a JSON string `"[...]"` holds one expression made of
//! function calls, `'single-quoted'` strings (`''` escapes a quote), integers, property access
//! `.name` and indexing `[expr]`. `"[[..."` is a literal string starting with `[`.
//!
//! This module also knows which names are ARM template functions at all, and which of them
//! vnetsim evaluates ([`FnClass`]).

use super::limits::Limit;

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

/// Why an expression does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not the expression syntax; the message says what was expected.
    Syntax(String),
    /// Over [`Limit::ExpressionLength`] or [`Limit::ExpressionDepth`]; `found` says by how much.
    Limit { limit: Limit, found: String },
}

impl From<String> for ParseError {
    fn from(m: String) -> Self {
        ParseError::Syntax(m)
    }
}

impl From<&str> for ParseError {
    fn from(m: &str) -> Self {
        ParseError::Syntax(m.to_string())
    }
}

/// Parses the inside of `[...]`.
pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    // ARM counts the whole string, brackets included; two more characters change nothing
    // that matters, and a byte count bounds the character count from above.
    let max = Limit::ExpressionLength.maximum();
    if src.len() > max {
        let chars = src.chars().count();
        if chars > max {
            return Err(ParseError::Limit {
                limit: Limit::ExpressionLength,
                found: format!("the expression has {chars} characters"),
            });
        }
    }
    let mut p = Parser {
        b: src.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let e = p.expr()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(ParseError::Syntax(format!(
            "unexpected `{}` at offset {} of the expression",
            &src[p.i..].chars().next().unwrap_or(' '),
            p.i
        )));
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

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    /// Nesting so far: one per enclosing `expr` and per accessor (`.name`, `[index]`) applied
    /// in them, which bounds the depth of the tree built (and so of every walk over it and of
    /// its drop) by [`Limit::ExpressionDepth`].
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

    /// One more level of nesting, or the limit error.
    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        let max = Limit::ExpressionDepth.maximum();
        if self.depth > max {
            return Err(ParseError::Limit {
                limit: Limit::ExpressionDepth,
                found: format!(
                    "the expression nests calls and accessors more than {max} levels deep"
                ),
            });
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let start = self.depth;
        self.deeper()?;
        let mut e = self.primary()?;
        loop {
            self.ws();
            if matches!(self.peek(), Some(b'.' | b'[')) {
                self.deeper()?;
            }
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
        self.depth = start;
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

    fn primary(&mut self) -> Result<Expr, ParseError> {
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
                    .map_err(|_| "string literal is not UTF-8".into())
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
                    .map_err(|_| format!("`{text}` is not an integer").into())
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
                    return Err(
                        format!("`{name}` must be called as a function, `{name}(...)`").into(),
                    );
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
                        _ => {
                            return Err(
                                format!("expected `,` or `)` in the call of `{name}`").into()
                            )
                        }
                    }
                }
            }
            Some(c) => Err(format!("unexpected `{}`", c as char).into()),
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
    "extensionresourceid",
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
    "tryget",
    "map",
    "filter",
    "reduce",
    "sort",
    "toobject",
    "mapvalues",
    "groupby",
    "lambda",
    "lambdavariables",
    "items",
    "shallowmerge",
    "flatten",
    "objectkeys",
    "range",
    "take",
    "skip",
    "indexof",
    "lastindexof",
    "join",
    "replace",
    "substring",
    "string",
    "null",
    "true",
    "false",
    "array",
    "bool",
    "int",
    "first",
    "startswith",
    "endswith",
    "trim",
    "padleft",
    "intersection",
    "tryindexfromend",
    "indexfromend",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "min",
    "max",
    "greater",
    "greaterorequals",
    "less",
    "lessorequals",
    "guid",
    "newguid",
    "deployment",
    "environment",
    "parsecidr",
    "cidrhost",
];

/// ARM functions whose values exist only during a deployment, lower-cased (`list*` is matched
/// by prefix). Source: Learn, "ARM template functions" (resource and deployment functions).
const DEPLOYMENT_TIME: &[&str] = &[
    "reference",
    "references",
    "deployer",
    "utcnow",
    "pickzones",
    "providers",
    "managementgroup",
    "tenant",
];

/// The other ARM template functions, lower-cased. Source: Learn, "ARM template functions"
/// (array, CIDR, comparison, date, lambda, logical, numeric, object, resource, string).
const OTHER_ARM: &[&str] = &[
    "base64",
    "base64tojson",
    "base64tostring",
    "datauri",
    "datauritostring",
    "datetimeadd",
    "datetimefromepoch",
    "datetimetoepoch",
    "float",
    "managementgroupresourceid",
    "tenantresourceid",
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
        assert!(
            matches!(parse("true").unwrap_err(), ParseError::Syntax(m) if m.contains("called as a function"))
        );
        assert!(parse("'x' 'y'").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let limit = |r: Result<Expr, ParseError>| match r {
            Err(ParseError::Limit { limit, .. }) => Some(limit),
            _ => None,
        };
        let max = Limit::ExpressionDepth.maximum();
        // Accessor chains count as nesting: 26,000 of them would overflow the stack when
        // evaluated or dropped.
        let chain = format!("variables('v'){}", ".a".repeat(26_000));
        let chain = &chain[..Limit::ExpressionLength.maximum()];
        assert_eq!(limit(parse(chain)), Some(Limit::ExpressionDepth));
        let idx = format!("variables('v'){}", "[0]".repeat(max));
        assert_eq!(limit(parse(&idx)), Some(Limit::ExpressionDepth));
        // Just under the limit parses.
        let ok = format!("variables('v'){}", ".a".repeat(max - 2));
        assert!(parse(&ok).is_ok());
        let nested = format!("{}'x'{}", "concat(".repeat(max + 1), ")".repeat(max + 1));
        assert_eq!(limit(parse(&nested)), Some(Limit::ExpressionDepth));
        // Sibling arguments do not add up: depth, not size, is bounded.
        let wide = format!("concat({})", vec!["concat('a').b"; 500].join(","));
        assert!(parse(&wide).is_ok());
        let long = format!("'{}'", "x".repeat(Limit::ExpressionLength.maximum()));
        assert_eq!(limit(parse(&long)), Some(Limit::ExpressionLength));
    }

    #[test]
    fn strings_classify() {
        assert_eq!(classify_string("[[x]"), Template::Literal("[x]".into()));
        assert_eq!(classify_string("[f()]"), Template::Expression("f()"));
        assert_eq!(classify_string("[x"), Template::Literal("[x".into()));
        assert_eq!(classify("toLower"), Some(FnClass::Evaluated));
        assert_eq!(classify("listKeys"), Some(FnClass::DeploymentTime));
        assert_eq!(classify("tryGet"), Some(FnClass::Evaluated));
        assert_eq!(classify("dateTimeAdd"), Some(FnClass::NotEvaluated));
        assert_eq!(classify("concatenate"), None);
        assert_eq!(classify("list"), None);
    }
}
