//! One run of one job: run lock → own locks → blockers → syncs → release. Returns a [`RunOutcome`].
//!
//! `run-job` and the daemon call [`run_job`], so a one-shot run takes the same locks, waits the
//! same way and logs the same fields as a scheduled one.
//!
//! The order of operations is what makes chained instances safe (see DESIGN.md, "Mutual
//! exclusion"): a run first *creates* its own lock files, atomically, and only then looks at its
//! blockers. If a blocker is present it releases what it just took, waits, and starts over. Two
//! instances that each lock X and block on the other's lock can therefore never both pass, even
//! when they start in the same instant: whichever created its lock second sees the first one's.
//! Check-then-create, as the original design had it, lets both through.
//!
//! Waiting re-checks every `wait_time` (plus up to 10% jitter so two waiters do not retry in
//! lock-step) and wakes early when a local blocker's directory reports a removal (inotify), so a
//! local hand-off takes milliseconds. Each new reason to wait is logged once, not on every poll.
//!
//! Every run also holds a kernel lock (`flock`) on `<pid_file_dir>/jobs/<id>.run`, so one job
//! never runs twice on a host, whoever started it. Own lock files are released on every path out
//! (success, failure, cancel, panic) by [`HeldLocks`]'s `Drop`, and only if their token is still
//! ours. While rsync runs a heartbeat refreshes their mtime; if a lock turns out to be gone or
//! taken over, the run stops rather than copy unprotected.
//!
//! The runner never reaches into the scheduler: it answers through its outcome.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tracing::{error, info, warn};

use crate::config::{Config, Job, Location, Remote, Sync};
use crate::lock::{self, Created, Identity, Observed, Place, Record, Verdict};
use crate::rsync::{self, ExitClass, RsyncCommand, RsyncStats, Stream};
use crate::ssh::{self, SshConfig, SshTarget};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    Success,
    /// A sync failed, a guard refused, or a lock could not be handled. The message says why.
    Failed(String),
    /// Blockers were still present at `max_wait` (or at once, with `--no-wait`).
    Blocked(String),
    /// Stopped from outside (signal, daemon shutdown).
    Cancelled,
}

/// What one sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub index: usize,
    pub exit_code: i32,
    pub attempts: u32,
    pub stats: Option<RsyncStats>,
    pub duration: Duration,
}

/// The answer a run gives its caller.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub job: String,
    pub run_id: String,
    pub result: RunResult,
    pub syncs: Vec<SyncReport>,
    /// Time spent waiting for blockers and the run lock.
    pub waited: Duration,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Report lock and blocker state without waiting or locking, then `rsync --dry-run`.
    pub dry_run: bool,
    /// End as blocked at once instead of waiting.
    pub no_wait: bool,
}

/// Interval for re-checking a busy run lock or a contended own lock when no blocker sets one.
const DEFAULT_RETRY: Duration = Duration::from_secs(60);
/// Longest pause between retries of a transiently failed sync.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs `job` once. `cancel` stops it (waiting or syncing) and releases its locks.
pub fn run_job(config: &Config, job: &Job, opts: RunOptions, cancel: &AtomicBool) -> RunOutcome {
    let started = Instant::now();
    let run_id = new_run_id();
    let span = tracing::info_span!("run", job_id = %job.id, run_id = %run_id);
    let _enter = span.enter();
    let _active = lock::register_run(&run_id);
    let mut run = Run {
        config,
        job,
        run_id: run_id.clone(),
        me: Identity::current(),
        cancel,
        ssh: ssh_config(config, job),
        waited: Duration::ZERO,
        syncs: Vec::new(),
    };
    let result = if opts.dry_run {
        run.dry_run()
    } else {
        run.real_run(opts.no_wait)
    };
    let outcome = RunOutcome {
        job: job.id.clone(),
        run_id,
        result,
        syncs: run.syncs,
        waited: run.waited,
        duration: started.elapsed(),
    };
    let ms = outcome.duration.as_millis() as u64;
    match &outcome.result {
        RunResult::Success => info!(
            phase = "end",
            result = "success",
            duration_ms = ms,
            "run succeeded"
        ),
        RunResult::Failed(m) => error!(
            phase = "end",
            result = "failed",
            duration_ms = ms,
            "run failed: {m}"
        ),
        RunResult::Blocked(m) => warn!(
            phase = "end",
            result = "blocked",
            duration_ms = ms,
            "run blocked: {m}"
        ),
        RunResult::Cancelled => warn!(
            phase = "end",
            result = "cancelled",
            duration_ms = ms,
            "run cancelled"
        ),
    }
    outcome
}

