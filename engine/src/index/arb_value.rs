//! Test-only proptest strategies producing arbitrary [`Value`]s, biased
//! towards the cases that break order-preserving encodings: numbers at the
//! i64/u64/f64 boundaries, NaN, infinities, -0.0, strings with NUL and 0x01
//! bytes, and nested lists and maps.

use crate::doc::value::{Timestamp, Value};
use proptest::prelude::*;

fn edge_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(-5e-324),
        Just(9.223372036854776e18),
        Just(-9.223372036854776e18),
        Just(1.8446744073709552e19),
        Just(0.5),
        Just(3.0),
        Just(-3.0),
        Just(3.5),
        (-1000i64..1000).prop_map(|i| i as f64 / 4.0),
        any::<f64>(),
        // Arbitrary bit patterns reach subnormals and huge exponents evenly.
        any::<u64>().prop_map(f64::from_bits),
        // Integers near 2^53 and 2^63/2^64 as floats.
        (-2048i64..2048).prop_map(|d| (9_007_199_254_740_992i64 + d) as f64),
        (0u64..4096).prop_map(|d| (u64::MAX - d) as f64),
    ]
}

fn edge_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN + 1),
        Just(i64::MAX - 1),
        -300i64..300,
        (0i64..1024).prop_map(|d| i64::MAX - d),
        (0i64..1024).prop_map(|d| i64::MIN + d),
        any::<i64>(),
        (0u32..63).prop_map(|p| 1i64 << p),
        (0u32..63).prop_map(|p| -(1i64 << p)),
    ]
}

fn edge_uint() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(u64::MAX),
        Just(1 << 63),
        Just((1 << 63) - 1),
        0u64..300,
        (0u64..1024).prop_map(|d| u64::MAX - d),
        (0u64..1024).prop_map(|d| (1u64 << 63) + d),
        any::<u64>(),
    ]
}

fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-c\\x00\\x01\\x02]{0,6}", "\\PC{0,8}", any::<String>(),]
}

/// A number of any of the three variants, near the interesting boundaries.
pub(crate) fn number_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        edge_int().prop_map(Value::Int),
        edge_uint().prop_map(Value::UInt),
        edge_float().prop_map(Value::Float),
        edge_float().prop_map(Value::Float),
    ]
}

/// A scalar value of any variant (no lists or maps).
pub(crate) fn scalar_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_int().prop_map(Value::Int),
        edge_uint().prop_map(Value::UInt),
        edge_float().prop_map(Value::Float),
        edge_float().prop_map(Value::Float),
        (
            prop_oneof![Just(i64::MIN), Just(i64::MAX), -5i64..5, any::<i64>()],
            prop_oneof![
                Just(None),
                Just(Some(0)),
                Just(Some(i32::MIN)),
                Just(Some(i32::MAX)),
                any::<Option<i32>>()
            ]
        )
            .prop_map(|(micros, offset_secs)| Value::Timestamp(Timestamp { micros, offset_secs })),
        edge_string().prop_map(Value::Str),
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(0xFF), any::<u8>()], 0..6)
            .prop_map(Value::Bytes),
    ]
}

/// Any value, nested lists and maps included (up to a few levels deep).
pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    scalar_value().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            proptest::collection::vec((prop_oneof![Just(String::new()), "[ab\\x00]{0,3}"], inner), 0..4)
                .prop_map(|pairs| Value::Map(dedup_keys(pairs))),
        ]
    })
}

/// Maps have unique keys; keep the first of each.
fn dedup_keys(pairs: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if !out.iter().any(|(k2, _)| *k2 == k) {
            out.push((k, v));
        }
    }
    out
}
