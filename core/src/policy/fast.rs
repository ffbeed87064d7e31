//! The fast path: a small evaluator for the common subset of Cedar, used to decide without
//! building a Cedar request when every policy of the slice can be evaluated exactly.
//!
//! Cedar itself stays the reference and the fallback. Each policy is compiled from its JSON form
//! (EST) into an [`Expr`]; anything outside the subset becomes [`Expr::Unsupported`]. Evaluation
//! is three-valued: a definite `true`/`false`, or `None` when the subset cannot tell — an
//! unsupported construct, or a case where Cedar would raise an error (a missing attribute, a
//! type mismatch, a missing tag). One `None` in a slice sends the whole request to Cedar, so the
//! fast path never decides anything Cedar would decide differently; `tests/slicing.rs` checks
//! this on random policies and requests.

use std::borrow::Cow;

use cedar_policy::{ActionConstraint, EntityUid, Policy, PrincipalConstraint, ResourceConstraint};
use serde_json::Value as Json;

use super::request::addr_port;
use crate::budget::BudgetView;
use crate::model::{Action, ActionKind, Agent, Layer};

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Lit(Lit),
    Set(Vec<Expr>),
    Var(Var),
    Attr(Box<Expr>, String),
    Has(Box<Expr>, String),
    /// `context.<field>`
    CtxAttr(Field),
    /// `context has <field>`
    CtxHas(Field),
    /// `context.<field> == "lit"` (or `!=`), specialised at compile time.
    CtxStrEq(Field, String, bool),
    /// `context.<field> like pattern`, specialised at compile time; then the ids (in
    /// [`Literals`]) of the pattern's literal runs that may lie anywhere in the text — if one
    /// is absent, the pattern cannot match (empty until [`Literals::assign`]).
    CtxLike(Field, Vec<Segment>, Vec<u32>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Like(Box<Expr>, Vec<Segment>),
    Contains(Box<Expr>, Box<Expr>),
    ContainsAny(Box<Expr>, Box<Expr>),
    ContainsAll(Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    Is(Box<Expr>, String, Option<Box<Expr>>),
    HasTag(Box<Expr>, Box<Expr>),
    GetTag(Box<Expr>, Box<Expr>),
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    Principal,
    Action,
    Resource,
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lit {
    Bool(bool),
    Long(i64),
    Str(String),
    Entity(String, String),
}

/// A `like` pattern: literal runs separated by `*` wildcards.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    /// A literal run, with a precompiled substring searcher.
    Text(String, Box<memchr::memmem::Finder<'static>>),
    Star,
}

impl Segment {
    pub(crate) fn text(t: &str) -> Self {
        Segment::Text(
            t.to_owned(),
            Box::new(memchr::memmem::Finder::new(t.as_bytes()).into_owned()),
        )
    }
}

/// The literal runs of a policy set's `context.<field> like` patterns that may lie anywhere in
/// the text (after a `*`), searched for all at once: a set of many such patterns (a forbid
/// list of argument shapes, say) costs one pass over the text per request instead of one
/// substring search per pattern, and a pattern one of whose literals is absent is false.
pub(crate) struct Literals {
    searcher: aho_corasick::AhoCorasick,
}

impl Literals {
    /// Numbers the floating literals of every `like` in `conditions`, writing each pattern's
    /// ids into it. `None` when there are none.
    pub(crate) fn assign(conditions: &mut [Expr]) -> Option<Self> {
        let mut ids: foldhash::HashMap<String, u32> = foldhash::HashMap::default();
        let mut texts: Vec<String> = Vec::new();
        for e in conditions.iter_mut() {
            e.visit_likes(&mut |pattern, needs| {
                let mut floating = false;
                for seg in pattern {
                    match seg {
                        Segment::Star => floating = true,
                        Segment::Text(text, _) if floating && !text.is_empty() => {
                            let next = u32::try_from(texts.len()).unwrap_or(u32::MAX);
                            let id = *ids.entry(text.clone()).or_insert_with(|| {
                                texts.push(text.clone());
                                next
                            });
                            needs.push(id);
                        }
                        Segment::Text(..) => {}
                    }
                }
            });
        }
        if texts.is_empty() {
            return None;
        }
        let searcher = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&texts)
            .ok()?;
        Some(Literals { searcher })
    }

    /// A bit per literal: set when it occurs in `text`.
    fn occurring(&self, text: &str) -> Vec<u64> {
        let mut bits = vec![0u64; self.searcher.patterns_len().div_ceil(64)];
        for m in self.searcher.find_overlapping_iter(text) {
            let id = m.pattern().as_usize();
            if let Some(word) = bits.get_mut(id / 64) {
                *word |= 1 << (id % 64);
            }
        }
        bits
    }

    fn has(bits: &[u64], id: u32) -> bool {
        let id = id as usize;
        bits.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// Whether every literal of `needs` is set in `bits`.
    fn has_all(bits: &[u64], needs: &[u32]) -> bool {
        needs.iter().all(|id| Literals::has(bits, *id))
    }
}

impl Expr {
    /// Calls `f` with the pattern and literal ids of every `context.<field> like` inside.
    fn visit_likes(&mut self, f: &mut impl FnMut(&[Segment], &mut Vec<u32>)) {
        match self {
            Expr::CtxLike(_, pattern, needs) => {
                needs.clear();
                f(pattern, needs);
            }
            Expr::Set(items) => items.iter_mut().for_each(|e| e.visit_likes(f)),
            Expr::Attr(x, _) | Expr::Has(x, _) | Expr::Not(x) | Expr::Like(x, _) => {
                x.visit_likes(f);
            }
            Expr::Is(x, _, within) => {
                x.visit_likes(f);
                if let Some(w) = within {
                    w.visit_likes(f);
                }
            }
            Expr::And(l, r)
            | Expr::Or(l, r)
            | Expr::Cmp(_, l, r)
            | Expr::Contains(l, r)
            | Expr::ContainsAny(l, r)
            | Expr::ContainsAll(l, r)
            | Expr::In(l, r)
            | Expr::HasTag(l, r)
            | Expr::GetTag(l, r) => {
                l.visit_likes(f);
                r.visit_likes(f);
            }
            Expr::If(c, t, e) => {
                c.visit_likes(f);
                t.visit_likes(f);
                e.visit_likes(f);
            }
            Expr::Lit(_)
            | Expr::Var(_)
            | Expr::CtxAttr(_)
            | Expr::CtxHas(_)
            | Expr::CtxStrEq(..)
            | Expr::Unsupported => {}
        }
    }
}

/// A context attribute, resolved at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Layer,
    SessionId,
    Budget,
    Time,
    Tool,
    ArgsJson,
    Provider,
    Model,
    InputTokens,
    OutputTokens,
    Tools,
    Method,
    Scheme,
    Host,
    Port,
    Path,
    Url,
    Server,
    Argv,
    Command,
    Access,
    Addr,
    Proto,
    Ip,
    /// No action's context has it.
    Other,
}

impl Field {
    /// Fields whose value, when present, is a string in every action's context.
    fn is_string(self) -> bool {
        matches!(
            self,
            Field::Layer
                | Field::SessionId
                | Field::Tool
                | Field::ArgsJson
                | Field::Provider
                | Field::Model
                | Field::Method
                | Field::Scheme
                | Field::Host
                | Field::Path
                | Field::Url
                | Field::Server
                | Field::Command
                | Field::Access
                | Field::Addr
                | Field::Proto
        )
    }

    /// Whether every request of `kind` has this context attribute (`Some`), or whether that
    /// depends on the request (`None`). Mirrors what `request::build` puts in the context.
    fn presence(self, kind: ActionKind) -> Option<bool> {
        use ActionKind as K;
        use Field as F;
        match (kind, self) {
            (_, F::Layer | F::Budget | F::Time) => Some(true),
            (_, F::SessionId)
            | (K::ModelCall, F::InputTokens | F::OutputTokens)
            | (K::McpCall, F::Tool)
            | (K::NetConnect, F::Ip) => None,
            (K::ToolCall, F::Tool | F::ArgsJson)
            | (K::ModelCall, F::Provider | F::Model | F::Tools)
            | (K::HttpRequest, F::Method | F::Scheme | F::Host | F::Port | F::Path | F::Url)
            | (K::McpCall, F::Server | F::Method | F::ArgsJson)
            | (K::ProcessExec, F::Path | F::Argv | F::Command)
            | (K::FileAccess, F::Path | F::Access)
            | (K::NetConnect, F::Addr | F::Port | F::Proto) => Some(true),
            _ => Some(false),
        }
    }

    fn parse(name: &str) -> Field {
        match name {
            "layer" => Field::Layer,
            "session_id" => Field::SessionId,
            "budget" => Field::Budget,
            "time" => Field::Time,
            "tool" => Field::Tool,
            "args_json" => Field::ArgsJson,
            "provider" => Field::Provider,
            "model" => Field::Model,
            "input_tokens" => Field::InputTokens,
            "output_tokens" => Field::OutputTokens,
            "tools" => Field::Tools,
            "method" => Field::Method,
            "scheme" => Field::Scheme,
            "host" => Field::Host,
            "port" => Field::Port,
            "path" => Field::Path,
            "url" => Field::Url,
            "server" => Field::Server,
            "argv" => Field::Argv,
            "command" => Field::Command,
            "access" => Field::Access,
            "addr" => Field::Addr,
            "proto" => Field::Proto,
            "ip" => Field::Ip,
            _ => Field::Other,
        }
    }
}

fn b(e: Expr) -> Box<Expr> {
    Box::new(e)
}

fn entity_lit(uid: &EntityUid) -> Expr {
    Expr::Lit(Lit::Entity(
        uid.type_name().to_string(),
        uid.id().unescaped().to_owned(),
    ))
}

fn eq(l: Expr, r: Expr) -> Expr {
    Expr::Cmp(CmpOp::Eq, b(l), b(r))
}

/// The condition of a policy as evaluated on a request from its slice: the scope constraints
/// the index does not already guarantee, then the `when`/`unless` clauses, in Cedar's order.
///
/// The index puts a policy only in the slices of the action kinds its action constraint names,
/// under the principal and resource its `==` constraints name; for a request of that slice those
/// constraints hold, so they are not evaluated again. `known_actions` are the seven action uids.
pub(crate) fn compile(policy: &Policy, known_actions: &[EntityUid]) -> Expr {
    let mut parts = Vec::new();
    let p = Expr::Var(Var::Principal);
    parts.push(match policy.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::Eq(_) => Expr::Lit(Lit::Bool(true)),
        PrincipalConstraint::In(u) => Expr::In(b(p), b(entity_lit(&u))),
        PrincipalConstraint::Is(t) => Expr::Is(b(p), t.to_string(), None),
        PrincipalConstraint::IsIn(t, u) => Expr::Is(b(p), t.to_string(), Some(b(entity_lit(&u)))),
    });
    let a = Expr::Var(Var::Action);
    parts.push(match policy.action_constraint() {
        ActionConstraint::Any => Expr::Lit(Lit::Bool(true)),
        ActionConstraint::Eq(u) if known_actions.contains(&u) => Expr::Lit(Lit::Bool(true)),
        ActionConstraint::Eq(u) => eq(a, entity_lit(&u)),
        ActionConstraint::In(list) if list.iter().all(|u| known_actions.contains(u)) => {
            Expr::Lit(Lit::Bool(true))
        }
        ActionConstraint::In(list) => {
            Expr::In(b(a), b(Expr::Set(list.iter().map(entity_lit).collect())))
        }
    });
    let r = Expr::Var(Var::Resource);
    parts.push(match policy.resource_constraint() {
        ResourceConstraint::Any | ResourceConstraint::Eq(_) => Expr::Lit(Lit::Bool(true)),
        ResourceConstraint::In(u) => Expr::In(b(r), b(entity_lit(&u))),
        ResourceConstraint::Is(t) => Expr::Is(b(r), t.to_string(), None),
        ResourceConstraint::IsIn(t, u) => Expr::Is(b(r), t.to_string(), Some(b(entity_lit(&u)))),
    });
    match policy.to_json() {
        Ok(est) => {
            for cond in est
                .get("conditions")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let body = cond.get("body").map_or(Expr::Unsupported, expr);
                parts.push(match cond.get("kind").and_then(Json::as_str) {
                    Some("when") => body,
                    Some("unless") => Expr::Not(b(body)),
                    _ => Expr::Unsupported,
                });
            }
        }
        Err(_) => parts.push(Expr::Unsupported),
    }
    let mut iter = parts
        .into_iter()
        .filter(|e| !matches!(e, Expr::Lit(Lit::Bool(true))));
    let first = iter.next().unwrap_or(Expr::Lit(Lit::Bool(true)));
    specialise(iter.fold(first, |acc, e| Expr::And(b(acc), b(e))))
}