/// The ssh settings of a job, with ControlMaster sockets under the runtime directory.
pub fn ssh_config(config: &Config, job: &Job) -> SshConfig {
    SshConfig {
        identity_file: job.ssh.identity_file.clone(),
        known_hosts_file: job.ssh.known_hosts_file.clone(),
        extra_options: job.ssh.options.clone(),
        control_dir: Some(config.pid_file_dir.join("ssh")),
        ..SshConfig::default()
    }
}

fn target(r: &Remote) -> SshTarget {
    SshTarget {
        user: r.user.clone(),
        host: r.host.clone(),
        port: r.port,
    }
}

fn new_run_id() -> String {
    let now = jiff::Zoned::now();
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%S"), lock::random_hex(3))
}

struct Run<'a> {
    config: &'a Config,
    job: &'a Job,
    run_id: String,
    me: Identity,
    cancel: &'a AtomicBool,
    ssh: SshConfig,
    waited: Duration,
    syncs: Vec<SyncReport>,
}

/// Why an attempt could not proceed.
struct Blocked {
    /// Said once per distinct reason.
    reason: String,
    retry: Duration,
    /// The local file whose removal ends the wait early, if the obstacle is local.
    wake_on: Option<PathBuf>,
}

impl Run<'_> {
    fn place(&self, loc: &Location) -> Place {
        match loc {
            Location::Local => Place::Local,
            Location::Remote(r) => Place::Remote {
                target: target(r),
                ssh: self.ssh.clone(),
            },
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    fn prepare_runtime_dir(&self) -> Result<(), String> {
        let dir = &self.config.pid_file_dir;
        for d in [dir.join("jobs"), dir.join("ssh")] {
            fs::create_dir_all(&d)
                .map_err(|e| format!("cannot create runtime directory {}: {e}", d.display()))?;
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(dir.join("ssh"), fs::Permissions::from_mode(0o700));
        Ok(())
    }

    fn real_run(&mut self, no_wait: bool) -> RunResult {
        if let Err(e) = self.prepare_runtime_dir() {
            return RunResult::Failed(e);
        }
        let deadline = self.job.max_wait.map(|w| Instant::now() + w);
        let _run_lock = match self.take_run_lock(no_wait, deadline) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let mut held = match self.acquire(no_wait, deadline) {
            Ok(h) => h,
            Err(r) => return r,
        };
        let result = self.sync_all(&held);
        held.release();
        result
    }

    /// The per-job kernel lock: one run of a job per host.
    fn take_run_lock(
        &mut self,
        no_wait: bool,
        deadline: Option<Instant>,
    ) -> Result<fs::File, RunResult> {
        let path = self
            .config
            .pid_file_dir
            .join("jobs")
            .join(format!("{}.run", self.job.id));
        let file = fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                RunResult::Failed(format!("cannot open run lock {}: {e}", path.display()))
            })?;
        let mut logged = false;
        let wait_start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(RunResult::Failed(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let reason = format!(
                "another run of job {} is in progress on this host ({})",
                self.job.id,
                holder.trim()
            );
            if no_wait {
                return Err(RunResult::Blocked(reason));
            }
            if !logged {
                info!(phase = "wait", "waiting: {reason}");
                logged = true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RunResult::Blocked(format!("max_wait passed: {reason}")));
            }
            // A kernel lock has no inotify event; a one-second re-check is one cheap syscall.
            if sleep_cancellable(Duration::from_secs(1), self.cancel) {
                return Err(RunResult::Cancelled);
            }
        }
        self.waited += wait_start.elapsed();
        let _ = file.set_len(0);
        let _ = fs::write(&path, format!("pid {} run {}\n", self.me.pid, self.run_id));
        Ok(file)
    }

    /// Own locks first, then blockers; back off and retry while blocked.
    fn acquire(
        &mut self,
        no_wait: bool,
        deadline: Option<Instant>,
    ) -> Result<HeldLocks, RunResult> {
        let local_paths: Vec<&str> = self
            .job
            .lock_files
            .iter()
            .filter(|l| l.location == Location::Local)
            .map(|l| l.path.as_str())
            .chain(
                self.job
                    .blocks_on
                    .iter()
                    .filter(|b| b.location == Location::Local)
                    .map(|b| b.path.as_str()),
            )
            .collect();
        // Watch before the first check, so a removal between check and wait is not missed.
        let mut watcher = Watcher::new(&local_paths);
        let wait_start = Instant::now();
        let mut last_reason = String::new();
        loop {
            if self.cancelled() {
                return Err(RunResult::Cancelled);
            }
            if let Some(w) = watcher.as_mut() {
                w.drain();
            }
            let blocked = match self.attempt() {
                Ok(held) => {
                    self.waited += wait_start.elapsed();
                    return Ok(held);
                }
                Err(Attempt::Failed(m)) => return Err(RunResult::Failed(m)),
                Err(Attempt::Blocked(b)) => b,
            };
            if no_wait {
                return Err(RunResult::Blocked(blocked.reason));
            }
            if blocked.reason != last_reason {
                info!(
                    phase = "wait",
                    "waiting: {} (re-checking every {}s)",
                    blocked.reason,
                    blocked.retry.as_secs()
                );
                last_reason = blocked.reason.clone();
            }
            let now = Instant::now();
            let mut wait = blocked.retry + jitter(blocked.retry);
            if let Some(d) = deadline {
                if now >= d {
                    self.waited += wait_start.elapsed();
                    return Err(RunResult::Blocked(format!(
                        "still blocked after max_wait ({}): {}",
                        crate::config::duration::format(self.job.max_wait.unwrap_or_default()),
                        blocked.reason
                    )));
                }
                wait = wait.min(d - now);
            }
            let cancelled = match (watcher.as_mut(), &blocked.wake_on) {
                (Some(w), Some(path)) => w.wait(wait, path, self.cancel),
                _ => sleep_cancellable(wait, self.cancel),
            };
            if cancelled {
                return Err(RunResult::Cancelled);
            }
        }
    }

    /// One pass: create every own lock, then check every blocker. On any obstacle, everything
    /// taken in this pass is released before returning.
    fn attempt(&mut self) -> Result<HeldLocks, Attempt> {
        let mut held = HeldLocks::default();
        let retry_default = self
            .job
            .blocks_on
            .iter()
            .map(|b| b.wait_time)
            .min()
            .unwrap_or(DEFAULT_RETRY);
        for l in &self.job.lock_files {
            let place = self.place(&l.location);
            let record = Record::new(&self.me, &self.job.id, &self.run_id, self.job.stale_after);
            // A stale lock is broken and creation tried once more; a second clash is a live race.
            for _ in 0..2 {
                match place.create(&l.path, &record) {
                    Ok(Created::Yes) => {
                        info!(phase = "lock", "lock taken: {} on {}", l.path, place);
                        held.push(place.clone(), l.path.clone(), record.token.clone());
                        break;
                    }
                    Ok(Created::Exists(None)) => continue,
                    Ok(Created::Exists(Some(obs))) => match self.judge(&place, &obs, None) {
                        Verdict::Stale(why) => {
                            self.break_stale(&place, &l.path, &obs, &why)
                                .map_err(Attempt::Failed)?;
                        }
                        Verdict::Live => {
                            return Err(Attempt::Blocked(Blocked {
                                reason: format!(
                                    "own lock file {} on {} is held by {}",
                                    l.path, place, obs
                                ),
                                retry: retry_default,
                                wake_on: local_path(&l.location, &l.path),
                            }));
                        }
                    },
                    Err(e) => return Err(Attempt::Failed(format!("cannot take lock: {e}"))),
                }
            }
            if !held.holds(&l.path) {
                return Err(Attempt::Blocked(Blocked {
                    reason: format!("own lock file {} on {} keeps changing hands", l.path, place),
                    retry: retry_default,
                    wake_on: local_path(&l.location, &l.path),
                }));
            }
        }
        for b in &self.job.blocks_on {
            let place = self.place(&b.location);
            let obs = match place.observe(&b.path) {
                Ok(None) => continue,
                Ok(Some(o)) => o,
                Err(e) => return Err(Attempt::Failed(format!("cannot check blocker: {e}"))),
            };
            match self.judge(&place, &obs, b.stale_after) {
                Verdict::Live => {
                    return Err(Attempt::Blocked(Blocked {
                        reason: format!("blocker {} on {} is held by {}", b.path, place, obs),
                        retry: b.wait_time,
                        wake_on: local_path(&b.location, &b.path),
                    }));
                }
                Verdict::Stale(why) => {
                    if matches!(obs.holder, lock::Holder::Ours(_)) {
                        self.break_stale(&place, &b.path, &obs, &why)
                            .map_err(Attempt::Failed)?;
                    } else {
                        warn!(
                            phase = "lock",
                            "ignoring blocker {} on {}: {} ({why}); it is not ours, so it stays",
                            b.path,
                            place,
                            obs
                        );
                    }
                }
            }
        }
        Ok(held)
    }

    fn judge(
        &self,
        place: &Place,
        obs: &Observed,
        foreign_stale_after: Option<Duration>,
    ) -> Verdict {
        lock::judge(
            obs,
            &self.me,
            place.is_local(),
            self.job.stale_after,
            foreign_stale_after,
        )
    }

    /// Removes an abandoned backupmanager lock, only if it is still the one we judged.
    fn break_stale(
        &self,
        place: &Place,
        path: &str,
        obs: &Observed,
        why: &str,
    ) -> Result<(), String> {
        let lock::Holder::Ours(rec) = &obs.holder else {
            return Ok(());
        };
        match place.remove_if_token(path, &rec.token) {
            Ok(true) => {
                warn!(
                    phase = "lock",
                    "removed stale lock {} on {} left by {}: {why}", path, place, obs
                );
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(format!("cannot remove stale lock: {e}")),
        }
    }

    fn dry_run(&mut self) -> RunResult {
        let own = self
            .job
            .lock_files
            .iter()
            .map(|l| ("lock", &l.location, &l.path, None));
        let blockers = self
            .job
            .blocks_on
            .iter()
            .map(|b| ("blocker", &b.location, &b.path, b.stale_after));
        for (what, location, path, stale_after) in own.chain(blockers) {
            let place = self.place(location);
            match place.observe(path) {
                Ok(None) => info!(phase = "dry-run", "{what} {path} on {place}: absent"),
                Ok(Some(o)) => info!(
                    phase = "dry-run",
                    "{what} {path} on {place}: present, held by {o} ({:?})",
                    self.judge(&place, &o, stale_after)
                ),
                Err(e) => return RunResult::Failed(format!("cannot check {what}: {e}")),
            }
        }
        self.run_syncs(true)
    }

    /// Runs the syncs while a heartbeat keeps the held locks fresh. A lock that is no longer ours
    /// stops the run through its cancel flag (each run has its own).
    fn sync_all(&mut self, held: &HeldLocks) -> RunResult {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let lost = AtomicBool::new(false);
        let heartbeat = self.job.lock_heartbeat;
        let cancel = self.cancel;
        std::thread::scope(|s| {
            if !held.locks.is_empty() {
                let lost = &lost;
                s.spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(heartbeat) {
                        for (place, path, token) in &held.locks {
                            match place.touch_if_token(path, token) {
                                Ok(true) => {}
                                Ok(false) => {
                                    error!(phase = "lock", "lock {path} on {place} is no longer ours; stopping the run");
                                    lost.store(true, Ordering::SeqCst);
                                    cancel.store(true, Ordering::SeqCst);
                                }
                                Err(e) => warn!(phase = "lock", "cannot refresh lock {path} on {place}: {e}"),
                            }
                        }
                    }
                });
            }
            let result = self.run_syncs(false);
            drop(stop_tx);
            if lost.load(Ordering::SeqCst) {
                return RunResult::Failed(
                    "a lock file of this run was removed or taken over while it ran".into(),
                );
            }
            result
        })
    }

    fn run_syncs(&mut self, dry_run: bool) -> RunResult {
        for (i, sync) in self.job.syncs.iter().enumerate() {
            if self.cancelled() {
                return RunResult::Cancelled;
            }
            if let Err(m) = empty_source_guard(sync) {
                return RunResult::Failed(format!("sync {i}: {m}"));
            }
            if let Err(r) = self.run_one(i, sync, dry_run) {
                return r;
            }
        }
        RunResult::Success
    }

    fn run_one(&mut self, i: usize, sync: &Sync, dry_run: bool) -> Result<(), RunResult> {
        let mut cmd = RsyncCommand::new(sync.source.clone(), sync.dest.clone());
        cmd.opts = sync.args.clone();
        cmd.dry_run = dry_run;
        // On shutdown rsync gets SIGTERM and most of shutdown_timeout before SIGKILL; the rest
        // is left for releasing lock files.
        cmd.cancel_grace = self
            .config
            .shutdown_timeout
            .saturating_sub(Duration::from_secs(5))
            .max(Duration::from_secs(2));
        if let Some(r) = &self.job.remote {
            let t = target(r);
            cmd.rsh = Some(ssh::rsync_rsh(&t, &self.ssh));
            cmd.dest = t.rsync_location(&sync.dest);
            // Send the remote path inside the rsync protocol, not on the remote shell's command
            // line: rsync 3.2.7's default escaping leaves backticks alone, so a dest containing
            // `cmd` would run cmd on the remote host.
            cmd.extra.push("--protect-args".into());
        }
        let max_attempts = self.job.retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            info!(
                phase = "sync",
                sync = i,
                "sync {i} starting: {} -> {}{}",
                cmd.source,
                cmd.dest,
                if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                }
            );
            let result = rsync::run(&cmd, |stream, line| log_line(i, stream, line), self.cancel);
            let res = match result {
                Ok(r) => r,
                Err(rsync::RsyncError::Cancelled { .. }) => return Err(RunResult::Cancelled),
                Err(e) => return Err(RunResult::Failed(format!("sync {i}: {e}"))),
            };
            let ms = res.duration.as_millis() as u64;
            let report = SyncReport {
                index: i,
                exit_code: res.exit_code,
                attempts: attempt,
                stats: res.stats.clone(),
                duration: res.duration,
            };
            match res.class {
                ExitClass::Ok | ExitClass::Vanished => {
                    let (files, bytes) = res
                        .stats
                        .as_ref()
                        .map_or((0, 0), |s| (s.files_transferred, s.total_size));
                    if res.class == ExitClass::Vanished {
                        warn!(phase = "sync", sync = i, exit_code = 24, "sync {i}: some source files vanished during the transfer (normal for live data)");
                    }
                    info!(
                        phase = "sync",
                        sync = i,
                        result = "ok",
                        exit_code = res.exit_code,
                        duration_ms = ms,
                        files,
                        bytes,
                        "sync {i} done: {files} file(s) transferred, {bytes} bytes in the tree"
                    );
                    self.syncs.push(report);
                    return Ok(());
                }
                ExitClass::Transient(code) if attempt < max_attempts => {
                    let backoff = (Duration::from_secs(5) * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
                    warn!(
                        phase = "sync",
                        sync = i,
                        exit_code = code,
                        "sync {i} failed transiently: {}; retrying in {}s",
                        res.message(),
                        backoff.as_secs()
                    );
                    if sleep_cancellable(backoff, self.cancel) {
                        return Err(RunResult::Cancelled);
                    }
                }
                _ => {
                    self.syncs.push(report);
                    let hint = if res.exit_code == 255 {
                        format!("\nthe connection to {} failed; check that its sshd runs and is reachable", self.job.remote.as_ref().map(|r| r.to_string()).unwrap_or_default())
                    } else {
                        String::new()
                    };
                    // Name the host whatever the code: a failed ssh may also surface as 12.
                    let on = self
                        .job
                        .remote
                        .as_ref()
                        .map(|r| format!(" on {r}"))
                        .unwrap_or_default();
                    return Err(RunResult::Failed(format!(
                        "sync {i} ({} -> {}{on}) failed after {attempt} attempt(s): {}{hint}",
                        sync.source,
                        sync.dest,
                        res.message()
                    )));
                }
            }
        }
    }
}

