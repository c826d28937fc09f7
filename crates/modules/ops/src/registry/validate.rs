//! Content checks: text, syntax, JSON Schema, semantic validators; digests and diffs.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::name::DocName;
use super::{Format, RegistryError, Validator};

/// At most this many schema violations are listed; the rest are counted.
const MAX_SCHEMA_ERRORS: usize = 50;
/// A single message is cut after this many characters (a violation message
/// quotes the offending value, which may be a whole document).
const MAX_MESSAGE_CHARS: usize = 400;
/// Diffs computed with every change are skipped above this many lines in
/// total (the line diff costs up to lines × differing lines; `similar` is
/// built without its deadline support). [`unified_diff`] itself has no limit.
pub(crate) const MAX_INLINE_DIFF_LINES: usize = 10_000;

/// Hex SHA-256 of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes read from disk as document text: UTF-8 without NUL bytes.
pub(crate) fn decode(name: &DocName, bytes: Vec<u8>) -> Result<String, RegistryError> {
    match String::from_utf8(bytes) {
        Ok(text) => {
            check_text(name, &text)?;
            Ok(text)
        }
        Err(e) => Err(RegistryError::Binary {
            name: name.to_string(),
            reason: format!("invalid UTF-8 at byte offset {}", e.utf8_error().valid_up_to()),
        }),
    }
}

/// Text must not contain NUL bytes (a sign of a binary file).
pub(crate) fn check_text(name: &DocName, text: &str) -> Result<(), RegistryError> {
    match text.bytes().position(|b| b == 0) {
        Some(at) => {
            Err(RegistryError::Binary { name: name.to_string(), reason: format!("NUL byte at byte offset {at}") })
        }
        None => Ok(()),
    }
}

/// Parse JSON or YAML into the JSON data model; `None` for text formats.
pub(crate) fn parse(name: &DocName, text: &str) -> Result<Option<Value>, RegistryError> {
    let format = name.format();
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Json if body.trim().is_empty() => Err(RegistryError::Parse {
            name: name.to_string(),
            format,
            line: None,
            column: None,
            message: "the document is empty".to_owned(),
        }),
        Format::Json => serde_json::from_str::<Value>(body).map(Some).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            let message = strip_position(&e.to_string(), line, column);
            let (line, column) = if line == 0 { (None, None) } else { (Some(line), Some(column)) };
            RegistryError::Parse { name: name.to_string(), format, line, column, message }
        }),
        Format::Yaml => {
            if body.trim().is_empty() {
                // An empty YAML stream is `null`; say so rather than fail with "EOF".
                return Ok(Some(Value::Null));
            }
            serde_norway::from_str::<Value>(body).map(Some).map_err(|e| {
                let location = e.location();
                let (line, column) = match &location {
                    Some(l) => (Some(l.line()), Some(l.column())),
                    None => (None, None),
                };
                let message = strip_position(&e.to_string(), line.unwrap_or(0), column.unwrap_or(0));
                RegistryError::Parse { name: name.to_string(), format, line, column, message }
            })
        }
        Format::Markdown | Format::Csv => Ok(None),
    }
}

/// Cut the parser's own " at line L column C" from its message (the position
/// is carried in fields).
fn strip_position(message: &str, line: usize, column: usize) -> String {
    let needle = format!(" at line {line} column {column}");
    match message.find(&needle) {
        Some(i) => format!("{}{}", &message[..i], &message[i + needle.len()..]),
        None => message.to_owned(),
    }
}

/// Compile a schema document. A schema that names its draft in `$schema` is
/// compiled for that draft; otherwise draft 2020-12 is assumed. Remote
/// references are not resolved: such a schema does not compile.
pub(crate) fn compile_schema(name: &DocName, value: &Value) -> Result<jsonschema::Validator, RegistryError> {
    let declares_draft = value.as_object().is_some_and(|o| o.contains_key("$schema"));
    let options = if declares_draft {
        jsonschema::options()
    } else {
        jsonschema::options().with_draft(jsonschema::Draft::Draft202012)
    };
    options
        .build(value)
        .map_err(|e| RegistryError::InvalidSchema { name: name.to_string(), message: cut(&e.to_string()) })
}

/// Every violation of `schema` by `value`, as `pointer: message`.
pub(crate) fn schema_errors(schema: &jsonschema::Validator, value: &Value) -> Vec<String> {
    if schema.is_valid(value) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut more = 0usize;
    for error in schema.iter_errors(value) {
        if out.len() == MAX_SCHEMA_ERRORS {
            more += 1;
            continue;
        }
        let pointer = error.instance_path().as_str();
        let pointer = if pointer.is_empty() { "(root)" } else { pointer };
        out.push(format!("{pointer}: {}", cut(&error.to_string())));
    }
    if more > 0 {
        out.push(format!("and {more} more violations"));
    }
    out
}

/// Run semantic validators; a panicking validator counts as a rejection.
pub(crate) fn run_validators(validators: &[Validator], value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for v in validators {
        match catch_unwind(AssertUnwindSafe(|| v(value))) {
            Ok(Ok(())) => {}
            Ok(Err(errors)) if errors.is_empty() => out.push("rejected by a validator (no message)".to_owned()),
            Ok(Err(errors)) => out.extend(errors.iter().map(|e| cut(e))),
            Err(_) => out.push("a validator failed unexpectedly (it panicked)".to_owned()),
        }
    }
    out
}

/// Cut a message to a readable length, on a character boundary.
fn cut(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &message[..i]),
        None => message.to_owned(),
    }
}

/// A unified diff of two texts (`a/<name>@v<from>` to `b/<name>@v<to>`).
pub(crate) fn unified_diff(name: &str, from: u64, old: &str, to: u64, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}@v{from}"), &format!("b/{name}@v{to}"))
        .to_string()
}
