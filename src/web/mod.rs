//! The daemon's read-only web status page and JSON API (`http:` in the config).
//!
//! Shape: one acceptor thread per listener hands connections to a bounded queue; a fixed pool
//! of [`WORKERS`] threads serves them ([`http`] reads one request head at a time, strictly:
//! GET and HEAD only, [`http::MAX_HEAD`] bytes, a deadline per head, [`MAX_REQUESTS`] per
//! connection, read and write timeouts, a short read timeout once a connection is kept alive so
//! an idle client does not hold a worker). When the queue is full a new connection gets a 503
//! and is closed at once, so a flood costs a few file descriptors, never memory or the
//! scheduler's time. The server runs on its own threads and reads only what the daemon
//! publishes ([`Feed`]: the running config and the live state, swapped as `Arc`s under a lock
//! held for a pointer copy) plus the files `status` reads (state, history, run logs): the
//! scheduler never waits for it.
//!
//! Routes are in [`api`] (JSON and text) and [`pages`] (HTML). With a token file every request
//! needs `Authorization: Bearer TOKEN` (compared in constant time).
//!
//! Must not: change anything (no route writes), start or signal runs, or put a secret (the
//! token, a notification URL) in a response.

pub mod api;
pub mod chart;
pub mod http;
pub mod pages;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::http::{Http, Listen};
use crate::config::Config;
use crate::store::live::Live;
use crate::store::status::{self, Status};

/// Threads serving requests.
pub const WORKERS: usize = 8;
/// Accepted connections waiting for a worker; past it new ones get a 503.
pub const QUEUE: usize = 64;
/// Requests served on one connection before it is closed.
pub const MAX_REQUESTS: usize = 100;
/// Read and write timeout of each socket operation.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout on a kept-alive connection: an idle client frees its worker this soon.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
/// How long one status snapshot is reused: requests in a burst share one read of the state,
/// the history and `/proc/locks`.
pub const SNAPSHOT_TTL: Duration = Duration::from_millis(500);
/// The oldest snapshot ever served (while a newer one is built in the background).
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("http.token_file {}: {source}", .path.display())]
    Token {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("http.token_file {}: {why}", .path.display())]
    BadToken { path: PathBuf, why: &'static str },
    #[error("http: cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        #[source]
        source: io::Error,
    },
}

/// What the daemon publishes for the server: the running config and the live state.
pub struct Feed {
    config: Mutex<Arc<Config>>,
    live: Mutex<Arc<Live>>,
    cache: Mutex<Option<(Instant, Snapshot)>>,
    /// A background refresh of `cache` is under way.
    refreshing: AtomicBool,
    /// Restore points per job, as the daemon last counted them (after each run, on the
    /// history writer's thread: listing a remote series takes ssh, never a request's time).
    restore_points: Mutex<Arc<std::collections::BTreeMap<String, usize>>>,
}

impl Feed {
    pub fn new(config: Arc<Config>, live: Live) -> Feed {
        Feed {
            config: Mutex::new(config),
            live: Mutex::new(Arc::new(live)),
            cache: Mutex::new(None),
            refreshing: AtomicBool::new(false),
            restore_points: Mutex::new(Arc::default()),
        }
    }

    /// The daemon: restore points counted after a run.
    pub fn set_restore_points(&self, points: std::collections::BTreeMap<String, usize>) {
        *self
            .restore_points
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(points);
    }

    pub fn restore_points(&self) -> Arc<std::collections::BTreeMap<String, usize>> {
        Arc::clone(
            &self
                .restore_points
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// The daemon: a reload's new config.
    pub fn set_config(&self, config: Arc<Config>) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// The daemon: the live state it just published.
    pub fn set_live(&self, live: &Live) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(live.clone());
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The status snapshot, as `status --format json` builds it. A copy younger than
    /// [`SNAPSHOT_TTL`] is served as it is; an older one (up to [`SNAPSHOT_MAX_AGE`]) is served
    /// while one background thread builds the next, so under load no request waits for a
    /// snapshot; an older one or none is built on the spot.
    pub fn status(self: &Arc<Self>) -> Snapshot {
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match cached {
            Some((at, s)) if at.elapsed() < SNAPSHOT_TTL => s,
            Some((at, s)) if at.elapsed() < SNAPSHOT_MAX_AGE => {
                if !self.refreshing.swap(true, Ordering::SeqCst) {
                    let me = Arc::clone(self);
                    let spawned = std::thread::Builder::new()
                        .name("http status".into())
                        .spawn(move || {
                            me.refresh();
                            me.refreshing.store(false, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        self.refreshing.store(false, Ordering::SeqCst);
                    }
                }
                s
            }
            _ => self.refresh(),
        }
    }

    /// Builds a snapshot now and keeps it.
    fn refresh(&self) -> Snapshot {
        let (config, live) = (self.config(), self.live());
        let mut status = status::snapshot(
            &live.config,
            Some(&config),
            None,
            Some(&live),
            jiff::Timestamp::now(),
            &[],
        );
        let points = self.restore_points();
        for j in &mut status.jobs {
            j.restore_points = points.get(&j.id).copied();
        }
        let status = Arc::new(status);
        let mut json = serde_json::to_vec_pretty(&*status).expect("status serializes");
        json.push(b'\n');
        let s = Snapshot {
            status,
            json: Arc::new(json),
        };
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), s.clone()));
        s
    }
}

/// A status snapshot and its JSON (serialized once, served by every request that shares it).
#[derive(Clone)]
pub struct Snapshot {
    pub status: Arc<Status>,
    pub json: Arc<Vec<u8>>,
}

/// A running server. [`Server::stop`] removes its unix sockets; its threads end with the
/// process.
pub struct Server {
    sockets: Vec<PathBuf>,
}

impl Server {
    /// Reads the token, binds every listener (all or none) and starts the threads.
    pub fn start(http: &Http, feed: Arc<Feed>) -> Result<Server, WebError> {
        let token = match &http.token_file {
            Some(p) => Some(read_token(p)?),
            None => None,
        };
        let mut listeners = Vec::new();
        let mut sockets = Vec::new();
        for l in &http.listen {
            let err = |source| {
                // All or none: the sockets bound so far go again.
                Server {
                    sockets: sockets.clone(),
                }
                .stop();
                WebError::Listen {
                    listen: l.to_string(),
                    source,
                }
            };
            match l {
                Listen::Tcp(a) => listeners.push(Listener::Tcp(TcpListener::bind(a).map_err(err)?)),
                Listen::Unix(p) => {
                    let u = bind_unix(p).map_err(err)?;
                    sockets.push(p.clone());
                    listeners.push(Listener::Unix(u));
                }
            }
        }
        let (tx, rx) = mpsc::sync_channel::<Conn>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let ctx = Arc::new(api::Ctx { feed, token });
        for i in 0..WORKERS {
            let (rx, ctx) = (Arc::clone(&rx), Arc::clone(&ctx));
            std::thread::Builder::new()
                .name(format!("http {i}"))
                .spawn(move || worker(&rx, &ctx))
                .map_err(|source| WebError::Listen {
                    listen: "worker thread".into(),
                    source,
                })?;
        }
        for (i, l) in listeners.into_iter().enumerate() {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("http accept {i}"))
                .spawn(move || accept(l, &tx))
                .map_err(|source| WebError::Listen {
                    listen: "acceptor thread".into(),
                    source,
                })?;
        }
        Ok(Server { sockets })
    }

