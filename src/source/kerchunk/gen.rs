//! `gen`: references generated from templates over the cartesian product of dimensions, kept
//! lazy. A pattern is never expanded; a lookup inverts its key template instead.
//!
//! fsspec (`_process_gen`) renders `key`, `url`, `offset` and `length` with jinja for every
//! combination of dimension values (the product in the order the dimensions are listed, the last
//! one varying fastest) and stores `[url, offset, length]`, or `[url]` without offset and length.
//! A later combination overwrites an earlier one with the same key.
//!
//! Inverting a key: the key template is literal text and `{{ }}` blocks; the literals are matched
//! against the key (trying every split when a literal occurs more than once), and each block's
//! text is solved for its dimension:
//! - over a `{start, stop, step}` range, an expression that is monotonic in its dimension (the
//!   bare name, or `+ - *` with constants, `/ //` by constants) is solved by binary search over
//!   the range, so a range of any size costs O(log n);
//! - over a list, or a range of at most [`TABLE_LIMIT`] values with any other expression (`%`,
//!   a callable template), a table from rendered text to value indices is built at load.
//!
//! Dimensions that the key does not use take their last value (the last combination wins), and
//! among several matching combinations the last in product order wins, as in fsspec.
//!
//! Rejected at load: a block that uses two dimensions, two blocks with no literal text between
//! them, a non-monotonic expression over a range larger than [`TABLE_LIMIT`], and any expression
//! that could fail for some combination (string arithmetic, a possible division by zero, 64-bit
//! overflow, a negative or non-integer `offset`/`length`).

use std::cmp::Ordering::{Greater, Less};
use std::collections::HashMap;

use super::error::{LoadError, Place, Problem};
use super::jinja::{self, Expr, Mono, Part, Scope, Shape, Template, Templates, Val};
use super::json::Json;
use super::url::Resolver;

/// The largest range inverted through a table rather than by binary search.
pub(crate) const TABLE_LIMIT: u64 = 1 << 16;

/// How many candidate splits one lookup may try before giving up on a pathological key.
const SPLIT_BUDGET: u32 = 10_000;

/// The most literal and `{{ }}` parts in a key template (matching recurses once per part).
const MAX_KEY_PARTS: usize = 256;

/// One `gen` entry, ready for lookups.
#[derive(Debug)]
pub(crate) struct Pattern {
    key_source: String,
    key: Vec<KeyPart>,
    url: Template,
    range: Option<(Num, Num)>,
    dims: Vec<Dim>,
    /// The number of combinations (saturating); 0 when a dimension is empty.
    count: u64,
}

/// A generated reference before URL resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generated {
    pub(crate) url: String,
    pub(crate) range: Option<(u64, u64)>,
}

#[derive(Debug)]
enum Num {
    Fixed(u64),
    Expr(Expr),
}

#[derive(Debug)]
enum Dim {
    Range { start: i64, step: i64, len: u64 },
    List(Vec<Val>),
}

#[derive(Debug)]
enum KeyPart {
    Lit(String),
    Capture {
        expr: Expr,
        dim: usize,
        solver: Solver,
    },
}

#[derive(Debug)]
enum Solver {
    /// Binary search over a range dimension; `increasing` in the index; `float` results.
    Search { increasing: bool, float: bool },
    /// Rendered text → ascending value indices.
    Table(HashMap<String, Vec<u64>>),
}

/// The value indices of one dimension that a key allows: an inclusive range or a sorted set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cands {
    Range(u64, u64),
    Set(Vec<u64>),
}

impl Cands {
    fn max(&self) -> Option<u64> {
        match self {
            Self::Range(_, hi) => Some(*hi),
            Self::Set(set) => set.last().copied(),
        }
    }

    fn intersect(&self, other: &Self) -> Option<Self> {
        let result = match (self, other) {
            (Self::Range(a0, a1), Self::Range(b0, b1)) => {
                let (lo, hi) = ((*a0).max(*b0), (*a1).min(*b1));
                return (lo <= hi).then_some(Self::Range(lo, hi));
            }
            (Self::Range(lo, hi), Self::Set(set)) | (Self::Set(set), Self::Range(lo, hi)) => set
                .iter()
                .copied()
                .filter(|i| (*lo..=*hi).contains(i))
                .collect(),
            (Self::Set(a), Self::Set(b)) => a.iter().copied().filter(|i| b.contains(i)).collect(),
        };
        let set: Vec<u64> = result;
        (!set.is_empty()).then_some(Self::Set(set))
    }
}

impl Dim {
    fn len(&self) -> u64 {
        match self {
            Self::Range { len, .. } => *len,
            Self::List(values) => values.len() as u64,
        }
    }

