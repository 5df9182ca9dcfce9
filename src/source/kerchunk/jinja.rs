//! The subset of jinja2 that kerchunk templates use: literal text with `{{ expression }}` blocks.
//!
//! fsspec renders templates with `jinja2.sandbox.SandboxedEnvironment().from_string(t).render(…)`
//! (when `simple_templates=False`, which `gen` needs). This module reproduces that rendering for:
//! - literal text, with jinja's newline handling (`\r\n` and `\r` become `\n`, and one trailing
//!   newline is dropped);
//! - expressions: decimal integers (`1_000` allowed), floats (`1.5`, `1e3`), `'…'`/`"…"` strings
//!   (escapes `\\ \' \" \n \t \r`), names, parentheses, unary `-`/`+`, and `+ - * / // %` with
//!   jinja's precedence and Python's semantics (`/` gives a float, `//` and `%` floor);
//! - calls of a *callable template* (a template whose text has `{{`) with keyword arguments,
//!   `f(c='text')`; the body sees only its arguments, as in fsspec.
//!
//! Integers are 64-bit (Python's are unbounded; an overflow is an error), floats print as Python's
//! `repr`. Anything else — `{% %}` blocks, `{# #}` comments, whitespace control (`{{-`), filters
//! (`|`), attributes, subscripts, comparisons, `and`/`or`/`not`, `**`, `~`, positional arguments,
//! hex/octal literals — is rejected when the template is parsed, as is an undefined name (jinja
//! would print it as an empty string, which only hides a typo).

use std::fmt::Write as _;

use super::json::python_float;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Val {
    /// Appends the value as jinja prints it (Python's `str`).
    pub(crate) fn render(&self, out: &mut String) {
        match self {
            Self::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Float(x) => out.push_str(&python_float(*x)),
            Self::Str(s) => out.push_str(s),
        }
    }

    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        self.render(&mut out);
        out
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unary {
    Neg,
    Pos,
}

/// An expression. `Name` and `CallName` exist only between parsing and [`Expr::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(Val),
    /// The variable with this index in the evaluation environment.
    Var(usize),
    Name(String),
    Unary(Unary, Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    CallName(String, Vec<(String, Expr)>),
    /// A callable template's body (its `Var(i)` is `args[i]`) and the arguments.
    Call(Box<Template>, Vec<Expr>),
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Lit(String),
    Expr(Expr),
}

/// A parsed template: literal text and expressions.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Template {
    pub(crate) parts: Vec<Part>,
}

/// A template from the `templates` member.
#[derive(Debug, Clone)]
enum Def {
    /// No `{{`: inserted as is.
    Plain(String),
    /// Has `{{`: a function of keyword arguments. Parse errors surface when it is used, as in
    /// fsspec, which compiles it on call.
    Callable(Result<Template, String>),
}

/// The `templates` member, classified the way fsspec's `_process_templates` does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Templates {
    defs: Vec<(String, Def)>,
}

impl Templates {
    /// Classifies `(name, text)` pairs; a later duplicate name replaces an earlier one.
    pub(crate) fn new(pairs: Vec<(String, String)>) -> Self {
        let mut defs: Vec<(String, Def)> = Vec::with_capacity(pairs.len());
        for (name, text) in pairs {
            let def = if text.contains("{{") {
                Def::Callable(Template::parse(&text))
            } else {
                Def::Plain(text)
            };
            match defs.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = def,
                None => defs.push((name, def)),
            }
        }
        Self { defs }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&Def> {
        self.defs.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }
}

/// What names mean while resolving: variables by index, then templates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) vars: &'a [String],
    pub(crate) templates: Option<&'a Templates>,
}

impl Template {
    /// Parses jinja template text (see the module docs for the subset).
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        let mut text = source.replace("\r\n", "\n").replace('\r', "\n");
        if text.ends_with('\n') {
            text.pop();
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find('{') {
            let after = &rest[i + 1..];
            match after.chars().next() {
                Some('{') => {
                    literal.push_str(&rest[..i]);
                    let inner = &after[1..];
                    if inner.starts_with(['-', '+']) {
                        return Err("whitespace control ({{- or {{+) is not supported".into());
                    }
                    let (expr, remaining) = parse_block(inner)?;
                    if !literal.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Expr(expr));
                    rest = remaining;
                }
                Some('%') => return Err("jinja statements ({% … %}) are not supported".into()),
                Some('#') => return Err("jinja comments ({# … #}) are not supported".into()),
                _ => {
                    literal.push_str(&rest[..=i]);
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Lit(literal));
        }
        Ok(Self { parts })
    }

