//! `kpax decode`: pretty-prints a raw Kafka frame. Requests describe
//! themselves (their header names the API and version); responses need
//! `--api` and `--version`. The 4-byte size prefix is optional.

use crate::error::{CliError, Result};
use crate::output::write_out;
use bytes::{Buf, Bytes};
use clap::Args;
use kpax_cli::input::parse_hex;
use kpax_proto::generated::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use std::io::Read;
use std::path::PathBuf;

/// The largest frame read (Kafka's default `socket.request.max.bytes` is
/// 100 MiB).
const MAX_FRAME_BYTES: u64 = 100 << 20;

/// Flags of `kpax decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The frame in hex (spaces, colons and a 0x prefix allowed); without
    /// it and without --file, stdin is read.
    hex: Option<String>,
    /// Read the frame from a file (raw bytes, or hex text).
    #[arg(short, long, value_name = "FILE", conflicts_with = "hex")]
    file: Option<PathBuf>,
    /// The frame is a response of this API (name or key); requires --version.
    #[arg(long, value_name = "NAME|KEY", requires = "version")]
    api: Option<String>,
    /// The response's version (the version of the request it answers).
    #[arg(long, value_name = "V", requires = "api")]
    version: Option<i16>,
}

/// Reads at most [`MAX_FRAME_BYTES`] from `r`.
fn read_bounded(r: impl Read, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(MAX_FRAME_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::Io {
            context: format!("reading {what}"),
            source: e,
        })?;
    if buf.len() as u64 > MAX_FRAME_BYTES {
        return Err(CliError::Input(format!(
            "{what}: more than {MAX_FRAME_BYTES} bytes, larger than any frame"
        )));
    }
    Ok(buf)
}

/// Raw bytes, or hex text when every byte is a hex digit, space or
/// separator.
fn bytes_or_hex(raw: Vec<u8>) -> Result<Vec<u8>> {
    let texty = raw
        .iter()
        .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace() || *b == b':' || *b == b'x');
    if texty && !raw.is_empty() {
        Ok(parse_hex(&String::from_utf8_lossy(&raw))?)
    } else {
        Ok(raw)
    }
}

/// Finds an API by name (any case) or key.
///
/// # Errors
/// [`CliError::Usage`] for an unknown one.
pub fn parse_api(s: &str) -> Result<ApiKey> {
    if let Ok(k) = s.parse::<i16>() {
        return ApiKey::try_from(k)
            .map_err(|_| CliError::Usage(format!("--api {s}: no API has key {k}")));
    }
    ApiKey::ALL
        .iter()
        .copied()
        .find(|a| a.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--api {s:?}: no such API (give a name like Metadata or a key like 3)"
            ))
        })
}

/// Strips a 4-byte size prefix when it states the length of what follows;
/// a prefix that promises more than is there is a truncated frame.
fn strip_size_prefix(frame: Bytes, request: bool) -> Result<Bytes> {
    if frame.len() < 4 {
        return Ok(frame);
    }
    let n = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let rest = frame.len() - 4;
    if n >= 0 && n as usize == rest {
        return Ok(frame.slice(4..));
    }
    // Without a prefix, a request starts with its API key and version:
    // 4 bytes that are no known key and version were a size.
    let looks_like_header =
        ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).is_ok_and(|k| {
            let (lo, hi) = k.versions();
            (lo..=hi).contains(&i16::from_be_bytes([frame[2], frame[3]]))
        });
    if n > 0 && n as usize > rest && (!request || !looks_like_header) {
        return Err(CliError::Input(format!(
            "truncated frame: its size prefix says {n} bytes, {rest} follow"
        )));
    }
    Ok(frame)
}

/// Runs `kpax decode`.
///
/// # Errors
/// Bad hex, a truncated or undecodable frame (naming the message, field
/// and version), bytes left over after the body, unreadable input.
pub async fn run(args: DecodeArgs) -> Result<()> {
    let raw = match (&args.hex, &args.file) {
        (Some(h), _) => parse_hex(h)?,
        (None, Some(p)) => {
            let f = std::fs::File::open(p).map_err(|e| CliError::Io {
                context: format!("opening {}", p.display()),
                source: e,
            })?;
            bytes_or_hex(read_bounded(f, &p.display().to_string())?)?
        }
        (None, None) => bytes_or_hex(read_bounded(std::io::stdin().lock(), "stdin")?)?,
    };
    let response = match (&args.api, args.version) {
        (Some(a), Some(v)) => Some((parse_api(a)?, v)),
        _ => None,
    };
    let text = decode(Bytes::from(raw), response)?;
    write_out(&text)
}