enum Attempt {
    Blocked(Blocked),
    Failed(String),
}

fn local_path(loc: &Location, path: &str) -> Option<PathBuf> {
    (*loc == Location::Local).then(|| PathBuf::from(path))
}

fn log_line(sync: usize, stream: Stream, line: &str) {
    match stream {
        // The --stats block is parsed into the sync summary; keep it out of the info log.
        Stream::Stdout if line.trim().is_empty() || RsyncStats::default().parse_line(line) => {
            tracing::debug!(phase = "rsync", sync, channel = "stdout", "{line}")
        }
        Stream::Stdout => info!(phase = "rsync", sync, channel = "stdout", "{line}"),
        Stream::Stderr => warn!(phase = "rsync", sync, channel = "stderr", "{line}"),
    }
}

/// A `--delete` sync whose local source is missing or empty would wipe the destination: an
/// unmounted disk looks exactly like that. Refuse unless the sync allows it.
fn empty_source_guard(sync: &Sync) -> Result<(), String> {
    if !sync.deletes() || sync.allow_empty_source {
        return Ok(());
    }
    let p = Path::new(&sync.source);
    let problem = match fs::metadata(p) {
        Err(_) => Some("does not exist"),
        Ok(m) if m.is_dir() => match fs::read_dir(p) {
            Ok(mut entries) => entries.next().is_none().then_some("is empty"),
            Err(_) => Some("cannot be read"),
        },
        Ok(_) => None,
    };
    match problem {
        None => Ok(()),
        Some(what) => Err(format!(
            "refusing to run: source {} {what} and the sync has --delete, which would delete everything at the destination (an unmounted disk looks like this); mount the source, or set `allow_empty_source: true` on the sync if this is intended",
            sync.source
        )),
    }
}

