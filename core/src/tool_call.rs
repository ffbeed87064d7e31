//! The tool-call path every binding shares: a governed function call becomes an
//! [`Action::ToolCall`] here, and its result an [`Outcome`].
//!
//! A binding converts each argument from its host language into one neutral [`ArgValue`]
//! (Python in `bindings/python`, by pyo3 extraction) and hands the named arguments to
//! [`ArgRules::action`]. Everything after that is decided here, once, for every binding:
//!
//! 1. **Redaction by name.** A top-level argument whose name matches [`SECRET_NAME_PATTERN`]
//!    (case-insensitive search: `pass`, `password`, `secret`, `token`, `api_key`, `apikey`,
//!    `authorization`, `credential`) or is listed in the call's own redact list is recorded as
//!    `"[redacted]"`, whatever its value. Nested keys are not matched by name.
//! 2. **Redaction by value.** In every string that reaches the action (strings, byte strings,
//!    host text forms, at any depth), each match of [`SECRET_VALUE_PATTERNS`] is replaced by
//!    `[redacted]`: bearer tokens (`Bearer` + 16 or more token characters), `sk-` API keys
//!    (OpenAI, Anthropic: 20 or more characters after `sk-`), AWS access key ids
//!    (`AKIA`/`ASIA` + 16), GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 or more),
//!    JSON Web Tokens (`eyJ….eyJ….…`) and PEM private-key blocks.
//! 3. **JSON, with one rule for what is not JSON:**
//!    - null, booleans, integers (`i64`) and finite floats are themselves; NaN and ±Infinity
//!      become `null`;
//!    - strings are themselves;
//!    - byte strings become the text of a Python bytes literal: `b'…'`, printable ASCII as is,
//!      `\t \n \r \\` and the quote escaped, every other byte as `\xNN` (single quotes unless
//!      the bytes hold a `'` and no `"`);
//!    - lists (and tuples, sets) become arrays; maps become objects, keys as text (the binding
//!      gives the host's text form of a non-string key);
//!    - anything else — dates, integers outside `i64`, enums, arbitrary objects — arrives as
//!      [`ArgValue::Other`] carrying the host's text form (Python: `repr()`), which becomes a
//!      string;
//!    - a container met again inside itself is [`ArgValue::Cycle`], written `"<cycle>"`;
//!      values nested deeper than [`MAX_DEPTH`] (the argument map is depth 0) are written
//!      `"<nested too deep>"`, and a binding stops converting there ([`ArgValue::TooDeep`]).
//! 4. **Truncation.** Every string so produced longer than [`MAX_ARG_CHARS`] characters
//!    (Unicode scalar values) is cut to that many and `…` appended — after the value
//!    redaction, so a cut never leaves half a secret behind.
//!
//! [`outcome`] turns how the call ended into the [`Outcome`] reported after it: `ok` with the
//! result's size ([`ResultShape::size`]: the length of a string, byte string, sequence, set or
//! map; unknown for anything else) or `error` with the error's type name, and the duration the
//! binding measured (this crate has no clock; see [`crate::Environment`]).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::model::{Action, Outcome, OutcomeStatus};

/// Strings longer than this many characters are cut and `…` appended.
pub const MAX_ARG_CHARS: usize = 4096;
/// Values nested deeper than this (the argument map is depth 0) become `"<nested too deep>"`.
pub const MAX_DEPTH: usize = 32;
/// What a redacted argument or secret is replaced by.
pub const REDACTED: &str = "[redacted]";
/// Written for [`ArgValue::TooDeep`] and anything past [`MAX_DEPTH`].
pub const TOO_DEEP: &str = "<nested too deep>";
/// Written for [`ArgValue::Cycle`].
pub const CYCLE: &str = "<cycle>";
/// Argument names whose values are redacted (searched case-insensitively).
pub const SECRET_NAME_PATTERN: &str =
    r"(?i)pass(word)?|secret|token|api_?key|authorization|credential";
/// The secret values redacted wherever they appear in a string, as one regular expression.
pub const SECRET_VALUE_PATTERNS: &str = concat!(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY-----[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY-----",
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}=*",
    r"|\bsk-[A-Za-z0-9_-]{20,}",
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}",
    r"|\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}",
);

