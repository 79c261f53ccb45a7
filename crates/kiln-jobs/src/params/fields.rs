//! [`Fields`], the path-keeping JSON object reader, and the small numeric checkers every params object shares.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use kiln_nn::validation::Checker;

/// Reads one JSON object, recording errors with full field paths.
pub struct Fields<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// `value` must be an object (or `null`, read as `{}`).
    pub fn new(value: &'a Value, path: &str, c: &mut Checker) -> Self {
        let map = match value {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                c.push(path, format!("must be an object; found {}", kind(other)));
                None
            }
        };
        Self {
            path: path.to_string(),
            map,
            known: Vec::new(),
        }
    }

    pub fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The raw value of `key`, if present and not null.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    /// `key` deserialised as `T`; a wrong type is recorded and read as absent.
    pub fn get<T: DeserializeOwned>(&mut self, key: &'static str, c: &mut Checker) -> Option<T> {
        let v = self.raw(key)?;
        match T::deserialize(v) {
            Ok(t) => Some(t),
            Err(e) => {
                c.push(self.path(key), type_message(&e.to_string(), v));
                None
            }
        }
    }

    /// Records every key that was not asked for as unknown.
    pub fn finish(self, c: &mut Checker) {
        if let Some(m) = self.map {
            for k in m.keys() {
                if !self.known.contains(&k.as_str()) {
                    c.push(
                        format!("{}.{k}", self.path),
                        format!("unknown field; expected one of: {}", self.known.join(", ")),
                    );
                }
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn type_message(serde_msg: &str, v: &Value) -> String {
    // serde says e.g. "invalid type: string \"x\", expected u32"; keep the expectation.
    let expected = serde_msg
        .rsplit_once("expected ")
        .map(|(_, e)| e.to_string())
        .unwrap_or_else(|| serde_msg.to_string());
    let expected = match expected.as_str() {
        "u32" | "u64" | "usize" => "a non-negative integer".to_string(),
        "f32" | "f64" => "a number".to_string(),
        other => other.to_string(),
    };
    format!("must be {expected}; found {}", kind(v))
}

pub(super) fn positive_finite(c: &mut Checker, field: String, v: f64) -> bool {
    let ok = v.is_finite() && v > 0.0;
    c.require(ok, field, "must be a finite number greater than 0");
    ok
}

pub(super) fn non_negative_finite(c: &mut Checker, field: String, v: f64) -> bool {
    let ok = v.is_finite() && v >= 0.0;
    c.require(ok, field, "must be a finite number of at least 0");
    ok
}

pub(super) fn unit_interval(c: &mut Checker, field: String, v: f64) -> bool {
    let ok = v.is_finite() && (0.0..1.0).contains(&v);
    c.require(ok, field, "must be a number in [0, 1)");
    ok
}

/// One of `options` by name (`default` when absent); an unknown name is recorded
/// against `field` with the names that would have worked.
pub(super) fn choice<T: Copy>(
    value: Option<String>,
    field: &str,
    options: &[(&str, T)],
    default: T,
    c: &mut Checker,
) -> T {
    let Some(v) = value else { return default };
    match options.iter().find(|(name, _)| *name == v) {
        Some((_, t)) => *t,
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            c.push(
                field,
                format!("unknown value {v:?}; expected one of: {}", names.join(", ")),
            );
            default
        }
    }
}