/// A condition as evaluated on requests of `kind` seen by `layer` (`None`: unchanged):
/// `context has f` becomes a constant where the kind alone decides it, `context.layer == "…"`
/// (and `!=`) a constant, and `&&`, `||` and `!` with a constant operand are reduced — a
/// constant left side as Cedar's short-circuit would evaluate it, a constant right side only
/// where it is the identity (`x && true`, `x || false`: whatever `x` gives, a boolean or an
/// error, the whole gives too). Only boolean positions (the condition and the operands of `&&`,
/// `||`, `!`) are rewritten, where `test` demands a boolean of what remains, so a non-boolean
/// operand still fails as it does in Cedar.
pub(crate) fn for_class(e: &Expr, kind: ActionKind, layer: Layer) -> Option<Expr> {
    let t = Expr::Lit(Lit::Bool(true));
    let f = Expr::Lit(Lit::Bool(false));
    let fold = |x: &Expr| for_class(x, kind, layer);
    let is = |x: &Expr, v: bool| matches!(x, Expr::Lit(Lit::Bool(b)) if *b == v);
    match e {
        Expr::CtxHas(field) => field.presence(kind).map(|v| Expr::Lit(Lit::Bool(v))),
        Expr::CtxStrEq(Field::Layer, lit, want) => {
            Some(Expr::Lit(Lit::Bool((layer.as_str() == lit) == *want)))
        }
        Expr::And(l, r) | Expr::Or(l, r) => {
            let and = matches!(e, Expr::And(..));
            let left = fold(l);
            let l2 = left.as_ref().unwrap_or(l);
            // `false && _` and `true || _` never look right; `true && r`, `false || r` are `r`.
            if is(l2, !and) {
                return Some(if and { f } else { t });
            }
            if is(l2, and) {
                return Some(fold(r).unwrap_or_else(|| (**r).clone()));
            }
            let right = fold(r);
            // `l && true` and `l || false` are `l`.
            if is(right.as_ref().unwrap_or(r), and) {
                return Some(left.unwrap_or_else(|| (**l).clone()));
            }
            if left.is_none() && right.is_none() {
                return None;
            }
            let l = b(left.unwrap_or_else(|| (**l).clone()));
            let r = b(right.unwrap_or_else(|| (**r).clone()));
            Some(if and { Expr::And(l, r) } else { Expr::Or(l, r) })
        }
        Expr::Not(x) => fold(x).map(|x| match x {
            Expr::Lit(Lit::Bool(v)) => Expr::Lit(Lit::Bool(!v)),
            x => Expr::Not(b(x)),
        }),
        _ => None,
    }
}

