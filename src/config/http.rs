//! The top-level `http:` block → [`Http`]: where the daemon's read-only status page listens and
//! which token it asks for.
//!
//! The one security rule lives here, so `validate` states it before a daemon could break it: a
//! TCP listener that is not loopback needs `token_file` (anyone who can reach the port would
//! otherwise read every job's paths, hosts and errors). A relative unix socket path is inside
//! `pid_file_dir`, the runtime directory the daemon already owns and checks.
//!
//! Must not: open sockets or read the token (the daemon's web server does, at start).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::decode::Decoder;
use super::fields;
use super::yaml::Node;

/// The longest unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The validated `http:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// At least one.
    pub listen: Vec<Listen>,
    /// File holding the bearer token; `None`: no token asked (only loopback and unix sockets).
    pub token_file: Option<PathBuf>,
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket at this absolute path.
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// What one `listen` entry says, before the token rule is applied.
pub fn parse_listen(text: &str, pid_file_dir: &Path) -> Result<Listen, String> {
    if let Some(p) = text.strip_prefix("unix:") {
        if p.is_empty() {
            return Err("`unix:` needs a socket path".into());
        }
        let path = if p.starts_with('/') {
            PathBuf::from(p)
        } else {
            if p.split('/').any(|c| c == "..") {
                return Err(format!("`{p}` leaves pid_file_dir (`..`)"));
            }
            pid_file_dir.join(p)
        };
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(format!(
                "socket path {} is {len} bytes; the kernel takes at most {MAX_SOCKET_PATH}",
                path.display()
            ));
        }
        return Ok(Listen::Unix(path));
    }
    match text.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => Err(format!("`{text}` has port 0; name a port")),
        Ok(a) => Ok(Listen::Tcp(a)),
        Err(_) => Err(format!(
            "`{text}` is neither `unix:PATH` nor an `IP:PORT` address"
        )),
    }
}

impl Decoder {
    /// The `http` block (`node` is `None` for `http:` with nothing under it: the defaults).
    pub(super) fn http(&mut self, node: Option<&Node>, pid_file_dir: &Path) -> Option<Http> {
        let f = match node {
            Some(n) => Some(self.fields(n, "http", &fields::HTTP)?),
            None => None,
        };
        let get = |k: &str| f.as_ref().and_then(|f| f.get(k));
        let token_file = match get("token_file") {
            Some(n) => Some(self.abs_path(n, "http.token_file")?),
            None => None,
        };
        let mut listen = Vec::new();
        let mut ok = true;
        match get("listen") {
            None => {
                for text in fields::default_list(&fields::HTTP, "listen") {
                    let l = parse_listen(&text, pid_file_dir).ok();
                    listen.push(l.expect("the table's default listen parses"));
                }
            }
            Some(n) => {
                let items = self.list(n, "http.listen")?;
                if items.is_empty() {
                    self.err(n.span.clone(), "http.listen", "no listener given")
                        .help = Some("leave `listen` out for the default unix socket, or remove the `http` block to serve nothing".into());
                    return None;
                }
                for (i, item) in items.iter().enumerate() {
                    let path = format!("http.listen[{i}]");
                    let Some(text) = self.nonempty(item, &path) else {
                        ok = false;
                        continue;
                    };
                    let width = text.chars().count();
                    match parse_listen(&text, pid_file_dir) {
                        Ok(Listen::Tcp(a)) if !a.ip().is_loopback() && token_file.is_none() => {
                            ok = false;
                            self.err(
                                item.inner_span(0, width),
                                &path,
                                format!("`{text}` is not a loopback address and `http.token_file` is not set: anyone who reaches the port would read every job's status"),
                            )
                            .help = Some("set `token_file` to a file holding a bearer token, or listen on 127.0.0.1, [::1] or a unix socket (and put a reverse proxy with TLS and authentication in front)".into());
                        }
                        Ok(l) if listen.contains(&l) => {
                            ok = false;
                            self.err(
                                item.inner_span(0, width),
                                &path,
                                format!("`{l}` is listed twice"),
                            );
                        }
                        Ok(l) => listen.push(l),
                        Err(msg) => {
                            ok = false;
                            self.err(item.inner_span(0, width), &path, msg).help = Some(
                                "write e.g. `unix:http.sock` (inside pid_file_dir), `unix:/run/bm/http.sock`, `127.0.0.1:8470` or `[::1]:8470`".into(),
                            );
                        }
                    }
                }
            }
        }
        ok.then_some(Http { listen, token_file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_entries() {
        let run = Path::new("/run/bm");
        assert_eq!(
            parse_listen("unix:http.sock", run),
            Ok(Listen::Unix("/run/bm/http.sock".into()))
        );
        assert_eq!(
            parse_listen("unix:/x/y.sock", run),
            Ok(Listen::Unix("/x/y.sock".into()))
        );
        assert_eq!(
            parse_listen("127.0.0.1:8470", run),
            Ok(Listen::Tcp("127.0.0.1:8470".parse().unwrap()))
        );
        assert!(parse_listen("[::1]:8470", run).is_ok());
        assert!(parse_listen("localhost:8470", run).is_err());
        assert!(parse_listen("127.0.0.1:0", run).is_err());
        assert!(parse_listen("unix:", run).is_err());
        assert!(parse_listen("unix:../x.sock", run).is_err());
        let long = format!("unix:/{}", "a".repeat(120));
        assert!(parse_listen(&long, run).unwrap_err().contains("107"));
    }
}