/// Up to 10% of `d`, random, so two waiters do not retry in lock-step.
fn jitter(d: Duration) -> Duration {
    let r = u64::from_str_radix(&lock::random_hex(4), 16).unwrap_or(0);
    let max_ms = (d.as_millis() / 10) as u64;
    if max_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(r % (max_ms + 1))
}

/// Sleeps up to `d`; returns true early if `cancel` is set.
fn sleep_cancellable(d: Duration, cancel: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// Lock files taken by this run. Dropping releases them (only those still carrying our token).
#[derive(Default)]
pub struct HeldLocks {
    locks: Vec<(Place, String, String)>,
}

impl HeldLocks {
    fn push(&mut self, place: Place, path: String, token: String) {
        self.locks.push((place, path, token));
    }

    fn holds(&self, path: &str) -> bool {
        self.locks.iter().any(|(_, p, _)| p == path)
    }

    /// Releases in reverse order of taking.
    pub fn release(&mut self) {
        while let Some((place, path, token)) = self.locks.pop() {
            match place.remove_if_token(&path, &token) {
                Ok(true) => info!(phase = "lock", "lock released: {path} on {place}"),
                Ok(false) => warn!(phase = "lock", "lock {path} on {place} was no longer ours; left it alone"),
                Err(e) => error!(phase = "lock", "could not release lock {path} on {place}: {e}; it expires when its lease runs out"),
            }
        }
    }
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        self.release();
    }
}