/// Rewrites common shapes into variants that evaluate without building values.
fn specialise(e: Expr) -> Expr {
    let s = |x: Box<Expr>| b(specialise(*x));
    match e {
        Expr::Cmp(op @ (CmpOp::Eq | CmpOp::Ne), l, r) => match (*l, *r) {
            (Expr::CtxAttr(f), Expr::Lit(Lit::Str(v)))
            | (Expr::Lit(Lit::Str(v)), Expr::CtxAttr(f))
                if f.is_string() =>
            {
                Expr::CtxStrEq(f, v, op == CmpOp::Eq)
            }
            (l, r) => Expr::Cmp(op, s(b(l)), s(b(r))),
        },
        Expr::Like(x, pattern) => match *x {
            Expr::CtxAttr(f) if f.is_string() => Expr::CtxLike(f, pattern, Vec::new()),
            x => Expr::Like(s(b(x)), pattern),
        },
        Expr::And(l, r) => Expr::And(s(l), s(r)),
        Expr::Or(l, r) => Expr::Or(s(l), s(r)),
        Expr::Not(x) => Expr::Not(s(x)),
        Expr::If(c, t, f) => Expr::If(s(c), s(t), s(f)),
        Expr::Cmp(op, l, r) => Expr::Cmp(op, s(l), s(r)),
        other => other,
    }
}