    /// Removes the unix sockets (only if they are still sockets).
    pub fn stop(&self) {
        for p in &self.sockets {
            if fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// The token: the file's first line, trimmed, at least 16 characters.
fn read_token(path: &Path) -> Result<String, WebError> {
    let text = fs::read_to_string(path).map_err(|source| WebError::Token {
        path: path.into(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.chars().count() < 16 {
        return Err(WebError::BadToken {
            path: path.into(),
            why: "the token (first line) must be at least 16 characters",
        });
    }
    Ok(token)
}

/// Binds a unix socket at `path`: its directory is checked like the runtime dir, a socket left
/// by an earlier daemon is replaced, anything else at the path is refused. Mode 0660.
fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    crate::sys::runtime::ensure_private_dir(dir, 0o755)?;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "something that is not a socket is in the way; remove it",
            ))
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))?;
                s.set_nodelay(true)
            }
            Conn::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(Some(t)),
            Conn::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_nonblocking(true),
            Conn::Unix(s) => s.set_nonblocking(true),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(b),
            Conn::Unix(s) => s.read(b),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(b),
            Conn::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

fn accept(l: Listener, tx: &SyncSender<Conn>) {
    loop {
        let conn = match &l {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Conn::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!(phase = "http", "accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        match tx.try_send(conn) {
            Ok(()) => {}
            Err(TrySendError::Full(mut c)) => {
                // Never block the acceptor on a client: one non-blocking write, then close.
                let _ = c.set_nonblocking();
                let r = http::Response::text(503, "busy, try again\n").header("Retry-After", "1");
                let _ = http::write_response(&mut c, &r, false, false);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn worker(rx: &Mutex<Receiver<Conn>>, ctx: &api::Ctx) {
    loop {
        let conn = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(conn) = conn else { return };
        serve(conn, ctx);
    }
}

/// Serves one connection: requests until the client closes, asks to, errs, or reaches
/// [`MAX_REQUESTS`].
fn serve(mut conn: Conn, ctx: &api::Ctx) {
    if conn.set_timeouts(IO_TIMEOUT).is_err() {
        return;
    }
    let mut buf = Vec::new();
    for n in 1..=MAX_REQUESTS {
        if n == 2 && conn.set_read_timeout(KEEPALIVE_IDLE).is_err() {
            return;
        }
        let req = match http::read_request(&mut conn, &mut buf) {
            Ok(r) => r,
            Err(http::ReadError::Reject(status, msg)) => {
                let mut r = http::Response::text(status, format!("{msg}\n"));
                if status == 405 {
                    r = r.header("Allow", "GET, HEAD");
                }
                let _ = http::write_response(&mut conn, &r, false, false);
                linger(&mut conn);
                return;
            }
            Err(_) => return,
        };
        let resp = api::respond(ctx, &req);
        let keep = req.keep_alive && n < MAX_REQUESTS;
        let head_only = req.method == http::Method::Head;
        if http::write_response(&mut conn, &resp, head_only, keep).is_err() || !keep {
            return;
        }
    }
}

/// After an error answer to a request whose rest was never read: stop writing, then read and drop
/// what the client still sends (at most 64 KiB, 500 ms), so closing does not reset the
/// connection and destroy the answer before the client reads it.
fn linger(conn: &mut Conn) {
    if conn.shutdown_write().is_err() || conn.set_read_timeout(Duration::from_millis(500)).is_err()
    {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
