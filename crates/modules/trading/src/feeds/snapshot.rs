//! Depth snapshots for Binance-style books: the [`SnapshotSource`] port and
//! a minimal plain-HTTP/1.1 implementation.
//!
//! [`HttpSnapshotSource`] speaks `http://` only (a local gateway, a test
//! server, a venue simulator). Real venues serve snapshots over `https://`:
//! the module injects its own HTTP client (the core's HTTP port, with TLS,
//! proxies and limits) as a [`SnapshotSource`] and can reuse
//! [`parse_depth_snapshot`] for the body.

use std::fmt;
use std::io;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::net::TcpStream;

use super::book::BookLevel;
use super::parse;

/// A depth snapshot: `GET /api/v3/depth` in Binance's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthSnapshot {
    /// The id of the last update the snapshot includes.
    pub last_update_id: u64,
    /// Bid levels (any order).
    pub bids: Vec<BookLevel>,
    /// Ask levels (any order).
    pub asks: Vec<BookLevel>,
}

/// Why a snapshot could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The URL is not `http://host[:port][/prefix]`.
    #[error("invalid snapshot url {0:?}")]
    InvalidUrl(String),
    /// `https://` (or another scheme): inject an HTTP client with TLS as a [`SnapshotSource`].
    #[error("unsupported snapshot url scheme {0:?}: the built-in fetcher speaks plain http, inject a client for https")]
    UnsupportedScheme(String),
    /// A symbol with characters that have no place in a query string.
    #[error("invalid symbol {0:?}")]
    InvalidSymbol(String),
    /// Connecting, writing or reading failed.
    #[error("snapshot request failed: {0}")]
    Io(String),
    /// No complete answer within the timeout.
    #[error("snapshot request timed out after {0:?}")]
    Timeout(Duration),
    /// An HTTP status other than 200.
    #[error("snapshot request answered http {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// Not an HTTP/1.x answer this client understands, or too large.
    #[error("bad http response: {0}")]
    BadResponse(String),
    /// The body is not a depth snapshot (missing fields, NaN or negative values).
    #[error("malformed depth snapshot: {0}")]
    Malformed(String),
}

/// Where depth snapshots come from. Implement it over the module's HTTP
/// client for `https://` venues; [`HttpSnapshotSource`] covers plain HTTP.
pub trait SnapshotSource: Send + Sync + fmt::Debug {
    /// The current depth of `symbol` (as the venue spells it), at most `limit` levels per side.
    fn fetch<'a>(&'a self, symbol: &'a str, limit: u32) -> BoxFuture<'a, Result<DepthSnapshot, SnapshotError>>;
}

/// Parses `{"lastUpdateId": n, "bids": [[price, qty], ...], "asks": [...]}`.
///
/// # Errors
/// [`SnapshotError::Malformed`] naming the first problem found.
pub fn parse_depth_snapshot(body: &[u8]) -> Result<DepthSnapshot, SnapshotError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(SnapshotError::Malformed("not a json object".to_owned()));
    };
    let malformed = |e: parse::MessageError| SnapshotError::Malformed(e.to_string());
    let last_update_id = parse::u64_field(&fields, "lastUpdateId").map_err(malformed)?;
    let bids = parse::levels(parse::array_field(&fields, "bids").map_err(malformed)?, "bids").map_err(malformed)?;
    let asks = parse::levels(parse::array_field(&fields, "asks").map_err(malformed)?, "asks").map_err(malformed)?;
    Ok(DepthSnapshot { last_update_id, bids, asks })
}

/// Fetches `GET {base}/api/v3/depth?symbol=X&limit=N` over plain HTTP/1.1,
/// one connection per request, with a timeout and a cap on the answer's size.
#[derive(Debug, Clone)]
pub struct HttpSnapshotSource {
    host: String,
    port: u16,
    prefix: String,
    /// The whole request's time limit (connect, send, read).
    pub timeout: Duration,
    /// The largest answer accepted, headers included.
    pub max_response_bytes: usize,
}

impl HttpSnapshotSource {
    /// A fetcher for `http://host[:port][/prefix]` with a 10 s timeout and a 16 MiB limit.
    ///
    /// # Errors
    /// [`SnapshotError::UnsupportedScheme`] for `https://` and other schemes,
    /// [`SnapshotError::InvalidUrl`] for anything else that does not parse.
    pub fn new(base_url: &str) -> Result<Self, SnapshotError> {
        let Some(rest) = base_url.strip_prefix("http://") else {
            let scheme = base_url.split_once("://").map_or(base_url, |(s, _)| s);
            return Err(SnapshotError::UnsupportedScheme(scheme.to_owned()));
        };
        let invalid = || SnapshotError::InvalidUrl(base_url.to_owned());
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || prefix.contains(['?', '#', ' ']) {
            return Err(invalid());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(invalid)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| invalid())?,
                None if after.is_empty() => 80,
                None => return Err(invalid()),
            };
            (host.to_owned(), port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| invalid())?),
                None => (authority.to_owned(), 80),
            }
        };
        if host.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            host,
            port,
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(10),
            max_response_bytes: 16 << 20,
        })
    }

    /// The same fetcher with another timeout.
    #[must_use]
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn get(&self, symbol: &str, limit: u32) -> Result<DepthSnapshot, SnapshotError> {
        if symbol.is_empty() || !symbol.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(SnapshotError::InvalidSymbol(symbol.to_owned()));
        }
        let host_header = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let request = format!(
            "GET {}/api/v3/depth?symbol={symbol}&limit={limit} HTTP/1.1\r\nHost: {host_header}\r\n\
             User-Agent: plexus-trading\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            self.prefix
        );
        let io_err = |e: io::Error| SnapshotError::Io(e.to_string());
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(io_err)?;
        write_all(&stream, request.as_bytes()).await.map_err(io_err)?;
        let response = read_to_end(&stream, self.max_response_bytes).await?;
        let body = http_body(&response)?;
        parse_depth_snapshot(&body)
    }
}