    /// Binds names (see [`Expr::resolve`]) and folds everything constant into literal text.
    pub(crate) fn resolve(self, scope: Scope<'_>) -> Result<Self, String> {
        let mut parts: Vec<Part> = Vec::with_capacity(self.parts.len());
        for part in self.parts {
            let part = match part {
                Part::Lit(s) => Part::Lit(s),
                Part::Expr(e) => match e.resolve(scope)?.fold()? {
                    Expr::Const(v) => Part::Lit(v.to_text()),
                    e => Part::Expr(e),
                },
            };
            match (parts.last_mut(), part) {
                (Some(Part::Lit(previous)), Part::Lit(s)) => previous.push_str(&s),
                (_, Part::Lit(s)) if s.is_empty() => {}
                (_, part) => parts.push(part),
            }
        }
        Ok(Self { parts })
    }

    /// The text when the template is constant (after [`Template::resolve`]).
    pub(crate) fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Renders with `env` as the variables.
    pub(crate) fn render(&self, env: &[Val], out: &mut String) -> Result<(), String> {
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Expr(e) => e.eval(env)?.render(out),
            }
        }
        Ok(())
    }

    pub(crate) fn render_string(&self, env: &[Val]) -> Result<String, String> {
        let mut out = String::new();
        self.render(env, &mut out)?;
        Ok(out)
    }

    /// Checks every expression against the variables' shapes (see [`Expr::shape`]).
    pub(crate) fn check(&self, vars: &[Shape]) -> Result<(), String> {
        for part in &self.parts {
            if let Part::Expr(e) = part {
                e.shape(vars)?;
            }
        }
        Ok(())
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Lit(s) => s.capacity(),
                Part::Expr(_) => 64,
            })
            .sum::<usize>()
            + self.parts.capacity() * std::mem::size_of::<Part>()
    }
}

impl Expr {
    /// Binds `Name`s to variables (by index) or plain templates, and calls to callable
    /// templates. Undefined names are errors.
    pub(crate) fn resolve(self, scope: Scope<'_>) -> Result<Self, String> {
        Ok(match self {
            Self::Name(name) => {
                if let Some(i) = scope.vars.iter().position(|v| *v == name) {
                    Self::Var(i)
                } else {
                    match scope.templates.and_then(|t| t.get(&name)) {
                        Some(Def::Plain(text)) => Self::Const(Val::Str(text.clone())),
                        Some(Def::Callable(_)) => {
                            return Err(format!(
                                "template {name:?} has {{{{ }}}} and so is a function: call it as {name}(arg=value)"
                            ))
                        }
                        None => return Err(format!("{name:?} is not defined")),
                    }
                }
            }
            Self::CallName(name, args) => {
                let body = match scope.templates.and_then(|t| t.get(&name)) {
                    Some(Def::Callable(Ok(body))) => body.clone(),
                    Some(Def::Callable(Err(e))) => {
                        return Err(format!("template {name:?}: {e}"));
                    }
                    Some(Def::Plain(_)) => {
                        return Err(format!(
                            "template {name:?} has no {{{{ }}}} and so cannot be called"
                        ))
                    }
                    None if scope.vars.contains(&name) => {
                        return Err(format!("{name:?} is a variable and cannot be called"))
                    }
                    None => return Err(format!("{name:?} is not defined")),
                };
                let (names, values): (Vec<String>, Vec<Expr>) = args.into_iter().unzip();
                let body_scope = Scope {
                    vars: &names,
                    templates: None,
                };
                let body = body
                    .resolve(body_scope)
                    .map_err(|e| format!("in template {name:?}: {e}"))?;
                let values = values
                    .into_iter()
                    .map(|v| v.resolve(scope))
                    .collect::<Result<_, _>>()?;
                Self::Call(Box::new(body), values)
            }
            Self::Unary(op, a) => Self::Unary(op, Box::new(a.resolve(scope)?)),
            Self::Bin(op, a, b) => {
                Self::Bin(op, Box::new(a.resolve(scope)?), Box::new(b.resolve(scope)?))
            }
            Self::Call(body, args) => Self::Call(
                body,
                args.into_iter()
                    .map(|a| a.resolve(scope))
                    .collect::<Result<_, _>>()?,
            ),
            e @ (Self::Const(_) | Self::Var(_)) => e,
        })
    }

    /// Evaluates every sub-expression without variables (errors such as a division by zero
    /// surface here, at load).
    pub(crate) fn fold(self) -> Result<Self, String> {
        let folded = match self {
            Self::Unary(op, a) => Self::Unary(op, Box::new(a.fold()?)),
            Self::Bin(op, a, b) => Self::Bin(op, Box::new(a.fold()?), Box::new(b.fold()?)),
            Self::Call(body, args) => Self::Call(
                body,
                args.into_iter().map(Self::fold).collect::<Result<_, _>>()?,
            ),
            e => return Ok(e),
        };
        let constant = match &folded {
            Self::Unary(_, a) => matches!(**a, Self::Const(_)),
            Self::Bin(_, a, b) => matches!(**a, Self::Const(_)) && matches!(**b, Self::Const(_)),
            Self::Call(_, args) => args.iter().all(|a| matches!(a, Self::Const(_))),
            _ => false,
        };
        if constant {
            Ok(Self::Const(folded.eval(&[])?))
        } else {
            Ok(folded)
        }
    }

