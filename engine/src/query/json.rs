//! JSON plumbing for the query layer (private): a JSON tree that keeps
//! object key order and refuses duplicate keys, the conversion of JSON
//! operands to [`Value`], and the writer for the reverse direction.
//!
//! Values use the document JSON convention: plain JSON values, plus
//! single-purpose objects `{"$bytes": "<base64>"}`, `{"$ts": micros}` with an
//! optional `"$tz": offset_secs`, `{"$f64": "nan" | "inf" | "-inf"}`, and
//! `{"$map": {...}}` to write a map literally; in a plain map a key that
//! starts with `$$` stands for the key with one `$` less, as in documents.
//! This is a small private converter written for query operands; it is
//! meant to be unified with the document JSON converter (`doc::json`) once
//! both exist, and must stay compatible with it.
//!
//! Why not `serde_json::Value`: without the `preserve_order` feature it
//! sorts object keys, which would change maps (stored order is part of a
//! map's value), and it silently keeps the last of duplicate keys.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::doc::json::{integer_beyond_64_bits_message, note_float, reading_numbers};
use crate::doc::value::{Timestamp, Value};
use crate::error::{Error, Result};

/// A parsed JSON document, objects in source order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// The JSON kind, for error messages ("expected an array, got a string").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) | Json::UInt(_) | Json::Float(_) => "a number",
            Json::Str(_) => "a string",
            Json::Arr(_) => "an array",
            Json::Obj(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> std::result::Result<Json, E> {
        Ok(Json::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> std::result::Result<Json, E> {
        Ok(i64::try_from(u).map_or(Json::UInt(u), Json::Int))
    }
    fn visit_f64<E>(self, f: f64) -> std::result::Result<Json, E> {
        note_float(f);
        Ok(Json::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Json, E> {
        Ok(Json::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> std::result::Result<Json, E> {
        Ok(Json::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut pairs = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value::<Json>()?;
            pairs.push((key, value));
        }
        Ok(Json::Obj(pairs))
    }
}

/// Parses JSON text. serde_json refuses nesting deeper than 128 arrays and
/// objects, which bounds every recursion over the tree that follows.
pub(crate) fn parse(text: &str) -> Result<Json> {
    // (an integer operand beyond 64 bits, read as a float, would compare
    // as another number than the one written)
    let json =
        reading_numbers(text.as_bytes(), || serde_json::from_str::<Json>(text)).map_err(|literal| {
            Error::invalid(format!("query JSON: {}", integer_beyond_64_bits_message(literal)))
        })?;
    json.map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("recursion limit exceeded") {
            Error::invalid(format!(
                "query JSON: nesting deeper than 128 levels at line {} column {}",
                e.line(),
                e.column()
            ))
        } else {
            Error::invalid(format!("query JSON: {msg}"))
        }
    })
}

// ---------------------------------------------------------------- JSON -> Value

const SPECIAL_KEYS: [&str; 5] = ["$bytes", "$ts", "$tz", "$f64", "$map"];

fn is_special(key: &str) -> bool {
    SPECIAL_KEYS.contains(&key)
}

/// Converts a JSON operand to a [`Value`]; `at` names its place in the
/// query for error messages.
pub(crate) fn to_value(j: &Json, at: &str) -> Result<Value> {
    Ok(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Int(i) => Value::Int(*i),
        Json::UInt(u) => Value::UInt(*u),
        Json::Float(f) => Value::Float(*f),
        Json::Str(s) => Value::Str(s.clone()),
        Json::Arr(items) => Value::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_value(item, &format!("{at}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Json::Obj(pairs) => match pairs.first() {
            Some((k, _)) if is_special(k) => special(pairs, at)?,
            _ => map_value(pairs, at, false)?,
        },
    })
}

/// A map operand. In a plain map a key that starts with `$$` is read with
/// one `$` removed, as document JSON writes it (so a document read through
/// the C ABI can be given back as a value); inside `{"$map": ...}`
/// (`literal`) keys are taken as they are.
fn map_value(pairs: &[(String, Json)], at: &str, literal: bool) -> Result<Value> {
    let mut out: Vec<(String, Value)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let key = if !literal && k.starts_with("$$") { &k[1..] } else { k.as_str() };
        if out.iter().any(|(seen, _)| seen == key) {
            return Err(Error::invalid(format!(
                "{at}: the map has the key {key:?} twice (a \"$$\" key reads with one \"$\" less)"
            )));
        }
        out.push((key.to_owned(), to_value(v, &format!("{at}.{k}"))?));
    }
    Ok(Value::Map(out))
}

fn special(pairs: &[(String, Json)], at: &str) -> Result<Value> {
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let bad = |what: &str| Error::invalid(format!("{at}: {what}"));
    match keys.as_slice() {
        ["$bytes"] => match get("$bytes") {
            Some(Json::Str(s)) => {
                base64_decode(s).map(Value::Bytes).map_err(|e| bad(&format!("\"$bytes\": {e}")))
            }
            Some(other) => Err(bad(&format!("\"$bytes\" expects a base64 string, got {}", other.kind()))),
            None => unreachable_shape(at),
        },
        ["$f64"] => match get("$f64") {
            Some(Json::Str(s)) if s == "nan" => Ok(Value::Float(f64::NAN)),
            Some(Json::Str(s)) if s == "inf" => Ok(Value::Float(f64::INFINITY)),
            Some(Json::Str(s)) if s == "-inf" => Ok(Value::Float(f64::NEG_INFINITY)),
            _ => Err(bad("\"$f64\" expects \"nan\", \"inf\" or \"-inf\"")),
        },
        ["$map"] => match get("$map") {
            Some(Json::Obj(inner)) => map_value(inner, &format!("{at}.$map"), true),
            Some(other) => Err(bad(&format!("\"$map\" expects an object, got {}", other.kind()))),
            None => unreachable_shape(at),
        },
        ["$ts"] | ["$ts", "$tz"] | ["$tz", "$ts"] => {
            let micros = match get("$ts") {
                Some(Json::Int(i)) => *i,
                _ => return Err(bad("\"$ts\" expects an integer number of microseconds in the i64 range")),
            };
            let offset_secs = match get("$tz") {
                None => None,
                Some(Json::Int(i)) => Some(i32::try_from(*i).map_err(|_| {
                    bad("\"$tz\" expects an integer UTC offset in seconds in the i32 range")
                })?),
                Some(_) => return Err(bad("\"$tz\" expects an integer UTC offset in seconds")),
            };
            Ok(Value::Timestamp(Timestamp { micros, offset_secs }))
        }
        _ => Err(bad(&format!(
            "malformed special object with keys {keys:?}: expected {{\"$bytes\": b64}}, {{\"$ts\": micros}}, \
             {{\"$ts\": micros, \"$tz\": secs}}, {{\"$f64\": \"nan\"|\"inf\"|\"-inf\"}} or {{\"$map\": {{...}}}}"
        ))),
    }
}

fn unreachable_shape(at: &str) -> Result<Value> {
    // The key list was matched just before, so this cannot happen; an error
    // (rather than a panic) keeps the parser total regardless.
    Err(Error::invalid(format!("{at}: malformed special object")))
}

// ---------------------------------------------------------------- Value -> JSON

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends the JSON form of `v` (the inverse of [`to_value`], up to the
/// canonical number variant: a `UInt` that fits `i64` reads back as `Int`).
/// An explicit stack of what is left to write, not recursion: a value built
/// in Rust can nest deeper than a thread's stack would allow.
pub(crate) fn write_value(v: &Value, out: &mut String) {
    enum Step<'v> {
        Value(&'v Value),
        Key(&'v str),
        Text(&'static str),
    }
    let mut todo = vec![Step::Value(v)];
    while let Some(step) = todo.pop() {
        let v = match step {
            Step::Value(v) => v,
            Step::Key(k) => {
                write_str(k, out);
                out.push(':');
                continue;
            }
            Step::Text(t) => {
                out.push_str(t);
                continue;
            }
        };
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::UInt(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Float(f) => {
                if f.is_nan() {
                    out.push_str(r#"{"$f64":"nan"}"#)
                } else if *f == f64::INFINITY {
                    out.push_str(r#"{"$f64":"inf"}"#)
                } else if *f == f64::NEG_INFINITY {
                    out.push_str(r#"{"$f64":"-inf"}"#)
                } else {
                    // `{:?}` is the shortest text that reads back to the same f64
                    // and always has a '.' or an exponent ("3.0", "1e21"), so the
                    // value reads back as a Float rather than an integer.
                    let _ = write!(out, "{f:?}");
                }
            }
            Value::Str(s) => write_str(s, out),
            Value::Bytes(b) => {
                out.push_str(r#"{"$bytes":""#);
                base64_encode(b, out);
                out.push_str("\"}");
            }
            Value::Timestamp(t) => {
                let _ = write!(out, r#"{{"$ts":{}"#, t.micros);
                if let Some(o) = t.offset_secs {
                    let _ = write!(out, r#","$tz":{o}"#);
                }
                out.push('}');
            }
            Value::List(items) => {
                out.push('[');
                todo.push(Step::Text("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    todo.push(Step::Value(item));
                    if i > 0 {
                        todo.push(Step::Text(","));
                    }
                }
            }
            Value::Map(pairs) => {
                // A map whose first key is a special name would read back as that
                // special value, and a `$$` key with one `$` less: wrap a map with
                // any `$` key (inside the wrapper keys are literal).
                if pairs.iter().any(|(k, _)| k.starts_with('$')) {
                    out.push_str(r#"{"$map":{"#);
                    todo.push(Step::Text("}}"));
                } else {
                    out.push('{');
                    todo.push(Step::Text("}"));
                }
                for (i, (k, item)) in pairs.iter().enumerate().rev() {
                    todo.push(Step::Value(item));
                    todo.push(Step::Key(k));
                    if i > 0 {
                        todo.push(Step::Text(","));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- base64

/// Standard base64 with padding (RFC 4648 section 4).
fn base64_encode(bytes: &[u8], out: &mut String) {
    STANDARD.encode_string(bytes, out);
}

/// Decodes a `$bytes` form as document JSON does
/// ([`decode_base64`](crate::doc::json::decode_base64)).
fn base64_decode(s: &str) -> std::result::Result<Vec<u8>, String> {
    crate::doc::json::decode_base64(s).map_err(|e| format!("invalid base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::order::compare;
    use crate::index::arb_value::arb_value;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn value_of(text: &str) -> Result<Value> {
        to_value(&parse(text)?, "v")
    }

    fn text_of(v: &Value) -> String {
        let mut s = String::new();
        write_value(v, &mut s);
        s
    }

    #[test]
    fn an_integer_operand_beyond_64_bits_is_refused_not_rounded() {
        let e = parse(r#"{"eq": ["a", [1, 18446744073709551616]]}"#).unwrap_err().to_string();
        assert!(e.contains("query JSON: the integer 18446744073709551616 is beyond the 64-bit range"), "{e}");
        assert_eq!(value_of("1e20").unwrap(), Value::Float(1e20));
        assert_eq!(value_of("18446744073709551615").unwrap(), Value::UInt(u64::MAX));
    }

    /// A list nested `depth` levels around `1`.
    fn nested_list(depth: usize) -> Value {
        (0..depth).fold(Value::Int(1), |v, _| Value::List(vec![v]))
    }

    /// Drops a deep value one level at a time (the derived drop recurses).
    fn dismantle(mut v: Value) {
        while let Value::List(items) = &mut v {
            let Some(inner) = items.pop() else { break };
            v = inner;
        }
    }

    #[test]
    fn a_value_deeper_than_the_stack_allows_is_written_without_recursion() {
        let deep = nested_list(200_000);
        // On a small stack, where a recursive writer would overflow.
        let text = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn_scoped(scope, || text_of(&deep))
                .unwrap()
                .join()
                .unwrap()
        });
        let want = format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000));
        let same = text == want;
        dismantle(deep);
        assert!(same);
        // Maps, `$` keys, commas and every scalar the same as before.
        let v = Value::Map(vec![
            ("a".into(), Value::List(vec![Value::Int(-1), Value::UInt(u64::MAX), Value::Float(f64::NAN)])),
            (
                "$b".into(),
                Value::Map(vec![("c".into(), Value::Bytes(vec![1, 2])), ("d".into(), Value::Null)]),
            ),
            ("e".into(), Value::List(Vec::new())),
            ("f".into(), Value::Map(Vec::new())),
        ]);
        assert_eq!(
            text_of(&v),
            r#"{"$map":{"a":[-1,18446744073709551615,{"$f64":"nan"}],"$b":{"c":{"$bytes":"AQI="},"d":null},"e":[],"f":{}}}"#
        );
    }

    #[test]
    fn plain_values() {
        assert_eq!(value_of("null").unwrap(), Value::Null);
        assert_eq!(value_of("-5").unwrap(), Value::Int(-5));
        assert_eq!(value_of("9223372036854775807").unwrap(), Value::Int(i64::MAX));
        assert_eq!(value_of("9223372036854775808").unwrap(), Value::UInt(1 << 63));
        assert_eq!(value_of("18446744073709551615").unwrap(), Value::UInt(u64::MAX));
        assert_eq!(value_of("1.5").unwrap(), Value::Float(1.5));
        assert!(value_of("1e400").unwrap_err().to_string().contains("query JSON"));
        assert_eq!(
            value_of(r#"{"b":1,"a":[true,"x"]}"#).unwrap(),
            Value::Map(vec![
                ("b".into(), Value::Int(1)),
                ("a".into(), Value::List(vec![Value::Bool(true), Value::Str("x".into())]))
            ])
        );
    }

    #[test]
    fn special_values() {
        assert_eq!(value_of(r#"{"$bytes":"AAEC/w=="}"#).unwrap(), Value::Bytes(vec![0, 1, 2, 255]));
        assert_eq!(value_of(r#"{"$bytes":""}"#).unwrap(), Value::Bytes(vec![]));
        // Padding is optional, as in document JSON.
        assert_eq!(value_of(r#"{"$bytes":"AAEC/w"}"#).unwrap(), Value::Bytes(vec![0, 1, 2, 255]));
        assert_eq!(
            value_of(r#"{"$ts":-5}"#).unwrap(),
            Value::Timestamp(Timestamp { micros: -5, offset_secs: None })
        );
        assert_eq!(
            value_of(r#"{"$tz":3600,"$ts":5}"#).unwrap(),
            Value::Timestamp(Timestamp { micros: 5, offset_secs: Some(3600) })
        );
        assert!(matches!(value_of(r#"{"$f64":"nan"}"#).unwrap(), Value::Float(f) if f.is_nan()));
        assert_eq!(value_of(r#"{"$f64":"-inf"}"#).unwrap(), Value::Float(f64::NEG_INFINITY));
        assert_eq!(
            value_of(r#"{"$map":{"$ts":1}}"#).unwrap(),
            Value::Map(vec![("$ts".into(), Value::Int(1))])
        );
        // Other '$' keys are plain map keys; a "$$" key is read with one
        // '$' less, as documents write it, except inside "$map".
        assert_eq!(value_of(r#"{"$x":1}"#).unwrap(), Value::Map(vec![("$x".into(), Value::Int(1))]));
        assert_eq!(
            value_of(r#"{"a":{"$$x":1},"$$$y":2}"#).unwrap(),
            Value::Map(vec![
                ("a".into(), Value::Map(vec![("$x".into(), Value::Int(1))])),
                ("$$y".into(), Value::Int(2))
            ])
        );
        assert_eq!(
            value_of(r#"{"$map":{"$$x":1}}"#).unwrap(),
            Value::Map(vec![("$$x".into(), Value::Int(1))])
        );
        let e = value_of(r#"{"$$x":1,"$x":2}"#).unwrap_err().to_string();
        assert!(e.contains("the key \"$x\" twice"), "{e}");
        for bad in [
            r#"{"$bytes":"A"}"#,
            r#"{"$bytes":"AA=E"}"#,
            r#"{"$bytes":"AAE=="}"#,
            r#"{"$bytes":"AB=="}"#,
            r#"{"$bytes":"A*=="}"#,
            r#"{"$bytes":5}"#,
            r#"{"$ts":1.5}"#,
            r#"{"$ts":18446744073709551615}"#,
            r#"{"$ts":1,"$tz":99999999999}"#,
            r#"{"$ts":1,"extra":2}"#,
            r#"{"$tz":1}"#,
            r#"{"$f64":"NaN"}"#,
            r#"{"$map":[1]}"#,
        ] {
            let e = value_of(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}");
            assert!(e.to_string().contains("v:"), "{bad}: {e}");
        }
    }

    #[test]
    fn duplicates_and_depth() {
        let e = parse(r#"{"a":1,"a":2}"#).unwrap_err().to_string();
        assert!(e.contains("duplicate key \"a\""), "{e}");
        let deep = "[".repeat(200) + &"]".repeat(200);
        let e = parse(&deep).unwrap_err().to_string();
        assert!(e.contains("nesting deeper than 128"), "{e}");
        let ok = "[".repeat(127) + &"]".repeat(127);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn writer_escapes_and_wraps() {
        assert_eq!(text_of(&Value::Str("a\"\\\n\u{1}é".into())), r#""a\"\\\n\u0001é""#);
        assert_eq!(text_of(&Value::Float(3.0)), "3.0");
        assert_eq!(text_of(&Value::Float(1e21)), "1e21");
        assert_eq!(text_of(&Value::Float(-0.0)), "-0.0");
        assert_eq!(text_of(&Value::Bytes(vec![0, 1, 2, 255])), r#"{"$bytes":"AAEC/w=="}"#);
        assert_eq!(text_of(&Value::Map(vec![("$bytes".into(), Value::Null)])), r#"{"$map":{"$bytes":null}}"#);
        assert_eq!(
            text_of(&Value::Map(vec![("a".into(), Value::Null), ("$$x".into(), Value::Null)])),
            r#"{"$map":{"a":null,"$$x":null}}"#
        );
    }

    proptest! {
        #[test]
        fn value_json_roundtrip(v in arb_value()) {
            let text = text_of(&v);
            let back = value_of(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            prop_assert_eq!(compare(&back, &v), Ordering::Equal, "{}", text);
            // Same variants except the canonical UInt -> Int.
            prop_assert_eq!(text_of(&back), text);
        }

        #[test]
        fn base64_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut s = String::new();
            base64_encode(&bytes, &mut s);
            prop_assert_eq!(base64_decode(&s).unwrap(), bytes);
        }

        #[test]
        fn base64_decode_never_panics(s in "[A-Za-z0-9+/=*]{0,12}") {
            if let Ok(b) = base64_decode(&s) {
                let mut again = String::new();
                base64_encode(&b, &mut again);
                prop_assert_eq!(again.trim_end_matches('='), s.trim_end_matches('='));
            }
        }
    }
}
