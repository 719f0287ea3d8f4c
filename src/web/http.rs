//! A strict, minimal HTTP/1.1 server side: read one request head (GET or HEAD, no body) within
//! a size limit and a deadline, and write one response with a `Content-Length`.
//!
//! What it refuses, and how: a head over [`MAX_HEAD`] bytes → 431; anything that is not
//! `METHOD SP /target SP HTTP/1.0|1.1`, a folded or malformed header line, a body on a GET
//! (`Content-Length` ≠ 0 or any `Transfer-Encoding`) → 400; other methods → 405 (the
//! connection is closed after each of these, as their body is never read). A client that
//! does not finish its head within [`HEAD_DEADLINE`] is dropped.
//!
//! Must not: know routes, tokens or anything of the daemon.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// The most a request head (request line and headers) may take.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send one request head, once it started or after the previous
/// response (keep-alive idle time included).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string after `?`, if any (not decoded).
    pub query: Option<String>,
    /// The client asked to keep the connection open (HTTP/1.1 without `Connection: close`).
    pub keep_alive: bool,
    /// The `Authorization` header's value.
    pub authorization: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// Why no request could be served; each maps to a response (or to silence).
#[derive(Debug)]
pub enum ReadError {
    /// The connection closed or timed out before a request began: just close it.
    Closed,
    /// 400, 405 or 431 with this message; then close.
    Reject(u16, &'static str),
    Io(io::Error),
}

/// Reads one request head from `conn`. `buf` carries bytes read past the previous head
/// (pipelining) and keeps those past this one.
pub fn read_request<S: Read>(conn: &mut S, buf: &mut Vec<u8>) -> Result<Request, ReadError> {
    let started = Instant::now();
    loop {
        if let Some(end) = find_head_end(buf) {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return parse_head(&head[..end]);
        }
        if buf.len() >= MAX_HEAD {
            return Err(ReadError::Reject(431, "request head too large"));
        }
        if started.elapsed() > HEAD_DEADLINE {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Reject(400, "request head not finished in time")
            });
        }
        let mut chunk = [0u8; 2048];
        let room = (MAX_HEAD - buf.len()).min(chunk.len());
        match conn.read(&mut chunk[..room]) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::Closed)
            }
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses a head (without its final blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, ReadError> {
    let bad = |m| ReadError::Reject(400, m);
    let text = std::str::from_utf8(head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(bad("only HTTP/1.0 and HTTP/1.1 are served")),
    };
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("malformed request target"));
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(ReadError::Reject(405, "only GET and HEAD are allowed"))
        }
        _ => return Err(bad("malformed method")),
    };
    let mut keep_alive = http11;
    let mut authorization = None;
    for l in lines {
        if l.starts_with([' ', '\t']) {
            return Err(bad("folded header lines are not accepted"));
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(bad("malformed header line"));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("malformed header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        match name.to_ascii_lowercase().as_str() {
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.split(',').any(|t| t.trim() == "close") {
                    keep_alive = false;
                } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                    keep_alive = true;
                }
            }
            "authorization" if authorization.replace(value.to_string()).is_some() => {
                return Err(bad("more than one Authorization header"));
            }
            "content-length" if value != "0" => {
                return Err(bad("a GET or HEAD request has no body"))
            }
            "transfer-encoding" => return Err(bad("a GET or HEAD request has no body")),
            _ => {}
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    Ok(Request {
        method,
        path,
        query,
        keep_alive,
        authorization,
    })
}

/// The value of `key` in a query string (`a=1&b=2`); values here are numbers and ids, which
/// need no decoding.
pub fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// One response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes `r` (its body only for GET), with the headers every response carries.
pub fn write_response<S: Write>(
    conn: &mut S,
    r: &Response,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        // Values are ours; a line break in one would split the head.
        debug_assert!(!v.contains(['\r', '\n']));
        out.push_str(&format!("{k}: {}\r\n", v.replace(['\r', '\n'], " ")));
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&r.body);
    }
    conn.write_all(&bytes)?;
    conn.flush()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the loop from being cut short by the optimiser.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, ReadError> {
        read_request(&mut s.as_bytes(), &mut Vec::new())
    }

    fn status(r: Result<Request, ReadError>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(ReadError::Reject(s, _)) => s,
            Err(ReadError::Closed) => 0,
            Err(ReadError::Io(_)) => 1,
        }
    }

    #[test]
    fn requests_are_parsed_strictly() {
        let r =
            parse("GET /api/v1/status?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n")
                .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/api/v1/status");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert!(r.keep_alive);
        assert_eq!(r.authorization.as_deref(), Some("Bearer t"));
        let r = parse("HEAD / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!r.keep_alive && r.method == Method::Head);
        assert!(
            !parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert_eq!(status(parse("POST / HTTP/1.1\r\n\r\n")), 405);
        assert_eq!(status(parse("DELETE /x HTTP/1.1\r\n\r\n")), 405);
        assert_eq!(status(parse("GET / HTTP/2\r\n\r\n")), 400);
        assert_eq!(status(parse("GET  / HTTP/1.1\r\n\r\n")), 400);
        assert_eq!(status(parse("GET http://x/ HTTP/1.1\r\n\r\n")), 400);
        assert_eq!(status(parse("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n")), 400);
        assert_eq!(
            status(parse("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")),
            400
        );
        assert_eq!(
            status(parse(
                "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            400
        );
        assert_eq!(status(parse("GET / HTTP/1.1\r\nnocolon\r\n\r\n")), 400);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(status(parse(&big)), 431);
        assert_eq!(status(parse("GET / HTTP/1.1\r\n")), 0, "closed mid-head");
    }

    #[test]
    fn pipelined_requests_are_kept_apart() {
        let mut input: &[u8] = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let mut buf = Vec::new();
        assert_eq!(read_request(&mut input, &mut buf).unwrap().path, "/a");
        assert_eq!(read_request(&mut input, &mut buf).unwrap().path, "/b");
    }

    #[test]
    fn responses_and_helpers() {
        let mut out = Vec::new();
        let r = Response::text(200, "hi").header("X-A", "1");
        write_response(&mut out, &r, false, true).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(s.contains("Content-Length: 2\r\n") && s.contains("X-A: 1\r\n"));
        assert!(s.ends_with("Connection: keep-alive\r\n\r\nhi"));
        let mut out = Vec::new();
        write_response(&mut out, &r, true, false).unwrap();
        assert!(String::from_utf8(out).unwrap().ends_with("close\r\n\r\n"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
        assert_eq!(query_param(Some("limit=5&before=r1"), "before"), Some("r1"));
        assert_eq!(query_param(Some("limit=5"), "before"), None);
        assert_eq!(query_param(None, "x"), None);
    }
}