    /// Evaluates with `env` as the variables.
    pub(crate) fn eval(&self, env: &[Val]) -> Result<Val, String> {
        match self {
            Self::Const(v) => Ok(v.clone()),
            Self::Var(i) => env
                .get(*i)
                .cloned()
                .ok_or_else(|| "variable out of range".to_owned()),
            Self::Unary(op, a) => unary(*op, a.eval(env)?),
            Self::Bin(op, a, b) => binary(*op, a.eval(env)?, b.eval(env)?),
            Self::Call(body, args) => {
                let values = args
                    .iter()
                    .map(|a| a.eval(env))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Val::Str(body.render_string(&values)?))
            }
            Self::Name(n) | Self::CallName(n, _) => Err(format!("{n:?} was not resolved")),
        }
    }

    /// The variables this expression reads, each once, in first-use order.
    pub(crate) fn vars(&self, out: &mut Vec<usize>) {
        match self {
            Self::Var(i) if !out.contains(i) => out.push(*i),
            Self::Unary(_, a) => a.vars(out),
            Self::Bin(_, a, b) => {
                a.vars(out);
                b.vars(out);
            }
            Self::Call(_, args) => args.iter().for_each(|a| a.vars(out)),
            _ => {}
        }
    }

    /// Which values the expression can take given its variables' shapes; an error when some
    /// combination fails (string arithmetic, a divisor range that holds zero, 64-bit overflow).
    pub(crate) fn shape(&self, vars: &[Shape]) -> Result<Shape, String> {
        match self {
            Self::Const(v) => Ok(Shape::of(v)),
            Self::Var(i) => vars
                .get(*i)
                .copied()
                .ok_or_else(|| "variable out of range".to_owned()),
            Self::Unary(op, a) => {
                let a = a.shape(vars)?;
                a.numeric(match op {
                    Unary::Neg => "-",
                    Unary::Pos => "+",
                })?;
                Ok(match op {
                    Unary::Pos => a,
                    Unary::Neg => Shape {
                        int: a.int.map(|(lo, hi)| (-hi, -lo)).map(fit).transpose()?,
                        float: a.float.map(|(lo, hi)| (-hi, -lo)),
                        string: false,
                    },
                })
            }
            Self::Bin(op, a, b) => binary_shape(*op, a.shape(vars)?, b.shape(vars)?),
            Self::Call(body, args) => {
                let args = args
                    .iter()
                    .map(|a| a.shape(vars))
                    .collect::<Result<Vec<_>, _>>()?;
                body.check(&args)?;
                Ok(Shape {
                    int: None,
                    float: None,
                    string: true,
                })
            }
            Self::Name(n) | Self::CallName(n, _) => Err(format!("{n:?} was not resolved")),
        }
    }

    /// How the expression moves with its one variable (it must have at most one).
    pub(crate) fn mono(&self) -> Mono {
        match self {
            Self::Const(_) => Mono::Const,
            Self::Var(_) => Mono::Inc,
            Self::Unary(Unary::Neg, a) => a.mono().flip(),
            Self::Unary(Unary::Pos, a) => a.mono(),
            Self::Bin(op, a, b) => {
                let (ma, mb) = (a.mono(), b.mono());
                match op {
                    Op::Add => ma.add(mb),
                    Op::Sub => ma.add(mb.flip()),
                    Op::Mul => match (&**a, &**b) {
                        (Self::Const(c), _) => mb.scale(sign(c)),
                        (_, Self::Const(c)) => ma.scale(sign(c)),
                        _ => Mono::Unknown,
                    },
                    Op::Div | Op::FloorDiv => match &**b {
                        Self::Const(c) => ma.scale(sign(c)),
                        _ => Mono::Unknown,
                    },
                    Op::Mod => Mono::Unknown,
                }
            }
            Self::Call(..) | Self::Name(_) | Self::CallName(..) => Mono::Unknown,
        }
    }
}

/// Direction of an expression in its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mono {
    Const,
    /// Non-decreasing.
    Inc,
    /// Non-increasing.
    Dec,
    Unknown,
}

impl Mono {
    fn flip(self) -> Self {
        match self {
            Self::Inc => Self::Dec,
            Self::Dec => Self::Inc,
            m => m,
        }
    }
    fn add(self, other: Self) -> Self {
        match (self, other) {
            (Self::Const, m) | (m, Self::Const) => m,
            (a, b) if a == b => a,
            _ => Self::Unknown,
        }
    }
    fn scale(self, sign: i8) -> Self {
        match sign {
            0 => Self::Const,
            s if s > 0 => self,
            _ => self.flip(),
        }
    }
}

fn sign(v: &Val) -> i8 {
    match v {
        Val::Int(n) if *n > 0 => 1,
        Val::Int(n) if *n < 0 => -1,
        Val::Float(x) if *x > 0.0 => 1,
        Val::Float(x) if *x < 0.0 => -1,
        _ => 0,
    }
}

