//! What users type or pipe into `kpax`, parsed without trusting it: hex
//! frames (`kpax decode`) and JSON records (`kpax produce -f json`, the
//! lines `kpax consume -f json` prints). Every failure is an
//! [`InputError`] saying what is wrong and where; nothing here panics or
//! allocates more than the input's own size.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{Map, Value};

/// Input that could not be parsed, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

fn bad(reason: impl Into<String>) -> InputError {
    InputError(reason.into())
}

/// Parses hex text: whitespace, `:` separators and `0x` prefixes are
/// skipped.
///
/// # Errors
/// The first bad character and its position, no digits at all, or an odd
/// number of digits.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, InputError> {
    let mut digits = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() || c == ':' {
            continue;
        }
        if c == '0' && matches!(chars.peek(), Some((_, 'x' | 'X'))) {
            chars.next();
            continue;
        }
        match c.to_digit(16) {
            Some(d) => digits.push(d as u8),
            None => {
                return Err(bad(format!(
                    "bad hex: {c:?} at character {} is not a hex digit",
                    i + 1
                )))
            }
        }
    }
    if digits.is_empty() {
        return Err(bad("bad hex: no hex digits given"));
    }
    if digits.len() % 2 != 0 {
        return Err(bad(format!(
            "bad hex: {} digits is an odd number (each byte is two)",
            digits.len()
        )));
    }
    Ok(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// One record read from a JSON line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonRecord {
    /// The partition the line names (`partition`), if any.
    pub partition: Option<i32>,
    /// The timestamp (`timestamp`, milliseconds since the epoch), if any.
    pub timestamp: Option<i64>,
    /// The key; `None`: null.
    pub key: Option<Vec<u8>>,
    /// The value; `None`: null (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The headers in order: name, value (`None`: null).
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The fields a JSON record may have: those `kpax consume -f json` prints.
/// `topic`, `offset` and `time` are read back and ignored (the topic is
/// the command's, the offset the broker's, `time` repeats `timestamp`).
const RECORD_FIELDS: &[&str] = &[
    "topic",
    "partition",
    "offset",
    "timestamp",
    "time",
    "key",
    "key_base64",
    "value",
    "value_base64",
    "headers",
];

const HEADER_FIELDS: &[&str] = &["key", "key_base64", "value", "value_base64"];

/// Parses one JSON record, as `kpax consume -f json` prints it:
/// `{"key": …, "value": …, "headers": [{"key": …, "value": …}], "timestamp": …}`.
/// Keys and values are strings (UTF-8) or null; `"<field>_base64": true`
/// says the string is base64 of arbitrary bytes. Every field is optional:
/// a missing value is null. A string alone (`"text"`) is a record with that
/// value.
///
/// # Errors
/// Not JSON, not an object or string, an unknown field (a typo would
/// otherwise lose data silently), a field of the wrong type, bad base64, a
/// negative partition or a timestamp below -1.
pub fn parse_json_record(line: &str) -> Result<JsonRecord, InputError> {
    let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    let o = match v {
        Value::String(s) => {
            return Ok(JsonRecord {
                value: Some(s.into_bytes()),
                ..JsonRecord::default()
            })
        }
        Value::Object(o) => o,
        other => {
            return Err(bad(format!(
                "a record is a JSON object or string, not {}",
                kind(&other)
            )))
        }
    };
    known_fields(&o, RECORD_FIELDS, "record")?;
    let partition = match o.get("partition") {
        None | Some(Value::Null) => None,
        Some(p) => Some(
            p.as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .filter(|p| *p >= 0)
                .ok_or_else(|| bad(format!("\"partition\": {p} is not a partition number")))?,
        ),
    };
    let timestamp = match o.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(t) => match t.as_i64() {
            Some(-1) => None,
            Some(t) if t >= 0 => Some(t),
            _ => {
                return Err(bad(format!(
                    "\"timestamp\": {t} is not milliseconds since the epoch"
                )))
            }
        },
    };
    let headers = match o.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(hs)) => hs
            .iter()
            .enumerate()
            .map(|(i, h)| header(h).map_err(|e| bad(format!("header {}: {e}", i + 1))))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(bad(format!(
                "\"headers\" is an array of {{\"key\", \"value\"}} objects, not {}",
                kind(other)
            )))
        }
    };
    Ok(JsonRecord {
        partition,
        timestamp,
        key: bytes(&o, "key")?,
        value: bytes(&o, "value")?,
        headers,
    })
}

fn header(h: &Value) -> Result<(Vec<u8>, Option<Vec<u8>>), InputError> {
    let Value::Object(o) = h else {
        return Err(bad(format!(
            "a header is an object {{\"key\", \"value\"}}, not {}",
            kind(h)
        )));
    };
    known_fields(o, HEADER_FIELDS, "header")?;
    let key = bytes(o, "key")?.ok_or_else(|| bad("a header needs a \"key\" string"))?;
    Ok((key, bytes(o, "value")?))
}