    fn value(&self, i: u64) -> Option<Val> {
        match self {
            Self::Range { start, step, len } if i < *len => {
                let v = i128::from(*start) + i128::from(i) * i128::from(*step);
                i64::try_from(v).ok().map(Val::Int)
            }
            Self::Range { .. } => None,
            Self::List(values) => values.get(usize::try_from(i).ok()?).cloned(),
        }
    }

    fn shape(&self) -> Shape {
        match self {
            Self::Range { len: 0, .. } => Shape::NONE,
            Self::Range { start, step, len } => {
                let last = i128::from(*start) + i128::from(len - 1) * i128::from(*step);
                let (a, b) = (i128::from(*start), last);
                Shape {
                    int: Some((a.min(b), a.max(b))),
                    ..Shape::NONE
                }
            }
            Self::List(values) => values
                .iter()
                .fold(Shape::NONE, |shape, v| shape.join(Shape::of(v))),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Range { .. } => 0,
            Self::List(values) => {
                values.capacity() * std::mem::size_of::<Val>()
                    + values
                        .iter()
                        .map(|v| match v {
                            Val::Str(s) => s.capacity(),
                            _ => 0,
                        })
                        .sum::<usize>()
            }
        }
    }
}

impl Pattern {
    /// Validates and prepares the `gen` entry at `index`.
    pub(crate) fn new(
        index: usize,
        entry: &Json,
        templates: &Templates,
        resolver: &Resolver,
    ) -> Result<Self, LoadError> {
        let error = |field: &str, problem: Problem| fail(index, field, problem);
        let gen_error = |field: &str, message: String| error(field, Problem::Gen(message));
        if !matches!(entry, Json::Obj(_)) {
            return Err(error(
                "",
                Problem::WrongType {
                    expected: "an object",
                    found: entry.describe(),
                },
            ));
        }
        let text = |field: &'static str| text_field(entry, index, field);
        let key_source = text("key")?.ok_or_else(|| gen_error("key", "missing".into()))?;
        let url_source = text("url")?.ok_or_else(|| gen_error("url", "missing".into()))?;

        let (names, dims) = dimensions(entry.get("dimensions"), &gen_error)?;
        for name in &names {
            if templates.contains(name) {
                return Err(gen_error(
                    &format!("dimensions.{name}"),
                    format!("dimension {name:?} has the name of a template"),
                ));
            }
        }
        let count = dims
            .iter()
            .try_fold(1u64, |n, d| Some(n.saturating_mul(d.len())))
            .unwrap_or(0);
        let shapes: Vec<Shape> = dims.iter().map(Dim::shape).collect();
        let scope = Scope {
            vars: &names,
            templates: Some(templates),
        };
        let template = |field: &str, source: &str| {
            let t = Template::parse(source)
                .and_then(|t| t.resolve(scope))
                .map_err(|e| error(field, Problem::Template(e)))?;
            if count > 0 {
                t.check(&shapes)
                    .map_err(|e| error(field, Problem::Template(e)))?;
            }
            Ok::<_, LoadError>(t)
        };
        let key = template("key", key_source)?;
        let url = template("url", url_source)?;

        let number = |field: &'static str| -> Result<Option<Num>, LoadError> {
            let source = match entry.get(field) {
                None => return Ok(None),
                Some(Json::Int(n)) => {
                    return u64::try_from(*n).map(|n| Some(Num::Fixed(n))).map_err(|_| {
                        error(
                            field,
                            Problem::Range(format!("{field} {n} is out of range")),
                        )
                    })
                }
                Some(Json::Str(s)) => s,
                Some(other) => {
                    return Err(error(
                        field,
                        Problem::WrongType {
                            expected: "a template string or an integer",
                            found: other.describe(),
                        },
                    ))
                }
            };
            let t = template(field, source)?;
            number_template(&t, count > 0, &shapes)
                .map(Some)
                .map_err(|e| error(field, Problem::Range(e)))
        };
        let range = match (number("offset")?, number("length")?) {
            (Some(offset), Some(length)) => Some((offset, length)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(gen_error(
                    "",
                    "offset and length must be given together (or neither, for whole files)".into(),
                ))
            }
        };