fn lit(v: &Json) -> Expr {
    match v {
        Json::Bool(x) => Expr::Lit(Lit::Bool(*x)),
        Json::Number(n) => n
            .as_i64()
            .map_or(Expr::Unsupported, |n| Expr::Lit(Lit::Long(n))),
        Json::String(s) => Expr::Lit(Lit::Str(s.clone())),
        Json::Object(o) => match o.get("__entity") {
            Some(e) => match (
                e.get("type").and_then(Json::as_str),
                e.get("id").and_then(Json::as_str),
            ) {
                (Some(t), Some(id)) => Expr::Lit(Lit::Entity(t.to_owned(), id.to_owned())),
                _ => Expr::Unsupported,
            },
            None => Expr::Unsupported,
        },
        _ => Expr::Unsupported,
    }
}

/// Compiles one EST expression.
fn expr(j: &Json) -> Expr {
    let Some((op, arg)) = j
        .as_object()
        .and_then(|o| (o.len() == 1).then(|| o.iter().next()).flatten())
    else {
        return Expr::Unsupported;
    };
    let sub = |k: &str| arg.get(k).map_or(Expr::Unsupported, expr);
    let bin = |f: fn(Box<Expr>, Box<Expr>) -> Expr| f(b(sub("left")), b(sub("right")));
    let attr = || arg.get("attr").and_then(Json::as_str).map(str::to_owned);
    match op.as_str() {
        "Value" => lit(arg),
        "Var" => match arg.as_str() {
            Some("principal") => Expr::Var(Var::Principal),
            Some("action") => Expr::Var(Var::Action),
            Some("resource") => Expr::Var(Var::Resource),
            Some("context") => Expr::Var(Var::Context),
            _ => Expr::Unsupported,
        },
        "Set" => match arg.as_array() {
            Some(items) => Expr::Set(items.iter().map(expr).collect()),
            None => Expr::Unsupported,
        },
        "." => match (attr(), sub("left")) {
            (Some(a), Expr::Var(Var::Context)) => Expr::CtxAttr(Field::parse(&a)),
            (Some(a), left) => Expr::Attr(b(left), a),
            (None, _) => Expr::Unsupported,
        },
        "has" => match (attr(), sub("left")) {
            (Some(a), Expr::Var(Var::Context)) => Expr::CtxHas(Field::parse(&a)),
            (Some(a), left) => Expr::Has(b(left), a),
            (None, _) => Expr::Unsupported,
        },
        "&&" => bin(Expr::And),
        "||" => bin(Expr::Or),
        "!" => Expr::Not(b(sub("arg"))),
        "==" => Expr::Cmp(CmpOp::Eq, b(sub("left")), b(sub("right"))),
        "!=" => Expr::Cmp(CmpOp::Ne, b(sub("left")), b(sub("right"))),
        "<" => Expr::Cmp(CmpOp::Lt, b(sub("left")), b(sub("right"))),
        "<=" => Expr::Cmp(CmpOp::Le, b(sub("left")), b(sub("right"))),
        ">" => Expr::Cmp(CmpOp::Gt, b(sub("left")), b(sub("right"))),
        ">=" => Expr::Cmp(CmpOp::Ge, b(sub("left")), b(sub("right"))),
        "in" => bin(Expr::In),
        "contains" => bin(Expr::Contains),
        "containsAny" => bin(Expr::ContainsAny),
        "containsAll" => bin(Expr::ContainsAll),
        "hasTag" => bin(Expr::HasTag),
        "getTag" => bin(Expr::GetTag),
        "if-then-else" => Expr::If(b(sub("if")), b(sub("then")), b(sub("else"))),
        "like" => match arg.get("pattern").and_then(Json::as_array) {
            Some(elems) => {
                let mut segs: Vec<Segment> = Vec::new();
                for e in elems {
                    match (e.as_str(), e.get("Literal").and_then(Json::as_str)) {
                        (Some("Wildcard"), _) => segs.push(Segment::Star),
                        (_, Some(text)) => {
                            // Cedar lists a pattern character by character: join runs.
                            let joined = match segs.last() {
                                Some(Segment::Text(t, _)) => format!("{t}{text}"),
                                _ => String::new(),
                            };
                            if joined.is_empty() {
                                segs.push(Segment::text(text));
                            } else if let Some(last) = segs.last_mut() {
                                *last = Segment::text(&joined);
                            }
                        }
                        _ => return Expr::Unsupported,
                    }
                }
                Expr::Like(b(sub("left")), segs)
            }
            None => Expr::Unsupported,
        },
        "is" => match arg.get("entity_type").and_then(Json::as_str) {
            Some(t) => {
                let within = arg.get("in").map(|i| b(expr(i)));
                Expr::Is(b(sub("left")), t.to_owned(), within)
            }
            None => Expr::Unsupported,
        },
        _ => Expr::Unsupported,
    }
}

/// An entity the evaluator can talk about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ent<'a> {
    Principal,
    Resource,
    Action,
    Lit(&'a str, &'a str),
}

