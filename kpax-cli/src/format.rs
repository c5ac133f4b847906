//! How records are printed: raw values, JSON (lossless: base64 where a
//! field is not UTF-8), key/value, hex, or a kcat-style format string
//! (`-f '%t %p %o %k %s %h\n'`).

use crate::when::format_millis;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use kpax::ConsumerRecord;
use kpax_cli::input::json_bytes;
use serde_json::json;
use std::fmt::Write;

/// The help text of every `--format` flag.
pub const FORMAT_HELP: &str = "Output format: raw (the value), json, kv (key, separator, value), \
hex (the value), or a kcat-style format string: %t topic, %p partition, %o offset, \
%T timestamp (ms), %k key, %K key length, %s value, %S value length, %h headers \
(name=value,..), %% a percent sign; %xk %xs %xh print hex, %bk %bs %bh base64; \
\\n \\t \\r \\\\ escapes. A format string adds no newline of its own";

/// How records are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// The value only, one per line.
    Raw,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
    /// Key, separator, value.
    Kv,
    /// The value as hex (binary payloads), one per line.
    Hex,
    /// A format string's pieces.
    Template(Vec<Piece>),
}

/// How a key, value or headers token prints bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As text (invalid UTF-8 replaced).
    Text,
    /// As lowercase hex.
    Hex,
    /// As base64.
    Base64,
}

/// One piece of a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Literal(String),
    /// `%t`.
    Topic,
    /// `%p`.
    Partition,
    /// `%o`.
    Offset,
    /// `%T`.
    Timestamp,
    /// `%k`, `%xk`, `%bk` (empty for a null key).
    Key(Encoding),
    /// `%K` (-1 for a null key).
    KeyLength,
    /// `%s`, `%xs`, `%bs` (empty for a null value).
    Value(Encoding),
    /// `%S` (-1 for a null value).
    ValueLength,
    /// `%h`, `%xh`, `%bh`: `name=value` pairs joined by commas (header
    /// values encoded, names as text).
    Headers(Encoding),
}

/// Parses a `--format` flag: a format's name, or a format string (any
/// value holding `%` or a `\` escape).
///
/// # Errors
/// An unknown name, or the first bad token of a format string and its
/// position.
pub fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "raw" => return Ok(Format::Raw),
        "json" => return Ok(Format::Json),
        "kv" => return Ok(Format::Kv),
        "hex" => return Ok(Format::Hex),
        _ => {}
    }
    if !s.contains('%') && !s.contains('\\') {
        return Err(format!(
            "unknown format {s:?}: use raw, json, kv, hex or a format string such as '%k=%s\\n'"
        ));
    }
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let e = match chars.next() {
                    Some((_, 'n')) => '\n',
                    Some((_, 't')) => '\t',
                    Some((_, 'r')) => '\r',
                    Some((_, '\\')) => '\\',
                    Some((_, other)) => {
                        return Err(format!(
                            "format string: unknown escape \\{other} at character {}",
                            i + 1
                        ))
                    }
                    None => return Err("format string ends inside an escape (\\)".into()),
                };
                lit.push(e);
            }
            '%' => {
                let mut next = chars.next().map(|(_, c)| c);
                let enc = match next {
                    Some('x') => Some(Encoding::Hex),
                    Some('b') => Some(Encoding::Base64),
                    _ => None,
                };
                if enc.is_some() {
                    next = chars.next().map(|(_, c)| c);
                }
                let piece = match (next, enc) {
                    (Some('%'), None) => {
                        lit.push('%');
                        continue;
                    }
                    (Some('t'), None) => Piece::Topic,
                    (Some('p'), None) => Piece::Partition,
                    (Some('o'), None) => Piece::Offset,
                    (Some('T'), None) => Piece::Timestamp,
                    (Some('K'), None) => Piece::KeyLength,
                    (Some('S'), None) => Piece::ValueLength,
                    (Some('k'), e) => Piece::Key(e.unwrap_or(Encoding::Text)),
                    (Some('s'), e) => Piece::Value(e.unwrap_or(Encoding::Text)),
                    (Some('h'), e) => Piece::Headers(e.unwrap_or(Encoding::Text)),
                    (Some(other), _) => {
                        return Err(format!(
                            "format string: unknown token %{}{other} at character {} \
                             (known: %t %p %o %T %k %K %s %S %h %%, with x or b before k, s, h)",
                            match enc {
                                Some(Encoding::Hex) => "x",
                                Some(Encoding::Base64) => "b",
                                _ => "",
                            },
                            i + 1
                        ))
                    }
                    (None, _) => return Err("format string ends inside a token (%)".into()),
                };
                if !lit.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                }
                pieces.push(piece);
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Literal(lit));
    }
    Ok(Format::Template(pieces))
}

/// Formats records for printing.
#[derive(Debug, Clone)]
pub struct Printer {
    /// The format.
    pub format: Format,
    /// The key/value separator of [`Format::Kv`].
    pub separator: String,
}

fn text(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
}

fn hex_into(s: &mut String, b: &[u8]) {
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
}

fn encode_into(s: &mut String, b: Option<&[u8]>, enc: Encoding) {
    let Some(b) = b else {
        return;
    };
    match enc {
        Encoding::Text => s.push_str(&String::from_utf8_lossy(b)),
        Encoding::Hex => hex_into(s, b),
        Encoding::Base64 => BASE64.encode_string(b, s),
    }
}

fn length(b: Option<&[u8]>) -> i64 {
    b.map_or(-1, |b| b.len() as i64)
}