// Both patterns are constants covered by the tests below; a failure to compile them would be a
// bug caught there, and then nothing matches rather than a panic at run time.
static SECRET_NAME: LazyLock<Option<Pattern>> = LazyLock::new(|| Pattern::new(SECRET_NAME_PATTERN));
static SECRET_VALUE: LazyLock<Option<Pattern>> =
    LazyLock::new(|| Pattern::new(SECRET_VALUE_PATTERNS));

/// A compiled pattern and the fewest bytes any match of it takes: shorter text (most argument
/// names and values) is known not to match without running the regex.
struct Pattern {
    re: Regex,
    min_len: usize,
}

impl Pattern {
    fn new(pattern: &str) -> Option<Self> {
        let min_len = regex_syntax::parse(pattern)
            .ok()?
            .properties()
            .minimum_len()
            .unwrap_or(0);
        Some(Pattern {
            re: Regex::new(pattern).ok()?,
            min_len,
        })
    }

    /// The regex, if `text` is long enough to hold a match.
    fn searching(&self, text: &str) -> Option<&Regex> {
        (text.len() >= self.min_len).then_some(&self.re)
    }
}

/// A host value, converted by a binding, before it becomes JSON (see the module docs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ArgValue {
    /// `None`, `null`, `undefined`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits `i64` (others come as [`ArgValue::Other`] with their decimal text).
    Int(i64),
    /// A float (NaN and infinities become `null`).
    Float(f64),
    /// A string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list, tuple or set, in the host's iteration order.
    List(Vec<ArgValue>),
    /// A map, keys in their text form, in the host's order (a later duplicate key wins).
    Map(Vec<(String, ArgValue)>),
    /// Anything else, as the host's text form (Python: `repr()`).
    Other(String),
    /// A container met again inside itself.
    Cycle,
    /// A value the binding did not convert because it lies deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl ArgValue {
    /// A host double (JS numbers): an integer when whole and within ±(2^53−1), else a float.
    pub fn double(n: f64) -> ArgValue {
        match whole_double(n) {
            Some(i) => ArgValue::Int(i),
            None => ArgValue::Float(n),
        }
    }
}

/// `n` as an integer when it is whole and within ±(2^53−1).
fn whole_double(n: f64) -> Option<i64> {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    #[allow(clippy::cast_possible_truncation)] // whole and within ±2^53
    (n.fract() == 0.0 && n.abs() <= SAFE).then_some(n as i64)
}

/// How the numbers of arguments that a binding received as JSON text are read
/// ([`ArgRules::json_args`]), so that they come out as the host's own values would through
/// [`ArgValue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonNumbers {
    /// Integers that fit `i64` and floats are themselves; a larger integer becomes its decimal
    /// text (as [`ArgValue::Other`]).
    Exact,
    /// Every number is a double ([`ArgValue::double`]): the JSON text of a JS value.
    Double,
}

impl JsonNumbers {
    /// The value a number becomes, when not itself.
    fn read(self, n: &Number) -> Option<Value> {
        match self {
            JsonNumbers::Exact => {
                (n.is_u64() && n.as_i64().is_none()).then(|| Value::String(n.to_string()))
            }
            JsonNumbers::Double => {
                if n.as_i64().is_some_and(|i| i.unsigned_abs() < 1 << 53) {
                    return None; // an integer a double holds exactly, and within ±(2^53−1)
                }
                let f = n.as_f64().unwrap_or(f64::NAN);
                Some(match whole_double(f) {
                    Some(i) => Value::from(i),
                    None => Number::from_f64(f).map_or(Value::Null, Value::Number),
                })
            }
        }
    }
}

/// The redaction rules of one governed function: the secret names of [`SECRET_NAME_PATTERN`]
/// plus the function's own list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgRules {
    redact: Vec<String>,
}

impl ArgRules {
    /// Rules that also redact the arguments named in `redact`.
    pub fn new<I, S>(redact: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ArgRules {
            redact: redact.into_iter().map(Into::into).collect(),
        }
    }

    /// True when an argument named `name` is recorded as `"[redacted]"`.
    pub fn is_secret_name(&self, name: &str) -> bool {
        self.redact.iter().any(|r| r == name)
            || SECRET_NAME
                .as_ref()
                .and_then(|p| p.searching(name))
                .is_some_and(|re| re.is_match(name))
    }

    /// The JSON arguments of a tool call: named values redacted, converted and truncated as
    /// the module docs say, in the given order.
    pub fn args<I>(&self, args: I) -> Map<String, Value>
    where
        I: IntoIterator<Item = (String, ArgValue)>,
    {
        let mut map = Map::new();
        for (name, value) in args {
            let json = if self.is_secret_name(&name) {
                Value::String(REDACTED.to_owned())
            } else {
                to_json(value, 1)
            };
            map.insert(name, json);
        }
        map
    }

