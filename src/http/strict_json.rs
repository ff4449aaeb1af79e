//! JSON as the edge accepts it: one object at the top level, and no key twice at any depth.
//!
//! `serde_json::Value` keeps the last of two equal keys, so `{"body":"a","body":"b"}` would
//! mean whatever the last one says, while a derived struct refuses it; and an array would
//! reach code that expects an object's fields. Every client JSON is read through here,
//! so both are refused once, the same way (CONTRACT §2, §4, §7a).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why bytes are not an acceptable JSON object.
#[derive(Debug)]
pub struct StrictJsonError(String);

impl fmt::Display for StrictJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StrictJsonError {}

/// Parses `bytes` as one JSON object without duplicate keys (at any depth).
pub fn parse_object(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| StrictJsonError(format!("not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(StrictJsonError("expected a JSON object".into()));
    }
    Ok(value)
}

/// Builds a [`Value`] as serde_json does, refusing a key seen twice in one object.
#[derive(Clone, Copy)]
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_parses_as_serde_json_would() {
        let text = r#"{"type":"send","body":"é \"hi\"","n":-3,"f":1.5,"big":18446744073709551615,"list":[1,{"a":null}],"t":true}"#;
        let parsed = parse_object(text.as_bytes()).unwrap();
        assert_eq!(parsed, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(parsed["list"][1], json!({"a": null}));
    }

    #[test]
    fn a_duplicate_key_is_refused_at_any_depth() {
        for text in [
            r#"{"body":"a","body":"b"}"#,
            r#"{"outer":{"k":1,"k":2}}"#,
            r#"{"list":[{"k":1,"k":1}]}"#,
        ] {
            let error = parse_object(text.as_bytes()).unwrap_err();
            assert!(
                error.to_string().contains("duplicate key"),
                "{text}: {error}"
            );
        }
        // The same key in two different objects is fine.
        assert!(parse_object(br#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
    }

    #[test]
    fn only_an_object_is_accepted_at_the_top_level() {
        for text in [r#"["send","x"]"#, "\"send\"", "3", "null", "true"] {
            let error = parse_object(text.as_bytes()).unwrap_err();
            assert_eq!(error.to_string(), "expected a JSON object", "{text}");
        }
    }

    #[test]
    fn malformed_or_trailing_input_is_refused() {
        for text in ["", "{", r#"{"a":1} {"b":2}"#, r#"{"a":1}x"#, "\u{feff}{}"] {
            assert!(parse_object(text.as_bytes()).is_err(), "{text:?}");
        }
        // Surrounding whitespace is fine, as in serde_json.
        assert!(parse_object(b" {} \n").is_ok());
    }
}
