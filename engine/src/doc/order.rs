//! The one total order over [`Value`]s.
//!
//! Everything that orders or compares values goes through [`compare`]:
//! filters (`query::expr`), sorting, and the index key encoding
//! (`index::key_encoding`, whose byte order must equal this order exactly).
//! Keeping a single definition is what lets an index range scan return the
//! same documents a full scan with the same filter would.
//!
//! The order:
//! - Values of different types order by type rank:
//!   Null < Bool < Number < Timestamp < Str < Bytes < List < Map.
//! - `Int`, `UInt` and `Float` are one rank, "number", and compare by their
//!   mathematical value, exactly (no conversion through `f64`, which would
//!   make `i64::MAX` equal to `9.223372036854776e18`). `-0.0 == 0.0`;
//!   `-inf` is the smallest number, `+inf` the largest non-NaN number; NaN
//!   sorts after every other number and equals itself (so the order is total).
//! - Timestamps by instant (`micros`) alone: one instant written with two
//!   UTC offsets is one value, as Python's aware datetimes compare.
//! - Strings by their UTF-8 bytes, Bytes by bytes.
//! - Lists lexicographically, element by element; a proper prefix is smaller.
//! - Maps lexicographically over their `(key, value)` pairs in stored order
//!   (key bytes first, then value); a proper prefix is smaller. Two maps with
//!   the same pairs in a different order are therefore *not* equal.

use std::cmp::Ordering;

use super::value::Value;

/// The type rank used by [`compare`]: Null 0, Bool 1, numbers 2,
/// Timestamp 3, Str 4, Bytes 5, List 6, Map 7.
///
/// Filters use it to decide whether two values are comparable at all: a
/// comparison between different ranks never matches (see `query::expr`).
pub fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => 2,
        Value::Timestamp(_) => 3,
        Value::Str(_) => 4,
        Value::Bytes(_) => 5,
        Value::List(_) => 6,
        Value::Map(_) => 7,
    }
}

/// Compares two values under the engine's one total order (see the module
/// documentation for the rules).
pub fn compare(a: &Value, b: &Value) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.micros.cmp(&y.micros),
        (Value::Str(x), Value::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::List(x), Value::List(y)) => {
            for (ex, ey) in x.iter().zip(y) {
                let o = compare(ex, ey);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Map(x), Value::Map(y)) => {
            for ((kx, vx), (ky, vy)) in x.iter().zip(y) {
                let o = kx.as_bytes().cmp(ky.as_bytes()).then_with(|| compare(vx, vy));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        // Same rank and not one of the above: both are numbers.
        _ => compare_numbers(a, b),
    }
}

/// True when `a` and `b` are equal under [`compare`] (so `Int(3)`,
/// `UInt(3)` and `Float(3.0)` are all equal, and NaN equals NaN).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare(a, b) == Ordering::Equal
}

/// A number widened so that every `i64` and `u64` is representable exactly.
enum Num {
    Int(i128),
    Float(f64),
}

fn as_num(v: &Value) -> Num {
    match v {
        Value::Int(i) => Num::Int(i128::from(*i)),
        Value::UInt(u) => Num::Int(i128::from(*u)),
        Value::Float(f) => Num::Float(*f),
        // Only called on numbers; any other value is treated as NaN rather
        // than panicking, which keeps the function total.
        _ => Num::Float(f64::NAN),
    }
}

fn compare_numbers(a: &Value, b: &Value) -> Ordering {
    match (as_num(a), as_num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => compare_floats(x, y),
        (Num::Int(x), Num::Float(y)) => compare_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => compare_int_float(y, x).reverse(),
    }
}