/// The values an expression can take: an integer interval, a float interval, and/or strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    pub(crate) int: Option<(i128, i128)>,
    pub(crate) float: Option<(f64, f64)>,
    pub(crate) string: bool,
}

impl Shape {
    pub(crate) const NONE: Self = Self {
        int: None,
        float: None,
        string: false,
    };

    pub(crate) fn of(v: &Val) -> Self {
        match v {
            Val::Int(n) => Self {
                int: Some((i128::from(*n), i128::from(*n))),
                ..Self::NONE
            },
            Val::Float(x) => Self {
                float: Some((*x, *x)),
                ..Self::NONE
            },
            Val::Str(_) => Self {
                string: true,
                ..Self::NONE
            },
        }
    }

    /// The union of two shapes.
    pub(crate) fn join(self, other: Self) -> Self {
        Self {
            int: union(self.int, other.int, Ord::min, Ord::max),
            float: union(self.float, other.float, f64::min, f64::max),
            string: self.string || other.string,
        }
    }

    fn numeric(&self, op: &str) -> Result<(), String> {
        if self.string {
            Err(format!("a string may be an operand of {op}"))
        } else {
            Ok(())
        }
    }

    /// Every numeric value as a float interval.
    #[allow(clippy::cast_precision_loss)] // as Python converts int to float
    fn as_float(&self) -> Option<(f64, f64)> {
        let int = self.int.map(|(lo, hi)| (lo as f64, hi as f64));
        union(int, self.float, f64::min, f64::max)
    }

    fn may_be_zero(&self) -> bool {
        self.as_float()
            .is_some_and(|(lo, hi)| !(lo > 0.0 || hi < 0.0))
    }
}