        let key = key_parts(key, &dims, &shapes, count > 0).map_err(|e| gen_error("key", e))?;
        let pattern = Self {
            key_source: key_source.to_owned(),
            key,
            url,
            range,
            dims,
            count,
        };
        pattern.check_urls(index, resolver)?;
        Ok(pattern)
    }

    /// Resolves the URLs of the first and last combination: the scheme could vary with the
    /// dimensions, and a lookup must not be the first to find out that it cannot be fetched.
    fn check_urls(&self, index: usize, resolver: &Resolver) -> Result<(), LoadError> {
        if self.count == 0 {
            return Ok(());
        }
        for i in [0, self.count - 1] {
            let indices = self.nth_indices(i);
            let rendered = self
                .render_url(&indices)
                .map_err(|e| fail(index, "url", Problem::Template(e)))?;
            resolver.resolve(&rendered).map_err(|reason| {
                fail(
                    index,
                    "url",
                    Problem::Url {
                        url: rendered.clone(),
                        reason,
                    },
                )
            })?;
        }
        Ok(())
    }

    /// The key template as written.
    pub(crate) fn key_source(&self) -> &str {
        &self.key_source
    }

    /// The number of combinations (keys generated, counting duplicates), saturating.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The reference generated for `key`, if this pattern generates it.
    pub(crate) fn get(&self, key: &str) -> Option<Generated> {
        if self.count == 0 {
            return None;
        }
        let mut search = Search {
            pattern: self,
            cands: vec![None; self.dims.len()],
            best: None,
            budget: SPLIT_BUDGET,
        };
        search.walk(0, key);
        let indices = search.best?;
        let env = self.env(&indices)?;
        let url = self.url.render_string(&env).ok()?;
        let range = match &self.range {
            None => None,
            Some((offset, length)) => Some((eval_num(offset, &env)?, eval_num(length, &env)?)),
        };
        Some(Generated { url, range })
    }

    /// Every generated key, in product order (lazily; may be millions).
    pub(crate) fn keys(&self) -> impl Iterator<Item = String> + '_ {
        let mut indices = (self.count > 0).then(|| vec![0u64; self.dims.len()]);
        std::iter::from_fn(move || loop {
            let current = indices.as_mut()?;
            let key = self.env(current).and_then(|env| self.render_key(&env));
            // Advance the odometer, last dimension fastest.
            let mut done = true;
            for (i, dim) in current.iter_mut().zip(&self.dims).rev() {
                *i += 1;
                if *i < dim.len() {
                    done = false;
                    break;
                }
                *i = 0;
            }
            if done {
                indices = None;
            }
            if key.is_some() {
                return key;
            }
        })
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        let tables: usize = self
            .key
            .iter()
            .map(|p| match p {
                KeyPart::Capture {
                    solver: Solver::Table(t),
                    ..
                } => t
                    .iter()
                    .map(|(k, v)| k.capacity() + v.capacity() * 8 + 64)
                    .sum(),
                KeyPart::Lit(s) => s.capacity(),
                KeyPart::Capture { .. } => 64,
            })
            .sum();
        std::mem::size_of::<Self>()
            + self.key_source.capacity()
            + tables
            + self.url.heap_bytes()
            + self.dims.iter().map(Dim::heap_bytes).sum::<usize>()
            + 128
    }

    /// The value indices of the `n`th combination in product order.
    fn nth_indices(&self, mut n: u64) -> Vec<u64> {
        let mut indices = vec![0; self.dims.len()];
        for (slot, dim) in indices.iter_mut().zip(&self.dims).rev() {
            let len = dim.len().max(1);
            *slot = n % len;
            n /= len;
        }
        indices
    }

    fn env(&self, indices: &[u64]) -> Option<Vec<Val>> {
        self.dims
            .iter()
            .zip(indices)
            .map(|(d, &i)| d.value(i))
            .collect()
    }

    fn render_url(&self, indices: &[u64]) -> Result<String, String> {
        let env = self
            .env(indices)
            .ok_or_else(|| "index out of range".to_owned())?;
        self.url.render_string(&env)
    }

    fn render_key(&self, env: &[Val]) -> Option<String> {
        let mut out = String::new();
        for part in &self.key {
            match part {
                KeyPart::Lit(s) => out.push_str(s),
                KeyPart::Capture { expr, .. } => expr.eval(env).ok()?.render(&mut out),
            }
        }
        Some(out)
    }
}

fn fail(index: usize, field: &str, problem: Problem) -> LoadError {
    LoadError::new(
        Place::Gen {
            index,
            field: field.to_owned(),
        },
        problem,
    )
}

/// A string member of the entry, if present.
fn text_field<'j>(
    entry: &'j Json,
    index: usize,
    field: &str,
) -> Result<Option<&'j str>, LoadError> {
    match entry.get(field) {
        None => Ok(None),
        Some(Json::Str(s)) => Ok(Some(s)),
        Some(other) => Err(fail(
            index,
            field,
            Problem::WrongType {
                expected: "a template string",
                found: other.describe(),
            },
        )),
    }
}

type GenError<'a> = dyn Fn(&str, String) -> LoadError + 'a;

