//! A command's input: the payload built from the request (a POST's JSON
//! body, or a GET's query as an object) and its check against the
//! command's `input_schema` (JSON Schema, or the ductile shorthand).

use serde_json::{Map, Value};

/// Longest reason returned for an invalid payload.
const MAX_REASON: usize = 1024;

/// JSON types the shorthand names.
const SHORTHAND_TYPES: [&str; 7] = [
    "string", "number", "integer", "boolean", "array", "object", "null",
];

/// A compiled input schema.
pub struct InputSchema {
    /// The JSON Schema the payload is checked against (the shorthand
    /// expanded).
    pub document: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSchema")
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl InputSchema {
    /// A full JSON Schema (a map with `type`, or a boolean), or the ductile
    /// shorthand: a map of field to type name (`code: string`). Shorthand
    /// fields are optional, as in ductile, unless the type ends in `!`
    /// (`code: string!`); the payload must then be an object.
    pub fn compile(raw: &Value) -> Result<InputSchema, String> {
        let document = expand(raw)?;
        let validator = jsonschema::validator_for(&document)
            .map_err(|error| format!("not a valid JSON Schema: {error}"))?;
        Ok(InputSchema {
            document,
            validator,
        })
    }

    /// `Err` with every problem (bounded), each naming where it is.
    pub fn check(&self, payload: &Value) -> Result<(), String> {
        let problems: Vec<String> = self
            .validator
            .iter_errors(payload)
            .map(|error| {
                let at = error.instance_path().to_string();
                if at.is_empty() {
                    error.to_string()
                } else {
                    format!("{at}: {error}")
                }
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        let mut reason = problems.join("; ");
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push_str("...");
        }
        Err(reason)
    }
}

/// The shorthand as JSON Schema; a full schema as it is.
fn expand(raw: &Value) -> Result<Value, String> {
    let map = match raw {
        Value::Bool(_) => return Ok(raw.clone()),
        Value::Object(map) => map,
        _ => return Err("must be a map (JSON Schema or field: type)".into()),
    };
    let is_schema = [
        "type",
        "$schema",
        "$ref",
        "properties",
        "anyOf",
        "oneOf",
        "allOf",
    ]
    .iter()
    .any(|key| map.contains_key(*key));
    if is_schema {
        return Ok(raw.clone());
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (field, kind) in map {
        let schema = match kind {
            Value::String(text) => {
                let (name, needed) = match text.trim().strip_suffix('!') {
                    Some(name) => (name.trim(), true),
                    None => (text.trim(), false),
                };
                if !SHORTHAND_TYPES.contains(&name) {
                    return Err(format!(
                        "{field}: `{text}` is not one of {} (with ! when required)",
                        SHORTHAND_TYPES.join(", ")
                    ));
                }
                if needed {
                    required.push(Value::from(field.as_str()));
                }
                serde_json::json!({ "type": name })
            }
            // ductile: a non-string value is the field's own schema.
            other => other.clone(),
        };
        properties.insert(field.clone(), schema);
    }
    Ok(serde_json::json!({
        "type": "object",
        "properties": properties,
        "required": required,
    }))
}

/// A query string as a payload object: each name a string, a name given
/// several times an array of its values in order, a name without `=` the
/// empty string. Decoded as `application/x-www-form-urlencoded` (`+` is a
/// space; invalid UTF-8 becomes U+FFFD).
pub fn query_payload(raw_query: &str) -> Value {
    let mut object = Map::new();
    for (name, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        let value = Value::from(value.into_owned());
        match object.get_mut(name.as_ref()) {
            None => {
                object.insert(name.into_owned(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(first) => {
                let first = first.take();
                object.insert(name.into_owned(), Value::Array(vec![first, value]));
            }
        }
    }
    Value::Object(object)
}