fn compare_floats(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // `<`/`>` rather than `total_cmp` because -0.0 must equal 0.0.
        (false, false) => {
            if x < y {
                Ordering::Less
            } else if x > y {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
    }
}

/// Compares an integer (any i64 or u64, widened) with a float exactly.
fn compare_int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    // 2^65 is beyond every i64 and u64, so floats at or past it (including
    // the infinities) are decided without converting them.
    const LIMIT: f64 = 36_893_488_147_419_103_232.0; // 2^65
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f <= -LIMIT {
        return Ordering::Greater;
    }
    let t = f.trunc();
    // Exact: t is integral and |t| < 2^65.
    let ti = t as i128;
    match i.cmp(&ti) {
        Ordering::Equal => {
            // Same integer part: the fractional part of f decides.
            if f > t {
                Ordering::Less
            } else if f < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::value::Timestamp;

    fn s(x: &str) -> Value {
        Value::Str(x.to_string())
    }

    #[test]
    fn type_ranks_order() {
        let ladder = [
            Value::Null,
            Value::Bool(false),
            Value::Float(f64::NEG_INFINITY),
            Value::Timestamp(Timestamp { micros: i64::MIN, offset_secs: None }),
            s(""),
            Value::Bytes(vec![]),
            Value::List(vec![]),
            Value::Map(vec![]),
        ];
        for w in ladder.windows(2) {
            assert_eq!(compare(&w[0], &w[1]), Ordering::Less, "{:?} < {:?}", w[0], w[1]);
            assert_eq!(compare(&w[1], &w[0]), Ordering::Greater);
        }
        // NaN is still a number: below timestamps.
        assert_eq!(
            compare(
                &Value::Float(f64::NAN),
                &Value::Timestamp(Timestamp { micros: i64::MIN, offset_secs: None })
            ),
            Ordering::Less
        );
    }

    #[test]
    fn numbers_compare_exactly_across_types() {
        use Value::{Float, Int, UInt};
        assert!(values_equal(&Int(3), &UInt(3)));
        assert!(values_equal(&Int(3), &Float(3.0)));
        assert!(values_equal(&UInt(3), &Float(3.0)));
        assert_eq!(compare(&Int(3), &Float(3.5)), Ordering::Less);
        assert_eq!(compare(&Float(3.5), &Int(4)), Ordering::Less);
        assert_eq!(compare(&Int(-4), &Float(-3.5)), Ordering::Less);
        assert_eq!(compare(&Float(-3.5), &Int(-3)), Ordering::Less);
        // i64::MAX = 2^63 - 1 is below the float 2^63 that it rounds to.
        assert_eq!(compare(&Int(i64::MAX), &Float(9.223372036854776e18)), Ordering::Less);
        assert_eq!(compare(&UInt(1 << 63), &Float(9.223372036854776e18)), Ordering::Equal);
        assert_eq!(compare(&UInt(u64::MAX), &Float(1.8446744073709552e19)), Ordering::Less);
        assert_eq!(compare(&Int(i64::MIN), &Float(-9.223372036854776e18)), Ordering::Equal);
        assert_eq!(compare(&Int(i64::MIN + 1), &Float(-9.223372036854776e18)), Ordering::Greater);
        assert_eq!(compare(&Int(-1), &UInt(0)), Ordering::Less);
        assert_eq!(compare(&Int(i64::MAX), &UInt(u64::MAX)), Ordering::Less);
        assert!(values_equal(&Float(-0.0), &Float(0.0)));
        assert!(values_equal(&Float(-0.0), &Int(0)));
        assert_eq!(compare(&Float(f64::INFINITY), &UInt(u64::MAX)), Ordering::Greater);
        assert_eq!(compare(&Float(f64::NEG_INFINITY), &Int(i64::MIN)), Ordering::Less);
        assert_eq!(compare(&Float(f64::NAN), &Float(f64::INFINITY)), Ordering::Greater);
        assert_eq!(compare(&Float(f64::NAN), &UInt(u64::MAX)), Ordering::Greater);
        assert!(values_equal(&Float(f64::NAN), &Float(-f64::NAN)));
        assert_eq!(compare(&Float(1e-300), &Int(0)), Ordering::Greater);
        assert_eq!(compare(&Float(-1e-300), &Int(0)), Ordering::Less);
        assert_eq!(compare(&Float(0.5), &Int(0)), Ordering::Greater);
        assert_eq!(compare(&Float(-0.5), &Int(0)), Ordering::Less);
    }

    #[test]
    fn strings_lists_maps() {
        assert_eq!(compare(&s("a"), &s("a\0")), Ordering::Less);
        assert_eq!(compare(&s("Z"), &s("a")), Ordering::Less);
        assert_eq!(compare(&s("é"), &s("z")), Ordering::Greater, "byte order, not char order");
        let l = |v: Vec<Value>| Value::List(v);
        assert_eq!(compare(&l(vec![]), &l(vec![Value::Null])), Ordering::Less);
        assert_eq!(compare(&l(vec![Value::Int(1), Value::Int(9)]), &l(vec![Value::Int(2)])), Ordering::Less);
        assert!(values_equal(&l(vec![Value::Int(1)]), &l(vec![Value::Float(1.0)])));
        let m = |v: Vec<(&str, Value)>| Value::Map(v.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        assert_eq!(compare(&m(vec![("a", Value::Int(2))]), &m(vec![("b", Value::Int(1))])), Ordering::Less);
        assert_eq!(compare(&m(vec![("a", Value::Int(1))]), &m(vec![("a", Value::Int(2))])), Ordering::Less);
        assert_ne!(
            compare(
                &m(vec![("a", Value::Int(1)), ("b", Value::Int(2))]),
                &m(vec![("b", Value::Int(2)), ("a", Value::Int(1))])
            ),
            Ordering::Equal,
            "stored order matters"
        );
    }

    #[test]
    fn timestamps() {
        let t = |micros, offset_secs| Value::Timestamp(Timestamp { micros, offset_secs });
        assert_eq!(compare(&t(1, Some(0)), &t(2, None)), Ordering::Less);
        // One instant, whatever offset it was written with.
        assert_eq!(compare(&t(1, None), &t(1, Some(-3600))), Ordering::Equal);
        assert_eq!(compare(&t(1, Some(-3600)), &t(1, Some(3600))), Ordering::Equal);
        assert_eq!(compare(&t(-1, Some(3600)), &t(0, Some(-3600))), Ordering::Less);
    }
}
