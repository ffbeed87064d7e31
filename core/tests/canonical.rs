#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! Our JCS writers agree byte-for-byte with the reference crate on random JSON.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
        Just("\u{E000}x".to_owned()),
        Just("\u{1F600}".to_owned()),
        Just("\u{FFFD}".to_owned()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        prop::sample::select(vec![
            1e21,
            1e-7,
            1.5e-7,
            123456789.0,
            0.1,
            -0.0,
            5e-324,
            1e300,
            0.000001
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\/a]{0,6}".prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn matches_the_reference_jcs(v in json()) {
        let ours = aa_core::to_canonical_vec(&v).unwrap();
        let reference = serde_json_canonicalizer::to_vec(&v).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&reference));
        // The serde-free writer of JSON values (the decision path's) writes the same bytes.
        let mut direct = Vec::new();
        aa_core::write_json(&v, &mut direct);
        prop_assert_eq!(String::from_utf8_lossy(&direct), String::from_utf8_lossy(&reference));
    }
}

#[test]
fn rfc8785_examples() {
    let v: Value = serde_json::from_str(r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}"#).unwrap();
    let expected = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
    assert_eq!(
        String::from_utf8(aa_core::to_canonical_vec(&v).unwrap()).unwrap(),
        expected
    );
}