/// A runtime value of the subset.
#[derive(Debug, Clone)]
enum Val<'a> {
    Bool(bool),
    Long(i64),
    Str(Cow<'a, str>),
    Ent(Ent<'a>),
    Set(Vec<Val<'a>>),
    Context,
    Budget,
    Time,
}

/// What the evaluator knows of the request.
pub(crate) struct FastRequest<'a> {
    pub agent: &'a Agent,
    pub action: &'a Action,
    pub layer: Layer,
    pub budget: &'a dyn Fn() -> BudgetView,
    pub now_ms: i64,
    /// Resource entity type and id (as in the Cedar mapping).
    pub resource: (&'static str, Cow<'a, str>),
    /// `context.args_json`, made on first use.
    pub args_json: std::cell::OnceCell<String>,
    /// The policy set's `like` literals ([`PolicyIndex`](super::index::PolicyIndex)'s).
    pub literals: Option<&'a Literals>,
    /// Which of them occur in each context field searched so far.
    pub found: std::cell::RefCell<Vec<(Field, Vec<u64>)>>,
}

impl<'a> FastRequest<'a> {
    /// Resource type and id of `action`, as the Cedar mapping builds them.
    pub(crate) fn resource_of(action: &Action) -> (&'static str, Cow<'_, str>) {
        match action {
            Action::ToolCall { tool, .. } => ("Tool", Cow::Borrowed(tool.as_str())),
            Action::ModelCall { model, .. } => ("Model", Cow::Borrowed(model.as_str())),
            Action::HttpRequest { host, .. } => ("Host", Cow::Borrowed(host.as_str())),
            Action::McpCall {
                server,
                tool: Some(tool),
                ..
            } => ("McpTool", Cow::Owned(format!("{server}/{tool}"))),
            Action::McpCall { server, .. } => ("McpServer", Cow::Borrowed(server.as_str())),
            Action::ProcessExec { path, .. } | Action::FileAccess { path, .. } => {
                ("Path", Cow::Borrowed(path.as_str()))
            }
            Action::NetConnect { addr, port, .. } => ("Addr", Cow::Owned(addr_port(addr, *port))),
        }
    }

    fn ent_type<'s>(&'s self, e: &Ent<'s>) -> &'s str {
        match e {
            Ent::Principal => "Agent",
            Ent::Resource => self.resource.0,
            Ent::Action => "Action",
            Ent::Lit(t, _) => t,
        }
    }

    fn ent_id<'s>(&'s self, e: &Ent<'s>) -> &'s str {
        match e {
            Ent::Principal => &self.agent.agent_id,
            Ent::Resource => &self.resource.1,
            Ent::Action => self.action.kind().as_str(),
            Ent::Lit(_, id) => id,
        }
    }

    fn same(&self, a: &Ent<'_>, b: &Ent<'_>) -> bool {
        self.ent_type(a) == self.ent_type(b) && self.ent_id(a) == self.ent_id(b)
    }

    /// `a in b` for one entity `b`: equal, or `b` is an ancestor of `a`. Only entities of the
    /// request have known ancestors (the agent's team, an MCP tool's server).
    fn is_in(&self, a: &Ent<'_>, b: &Ent<'_>) -> Option<bool> {
        if self.same(a, b) {
            return Some(true);
        }
        let parent: Option<(&str, &str)> = match a {
            Ent::Principal => self.agent.team.as_deref().map(|t| ("Team", t)),
            Ent::Resource => match self.action {
                Action::McpCall {
                    server,
                    tool: Some(_),
                    ..
                } => Some(("McpServer", server.as_str())),
                _ => None,
            },
            Ent::Action => None,
            // A literal's ancestors are whatever the store holds: only the request's entities
            // and the agent's team, which has no parent. Other literals: unknown.
            Ent::Lit(t, id) => {
                let team_of_agent = *t == "Team" && self.agent.team.as_deref() == Some(*id);
                return team_of_agent.then_some(false);
            }
        };
        Some(parent.is_some_and(|(t, id)| self.ent_type(b) == t && self.ent_id(b) == id))
    }

    fn context_attr(&'a self, field: Field) -> Option<Val<'a>> {
        let s = |v: &'a str| Some(Val::Str(Cow::Borrowed(v)));
        let long = |v: i64| Some(Val::Long(v));
        let strs = |v: &'a [String]| {
            Some(Val::Set(
                v.iter()
                    .map(|t| Val::Str(Cow::Borrowed(t.as_str())))
                    .collect(),
            ))
        };
        let count = |t: &Option<u64>| t.map(|t| Val::Long(i64::try_from(t).unwrap_or(i64::MAX)));
        match field {
            Field::Layer => return s(self.layer.as_str()),
            Field::SessionId => return self.agent.session_id.as_deref().and_then(s),
            Field::Budget => return Some(Val::Budget),
            Field::Time => return Some(Val::Time),
            _ => {}
        }
        match (self.action, field) {
            (Action::ToolCall { tool, .. }, Field::Tool) => s(tool),
            (Action::ToolCall { args, .. }, Field::ArgsJson) => s(self
                .args_json
                .get_or_init(|| super::request::args_json(Some(args)))),
            (Action::ModelCall { provider, .. }, Field::Provider) => s(provider),
            (Action::ModelCall { model, .. }, Field::Model) => s(model),
            (Action::ModelCall { input_tokens, .. }, Field::InputTokens) => count(input_tokens),
            (Action::ModelCall { output_tokens, .. }, Field::OutputTokens) => count(output_tokens),
            (Action::ModelCall { tools, .. }, Field::Tools) => strs(tools),
            (Action::HttpRequest { method, .. }, Field::Method) => s(method),
            (Action::HttpRequest { scheme, .. }, Field::Scheme) => s(scheme),
            (Action::HttpRequest { host, .. }, Field::Host) => s(host),
            (Action::HttpRequest { port, .. }, Field::Port) => long(i64::from(*port)),
            (Action::HttpRequest { path, .. }, Field::Path) => s(path),
            (
                Action::HttpRequest {
                    scheme,
                    host,
                    port,
                    path,
                    ..
                },
                Field::Url,
            ) => Some(Val::Str(Cow::Owned(format!(
                "{scheme}://{}{path}",
                addr_port(host, *port)
            )))),
            (Action::McpCall { server, .. }, Field::Server) => s(server),
            (Action::McpCall { method, .. }, Field::Method) => s(method),
            (Action::McpCall { tool, .. }, Field::Tool) => tool.as_deref().and_then(s),
            (Action::McpCall { args, .. }, Field::ArgsJson) => s(self
                .args_json
                .get_or_init(|| super::request::args_json(args.as_ref()))),
            (Action::ProcessExec { path, .. }, Field::Path) => s(path),
            (Action::ProcessExec { argv, .. }, Field::Argv) => strs(argv),
            (Action::ProcessExec { argv, .. }, Field::Command) => {
                Some(Val::Str(Cow::Owned(argv.join(" "))))
            }
            (Action::FileAccess { path, .. }, Field::Path) => s(path),
            (Action::FileAccess { access, .. }, Field::Access) => s(access.as_str()),
            (Action::NetConnect { addr, .. }, Field::Addr) => s(addr),
            (Action::NetConnect { port, .. }, Field::Port) => long(i64::from(*port)),
            (Action::NetConnect { proto, .. }, Field::Proto) => s(proto.as_str()),
            // `ip` is an extension value: left to Cedar.
            _ => None,
        }
    }

    /// Whether `context` has `field`.
    fn context_has(&'a self, field: Field) -> bool {
        // Where the kind decides it, no value is made to know (the tool-call args JSON).
        if let Some(present) = field.presence(self.action.kind()) {
            return present;
        }
        match (self.action, field) {
            (Action::NetConnect { addr, .. }, Field::Ip) => {
                let bare = addr.trim_start_matches('[').trim_end_matches(']');
                bare.parse::<std::net::IpAddr>().is_ok()
            }
            _ => self.context_attr(field).is_some(),
        }
    }

    fn tags(&self, e: &Ent<'_>) -> Option<Tags<'a>> {
        match e {
            Ent::Principal => Some(Tags::Labels(self.agent)),
            Ent::Resource => match self.action {
                Action::ToolCall { args, .. } => Some(Tags::Args(Some(args))),
                Action::McpCall {
                    args,
                    tool: Some(_),
                    ..
                } => Some(Tags::Args(args.as_ref())),
                _ => None,
            },
            _ => None,
        }
    }

    fn eval(&'a self, e: &'a Expr) -> Option<Val<'a>> {
        Some(match e {
            Expr::Lit(Lit::Bool(x)) => Val::Bool(*x),
            Expr::Lit(Lit::Long(x)) => Val::Long(*x),
            Expr::Lit(Lit::Str(x)) => Val::Str(Cow::Borrowed(x)),
            Expr::Lit(Lit::Entity(t, id)) => Val::Ent(Ent::Lit(t, id)),
            Expr::Set(items) => {
                Val::Set(items.iter().map(|i| self.eval(i)).collect::<Option<_>>()?)
            }
            Expr::Var(Var::Principal) => Val::Ent(Ent::Principal),
            Expr::Var(Var::Resource) => Val::Ent(Ent::Resource),
            Expr::Var(Var::Action) => Val::Ent(Ent::Action),
            Expr::Var(Var::Context) => Val::Context,
            Expr::CtxAttr(field) => self.context_attr(*field)?,
            // The boolean forms have one implementation, in `test`.
            Expr::CtxHas(_)
            | Expr::CtxStrEq(..)
            | Expr::CtxLike(..)
            | Expr::And(..)
            | Expr::Or(..)
            | Expr::Not(_) => Val::Bool(self.test(e)?),
            Expr::Attr(of, name) => match self.eval(of)? {
                Val::Budget => {
                    let v = (self.budget)();
                    match name.as_str() {
                        "exceeded" => Val::Bool(v.exceeded),
                        "calls_remaining" => Val::Long(v.calls_remaining),
                        "tokens_remaining" => Val::Long(v.tokens_remaining),
                        "cost_remaining_micros" => Val::Long(v.cost_remaining_micros),
                        "utilization_pct" => Val::Long(v.utilization_pct),
                        _ => return None,
                    }
                }
                Val::Time => {
                    let secs = self.now_ms.div_euclid(1000);
                    match name.as_str() {
                        "epoch_secs" => Val::Long(secs),
                        "hour" => Val::Long(secs.rem_euclid(86_400) / 3600),
                        "weekday" => Val::Long((secs.div_euclid(86_400) + 3).rem_euclid(7) + 1),
                        _ => return None,
                    }
                }
                _ => return None,
            },
            Expr::Has(of, name) => match self.eval(of)? {
                Val::Budget => Val::Bool(matches!(
                    name.as_str(),
                    "exceeded"
                        | "calls_remaining"
                        | "tokens_remaining"
                        | "cost_remaining_micros"
                        | "utilization_pct"
                )),
                Val::Time => Val::Bool(matches!(name.as_str(), "epoch_secs" | "hour" | "weekday")),
                _ => return None,
            },
            Expr::If(c, t, f) => {
                if self.eval(c)?.as_bool()? {
                    self.eval(t)?
                } else {
                    self.eval(f)?
                }
            }
            Expr::Cmp(op, l, r) => {
                let (l, r) = (self.eval(l)?, self.eval(r)?);
                Val::Bool(match op {
                    CmpOp::Eq => self.equal(&l, &r)?,
                    CmpOp::Ne => !self.equal(&l, &r)?,
                    _ => {
                        let (Val::Long(a), Val::Long(b)) = (l, r) else {
                            return None;
                        };
                        match op {
                            CmpOp::Lt => a < b,
                            CmpOp::Le => a <= b,
                            CmpOp::Gt => a > b,
                            _ => a >= b,
                        }
                    }
                })
            }
            Expr::Like(of, pattern) => match self.eval(of)? {
                Val::Str(s) => Val::Bool(glob(&s, pattern)),
                _ => return None,
            },
            Expr::Contains(set, x) => {
                let (Val::Set(items), x) = (self.eval(set)?, self.eval(x)?) else {
                    return None;
                };
                Val::Bool(self.member(&items, &x)?)
            }
            Expr::ContainsAny(l, r) | Expr::ContainsAll(l, r) => {
                let (Val::Set(a), Val::Set(bs)) = (self.eval(l)?, self.eval(r)?) else {
                    return None;
                };
                let mut hits = Vec::with_capacity(bs.len());
                for x in &bs {
                    hits.push(self.member(&a, x)?);
                }
                Val::Bool(if matches!(e, Expr::ContainsAny(..)) {
                    hits.iter().any(|h| *h)
                } else {
                    hits.iter().all(|h| *h)
                })
            }
            Expr::In(l, r) => {
                let Val::Ent(a) = self.eval(l)? else {
                    return None;
                };
                match self.eval(r)? {
                    Val::Ent(t) => Val::Bool(self.is_in(&a, &t)?),
                    Val::Set(targets) => {
                        let mut any = false;
                        for t in &targets {
                            let Val::Ent(t) = t else { return None };
                            any |= self.is_in(&a, t)?;
                        }
                        Val::Bool(any)
                    }
                    _ => return None,
                }
            }
            Expr::Is(x, ty, within) => {
                let Val::Ent(a) = self.eval(x)? else {
                    return None;
                };
                if self.ent_type(&a) != ty.as_str() {
                    Val::Bool(false)
                } else if let Some(within) = within {
                    let Val::Ent(t) = self.eval(within)? else {
                        return None;
                    };
                    Val::Bool(self.is_in(&a, &t)?)
                } else {
                    Val::Bool(true)
                }
            }
            Expr::HasTag(of, key) | Expr::GetTag(of, key) => {
                let (Val::Ent(ent), Val::Str(key)) = (self.eval(of)?, self.eval(key)?) else {
                    return None;
                };
                let tags = self.tags(&ent)?;
                if matches!(e, Expr::HasTag(..)) {
                    Val::Bool(tags.has(&key))
                } else {
                    // Cedar raises an error on a missing tag.
                    Val::Str(tags.get(&key)?)
                }
            }
            Expr::Unsupported => return None,
        })
    }

    /// Cedar `==` on the values of the subset (sets and records are left to Cedar).
    fn equal(&self, a: &Val<'_>, b: &Val<'_>) -> Option<bool> {
        Some(match (a, b) {
            (Val::Bool(x), Val::Bool(y)) => x == y,
            (Val::Long(x), Val::Long(y)) => x == y,
            (Val::Str(x), Val::Str(y)) => x == y,
            (Val::Ent(x), Val::Ent(y)) => self.same(x, y),
            (Val::Set(_) | Val::Context | Val::Budget | Val::Time, _)
            | (_, Val::Set(_) | Val::Context | Val::Budget | Val::Time) => {
                return None;
            }
            // Values of different types are never equal in Cedar.
            _ => false,
        })
    }

    fn member(&self, set: &[Val<'_>], x: &Val<'_>) -> Option<bool> {
        let mut found = false;
        for item in set {
            found |= self.equal(item, x)?;
        }
        Some(found)
    }

    /// False when a literal of `needs` occurs nowhere in `text` (the value of `field`): one
    /// search for all of the set's literals per field and request, then a bit per pattern.
    fn may_hold(&self, field: Field, text: &str, needs: &[u32]) -> bool {
        let Some(literals) = self.literals.filter(|_| !needs.is_empty()) else {
            return true;
        };
        let mut found = self.found.borrow_mut();
        let bits = match found.iter().position(|(f, _)| *f == field) {
            Some(i) => found.get(i).map(|(_, bits)| bits),
            None => {
                found.push((field, literals.occurring(text)));
                found.last().map(|(_, bits)| bits)
            }
        };
        bits.is_some_and(|bits| Literals::has_all(bits, needs))
    }

    /// Whether `field` was searched already and a literal of `needs` does not occur in it.
    fn known_absent(&self, field: Field, needs: &[u32]) -> bool {
        !needs.is_empty()
            && self
                .found
                .borrow()
                .iter()
                .find(|(f, _)| *f == field)
                .is_some_and(|(_, bits)| !Literals::has_all(bits, needs))
    }

    /// Evaluates a policy's whole condition: `Some(satisfied)` or `None` (ask Cedar).
    pub(crate) fn satisfied(&'a self, e: &'a Expr) -> Option<bool> {
        self.test(e)
    }

    /// [`FastRequest::eval`] of an expression that must be a boolean, with the boolean forms
    /// conditions are made of evaluated without building a [`Val`] (the decision path's hot
    /// loop); anything else goes through `eval`. `None` wherever `eval` would give `None` or a
    /// non-boolean.
    fn test(&'a self, e: &'a Expr) -> Option<bool> {
        match e {
            Expr::Lit(Lit::Bool(x)) => Some(*x),
            Expr::And(l, r) => match self.test(l)? {
                false => Some(false),
                true => self.test(r),
            },
            Expr::Or(l, r) => match self.test(l)? {
                true => Some(true),
                false => self.test(r),
            },
            Expr::Not(x) => Some(!self.test(x)?),
            Expr::CtxHas(field) => Some(self.context_has(*field)),
            Expr::CtxStrEq(field, lit, want) => match self.context_attr(*field)? {
                Val::Str(v) => Some((v == lit.as_str()) == *want),
                _ => None,
            },
            // A literal it needs is known to be absent (the field, a string, was searched for
            // an earlier pattern): false without reading the field again.
            Expr::CtxLike(field, _, needs) if self.known_absent(*field, needs) => Some(false),
            Expr::CtxLike(field, pattern, needs) => match self.context_attr(*field)? {
                Val::Str(v) => Some(self.may_hold(*field, &v, needs) && glob(&v, pattern)),
                _ => None,
            },
            _ => self.eval(e)?.as_bool(),
        }
    }
}

enum Tags<'a> {
    Labels(&'a Agent),
    Args(Option<&'a serde_json::Map<String, Json>>),
}

impl<'a> Tags<'a> {
    /// Whether the tag is there (without writing a non-string argument out as text).
    fn has(&self, key: &str) -> bool {
        match self {
            Tags::Labels(agent) => agent.labels.contains_key(key),
            Tags::Args(args) => args.is_some_and(|a| a.contains_key(key)),
        }
    }

    fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        match self {
            Tags::Labels(agent) => agent.labels.get(key).map(|v| Cow::Borrowed(v.as_str())),
            Tags::Args(args) => args.and_then(|a| a.get(key)).map(|v| match v {
                Json::String(s) => Cow::Borrowed(s.as_str()),
                other => Cow::Owned(other.to_string()),
            }),
        }
    }
}

impl Val<'_> {
    fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(x) => Some(*x),
            _ => None,
        }
    }
}

