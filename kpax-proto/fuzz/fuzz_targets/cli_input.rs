//! What users pipe into the `kpax` tool: hex frames (`kpax decode`) and
//! JSON records (`kpax produce -f json`). Never a panic; a hex text that
//! parses has half as many bytes as digits; a JSON record that parses,
//! written back the way `kpax consume -f json` writes records, parses to
//! the same record (the copy loses nothing).
#![no_main]

use kpax_cli::input::{json_bytes, parse_hex, parse_json_record};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = parse_hex(text) {
        let digits = text.chars().filter(char::is_ascii_hexdigit).count();
        assert!(bytes.len() * 2 <= digits, "{} bytes from {digits} digits", bytes.len());
    }
    let Ok(r) = parse_json_record(text) else {
        return;
    };
    let field = |o: &mut serde_json::Map<String, Value>, name: &str, b: Option<&[u8]>| {
        let (v, b64) = json_bytes(b);
        o.insert(name.into(), v);
        if b64 {
            o.insert(format!("{name}_base64"), true.into());
        }
    };
    let mut o = serde_json::Map::new();
    if let Some(p) = r.partition {
        o.insert("partition".into(), p.into());
    }
    o.insert("timestamp".into(), r.timestamp.unwrap_or(-1).into());
    field(&mut o, "key", r.key.as_deref());
    field(&mut o, "value", r.value.as_deref());
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|(k, v)| {
            let mut h = serde_json::Map::new();
            field(&mut h, "key", Some(k));
            field(&mut h, "value", v.as_deref());
            Value::Object(h)
        })
        .collect();
    o.insert("headers".into(), json!(headers));
    let line = Value::Object(o).to_string();
    assert_eq!(parse_json_record(&line).as_ref(), Ok(&r), "{line}");
});