    /// [`ArgRules::args`] of arguments the binding received as JSON text and parsed (one
    /// parse, no [`ArgValue`] in between): the same redaction, truncation and depth cut, and
    /// numbers read as `numbers` says.
    pub fn json_args(
        &self,
        mut args: Map<String, Value>,
        numbers: JsonNumbers,
    ) -> Map<String, Value> {
        for (name, value) in &mut args {
            if self.is_secret_name(name) {
                *value = Value::String(REDACTED.to_owned());
            } else {
                clean_json(value, 1, numbers);
            }
        }
        args
    }

    /// The [`Action::ToolCall`] of calling `tool` with arguments received as JSON text
    /// ([`ArgRules::json_args`]).
    pub fn json_action(
        &self,
        tool: impl Into<String>,
        args: Map<String, Value>,
        numbers: JsonNumbers,
    ) -> Action {
        Action::ToolCall {
            tool: tool.into(),
            args: self.json_args(args, numbers),
        }
    }

    /// The [`Action::ToolCall`] of calling `tool` with `args`.
    pub fn action<I>(&self, tool: impl Into<String>, args: I) -> Action
    where
        I: IntoIterator<Item = (String, ArgValue)>,
    {
        Action::ToolCall {
            tool: tool.into(),
            args: self.args(args),
        }
    }
}

/// One value as JSON, `depth` being its nesting (top-level arguments are at depth 1).
pub fn to_json(value: ArgValue, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::String(TOO_DEEP.to_owned());
    }
    match value {
        ArgValue::Null => Value::Null,
        ArgValue::Bool(b) => Value::Bool(b),
        ArgValue::Int(i) => Value::from(i),
        ArgValue::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        ArgValue::Str(s) | ArgValue::Other(s) => Value::String(clean(s)),
        ArgValue::Bytes(b) => Value::String(clean(bytes_literal(&b))),
        ArgValue::List(items) => {
            Value::Array(items.into_iter().map(|v| to_json(v, depth + 1)).collect())
        }
        ArgValue::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, to_json(v, depth + 1)))
                .collect(),
        ),
        ArgValue::Cycle => Value::String(CYCLE.to_owned()),
        ArgValue::TooDeep => Value::String(TOO_DEEP.to_owned()),
    }
}