impl Printer {
    /// One record as printed (a line with its newline, except for a format
    /// string, which says where its newlines go).
    pub fn line(&self, r: &ConsumerRecord) -> String {
        let mut s = match &self.format {
            Format::Raw => text(r.value()).unwrap_or_default(),
            Format::Kv => format!(
                "{}{}{}",
                text(r.key()).unwrap_or_default(),
                self.separator,
                text(r.value()).unwrap_or_default()
            ),
            Format::Hex => {
                let mut s = String::new();
                hex_into(&mut s, r.value().unwrap_or_default());
                s
            }
            Format::Json => json_line(r),
            Format::Template(pieces) => return template(pieces, r),
        };
        s.push('\n');
        s
    }
}

fn template(pieces: &[Piece], r: &ConsumerRecord) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Literal(l) => s.push_str(l),
            Piece::Topic => s.push_str(&r.topic),
            Piece::Partition => {
                let _ = write!(s, "{}", r.partition);
            }
            Piece::Offset => {
                let _ = write!(s, "{}", r.offset);
            }
            Piece::Timestamp => {
                let _ = write!(s, "{}", r.timestamp);
            }
            Piece::Key(e) => encode_into(&mut s, r.key(), *e),
            Piece::KeyLength => {
                let _ = write!(s, "{}", length(r.key()));
            }
            Piece::Value(e) => encode_into(&mut s, r.value(), *e),
            Piece::ValueLength => {
                let _ = write!(s, "{}", length(r.value()));
            }
            Piece::Headers(e) => {
                for (i, h) in r.headers().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&String::from_utf8_lossy(h.key));
                    s.push('=');
                    encode_into(&mut s, h.value, *e);
                }
            }
        }
    }
    s
}

fn json_line(r: &ConsumerRecord) -> String {
    let (key, key_b64) = json_bytes(r.key());
    let (value, value_b64) = json_bytes(r.value());
    let mut o = json!({
        "topic": &*r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "time": (r.timestamp >= 0).then(|| format_millis(r.timestamp)),
        "key": key,
        "value": value,
        "headers": r.headers().map(|h| {
            let (key, key_b64) = json_bytes(Some(h.key));
            let (value, b64) = json_bytes(h.value);
            let mut hj = json!({"key": key, "value": value});
            if key_b64 {
                hj["key_base64"] = true.into();
            }
            if b64 {
                hj["value_base64"] = true.into();
            }
            hj
        }).collect::<Vec<_>>(),
    });
    if key_b64 {
        o["key_base64"] = true.into();
    }
    if value_b64 {
        o["value_base64"] = true.into();
    }
    o.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &'static [u8], value: &'static [u8]) -> ConsumerRecord {
        ConsumerRecord::new(
            "t",
            1,
            kpax::proto::records::Record::new(
                7,
                -1,
                Some(key),
                Some(value),
                &[(b"h", Some(&[0xff, 0x00]))],
            ),
        )
    }

    fn printer(format: Format) -> Printer {
        Printer {
            format,
            separator: "\t".into(),
        }
    }

    #[test]
    fn binary_payloads_lose_nothing_in_json_and_hex() {
        let r = record(b"user-1", &[0xde, 0xad, 0xbe, 0xef]);
        let line = printer(Format::Json).line(&r);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["key"], "user-1");
        assert!(v.get("key_base64").is_none(), "{line}");
        assert_eq!(v["value"], "3q2+7w==");
        assert_eq!(v["value_base64"], true);
        assert_eq!(v["headers"][0]["value"], "/wA=");
        assert_eq!(v["headers"][0]["value_base64"], true);
        assert_eq!(printer(Format::Hex).line(&r), "deadbeef\n");
        let text = record(b"k", b"hello");
        let v: serde_json::Value =
            serde_json::from_str(&printer(Format::Json).line(&text)).unwrap();
        assert_eq!(v["value"], "hello");
        assert!(v.get("value_base64").is_none());
        assert_eq!(printer(Format::Kv).line(&text), "k\thello\n");
    }

    #[test]
    fn format_strings_print_like_kcat() {
        let r = record(b"k1", &[0xde, 0xad]);
        let f = |s: &str| printer(parse_format(s).unwrap()).line(&r);
        assert_eq!(f("%t %p %o %T %k %K %S\\n"), "t 1 7 -1 k1 2 2\n");
        assert_eq!(f("%xs|%bs|%xk"), "dead|3q0=|6b31");
        assert_eq!(f("%h;%xh;%bh"), "h=\u{fffd}\0;h=ff00;h=/wA=");
        assert_eq!(f("100%% %s\\t\\\\"), "100% \u{7ad}\t\\");
        let null = ConsumerRecord::new(
            "t",
            0,
            kpax::proto::records::Record::new(0, -1, None, None, &[]),
        );
        assert_eq!(
            printer(parse_format("[%k][%s] %K %S %h.").unwrap()).line(&null),
            "[][] -1 -1 ."
        );
    }

    #[test]
    fn bad_formats_say_what_is_wrong() {
        assert!(parse_format("yaml")
            .unwrap_err()
            .contains("unknown format \"yaml\""));
        assert!(parse_format("%q")
            .unwrap_err()
            .contains("unknown token %q at character 1"));
        assert!(parse_format("ab%xp")
            .unwrap_err()
            .contains("unknown token %xp at character 3"));
        assert!(parse_format("%")
            .unwrap_err()
            .contains("ends inside a token"));
        assert!(parse_format("%x")
            .unwrap_err()
            .contains("ends inside a token"));
        assert!(parse_format("\\q%s")
            .unwrap_err()
            .contains("unknown escape \\q"));
        assert!(parse_format("%s\\")
            .unwrap_err()
            .contains("ends inside an escape"));
        assert_eq!(parse_format("json").unwrap(), Format::Json);
    }
}