/// Cedar's `like`: `*` matches any run of characters, everything else literally. Matching the
/// UTF-8 bytes is the same as matching characters: literals are whole characters, and a valid
/// UTF-8 sequence only occurs in valid UTF-8 text at character boundaries.
pub(crate) fn glob(text: &str, pattern: &[Segment]) -> bool {
    let mut rest = text.as_bytes();
    let mut anchored = true;
    let n = pattern.len();
    for (i, seg) in pattern.iter().enumerate() {
        let Segment::Text(lit, finder) = seg else {
            anchored = false;
            continue;
        };
        let lit = lit.as_bytes();
        let is_last = i + 1 == n;
        if anchored {
            let Some(after) = rest.strip_prefix(lit) else {
                return false;
            };
            rest = after;
        } else if is_last {
            return rest.ends_with(lit);
        } else {
            let Some(at) = finder.find(rest) else {
                return false;
            };
            rest = rest.get(at + lit.len()..).unwrap_or_default();
        }
        anchored = true;
    }
    !anchored || rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> Vec<Segment> {
        let mut segs = Vec::new();
        for (i, part) in p.split('*').enumerate() {
            if i > 0 {
                segs.push(Segment::Star);
            }
            if !part.is_empty() {
                segs.push(Segment::text(part));
            }
        }
        segs
    }

    #[test]
    fn floating_literals_are_found_overlapping_and_shared() {
        let like = |p: &str| Expr::CtxLike(Field::ArgsJson, pat(p), Vec::new());
        let mut conds = vec![
            like("*abc*"),
            Expr::Or(b(like("*bcd*")), b(like("ab*"))),
            like("*bcd*x"),
        ];
        let lits = Literals::assign(&mut conds).expect("literals");
        assert_eq!(lits.searcher.patterns_len(), 3, "abc, bcd (shared), x");
        let needs = |e: &Expr| match e {
            Expr::CtxLike(_, _, n) => n.clone(),
            _ => Vec::new(),
        };
        assert_eq!(needs(&conds[0]), vec![0]);
        assert_eq!(needs(&conds[2]), vec![1, 2]);
        let Expr::Or(l, r) = &conds[1] else {
            panic!("shape")
        };
        assert_eq!(
            (needs(l), needs(r)),
            (vec![1], vec![]),
            "an anchored run is not searched"
        );
        let bits = lits.occurring("zabcdz");
        assert!(Literals::has(&bits, 0) && Literals::has(&bits, 1) && !Literals::has(&bits, 2));
    }

    #[test]
    fn glob_matches_like_cedar() {
        for (text, p, want) in [
            ("abc", "abc", true),
            ("abc", "ab", false),
            ("abc", "*", true),
            ("", "*", true),
            ("", "", true),
            ("a", "", false),
            ("abc", "a*", true),
            ("abc", "*c", true),
            ("abc", "*b*", true),
            ("abc", "a*c", true),
            ("ac", "a*c", true),
            ("abcbc", "a*bc", true),
            ("abcbd", "a*bc", false),
            ("rm -rf /", "*rm -rf*", true),
            ("/etc/passwd", "/etc/*", true),
            ("/etc", "/etc/*", false),
            ("aaa", "a*a*a", true),
            ("aa", "a*a*a", false),
            ("héllo wörld", "h*ö*d", true),
            ("xyz", "**", true),
        ] {
            assert_eq!(glob(text, &pat(p)), want, "{text:?} like {p:?}");
        }
    }
}
