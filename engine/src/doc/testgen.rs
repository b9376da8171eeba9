//! Test-only generators of random documents shared by the document layer's
//! property tests (value model, JSON form, stored codec, serde bridge).

use super::value::{Timestamp, Value};
use proptest::prelude::*;

/// Floats with the awkward cases (NaN, infinities, -0.0, subnormals)
/// over-represented; uniform bit patterns would almost never hit them.
pub(crate) fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE / 4.0),
        Just(f64::MAX),
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
        (-1e6f64..1e6f64),
    ]
}

/// Map keys, including ones that start with `$` (escaped in JSON) and
/// arbitrary Unicode.
pub(crate) fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_]{1,8}", "\\$[a-z$]{0,5}", "\\PC{0,6}", Just(String::new())]
}

/// Any scalar value.
pub(crate) fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-200i64..200).prop_map(Value::Int),
        ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::UInt),
        arb_f64().prop_map(Value::Float),
        "\\PC{0,20}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        (any::<i64>(), proptest::option::of(any::<i32>()))
            .prop_map(|(micros, offset_secs)| Value::Timestamp(Timestamp { micros, offset_secs })),
    ]
}

/// Random documents up to 6 container levels deep with unique map keys.
pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(6, 200, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec((arb_key(), inner), 0..8).prop_map(|mut entries| {
                let mut seen = std::collections::HashSet::new();
                entries.retain(|(k, _)| seen.insert(k.clone()));
                Value::Map(entries)
            }),
        ]
    })
}

/// Builds `[[[...null...]]]` with `depth` levels.
pub(crate) fn nested_lists(depth: usize) -> Value {
    let mut v = Value::Null;
    for _ in 0..depth {
        v = Value::List(vec![v]);
    }
    v
}

/// Drops a deep value without recursion: the derived drop glue recurses
/// once per level and would overflow the stack for very deep values.
pub(crate) fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::List(items) => stack.extend(items),
            Value::Map(entries) => stack.extend(entries.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}