fn union<T: Copy>(
    a: Option<(T, T)>,
    b: Option<(T, T)>,
    min: fn(T, T) -> T,
    max: fn(T, T) -> T,
) -> Option<(T, T)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((min(a0, b0), max(a1, b1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Rejects an integer interval that leaves 64 bits.
fn fit((lo, hi): (i128, i128)) -> Result<(i128, i128), String> {
    if lo < i128::from(i64::MIN) || hi > i128::from(i64::MAX) {
        Err("may overflow a 64-bit integer".into())
    } else {
        Ok((lo, hi))
    }
}

fn corners_int(
    (a0, a1): (i128, i128),
    (b0, b1): (i128, i128),
    f: impl Fn(i128, i128) -> Option<i128>,
) -> Result<(i128, i128), String> {
    let c = [f(a0, b0), f(a0, b1), f(a1, b0), f(a1, b1)];
    let mut lo = i128::MAX;
    let mut hi = i128::MIN;
    for v in c {
        let v = v.ok_or_else(|| "may overflow a 64-bit integer".to_owned())?;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    fit((lo, hi))
}

fn corners_float((a0, a1): (f64, f64), (b0, b1): (f64, f64), f: fn(f64, f64) -> f64) -> (f64, f64) {
    let c = [f(a0, b0), f(a0, b1), f(a1, b0), f(a1, b1)];
    if c.iter().any(|v| v.is_nan()) {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    let lo = c.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

type IntOp = fn(i128, i128) -> Option<i128>;
type FloatOp = fn(f64, f64) -> f64;

fn binary_shape(op: Op, a: Shape, b: Shape) -> Result<Shape, String> {
    let symbol = match op {
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mul => "*",
        Op::Div => "/",
        Op::FloorDiv => "//",
        Op::Mod => "%",
    };
    a.numeric(symbol)?;
    b.numeric(symbol)?;
    if matches!(op, Op::Div | Op::FloorDiv | Op::Mod) && b.may_be_zero() {
        return Err(format!("the right operand of {symbol} may be zero"));
    }
    let any_float = a.float.is_some() || b.float.is_some();
    let (af, bf) = (a.as_float(), b.as_float());
    let float = |f: fn(f64, f64) -> f64| match (af, bf) {
        (Some(x), Some(y)) => Some(corners_float(x, y, f)),
        _ => None,
    };
    let ints = match (a.int, b.int) {
        (Some(x), Some(y)) => Some((x, y)),
        _ => None,
    };
    Ok(match op {
        Op::Add | Op::Sub | Op::Mul => {
            let (fi, ff): (IntOp, FloatOp) = match op {
                Op::Add => (i128::checked_add, |x, y| x + y),
                Op::Sub => (i128::checked_sub, |x, y| x - y),
                _ => (i128::checked_mul, |x, y| x * y),
            };
            Shape {
                int: ints.map(|(x, y)| corners_int(x, y, fi)).transpose()?,
                float: if any_float { float(ff) } else { None },
                string: false,
            }
        }
        Op::Div => Shape {
            float: float(|x, y| x / y),
            ..Shape::NONE
        },
        Op::FloorDiv => Shape {
            int: ints
                .map(|(x, y)| corners_int(x, y, floor_div))
                .transpose()?,
            float: if any_float {
                float(|x, y| (x / y).floor())
            } else {
                None
            },
            string: false,
        },
        Op::Mod => {
            let int = ints.map(|(_, (d0, d1))| if d0 > 0 { (0, d1 - 1) } else { (d0 + 1, 0) });
            let float = if any_float {
                bf.map(|(d0, d1)| {
                    let m = d0.abs().max(d1.abs());
                    if d0 > 0.0 {
                        (0.0, m)
                    } else {
                        (-m, 0.0)
                    }
                })
            } else {
                None
            };
            Shape {
                int,
                float,
                string: false,
            }
        }
    })
}

/// Python's `//` on integers; `None` for a zero divisor or an overflow.
fn floor_div(p: i128, q: i128) -> Option<i128> {
    let d = p.checked_div(q)?;
    if p % q != 0 && ((p < 0) != (q < 0)) {
        Some(d - 1)
    } else {
        Some(d)
    }
}

fn unary(op: Unary, v: Val) -> Result<Val, String> {
    match (op, v) {
        (_, Val::Str(_)) => Err("a string cannot be negated".into()),
        (Unary::Pos, v) => Ok(v),
        (Unary::Neg, Val::Int(n)) => n
            .checked_neg()
            .map(Val::Int)
            .ok_or_else(|| "integer overflow".into()),
        (Unary::Neg, Val::Float(x)) => Ok(Val::Float(-x)),
    }
}

/// Python's arithmetic on ints (64-bit, overflow is an error) and floats.
#[allow(clippy::cast_precision_loss)] // int / int is a float in Python too
pub(crate) fn binary(op: Op, left: Val, right: Val) -> Result<Val, String> {
    let overflow = || "integer overflow".to_owned();
    let zero = || "division by zero".to_owned();
    match (left, right) {
        (Val::Str(_), _) | (_, Val::Str(_)) => Err("arithmetic on a string".into()),
        (Val::Int(x), Val::Int(y)) => match op {
            Op::Add => x.checked_add(y).map(Val::Int).ok_or_else(overflow),
            Op::Sub => x.checked_sub(y).map(Val::Int).ok_or_else(overflow),
            Op::Mul => x.checked_mul(y).map(Val::Int).ok_or_else(overflow),
            Op::Div | Op::FloorDiv | Op::Mod if y == 0 => Err(zero()),
            Op::Div => Ok(Val::Float(x as f64 / y as f64)),
            Op::FloorDiv => {
                let quotient = x.checked_div(y).ok_or_else(overflow)?;
                let adjust = x % y != 0 && ((x < 0) != (y < 0));
                Ok(Val::Int(if adjust { quotient - 1 } else { quotient }))
            }
            Op::Mod => {
                let rem = x.checked_rem(y).ok_or_else(overflow)?;
                let adjust = rem != 0 && ((rem < 0) != (y < 0));
                Ok(Val::Int(if adjust { rem + y } else { rem }))
            }
        },
        (left, right) => {
            let x = as_f64(&left);
            let y = as_f64(&right);
            Ok(Val::Float(match op {
                Op::Add => x + y,
                Op::Sub => x - y,
                Op::Mul => x * y,
                Op::Div | Op::FloorDiv | Op::Mod if y == 0.0 => return Err(zero()),
                Op::Div => x / y,
                Op::FloorDiv => python_float_floordiv(x, y),
                Op::Mod => python_float_mod(x, y),
            }))
        }
    }
}

#[allow(clippy::cast_precision_loss)] // as Python converts int to float
fn as_f64(v: &Val) -> f64 {
    match v {
        Val::Int(n) => *n as f64,
        Val::Float(x) => *x,
        Val::Str(_) => f64::NAN,
    }
}

/// Python's `float % float`: the result has the divisor's sign.
fn python_float_mod(x: f64, y: f64) -> f64 {
    let m = x % y;
    if m == 0.0 {
        0.0_f64.copysign(y)
    } else if (m < 0.0) != (y < 0.0) {
        m + y
    } else {
        m
    }
}

/// Python's `float // float` (`CPython`'s `float_floor_div`).
fn python_float_floordiv(x: f64, y: f64) -> f64 {
    let m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 && ((y < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div == 0.0 {
        0.0_f64.copysign(x / y)
    } else {
        let floor = div.floor();
        if div - floor > 0.5 {
            floor + 1.0
        } else {
            floor
        }
    }
}

/// Parses the text Python's `str(int)` gives: `-?(0|[1-9][0-9]*)`, in 64 bits.
pub(crate) fn parse_canonical_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// Python's `int(text)` for a string: surrounding whitespace, a sign, digits with single
/// underscores between them, leading zeros allowed.
pub(crate) fn python_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let value: i128 = clean.parse().ok()?;
    Some(if negative { -value } else { value })
}

// ----- lexer and parser -----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    Op(&'static str),
    End,
}

const KEYWORDS: [&str; 15] = [
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "else",
    "elif",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
    "recursive",
];

/// Lexes and parses one `{{ … }}` block; `src` starts just after `{{`. Returns the expression
/// and the text after `}}`.
fn parse_block(src: &str) -> Result<(Expr, &str), String> {
    let (tokens, rest) = lex(src)?;
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.additive()?;
    match parser.next() {
        Tok::End => Ok((expr, rest)),
        t => Err(format!("expected }}}} but found {}", describe(&t))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(n) => format!("{n}"),
        Tok::Float(x) => python_float(*x),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Name(n) => n.clone(),
        Tok::Op(o) => format!("'{o}'"),
        Tok::End => "}}".into(),
    }
}

/// The most tokens in one `{{ }}` block: bounds the expression's depth, so evaluating and
/// dropping it cannot exhaust the (small, in wasm) stack.
const MAX_TOKENS: usize = 256;

fn lex(src: &str) -> Result<(Vec<Tok>, &str), String> {
    let mut tokens = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    loop {
        if tokens.len() > MAX_TOKENS {
            return Err(format!(
                "a {{{{ }}}} block has more than {MAX_TOKENS} tokens"
            ));
        }
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let Some(&c) = bytes.get(i) else {
            return Err("unclosed {{ (no }})".into());
        };
        let rest = &src[i..];
        if rest.starts_with("}}") {
            tokens.push(Tok::End);
            return Ok((tokens, &src[i + 2..]));
        }
        if c.is_ascii_digit() {
            let (tok, len) = lex_number(rest)?;
            tokens.push(tok);
            i += len;
        } else if c == b'\'' || c == b'"' {
            let (s, len) = lex_string(rest)?;
            tokens.push(Tok::Str(s));
            i += len;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = &rest[..len];
            if KEYWORDS.contains(&name) {
                return Err(format!("jinja keyword {name:?} is not supported"));
            }
            tokens.push(Tok::Name(name.to_owned()));
            i += len;
        } else {
            let op = ["//", "+", "-", "*", "/", "%", "(", ")", ",", "="]
                .into_iter()
                .find(|op| rest.starts_with(op));
            let unsupported = ["**", "==", "!=", "<", ">", "|", "~", ".", "[", "{", "!"]
                .into_iter()
                .find(|op| rest.starts_with(op));
            match (unsupported, op) {
                (Some(bad), _) => return Err(format!("operator '{bad}' is not supported")),
                (None, Some(op)) => {
                    tokens.push(Tok::Op(op));
                    i += op.len();
                }
                (None, None) => {
                    let ch = rest.chars().next().unwrap_or(' ');
                    return Err(format!("unexpected character {ch:?} in {{{{ }}}}"));
                }
            }
        }
    }
}

/// Digits with single underscores between them, at the start of `s`; returns the length.
fn digits_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let digit = b[i].is_ascii_digit();
        let separator = b[i] == b'_' && i > 0 && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if digit || separator {
            i += 1;
        } else {
            break;
        }
    }
    i
}

fn lex_number(s: &str) -> Result<(Tok, usize), String> {
    let b = s.as_bytes();
    let int_len = digits_len(s);
    let mut len = int_len;
    let mut is_float = false;
    if b.get(len) == Some(&b'.') && b.get(len + 1).is_some_and(u8::is_ascii_digit) {
        len += 1 + digits_len(&s[len + 1..]);
        is_float = true;
    }
    if matches!(b.get(len), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(len + 1), Some(b'+' | b'-')));
        let exp = digits_len(&s[len + 1 + sign..]);
        if exp > 0 {
            len += 1 + sign + exp;
            is_float = true;
        }
    }
    if b.get(len)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return Err(format!(
            "number {:?} followed by {:?}: hex, octal and binary literals are not supported",
            &s[..len],
            char::from(b.get(len).copied().unwrap_or(b' '))
        ));
    }
    let text: String = s[..len].chars().filter(|c| *c != '_').collect();
    if is_float {
        let x: f64 = text
            .parse()
            .map_err(|_| format!("bad number {:?}", &s[..len]))?;
        Ok((Tok::Float(x), len))
    } else {
        if text.len() > 1 && text.starts_with('0') && text.bytes().any(|d| d != b'0') {
            return Err(format!(
                "integer {:?} has leading zeros (hex, octal and binary are not supported)",
                &s[..len]
            ));
        }
        let n: i64 = text
            .parse()
            .map_err(|_| format!("integer {:?} does not fit in 64 bits", &s[..len]))?;
        Ok((Tok::Int(n), len))
    }
}

fn lex_string(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    let Some((_, quote)) = chars.next() else {
        return Err("empty string literal".into());
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, i + c.len_utf8())),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('\\') => out.push('\\'),
                Some('\'') => out.push('\''),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                other => {
                    return Err(format!(
                        "string escape \\{} is not supported",
                        other.unwrap_or(' ')
                    ))
                }
            },
            c => out.push(c),
        }
    }
    Err("unterminated string literal".into())
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).unwrap_or(&Tok::End)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Tok::Op(o) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat("+") {
                Op::Add
            } else if self.eat("-") {
                Op::Sub
            } else {
                return Ok(left);
            };
            let right = self.multiplicative()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                Op::Mul
            } else if self.eat("//") {
                Op::FloorDiv
            } else if self.eat("/") {
                Op::Div
            } else if self.eat("%") {
                Op::Mod
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            Ok(Expr::Unary(Unary::Neg, Box::new(self.unary()?)))
        } else if self.eat("+") {
            Ok(Expr::Unary(Unary::Pos, Box::new(self.unary()?)))
        } else {
            self.primary()
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let expr = match self.next() {
            Tok::Int(n) => Expr::Const(Val::Int(n)),
            Tok::Float(x) => Expr::Const(Val::Float(x)),
            Tok::Str(s) => Expr::Const(Val::Str(s)),
            Tok::Name(name) if self.eat("(") => Expr::CallName(name, self.arguments()?),
            Tok::Name(name) => Expr::Name(name),
            Tok::Op("(") => {
                let inner = self.additive()?;
                if !self.eat(")") {
                    return Err(format!("expected ')' but found {}", describe(self.peek())));
                }
                inner
            }
            t => return Err(format!("expected a value but found {}", describe(&t))),
        };
        if matches!(self.peek(), Tok::Op("(")) {
            return Err("only a template name can be called".into());
        }
        Ok(expr)
    }

    /// `name=expr, …)` after the `(`.
    fn arguments(&mut self) -> Result<Vec<(String, Expr)>, String> {
        let mut args: Vec<(String, Expr)> = Vec::new();
        loop {
            if self.eat(")") {
                return Ok(args);
            }
            let Tok::Name(name) = self.next() else {
                return Err("template calls take keyword arguments only (name=value)".into());
            };
            if !self.eat("=") {
                return Err("template calls take keyword arguments only (name=value)".into());
            }
            if args.iter().any(|(n, _)| *n == name) {
                return Err(format!("argument {name:?} given twice"));
            }
            let value = self.additive()?;
            args.push((name, value));
            if !self.eat(",") && !matches!(self.peek(), Tok::Op(")")) {
                return Err(format!(
                    "expected ',' or ')' but found {}",
                    describe(self.peek())
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(
        src: &str,
        names: &[&str],
        env: &[Val],
        templates: &Templates,
    ) -> Result<String, String> {
        let vars: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let t = Template::parse(src)?.resolve(Scope {
            vars: &vars,
            templates: Some(templates),
        })?;
        t.render_string(env)
    }

    /// Expressions render as jinja2 renders them (values checked against jinja2 3.1).
    #[test]
    fn renders_like_jinja() {
        let none = Templates::default();
        let cases = [
            ("{{7/2}}", "3.5"),
            ("{{4/2}}", "2.0"),
            ("{{ -7//2 }}", "-4"),
            ("{{ -7%3 }}", "2"),
            ("{{ 7%-3 }}", "-2"),
            ("{{ 7.5 // 2 }}", "3.0"),
            ("{{ -7.5 % 2 }}", "0.5"),
            ("{{1e16}}", "1e+16"),
            ("{{0.1+0.2}}", "0.30000000000000004"),
            ("{{ 1_000 }}", "1000"),
            ("{{ 10 / 4 * 2 }}", "5.0"),
            ("{{ 1 - -1 }}", "2"),
            ("{{ 2 + 3 * 4 - (1 + 1) }}", "12"),
            ("{{ 1e3 }}", "1000.0"),
            ("{{ 'a}}b' }}", "a}}b"),
            ("a{b}c}}", "a{b}c}}"),
            ("line\r\nnext\n", "line\nnext"),
            ("{{ 00 }}", "0"),
        ];
        for (src, want) in cases {
            assert_eq!(render(src, &[], &[], &none).as_deref(), Ok(want), "{src}");
        }
    }

    /// Names bind to variables, plain templates and callable templates with keyword arguments.
    #[test]
    fn names_and_callable_templates() {
        let templates = Templates::new(vec![
            ("u".into(), "server.domain/path".into()),
            ("f".into(), "{{c}}".into()),
            ("g".into(), "{{ a }}-{{ b * 2 }}".into()),
        ]);
        let env = [Val::Int(3)];
        assert_eq!(
            render("http://{{u}}_{{i}}", &["i"], &env, &templates).unwrap(),
            "http://server.domain/path_3"
        );
        assert_eq!(
            render("http://{{f(c='text')}}", &[], &[], &templates).unwrap(),
            "http://text"
        );
        assert_eq!(
            render("{{ g(a=u, b=i + 1,) }}", &["i"], &env, &templates).unwrap(),
            "server.domain/path-8"
        );
    }

    /// Unsupported jinja and undefined names are rejected with a message saying what.
    #[test]
    fn rejects_unsupported_jinja() {
        let templates = Templates::new(vec![
            ("f".into(), "{{c}}".into()),
            ("p".into(), "plain".into()),
            ("bad".into(), "{{ 1 +".into()),
        ]);
        let cases = [
            ("{% if x %}", "statements"),
            ("{# c #}", "comments"),
            ("{{- x }}", "whitespace control"),
            ("{{ x }}", "\"x\" is not defined"),
            ("{{ 2 ** 3 }}", "'**'"),
            ("{{ x|upper }}", "'|'"),
            ("{{ a.b }}", "'.'"),
            ("{{ 'a' ~ 1 }}", "'~'"),
            ("{{ true }}", "keyword"),
            ("{{ 0x1f }}", "hex"),
            ("{{ 007 }}", "leading zeros"),
            ("{{ 1 ", "unclosed"),
            ("{{ 1 2 }}", "expected }}"),
            ("{{ f }}", "is a function"),
            ("{{ f('x') }}", "keyword arguments"),
            ("{{ f(d=1) }}", "\"c\" is not defined"),
            ("{{ p() }}", "cannot be called"),
            ("{{ bad(x=1) }}", "template \"bad\""),
            ("{{ 1 / 0 }}", "division by zero"),
            ("{{ 'a' * 2 }}", "string"),
            ("{{ 9223372036854775807 + 1 }}", "overflow"),
            ("{{ (1)(2) }}", "only a template name"),
            ("{{ 'a\\x' }}", "escape"),
            (
                &format!("{{{{ {}1 }}}}", "(".repeat(300)),
                "more than 256 tokens",
            ),
        ];
        for (src, want) in cases {
            let error = render(src, &[], &[], &templates).unwrap_err();
            assert!(error.contains(want), "{src}: {error}");
        }
    }

    /// Shapes bound the values and catch failures before any lookup.
    #[test]
    fn shapes_catch_runtime_failures() {
        let range = Shape {
            int: Some((0, 9)),
            ..Shape::NONE
        };
        let shape = |src: &str| {
            let vars = vec!["i".to_owned()];
            let t = Template::parse(src).unwrap().resolve(Scope {
                vars: &vars,
                templates: None,
            })?;
            let [Part::Expr(e)] = t.parts.as_slice() else {
                panic!("{src}")
            };
            e.shape(&[range])
        };
        assert_eq!(shape("{{ 64 + i * 16 }}").unwrap().int, Some((64, 208)));
        assert_eq!(shape("{{ (i - 10) // 3 }}").unwrap().int, Some((-4, -1)));
        assert_eq!(shape("{{ i % 4 }}").unwrap().int, Some((0, 3)));
        assert_eq!(shape("{{ i / 2 }}").unwrap().float, Some((0.0, 4.5)));
        assert!(shape("{{ 10 // i }}").unwrap_err().contains("zero"));
        assert!(shape("{{ i * 4611686018427387904 }}")
            .unwrap_err()
            .contains("overflow"));
    }

    /// Monotonicity is found for sums, scaling and floor division by constants.
    #[test]
    fn monotonicity() {
        let mono = |src: &str| {
            let vars = vec!["i".to_owned()];
            let t = Template::parse(src)
                .unwrap()
                .resolve(Scope {
                    vars: &vars,
                    templates: None,
                })
                .unwrap();
            let [Part::Expr(e)] = t.parts.as_slice() else {
                panic!("{src}")
            };
            e.mono()
        };
        assert_eq!(mono("{{ i }}"), Mono::Inc);
        assert_eq!(mono("{{ (i - 1990) // 10 }}"), Mono::Inc);
        assert_eq!(mono("{{ 100 - 2 * i }}"), Mono::Dec);
        assert_eq!(mono("{{ -i / -3 }}"), Mono::Inc);
        assert_eq!(mono("{{ i % 3 }}"), Mono::Unknown);
        assert_eq!(mono("{{ i * i }}"), Mono::Unknown);
        assert_eq!(mono("{{ i * 0 }}"), Mono::Const);
    }

    /// Integer text parsing matches Python's `str(int)` and `int(str)`.
    #[test]
    fn integer_text() {
        assert_eq!(parse_canonical_int("-12"), Some(-12));
        assert_eq!(parse_canonical_int("0"), Some(0));
        for bad in ["", "-", "-0", "012", "+1", "1_0", " 1", "1.0"] {
            assert_eq!(parse_canonical_int(bad), None, "{bad}");
        }
        assert_eq!(python_int(" 1_000\n"), Some(1000));
        assert_eq!(python_int("+007"), Some(7));
        assert_eq!(python_int("-5"), Some(-5));
        for bad in ["", "1__0", "_1", "1_", "1.0", "0x10", "ten"] {
            assert_eq!(python_int(bad), None, "{bad}");
        }
    }
}