/// Reads `dimensions` in document order (a repeated name keeps its first place and last value,
/// as a Python dict does).
fn dimensions(
    json: Option<&Json>,
    error: &GenError<'_>,
) -> Result<(Vec<String>, Vec<Dim>), LoadError> {
    let Some(Json::Obj(members)) = json else {
        return Err(error(
            "dimensions",
            match json {
                None => "missing".into(),
                Some(other) => format!("expected an object, found {}", other.describe()),
            },
        ));
    };
    let mut names: Vec<String> = Vec::new();
    let mut dims: Vec<Dim> = Vec::new();
    for (name, value) in members {
        let field = format!("dimensions.{name}");
        let dim = match value {
            Json::Arr(items) => Dim::List(
                items
                    .iter()
                    .map(|item| match item {
                        Json::Int(n) => i64::try_from(*n)
                            .map(Val::Int)
                            .map_err(|_| error(&field, format!("{n} does not fit in 64 bits"))),
                        Json::Float(x) => Ok(Val::Float(*x)),
                        Json::Str(s) => Ok(Val::Str(s.clone())),
                        other => Err(error(
                            &field,
                            format!(
                                "list values must be numbers or strings, found {}",
                                other.describe()
                            ),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Json::Obj(_) => {
                let int = |member: &str, default: Option<i64>| match value.get(member) {
                    None => default.ok_or_else(|| error(&field, format!("{member} is missing"))),
                    Some(Json::Int(n)) => i64::try_from(*n)
                        .map_err(|_| error(&field, format!("{member} does not fit in 64 bits"))),
                    Some(other) => Err(error(
                        &field,
                        format!("{member} must be an integer, found {}", other.describe()),
                    )),
                };
                let (start, limit, step) = (
                    int("start", Some(0))?,
                    int("stop", None)?,
                    int("step", Some(1))?,
                );
                if step == 0 {
                    return Err(error(&field, "step must not be zero".into()));
                }
                let (span, stride) = if step > 0 {
                    (i128::from(limit) - i128::from(start), i128::from(step))
                } else {
                    (i128::from(start) - i128::from(limit), -i128::from(step))
                };
                let len = if span > 0 {
                    (span + stride - 1) / stride
                } else {
                    0
                };
                Dim::Range {
                    start,
                    step,
                    len: u64::try_from(len).unwrap_or(0),
                }
            }
            other => {
                return Err(error(
                    &field,
                    format!(
                        "expected a list or {{start, stop, step}}, found {}",
                        other.describe()
                    ),
                ))
            }
        };
        if let Some(slot) = names
            .iter()
            .position(|n| n == name)
            .and_then(|i| dims.get_mut(i))
        {
            *slot = dim;
        } else {
            names.push(name.clone());
            dims.push(dim);
        }
    }
    Ok((names, dims))
}

/// An `offset` or `length` template: an integer literal, or one `{{ }}` block (with optional
/// surrounding whitespace) whose values are non-negative integers.
fn number_template(t: &Template, check: bool, shapes: &[Shape]) -> Result<Num, String> {
    if let Some(text) = t.as_literal() {
        let n = jinja::python_int(text).ok_or_else(|| format!("{text:?} is not an integer"))?;
        return u64::try_from(n)
            .map(Num::Fixed)
            .map_err(|_| format!("{n} is negative or too large"));
    }
    let blank = |s: &str| s.trim().is_empty();
    let expr = match t.parts.as_slice() {
        [Part::Expr(e)] => e,
        [Part::Lit(a), Part::Expr(e)] if blank(a) => e,
        [Part::Expr(e), Part::Lit(b)] if blank(b) => e,
        [Part::Lit(a), Part::Expr(e), Part::Lit(b)] if blank(a) && blank(b) => e,
        _ => return Err("must be an integer or a single {{ expression }}".into()),
    };
    if check {
        let shape = expr.shape(shapes)?;
        if shape.string || shape.float.is_some() {
            return Err("the expression may not be an integer".into());
        }
        if shape.int.is_some_and(|(lo, _)| lo < 0) {
            return Err("the expression may be negative".into());
        }
    }
    Ok(Num::Expr(expr.clone()))
}

fn eval_num(num: &Num, env: &[Val]) -> Option<u64> {
    match num {
        Num::Fixed(n) => Some(*n),
        Num::Expr(e) => match e.eval(env).ok()? {
            Val::Int(n) => u64::try_from(n).ok(),
            _ => None,
        },
    }
}

/// Splits the resolved key template into literals and invertible captures.
fn key_parts(
    key: Template,
    dims: &[Dim],
    shapes: &[Shape],
    build: bool,
) -> Result<Vec<KeyPart>, String> {
    if key.parts.len() > MAX_KEY_PARTS {
        return Err(format!(
            "more than {MAX_KEY_PARTS} literal and {{{{ }}}} parts in the key"
        ));
    }
    let mut parts = Vec::with_capacity(key.parts.len());
    for part in key.parts {
        let expr = match part {
            Part::Lit(s) => {
                parts.push(KeyPart::Lit(s));
                continue;
            }
            Part::Expr(e) => e,
        };
        if matches!(parts.last(), Some(KeyPart::Capture { .. })) {
            return Err("two {{ }} blocks in a key need literal text between them".into());
        }
        let mut vars = Vec::new();
        expr.vars(&mut vars);
        let [dim] = vars.as_slice() else {
            return Err(
                "each {{ }} block in a key must use exactly one dimension, to be invertible".into(),
            );
        };
        let dim = *dim;
        let solver = if build {
            solver(&expr, dim, dims, shapes)?
        } else {
            Solver::Table(HashMap::new())
        };
        parts.push(KeyPart::Capture { expr, dim, solver });
    }
    Ok(parts)
}

fn solver(expr: &Expr, dim: usize, dims: &[Dim], shapes: &[Shape]) -> Result<Solver, String> {
    let shape = expr.shape(shapes)?;
    let d = dims.get(dim).ok_or("dimension out of range")?;
    if let Dim::Range { step, len, .. } = d {
        let numeric = !shape.string && (shape.int.is_none() || shape.float.is_none());
        let increasing = match expr.mono() {
            Mono::Inc | Mono::Const => Some(*step > 0),
            Mono::Dec => Some(*step < 0),
            Mono::Unknown => None,
        };
        if let (true, Some(increasing)) = (numeric, increasing) {
            return Ok(Solver::Search {
                increasing,
                float: shape.float.is_some(),
            });
        }
        if *len > TABLE_LIMIT {
            return Err(format!(
                "this {{{{ }}}} block cannot be inverted by search over {len} values (limit \
                 {TABLE_LIMIT}); use the dimension with + - * / // by constants only"
            ));
        }
    }
    let mut table: HashMap<String, Vec<u64>> = HashMap::new();
    let mut env: Vec<Val> = vec![Val::Int(0); dims.len()];
    for i in 0..d.len() {
        let value = d.value(i).ok_or("dimension out of range")?;
        if let Some(slot) = env.get_mut(dim) {
            *slot = value;
        }
        let text = expr.eval(&env)?.to_text();
        table.entry(text).or_default().push(i);
    }
    Ok(Solver::Table(table))
}

/// Backtracking over the ways a key splits into the pattern's parts.
struct Search<'p> {
    pattern: &'p Pattern,
    cands: Vec<Option<Cands>>,
    /// The best (last in product order) combination found so far.
    best: Option<Vec<u64>>,
    budget: u32,
}

impl Search<'_> {
    fn walk(&mut self, p: usize, rest: &str) {
        let Some(part) = self.pattern.key.get(p) else {
            if rest.is_empty() {
                self.record();
            }
            return;
        };
        match part {
            KeyPart::Lit(literal) => {
                if let Some(after) = rest.strip_prefix(literal.as_str()) {
                    self.walk(p + 1, after);
                }
            }
            KeyPart::Capture { .. } => match self.pattern.key.get(p + 1) {
                None => self.capture(p, rest, ""),
                Some(KeyPart::Lit(next)) => {
                    let mut from = 0;
                    while let Some(found) = rest.get(from..).and_then(|r| r.find(next.as_str())) {
                        let at = from + found;
                        self.capture(p, &rest[..at], &rest[at..]);
                        if self.budget == 0 {
                            return;
                        }
                        from = at + rest[at..].chars().next().map_or(1, char::len_utf8);
                    }
                }
                Some(KeyPart::Capture { .. }) => {}
            },
        }
    }

    fn capture(&mut self, p: usize, text: &str, after: &str) {
        self.budget = self.budget.saturating_sub(1);
        let Some(KeyPart::Capture { expr, dim, solver }) = self.pattern.key.get(p) else {
            return;
        };
        let Some(found) = self.solve(expr, *dim, solver, text) else {
            return;
        };
        let Some(slot) = self.cands.get(*dim) else {
            return;
        };
        let merged = match slot {
            None => Some(found),
            Some(existing) => existing.intersect(&found),
        };
        let Some(merged) = merged else {
            return;
        };
        let saved = self.cands.get_mut(*dim).and_then(|s| s.replace(merged));
        self.walk(p + 1, after);
        if let Some(slot) = self.cands.get_mut(*dim) {
            *slot = saved;
        }
    }

    fn record(&mut self) {
        let tuple: Option<Vec<u64>> = self
            .pattern
            .dims
            .iter()
            .zip(&self.cands)
            .map(|(dim, c)| match c {
                Some(c) => c.max(),
                None => dim.len().checked_sub(1),
            })
            .collect();
        if let Some(tuple) = tuple {
            if self.best.as_ref().is_none_or(|best| tuple > *best) {
                self.best = Some(tuple);
            }
        }
    }

    fn solve(&self, expr: &Expr, dim: usize, solver: &Solver, text: &str) -> Option<Cands> {
        match solver {
            Solver::Table(table) => table.get(text).map(|set| Cands::Set(set.clone())),
            Solver::Search { increasing, float } => {
                let d = self.pattern.dims.get(dim)?;
                let target = if *float {
                    Val::Float(text.parse().ok()?)
                } else {
                    Val::Int(jinja::parse_canonical_int(text)?)
                };
                let mut env: Vec<Val> = vec![Val::Int(0); self.pattern.dims.len()];
                let mut at = |i: u64| -> Option<std::cmp::Ordering> {
                    *env.get_mut(dim)? = d.value(i)?;
                    compare(&expr.eval(&env).ok()?, &target)
                };
                // Values are sorted along the index: find where they equal the target.
                let (lo, hi) = if *increasing {
                    (
                        first(d.len(), |i| Some(at(i)? != Less))?,
                        first(d.len(), |i| Some(at(i)? == Greater))?,
                    )
                } else {
                    (
                        first(d.len(), |i| Some(at(i)? != Greater))?,
                        first(d.len(), |i| Some(at(i)? == Less))?,
                    )
                };
                if lo >= hi {
                    return None;
                }
                if *float {
                    // Numerically equal is not always textually equal (`-0.0`, `1e5` vs `100000.0`).
                    let mut env = vec![Val::Int(0); self.pattern.dims.len()];
                    for i in [lo, hi - 1] {
                        *env.get_mut(dim)? = d.value(i)?;
                        if expr.eval(&env).ok()?.to_text() != text {
                            return None;
                        }
                    }
                }
                Some(Cands::Range(lo, hi - 1))
            }
        }
    }
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(y),
        #[allow(clippy::cast_precision_loss)] // Python compares int and float the same way.
        (Val::Int(x), Val::Float(y)) => (*x as f64).partial_cmp(y),
        #[allow(clippy::cast_precision_loss)]
        (Val::Float(x), Val::Int(y)) => x.partial_cmp(&(*y as f64)),
        _ => None,
    }
}

/// The first index in `0..len` where `pred` holds (`len` if none), for a `pred` that is false
/// then true along the indices; `None` if `pred` cannot be evaluated.
fn first(len: u64, mut pred: impl FnMut(u64) -> Option<bool>) -> Option<u64> {
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(json: &str, templates: &[(&str, &str)]) -> Result<Pattern, LoadError> {
        let entry: Json = serde_json::from_str(json).unwrap();
        let templates = Templates::new(
            templates
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let resolver = Resolver::new(Some("https://base.test/refs.json"), None).unwrap();
        Pattern::new(0, &entry, &templates, &resolver)
    }

    #[allow(clippy::unnecessary_wraps)] // compared with `get`'s answer
    fn range(url: &str, offset: u64, length: u64) -> Option<Generated> {
        Some(Generated {
            url: url.into(),
            range: Some((offset, length)),
        })
    }

    /// Every key a pattern lists is found again by inversion, with the same reference.
    fn assert_round_trip(p: &Pattern) {
        let mut seen = HashMap::new();
        let mut env_keys = Vec::new();
        for i in 0..p.count() {
            let indices = p.nth_indices(i);
            let env = p.env(&indices).unwrap();
            let key = p.render_key(&env).unwrap();
            let url = p.url.render_string(&env).unwrap();
            let range = p
                .range
                .as_ref()
                .map(|(o, l)| (eval_num(o, &env).unwrap(), eval_num(l, &env).unwrap()));
            seen.insert(key.clone(), Generated { url, range }); // last wins
            env_keys.push(key);
        }
        assert_eq!(p.keys().collect::<Vec<_>>(), env_keys);
        for (key, want) in &seen {
            assert_eq!(p.get(key).as_ref(), Some(want), "{key}");
        }
    }

    /// The spec example: a stop-only range, arithmetic in the offset.
    #[test]
    fn spec_example_pattern() {
        let p = pattern(
            r#"{"key": "gen_key{{i}}", "url": "http://{{u}}_{{i}}",
                "offset": "{{(i + 1) * 1000}}", "length": "1000", "dimensions": {"i": {"stop": 5}}}"#,
            &[("u", "server.domain/path")],
        )
        .unwrap();
        assert_eq!(
            p.get("gen_key0"),
            range("http://server.domain/path_0", 1000, 1000)
        );
        assert_eq!(
            p.get("gen_key4"),
            range("http://server.domain/path_4", 5000, 1000)
        );
        for miss in [
            "gen_key5",
            "gen_key-1",
            "gen_key01",
            "gen_key",
            "gen_key1x",
            "key1",
        ] {
            assert_eq!(p.get(miss), None, "{miss}");
        }
        assert_round_trip(&p);
    }

    /// Ten million keys cost nothing at load and O(log n) per lookup.
    #[test]
    fn huge_ranges_stay_lazy() {
        let p = pattern(
            r#"{"key": "t/{{i}}.{{j}}", "url": "https://h/f{{ i // 1000 }}.nc",
                "offset": "{{ (i * 100 + j) * 4096 }}", "length": "4096",
                "dimensions": {"i": {"start": 0, "stop": 100000}, "j": {"stop": 100}}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(p.count(), 10_000_000);
        assert_eq!(
            p.get("t/98765.43"),
            range("https://h/f98.nc", (98_765 * 100 + 43) * 4096, 4096)
        );
        assert_eq!(p.get("t/100000.0"), None);
        assert_eq!(p.get("t/5.100"), None);
        assert!(p.heap_bytes() < 4096);
    }

    /// Steps, negative steps, floor division and lists invert; non-monotonic small ranges use a
    /// table.
    #[test]
    fn inverts_many_expression_kinds() {
        let cases = [
            r#"{"key": "d/{{(year - 1990) // 10}}", "url": "u{{year}}", "dimensions": {"year": {"start": 1990, "stop": 2020, "step": 10}}}"#,
            r#"{"key": "n/{{ -i }}", "url": "u{{i}}", "dimensions": {"i": {"start": 10, "stop": -10, "step": -3}}}"#,
            r#"{"key": "h/{{ i / 4 }}", "url": "u{{i}}", "dimensions": {"i": {"stop": 9}}}"#,
            r#"{"key": "m/{{ i % 3 }}", "url": "u{{i}}", "dimensions": {"i": {"stop": 10}}}"#,
            r#"{"key": "s/{{ v }}-{{ w }}", "url": "{{v}}{{w}}", "dimensions": {"v": ["a", "b-c", "-"], "w": [1, -1, 2.5, "x"]}}"#,
            r#"{"key": "c/{{ f(n=i) }}", "url": "u{{i}}", "dimensions": {"i": [3, 1, 3]}}"#,
            r#"{"key": "fixed", "url": "u{{i}}", "dimensions": {"i": {"stop": 3}, "j": []}}"#,
            r#"{"key": "fixed", "url": "u{{i}}", "dimensions": {"i": {"stop": 3}}}"#,
            r#"{"key": "{{i}}/{{i}}", "url": "u{{i}}", "dimensions": {"i": {"stop": 12}}}"#,
            r#"{"key": "no-dims", "url": "u", "dimensions": {}}"#,
        ];
        for json in cases {
            let p =
                pattern(json, &[("f", "<{{n * 2}}>")]).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_round_trip(&p);
        }
        let last_wins = pattern(cases[7], &[]).unwrap();
        assert_eq!(last_wins.get("fixed").unwrap().url, "u2");
        let pairs = pattern(cases[8], &[]).unwrap();
        assert_eq!(pairs.get("11/11").unwrap().url, "u11");
        assert_eq!(pairs.get("1/2"), None);
        let empty = pattern(cases[6], &[]).unwrap();
        assert_eq!((empty.count(), empty.get("fixed")), (0, None));
    }

    /// Colliding keys resolve to the combination fsspec keeps (expected values from fsspec
    /// 2026.9 with jinja2 3.1, `simple_templates=False`).
    #[test]
    fn collisions_match_fsspec() {
        let floor = pattern(
            r#"{"key": "q/{{ i // 3 }}/{{ j // 2 }}/{{ -(j // 2) }}", "url": "http://h/{{i}}/{{j}}",
                "offset": "{{ i }}", "length": "{{ j }}",
                "dimensions": {"j": {"start": 1, "stop": 9}, "i": {"stop": 10}}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(floor.get("q/0/0/0"), range("http://h/2/1", 2, 1));
        assert_eq!(floor.get("q/0/4/-4"), range("http://h/2/8", 2, 8));
        assert_eq!(floor.get("q/1/0/0"), range("http://h/5/1", 5, 1));
        assert_eq!(floor.get("q/0/4/4"), None);
        let modulo = pattern(
            r#"{"key": "r/{{ i % 4 }}-{{ k }}", "url": "http://h/{{i}}/{{k}}",
                "dimensions": {"i": {"stop": 20, "step": 3}, "k": ["a", "a", "b"]}}"#,
            &[],
        )
        .unwrap();
        let whole = |url: &str| {
            Some(Generated {
                url: url.into(),
                range: None,
            })
        };
        assert_eq!(modulo.get("r/0-a"), whole("http://h/12/a"));
        assert_eq!(modulo.get("r/2-b"), whole("http://h/18/b"));
        let signed = pattern(
            r#"{"key": "{{ i }}-{{ j }}", "url": "http://h/{{i}}/{{j}}",
                "dimensions": {"i": {"start": -3, "stop": 3}, "j": {"start": -2, "stop": 2}}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(signed.get("-1--2"), whole("http://h/-1/-2"));
        assert_eq!(signed.get("-2-1"), whole("http://h/-2/1"));
        assert_eq!(signed.keys().count(), 24);
    }

    /// Malformed or uninvertible entries are load errors naming the field.
    #[test]
    fn malformed_entries_are_rejected() {
        let cases = [
            (r"[]", "gen[0]: expected an object"),
            (
                r#"{"url": "u", "dimensions": {}}"#,
                "gen[0].key: bad gen entry: missing",
            ),
            (
                r#"{"key": 1, "url": "u", "dimensions": {}}"#,
                "gen[0].key: expected a template string",
            ),
            (
                r#"{"key": "k", "url": "u"}"#,
                "gen[0].dimensions: bad gen entry: missing",
            ),
            (
                r#"{"key": "k", "url": "u", "dimensions": {"i": {"start": 1}}}"#,
                "stop is missing",
            ),
            (
                r#"{"key": "k", "url": "u", "dimensions": {"i": {"stop": 1.5}}}"#,
                "stop must be an integer",
            ),
            (
                r#"{"key": "k", "url": "u", "dimensions": {"i": {"stop": 3, "step": 0}}}"#,
                "step must not be zero",
            ),
            (
                r#"{"key": "k", "url": "u", "dimensions": {"i": [true]}}"#,
                "numbers or strings",
            ),
            (
                r#"{"key": "k", "url": "u", "dimensions": {"i": 3}}"#,
                "expected a list or",
            ),
            (
                r#"{"key": "k{{i}}", "url": "u", "offset": "1", "dimensions": {"i": [1]}}"#,
                "together",
            ),
            (
                r#"{"key": "k{{i}}", "url": "u", "offset": "{{i - 1}}", "length": "1", "dimensions": {"i": [0, 1]}}"#,
                "gen[0].offset: bad byte range: the expression may be negative",
            ),
            (
                r#"{"key": "k{{i}}", "url": "u", "offset": "{{i / 2}}", "length": "1", "dimensions": {"i": [0, 1]}}"#,
                "may not be an integer",
            ),
            (
                r#"{"key": "k{{i}}", "url": "u", "offset": "x{{i}}", "length": "1", "dimensions": {"i": [0, 1]}}"#,
                "single {{ expression }}",
            ),
            (
                r#"{"key": "k{{i}}", "url": "u", "offset": "-5", "length": "1", "dimensions": {"i": [0, 1]}}"#,
                "negative",
            ),
            (
                r#"{"key": "k{{i}}", "url": "u", "offset": -5, "length": "1", "dimensions": {"i": [0, 1]}}"#,
                "out of range",
            ),
            (
                r#"{"key": "k{{i}}{{j}}", "url": "u", "dimensions": {"i": [0], "j": [1]}}"#,
                "literal text between",
            ),
            (
                r#"{"key": "k{{i + j}}", "url": "u", "dimensions": {"i": [0], "j": [1]}}"#,
                "exactly one dimension",
            ),
            (
                r#"{"key": "k{{i % 7}}", "url": "u", "dimensions": {"i": {"stop": 1000000}}}"#,
                "cannot be inverted",
            ),
            (
                r#"{"key": "k{{i}}", "url": "u{{ 10 // i }}", "dimensions": {"i": {"stop": 3}}}"#,
                "gen[0].url: bad template: the right operand of // may be zero",
            ),
            (
                r#"{"key": "k{{u}}", "url": "u", "dimensions": {"u": [1]}}"#,
                "name of a template",
            ),
            (
                r#"{"key": "k{{nope}}", "url": "u", "dimensions": {}}"#,
                "\"nope\" is not defined",
            ),
            (
                r#"{"key": "k{% if %}", "url": "u", "dimensions": {}}"#,
                "statements",
            ),
            (
                r#"{"key": "k{{i}}", "url": "{{i}}://x", "dimensions": {"i": ["ftp"]}}"#,
                "gen[0].url: unusable URL \"ftp://x\"",
            ),
        ];
        for (json, want) in cases {
            let error = pattern(json, &[("u", "x")]).unwrap_err().to_string();
            assert!(error.contains(want), "{json}: {error}");
        }
    }
}