fn known_fields(o: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), InputError> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(bad(format!(
            "unknown {what} field {k:?} (known: {})",
            known.join(", ")
        ))),
    }
}

/// The bytes of field `name`: its string, base64-decoded when
/// `<name>_base64` is true; `None` for null or absent.
fn bytes(o: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, InputError> {
    let flag = format!("{name}_base64");
    let base64 = match o.get(&flag) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(bad(format!(
                "\"{flag}\" is true or false, not {}",
                kind(other)
            )))
        }
    };
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if base64 => BASE64
            .decode(s)
            .map(Some)
            .map_err(|e| bad(format!("\"{name}\" is not base64 ({e})"))),
        Some(Value::String(s)) => Ok(Some(s.clone().into_bytes())),
        Some(other) => Err(bad(format!(
            "\"{name}\" is a string or null, not {}",
            kind(other)
        ))),
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

/// A JSON string for `b`: the text when it is UTF-8, else base64, with
/// whether it is base64 (the `<field>_base64` flag); null for `None`. The
/// inverse of the field reading in [`parse_json_record`].
pub fn json_bytes(b: Option<&[u8]>) -> (Value, bool) {
    match b {
        None => (Value::Null, false),
        Some(b) => match std::str::from_utf8(b) {
            Ok(t) => (Value::from(t), false),
            Err(_) => (Value::from(BASE64.encode(b)), true),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_errors_name_the_problem() {
        assert_eq!(parse_hex("0x0a 0B:ff").unwrap(), vec![10, 11, 255]);
        assert!(parse_hex("abc").unwrap_err().to_string().contains("odd"));
        assert!(parse_hex("zz").unwrap_err().to_string().contains("'z'"));
        assert!(parse_hex("  ").is_err());
    }

    #[test]
    fn reads_what_consume_prints() {
        let r = parse_json_record(
            r#"{"topic":"t","partition":2,"offset":7,"timestamp":1700000000000,
                "time":"2023-11-14T22:13:20Z","key":"k","value":"/w==","value_base64":true,
                "headers":[{"key":"h","value":null},{"key":"b","value":"AP8=","value_base64":true}]}"#,
        )
        .unwrap();
        assert_eq!(r.partition, Some(2));
        assert_eq!(r.timestamp, Some(1_700_000_000_000));
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&[0xff][..]));
        assert_eq!(
            r.headers,
            vec![(b"h".to_vec(), None), (b"b".to_vec(), Some(vec![0, 0xff]))]
        );
    }

    #[test]
    fn missing_fields_are_null_and_a_string_is_a_value() {
        assert_eq!(parse_json_record("{}").unwrap(), JsonRecord::default());
        let r = parse_json_record(r#""plain""#).unwrap();
        assert_eq!(r.value.as_deref(), Some(&b"plain"[..]));
        assert_eq!(r.key, None);
        assert_eq!(
            parse_json_record(r#"{"timestamp":-1}"#).unwrap().timestamp,
            None
        );
    }

    #[test]
    fn bad_records_say_why() {
        let e = |s: &str| parse_json_record(s).unwrap_err().to_string();
        assert!(e("{").contains("not JSON"));
        assert!(e("[1]").contains("not an array"));
        assert!(e(r#"{"vlaue":"x"}"#).contains("unknown record field \"vlaue\""));
        assert!(e(r#"{"value":1}"#).contains("string or null"));
        assert!(e(r#"{"value":"%%","value_base64":true}"#).contains("not base64"));
        assert!(e(r#"{"value_base64":"yes"}"#).contains("true or false"));
        assert!(e(r#"{"partition":-2}"#).contains("partition"));
        assert!(e(r#"{"partition":4294967296}"#).contains("partition"));
        assert!(e(r#"{"timestamp":-5}"#).contains("milliseconds"));
        assert!(e(r#"{"headers":{"a":"b"}}"#).contains("array"));
        assert!(e(r#"{"headers":[{"value":"b"}]}"#).contains("header 1: a header needs"));
        assert!(e(r#"{"headers":[{"key":"a","x":1}]}"#).contains("unknown header field"));
    }

    #[test]
    fn json_bytes_round_trip() {
        for b in [&b""[..], b"text", &[0, 0xff, 0xfe], "é".as_bytes()] {
            let (v, b64) = json_bytes(Some(b));
            let mut o = Map::new();
            o.insert("value".into(), v);
            o.insert("value_base64".into(), b64.into());
            assert_eq!(bytes(&o, "value").unwrap().as_deref(), Some(b));
        }
        assert_eq!(json_bytes(None), (Value::Null, false));
    }
}