/// [`to_json`] of a value that is JSON already, in place.
fn clean_json(value: &mut Value, depth: usize, numbers: JsonNumbers) {
    if depth > MAX_DEPTH {
        *value = Value::String(TOO_DEEP.to_owned());
        return;
    }
    match value {
        Value::String(s) => *s = clean(std::mem::take(s)),
        Value::Number(n) => {
            if let Some(v) = numbers.read(n) {
                *value = v;
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| clean_json(v, depth + 1, numbers)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| clean_json(v, depth + 1, numbers)),
        Value::Null | Value::Bool(_) => {}
    }
}

/// Value redaction, then truncation, of one string.
fn clean(s: String) -> String {
    truncate(redact_values(s))
}

/// Replaces every secret of [`SECRET_VALUE_PATTERNS`] in `s` by `[redacted]`.
pub fn redact_values(s: String) -> String {
    match SECRET_VALUE.as_ref().and_then(|p| p.searching(&s)) {
        Some(re) if re.is_match(&s) => re.replace_all(&s, REDACTED).into_owned(),
        _ => s,
    }
}

/// Cuts `s` to [`MAX_ARG_CHARS`] characters plus `…` when it is longer.
pub fn truncate(mut s: String) -> String {
    // A string of at most MAX_ARG_CHARS bytes has at most that many characters.
    if s.len() <= MAX_ARG_CHARS {
        return s;
    }
    if let Some((cut, _)) = s.char_indices().nth(MAX_ARG_CHARS) {
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The text of a Python bytes literal for `bytes` (what `repr(bytes)` prints).
pub fn bytes_literal(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in bytes {
        match b {
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            _ if char::from(b) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

/// The shape of a call's result, as far as its size goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultShape {
    /// A string of this many characters.
    Text(u64),
    /// A byte string of this many bytes.
    Bytes(u64),
    /// A list, tuple, set or map of this many entries.
    Collection(u64),
    /// Anything else (no size is recorded).
    Other,
}

impl ResultShape {
    /// The `result_size` recorded for it.
    pub fn size(self) -> Option<u64> {
        match self {
            ResultShape::Text(n) | ResultShape::Bytes(n) | ResultShape::Collection(n) => Some(n),
            ResultShape::Other => None,
        }
    }
}

/// How a governed call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEnd<'a> {
    /// It returned this.
    Returned(ResultShape),
    /// It raised or threw an error of this type name.
    Raised(&'a str),
}

/// The outcome reported after a governed call that ran for `duration_us` microseconds.
pub fn outcome(end: CallEnd<'_>, duration_us: u64) -> Outcome {
    match end {
        CallEnd::Returned(shape) => Outcome {
            duration_us,
            error: None,
            result_size: shape.size(),
            status: OutcomeStatus::Ok,
            usage: None,
        },
        CallEnd::Raised(kind) => Outcome {
            duration_us,
            error: Some(kind.to_owned()),
            result_size: None,
            status: OutcomeStatus::Error,
            usage: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(rules: &ArgRules, v: Vec<(&str, ArgValue)>) -> Value {
        Value::Object(rules.args(v.into_iter().map(|(k, v)| (k.to_owned(), v))))
    }

    #[test]
    fn the_patterns_compile() {
        assert!(SECRET_NAME.is_some());
        assert!(SECRET_VALUE.is_some());
    }

    #[test]
    fn text_shorter_than_any_match_is_not_searched_and_the_shortest_secrets_still_are() {
        // `pass` and an AWS key id (AKIA + 16) are the shortest matches.
        let (name, value) = (
            SECRET_NAME.as_ref().unwrap(),
            SECRET_VALUE.as_ref().unwrap(),
        );
        assert_eq!((name.min_len, value.min_len), (4, 20));
        assert!(name.searching("key").is_none());
        assert!(ArgRules::default().is_secret_name("pass"));
        assert_eq!(redact_values("AKIAABCDEFGHIJKLMNOP".into()), REDACTED);
        assert_eq!(
            redact_values("AKIAABCDEFGHIJKLMNO".into()),
            "AKIAABCDEFGHIJKLMNO"
        );
    }

    #[test]
    fn plain_values_are_themselves_and_non_finite_floats_null() {
        let got = args(
            &ArgRules::default(),
            vec![
                ("n", ArgValue::Null),
                ("b", ArgValue::Bool(true)),
                ("i", ArgValue::Int(-7)),
                ("f", ArgValue::Float(0.5)),
                (
                    "nan",
                    ArgValue::List(vec![
                        ArgValue::Float(f64::NAN),
                        ArgValue::Float(f64::INFINITY),
                        ArgValue::Float(f64::NEG_INFINITY),
                    ]),
                ),
                ("s", ArgValue::Str("hi".into())),
                ("o", ArgValue::Other("datetime.date(2024, 1, 2)".into())),
                (
                    "m",
                    ArgValue::Map(vec![
                        ("1".into(), ArgValue::Str("a".into())),
                        ("1".into(), ArgValue::Str("b".into())),
                    ]),
                ),
                ("c", ArgValue::List(vec![ArgValue::Cycle])),
            ],
        );
        assert_eq!(
            got,
            json!({"n": null, "b": true, "i": -7, "f": 0.5, "nan": [null, null, null], "s": "hi",
                   "o": "datetime.date(2024, 1, 2)", "m": {"1": "b"}, "c": ["<cycle>"]})
        );
    }

    #[test]
    fn bytes_follow_the_python_literal() {
        assert_eq!(bytes_literal(b"abc"), "b'abc'");
        assert_eq!(bytes_literal(b"it's"), "b\"it's\"");
        assert_eq!(bytes_literal(b"'\""), "b'\\'\"'");
        assert_eq!(
            bytes_literal(b"\x00\t\n\r\\\x7f\xff"),
            "b'\\x00\\t\\n\\r\\\\\\x7f\\xff'"
        );
    }

    #[test]
    fn nesting_past_the_limit_is_cut() {
        let mut v = ArgValue::Int(1);
        for _ in 0..40 {
            v = ArgValue::List(vec![v]);
        }
        let mut got = to_json(v, 1);
        let mut depth = 1;
        while let Value::Array(mut items) = got {
            got = items.pop().unwrap_or(Value::Null);
            depth += 1;
        }
        assert_eq!(
            (depth, got),
            (MAX_DEPTH + 1, Value::String(TOO_DEEP.into()))
        );
        assert_eq!(to_json(ArgValue::TooDeep, 1), json!(TOO_DEEP));
    }

    #[test]
    fn long_strings_are_cut_by_characters() {
        let s = "é".repeat(MAX_ARG_CHARS + 1);
        let got = truncate(s);
        assert_eq!(got.chars().count(), MAX_ARG_CHARS + 1);
        assert!(got.ends_with("é…"));
        let exact = "é".repeat(MAX_ARG_CHARS);
        assert_eq!(truncate(exact.clone()), exact);
        assert_eq!(
            to_json(ArgValue::Bytes(vec![b'a'; MAX_ARG_CHARS]), 1)
                .as_str()
                .map(|s| s.chars().count()),
            Some(MAX_ARG_CHARS + 1)
        );
    }

    #[test]
    fn secret_names_are_redacted_at_the_top_level_only() {
        let rules = ArgRules::new(["ssn"]);
        let got = args(
            &rules,
            vec![
                ("user", ArgValue::Str("ann".into())),
                ("API_KEY", ArgValue::Str("x".into())),
                ("db_password", ArgValue::Int(1)),
                ("ssn", ArgValue::Str("123".into())),
                ("authorization", ArgValue::List(vec![])),
                (
                    "nested",
                    ArgValue::Map(vec![("token".into(), ArgValue::Str("kept".into()))]),
                ),
            ],
        );
        assert_eq!(
            got,
            json!({"user": "ann", "API_KEY": REDACTED, "db_password": REDACTED, "ssn": REDACTED,
                   "authorization": REDACTED, "nested": {"token": "kept"}})
        );
        assert!(!ArgRules::default().is_secret_name("ssn"));
        assert!(!ArgRules::default().is_secret_name("path"));
    }

    #[test]
    fn secret_values_are_redacted_anywhere() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----";
        let cases = [
            (
                "Authorization: Bearer abcdefghij0123456789.xyz",
                "Authorization: [redacted]",
            ),
            (
                "key sk-proj-abcdefghijklmnopqrstu1234 end",
                "key [redacted] end",
            ),
            ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "[redacted]"),
            ("id=AKIAIOSFODNN7EXAMPLE;", "id=[redacted];"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[redacted]"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "jwt [redacted]",
            ),
            (pem, "[redacted]"),
        ];
        for (input, want) in cases {
            let got = to_json(
                ArgValue::List(vec![
                    ArgValue::Str(input.into()),
                    ArgValue::Other(input.into()),
                ]),
                1,
            );
            assert_eq!(got, json!([want, want]), "{input}");
        }
        let untouched = [
            "sk-live-123",
            "Bearer short",
            "AKIA1234",
            "eyJ alone",
            "https://example.com/a?b=c",
            "task-list skip-this",
        ];
        for s in untouched {
            assert_eq!(to_json(ArgValue::Str(s.into()), 1), json!(s), "{s}");
        }
        let b = to_json(ArgValue::Bytes(b"Bearer abcdefghij0123456789".to_vec()), 1);
        assert_eq!(b, json!("b'[redacted]'"));
    }

    #[test]
    fn secrets_are_redacted_before_the_cut() {
        let s = format!("{} sk-{}", "x".repeat(MAX_ARG_CHARS - 10), "a".repeat(40));
        let got = to_json(ArgValue::Str(s), 1);
        let text = got.as_str().unwrap_or_default();
        assert!(!text.contains("aaaa"), "{text}");
    }

    #[test]
    fn the_action_and_outcomes() {
        let action = ArgRules::default().action("search", [("q".to_owned(), ArgValue::Int(1))]);
        assert_eq!(
            serde_json::to_value(&action).ok(),
            Some(json!({"kind": "tool_call", "tool": "search", "args": {"q": 1}}))
        );
        let ok = outcome(CallEnd::Returned(ResultShape::Collection(3)), 12);
        assert_eq!(
            (ok.status, ok.result_size, ok.error, ok.duration_us),
            (OutcomeStatus::Ok, Some(3), None, 12)
        );
        assert_eq!(
            outcome(CallEnd::Returned(ResultShape::Other), 0).result_size,
            None
        );
        let err = outcome(CallEnd::Raised("TimeoutError"), 5);
        assert_eq!(
            (err.status, err.result_size, err.error.as_deref()),
            (OutcomeStatus::Error, None, Some("TimeoutError"))
        );
    }
}
