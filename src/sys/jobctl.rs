//! Job control for children in process groups of their own (rsync), as a shell does with a job:
//! Ctrl-Z (SIGTSTP) stops them together with this process, and they are continued only once
//! every run that holds locks has re-verified them.
//!
//! Why: rsync runs in its own process group (so a terminal's Ctrl-C does not hit it before the
//! runner can release locks in order), so a terminal's SIGTSTP stops only us. Without this,
//! heartbeats stop while rsync keeps writing, the lease expires on the other host, and both
//! sides copy.
//!
//! The protocol:
//! 1. SIGTSTP (a thread of [`install`]): every tracked group gets SIGSTOP, then this process
//!    stops itself with SIGSTOP.
//! 2. SIGCONT resumes us: the resume count (`epoch`) goes up. Every [`Gate`] (a run holding
//!    locks) must [`Gate::ack`] the new epoch after re-verifying its locks, and set its run's
//!    cancel flag first if one was lost.
//! 3. A tracked group is continued (SIGCONT) by its owner ([`Tracked::continue_if_verified`],
//!    polled by the rsync loop) once every gate has acknowledged and its own run was not
//!    cancelled; a cancelled run kills its stopped group instead.
//!
//! Must not: signal any group it was not handed by [`spawn_tracked`], or continue a group before
//! every gate has acknowledged.

use std::io;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use nix::sys::signal::{killpg, raise, Signal};
use nix::unistd::Pid;

#[derive(Default)]
struct Registry {
    /// Tracked process groups, and whether we stopped them.
    groups: Vec<(i32, bool)>,
    /// Per gate: the last epoch it acknowledged.
    gates: Vec<Arc<AtomicU64>>,
    /// How many times we were continued after stopping ourselves.
    epoch: u64,
    /// Between stopping the groups and the epoch going up.
    stopping: bool,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    let mut g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(Registry::default);
    g
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    f(registry().as_mut().expect("initialised"))
}

/// Handles SIGTSTP from now on (idempotent). Without it the default action stops only us.
pub fn install() -> io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        use signal_hook::consts::SIGTSTP;
        match signal_hook::iterator::Signals::new([SIGTSTP]) {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    for _ in signals.forever() {
                        stop_all_then_self();
                    }
                });
            }
            Err(e) => result = Err(e),
        }
    });
    result
}

/// Step 1 and 2 of the protocol (module doc).
fn stop_all_then_self() {
    with(|r| {
        r.stopping = true;
        for (pgid, stopped) in &mut r.groups {
            // The group's leader is unreaped while tracked (see `Tracked`), so the id is ours.
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGSTOP);
            *stopped = true;
        }
    });
    // Stops every thread of this process; returns once someone sends SIGCONT.
    let _ = raise(Signal::SIGSTOP);
    with(|r| {
        r.epoch += 1;
        r.stopping = false;
    });
}

/// Spawns `cmd` (which must start a new process group: `process_group(0)`) and tracks its
/// group. Spawning holds the registry, so a Ctrl-Z cannot fall between spawn and tracking.
/// Callers check [`verified`] first, so nothing new starts before the gates have verified.
pub fn spawn_tracked(cmd: &mut Command) -> io::Result<(Child, Tracked)> {
    let mut g = registry();
    let r = g.as_mut().expect("initialised");
    let child = cmd.spawn()?;
    let pgid = child.id() as i32;
    r.groups.push((pgid, false));
    Ok((child, Tracked { pgid }))
}

/// True when no Ctrl-Z is in progress and every gate has acknowledged the latest resume.
pub fn verified() -> bool {
    with(|r| !r.stopping && r.gates.iter().all(|a| a.load(Ordering::SeqCst) >= r.epoch))
}

/// A tracked process group; dropping it stops tracking. Drop it BEFORE reaping the leader.
#[derive(Debug)]
pub struct Tracked {
    pgid: i32,
}

impl Tracked {
    /// Continues the group if we stopped it and every gate has verified; returns whether the
    /// group is (now) running. Call only while the run is not cancelled.
    pub fn continue_if_verified(&self) -> bool {
        with(|r| {
            let ok = !r.stopping && r.gates.iter().all(|a| a.load(Ordering::SeqCst) >= r.epoch);
            let Some(entry) = r.groups.iter_mut().find(|(p, _)| *p == self.pgid) else {
                return true;
            };
            if entry.1 && ok {
                let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGCONT);
                entry.1 = false;
            }
            !entry.1
        })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        with(|r| r.groups.retain(|(p, _)| *p != self.pgid));
    }
}

/// A run that must re-verify its locks after every resume before any tracked group continues.
pub struct Gate {
    acked: Arc<AtomicU64>,
}

impl Gate {
    pub fn new() -> Gate {
        with(|r| {
            let acked = Arc::new(AtomicU64::new(r.epoch));
            r.gates.push(Arc::clone(&acked));
            Gate { acked }
        })
    }

    /// The resume to verify for, if one happened since the last [`Gate::ack`].
    pub fn pending(&self) -> Option<u64> {
        with(|r| (!r.stopping && self.acked.load(Ordering::SeqCst) < r.epoch).then_some(r.epoch))
    }

    /// Verified for resume `epoch` (its run's cancel flag is already set if a lock was lost).
    pub fn ack(&self, epoch: u64) {
        self.acked.fetch_max(epoch, Ordering::SeqCst);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        with(|r| r.gates.retain(|a| !Arc::ptr_eq(a, &self.acked)));
    }
}