/// Wakes a waiter early when something is removed or renamed in the directory of a local lock
/// or blocker.
struct Watcher {
    inotify: Inotify,
    /// Each watched directory with its watch descriptor.
    dirs: Vec<(WatchDescriptor, PathBuf)>,
}

impl Watcher {
    fn new(paths: &[&str]) -> Option<Watcher> {
        if paths.is_empty() {
            return None;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let mut dirs: Vec<(WatchDescriptor, PathBuf)> = Vec::new();
        for p in paths {
            let Some(dir) = Path::new(p).parent() else {
                continue;
            };
            if !dirs.iter().any(|(_, w)| w == dir) {
                // A missing directory cannot hold a blocker yet; polling covers it appearing.
                if let Ok(wd) = inotify.add_watch(
                    dir,
                    AddWatchFlags::IN_DELETE
                        | AddWatchFlags::IN_MOVED_FROM
                        | AddWatchFlags::IN_DELETE_SELF,
                ) {
                    dirs.push((wd, dir.to_path_buf()));
                }
            }
        }
        Some(Watcher { inotify, dirs })
    }

    fn drain(&mut self) {
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }

    /// Waits up to `d` or until `path` (or its directory) is removed. Returns true if cancelled.
    ///
    /// Only the removal of the file that blocked us counts: the run's own locks, released just
    /// before waiting, are in watched directories too, and waking on those would turn the wait
    /// into a busy loop of take-and-release.
    fn wait(&mut self, d: Duration, path: &Path, cancel: &AtomicBool) -> bool {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return sleep_cancellable(d, cancel);
        };
        let Some(wd) = self.dirs.iter().find(|(_, w)| w == dir).map(|(wd, _)| *wd) else {
            return sleep_cancellable(d, cancel);
        };
        let end = Instant::now() + d;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            // Slices of at most 250 ms keep a cancel prompt without a signal pipe.
            let slice = (end - now).min(Duration::from_millis(250));
            let timeout =
                PollTimeout::try_from(slice.as_millis() as i32).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            if matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0) {
                if let Ok(events) = self.inotify.read_events() {
                    if events.iter().any(|e| {
                        e.wd == wd
                            && (e.mask.contains(AddWatchFlags::IN_DELETE_SELF)
                                || e.name.as_deref() == Some(name))
                    }) {
                        return false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(source: &str, args: &[&str], allow: bool) -> Sync {
        Sync {
            source: source.into(),
            dest: "/nonexistent-dest/".into(),
            opts: vec![],
            args: args.iter().map(|s| s.to_string()).collect(),
            allow_empty_source: allow,
            span: crate::config::Span::new(Path::new("t"), 1, 1, 1),
        }
    }

    #[test]
    fn empty_source_guard_refuses_only_deleting_syncs() {
        let d = std::env::temp_dir().join(format!("bm-guard-{}", lock::random_hex(4)));
        fs::create_dir_all(&d).unwrap();
        let src = format!("{}/", d.display());
        assert!(empty_source_guard(&sync(&src, &["-a", "--delete"], false))
            .unwrap_err()
            .contains("is empty"));
        assert!(
            empty_source_guard(&sync("/nonexistent-src/", &["--delete-after"], false))
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(empty_source_guard(&sync(&src, &["-a"], false)).is_ok());
        assert!(empty_source_guard(&sync(&src, &["--delete"], true)).is_ok());
        fs::write(d.join("f"), "x").unwrap();
        assert!(empty_source_guard(&sync(&src, &["--delete"], false)).is_ok());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..200 {
            assert!(jitter(Duration::from_secs(300)) <= Duration::from_secs(30));
        }
        assert_eq!(jitter(Duration::from_millis(5)), Duration::ZERO);
    }
}
