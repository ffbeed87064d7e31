//! `ArgRules::json_args` (arguments a binding received as JSON text) against the definition it
//! shortcuts: the same JSON read value by value into `ArgValue`, the way the host's own values
//! arrive, then `ArgRules::args`.

use aa_core::tool_call::{ArgRules, ArgValue, JsonNumbers, MAX_ARG_CHARS};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// A host's reading of one JSON value, under `numbers`.
fn host(value: Value, numbers: JsonNumbers) -> ArgValue {
    match value {
        Value::Null => ArgValue::Null,
        Value::Bool(b) => ArgValue::Bool(b),
        Value::Number(n) => match numbers {
            JsonNumbers::Double => ArgValue::double(n.as_f64().unwrap_or(f64::NAN)),
            _ => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => ArgValue::Int(i),
                (None, Some(f)) if !n.is_u64() => ArgValue::Float(f),
                _ => ArgValue::Other(n.to_string()),
            },
        },
        Value::String(s) => ArgValue::Str(s),
        Value::Array(items) => {
            ArgValue::List(items.into_iter().map(|v| host(v, numbers)).collect())
        }
        Value::Object(map) => ArgValue::Map(
            map.into_iter()
                .map(|(k, v)| (k, host(v, numbers)))
                .collect(),
        ),
    }
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-(1i64 << 54)..(1i64 << 54)).prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (-1e6f64..1e6).prop_map(|f| Value::from(f.round())),
        Just(Value::from(9_007_199_254_740_993u64)),
        Just(Value::from(1e21)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,12}",
        Just("Bearer abcdefghij0123456789.xyz".to_owned()),
        Just(format!("x sk-{}", "a".repeat(30))),
        Just("é".repeat(MAX_ARG_CHARS + 3)),
        Just("AKIAIOSFODNN7EXAMPLE".to_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,6}",
        Just("token".to_owned()),
        Just("API_KEY".to_owned())
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(40, 96, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn args() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), json()), 0..5).prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #[test]
    fn json_args_are_what_the_host_values_give(
        args in args(),
        redact in prop::collection::vec("[a-z]{1,6}", 0..2),
        double in any::<bool>(),
    ) {
        let numbers = if double { JsonNumbers::Double } else { JsonNumbers::Exact };
        let rules = ArgRules::new(redact);
        let by_value = rules.args(args.clone().into_iter().map(|(k, v)| (k, host(v, numbers))));
        let direct = rules.json_args(args, numbers);
        // Compared as text: the order of keys and the written form of each number count.
        prop_assert_eq!(
            serde_json::to_string(&direct).ok(),
            serde_json::to_string(&by_value).ok()
        );
    }
}

#[test]
fn a_deep_value_is_cut_where_the_host_reading_is() {
    let mut deep = Value::from(1);
    for _ in 0..40 {
        deep = Value::Array(vec![deep]);
    }
    let args: Map<String, Value> = [("d".to_owned(), deep)].into_iter().collect();
    let rules = ArgRules::default();
    let by_value = rules.args(
        args.clone()
            .into_iter()
            .map(|(k, v)| (k, host(v, JsonNumbers::Double))),
    );
    assert_eq!(rules.json_args(args, JsonNumbers::Double), by_value);
}