/// Decodes one frame into its printed form.
///
/// # Errors
/// As [`run`].
pub fn decode(frame: Bytes, response: Option<(ApiKey, i16)>) -> Result<String> {
    let mut buf = strip_size_prefix(frame, response.is_none())?;
    let total = buf.len();
    let bad = |e: kpax_proto::wire::DecodeError| {
        CliError::Input(format!("truncated or malformed frame: {e}"))
    };
    let (title, body) = match response {
        None => {
            if buf.len() < 4 {
                return Err(CliError::Input(format!(
                    "truncated frame: {} bytes, a request header needs at least 8",
                    buf.len()
                )));
            }
            let key_raw = i16::from_be_bytes([buf[0], buf[1]]);
            let version = i16::from_be_bytes([buf[2], buf[3]]);
            let api = ApiKey::try_from(key_raw).map_err(|_| {
                CliError::Input(format!(
                    "not a request frame: API key {key_raw} is unknown (for a response give --api and --version)"
                ))
            })?;
            check_version(api, version)?;
            let hv = api.request_header_version(version);
            let header = RequestHeader::decode(&mut buf, hv).map_err(bad)?;
            let body = RequestKind::decode(key_raw, version, &mut buf).map_err(bad)?;
            (
                format!(
                    "request {} v{version} (key {key_raw}, header v{hv}), correlation id {}, client id {}\n",
                    api.name(),
                    header.correlation_id,
                    header
                        .client_id
                        .as_ref()
                        .map_or("null".to_string(), |c| format!("{:?}", c.as_str()))
                ),
                format!("{body:#?}"),
            )
        }
        Some((api, version)) => {
            check_version(api, version)?;
            let hv = api.response_header_version(version);
            let header = ResponseHeader::decode(&mut buf, hv).map_err(bad)?;
            let body = ResponseKind::decode(api as i16, version, &mut buf).map_err(bad)?;
            (
                format!(
                    "response {} v{version} (key {}, header v{hv}), correlation id {}\n",
                    api.name(),
                    api as i16,
                    header.correlation_id
                ),
                format!("{body:#?}"),
            )
        }
    };
    if buf.has_remaining() {
        return Err(CliError::Input(format!(
            "{} of {total} bytes left after the body: not this API/version, or more than one frame",
            buf.remaining()
        )));
    }
    Ok(format!("{title}{body}\n"))
}

fn check_version(api: ApiKey, v: i16) -> Result<()> {
    let (lo, hi) = api.versions();
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(CliError::Input(format!(
            "{} v{v} is not a version kpax knows (v{lo}-v{hi})",
            api.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kpax_proto::generated::MetadataRequest;

    fn metadata_frame(prefix: bool) -> Vec<u8> {
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(3)
            .with_request_api_version(12)
            .with_correlation_id(42)
            .with_client_id(Some("me".into()))
            .encode(&mut b, 2)
            .unwrap();
        MetadataRequest::default()
            .with_topics(Some(vec![]))
            .encode(&mut b, 12)
            .unwrap();
        let mut out = Vec::new();
        if prefix {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
        }
        out.extend_from_slice(&b);
        out
    }

    #[test]
    fn decodes_requests_with_and_without_prefix() {
        for prefix in [true, false] {
            let s = decode(Bytes::from(metadata_frame(prefix)), None).unwrap();
            assert!(s.starts_with("request Metadata v12"), "{s}");
            assert!(s.contains("correlation id 42"), "{s}");
            assert!(s.contains("MetadataRequest"), "{s}");
        }
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let f = metadata_frame(true);
        let e = decode(Bytes::from(f[..f.len() - 3].to_vec()), None).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut f = metadata_frame(false);
        f.push(0);
        assert!(decode(Bytes::from(f), None).is_err());
    }

    #[test]
    fn finds_apis_by_name_or_key() {
        assert_eq!(parse_api("metadata").unwrap(), ApiKey::Metadata);
        assert_eq!(parse_api("18").unwrap(), ApiKey::ApiVersions);
        assert!(parse_api("Nope").is_err());
        assert!(parse_api("999").is_err());
    }
}