impl SnapshotSource for HttpSnapshotSource {
    fn fetch<'a>(&'a self, symbol: &'a str, limit: u32) -> BoxFuture<'a, Result<DepthSnapshot, SnapshotError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.get(symbol, limit)).await {
                Ok(result) => result,
                Err(_) => Err(SnapshotError::Timeout(self.timeout)),
            }
        })
    }
}

/// Writes all of `buf` (readiness + `try_write`: no extra tokio features needed).
async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "connection closed while writing")),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until the peer closes (the request asked for `Connection: close`),
/// or until a complete body per `Content-Length` arrived.
async fn read_to_end(stream: &TcpStream, max: usize) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        stream.readable().await.map_err(|e| SnapshotError::Io(e.to_string()))?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > max {
                    return Err(SnapshotError::BadResponse(format!("response larger than {max} bytes")));
                }
                if complete_by_length(&out) {
                    return Ok(out);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(SnapshotError::Io(e.to_string())),
        }
    }
}

/// Headers end and `Content-Length` says the body is all here.
fn complete_by_length(response: &[u8]) -> bool {
    let Some(end) = find(response, b"\r\n\r\n") else { return false };
    let Ok(head) = std::str::from_utf8(&response[..end]) else { return false };
    headers(head)
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .is_some_and(|len| response.len() >= end + 4 + len)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn headers(head: &str) -> impl Iterator<Item = (&str, &str)> {
    head.split("\r\n").skip(1).filter_map(|line| line.split_once(':')).map(|(n, v)| (n.trim(), v.trim()))
}

/// The body of a complete HTTP/1.x response with status 200 (identity,
/// `Content-Length` or chunked).
fn http_body(response: &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let bad = |what: &str| SnapshotError::BadResponse(what.to_owned());
    let end = find(response, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&response[..end]).map_err(|_| bad("headers are not utf-8"))?;
    let status_line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an http/1.x response"));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
    if status != 200 {
        return Err(SnapshotError::Status { status });
    }
    let body = &response[end + 4..];
    let chunked = headers(head)
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return dechunk(body);
    }
    match headers(head).find(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        Some((_, v)) => {
            let len: usize = v.parse().map_err(|_| bad("bad content-length"))?;
            body.get(..len).map(<[u8]>::to_vec).ok_or_else(|| bad("body shorter than content-length"))
        }
        None => Ok(body.to_vec()),
    }
}

/// Decodes a chunked body (extensions and trailers ignored).
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let bad = |what: &str| SnapshotError::BadResponse(what.to_owned());
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or_else(|| bad("truncated chunk size"))?;
        let line = std::str::from_utf8(&body[..line_end]).map_err(|_| bad("bad chunk size"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let data = body.get(..size).ok_or_else(|| bad("truncated chunk"))?;
        out.extend_from_slice(data);
        body = body.get(size + 2..).ok_or_else(|| bad("truncated chunk"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = HttpSnapshotSource::new("http://127.0.0.1:8080/x/").expect("url");
        assert_eq!((s.host.as_str(), s.port, s.prefix.as_str()), ("127.0.0.1", 8080, "/x"));
        let s = HttpSnapshotSource::new("http://[::1]:81").expect("url");
        assert_eq!((s.host.as_str(), s.port), ("::1", 81));
        assert!(matches!(HttpSnapshotSource::new("https://api.binance.com"), Err(SnapshotError::UnsupportedScheme(_))));
        assert!(matches!(HttpSnapshotSource::new("http://:80"), Err(SnapshotError::InvalidUrl(_))));
        assert!(matches!(HttpSnapshotSource::new("http://h:x"), Err(SnapshotError::InvalidUrl(_))));
    }

    #[test]
    fn bodies() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx";
        assert_eq!(http_body(r).expect("body"), b"{}");
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(http_body(r).expect("body"), b"abcde");
        let r = b"HTTP/1.1 429 Too Many\r\n\r\n";
        assert_eq!(http_body(r), Err(SnapshotError::Status { status: 429 }));
        assert!(http_body(b"garbage").is_err());
        assert!(http_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        let snap = parse_depth_snapshot(br#"{"lastUpdateId":5,"bids":[["1.5","2"]],"asks":[]}"#).expect("snapshot");
        assert_eq!(snap.last_update_id, 5);
        assert!(parse_depth_snapshot(br#"{"lastUpdateId":5,"bids":[["NaN","2"]],"asks":[]}"#).is_err());
    }
}
