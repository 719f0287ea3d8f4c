//! One run's etcd lease, kept alive by its own thread from grant to revoke, with the time of the
//! last confirmed renewal on a clock that counts suspend (`CLOCK_BOOTTIME`).
//!
//! A renewal counts from when it was *sent*: the leader extended the lease no earlier, so the
//! lease lasts at least `ttl` past that instant. Whoever holds the lease decides what to do when
//! confirmations stop ([`Lease::unconfirmed_for`]) or etcd says the lease is gone
//! ([`Lease::gone`]).
//!
//! Must not: stop a run itself or touch keys.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{EtcdError, EtcdLocks};
use crate::sys::clock;

#[derive(Default)]
struct Shared {
    /// ms after `start` at which the last confirmed renewal was sent.
    confirmed: AtomicU64,
    gone: AtomicBool,
    stop: Mutex<bool>,
    cv: Condvar,
}

/// A granted lease and its keep-alive thread. Dropping it stops the thread and revokes it.
pub struct Lease {
    pub id: i64,
    pub ttl: Duration,
    cluster: Arc<EtcdLocks>,
    start: Duration,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Lease {
    pub fn grant(cluster: &Arc<EtcdLocks>) -> Result<Lease, EtcdError> {
        let start = clock::boottime();
        let ttl = cluster.lease_ttl;
        let id = cluster.client.grant(ttl)?;
        let shared = Arc::new(Shared::default());
        let (c, s) = (Arc::clone(cluster), Arc::clone(&shared));
        let every = (ttl / 3).max(Duration::from_millis(500));
        let thread = std::thread::Builder::new()
            .name("etcd-keepalive".into())
            .spawn(move || {
                let mut next = every;
                loop {
                    {
                        let g = s.stop.lock().unwrap_or_else(|e| e.into_inner());
                        let (g, _) =
                            s.cv.wait_timeout_while(g, next, |stop| !*stop)
                                .unwrap_or_else(|e| e.into_inner());
                        if *g {
                            return;
                        }
                    }
                    let sent = clock::boottime().saturating_sub(start).as_millis() as u64;
                    match c.client.keep_alive(id) {
                        Ok(left) if left > 0 => {
                            s.confirmed.fetch_max(sent, Ordering::SeqCst);
                            next = every;
                        }
                        Ok(_) => {
                            s.gone.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => next = Duration::from_millis(500),
                    }
                }
            })
            .ok();
        Ok(Lease {
            id,
            ttl,
            cluster: Arc::clone(cluster),
            start,
            shared,
            thread,
        })
    }

    /// True once etcd said the lease no longer exists.
    pub fn gone(&self) -> bool {
        self.shared.gone.load(Ordering::SeqCst)
    }

    /// How long since the last confirmed renewal was sent (the grant counts as one).
    pub fn unconfirmed_for(&self) -> Duration {
        let now = clock::boottime().saturating_sub(self.start);
        now.saturating_sub(Duration::from_millis(
            self.shared.confirmed.load(Ordering::SeqCst),
        ))
    }

    /// Renews the lease now (after a stop, before rsync may continue). Returns false when etcd
    /// says it is gone.
    pub fn renew_now(&self) -> Result<bool, EtcdError> {
        let sent = clock::boottime().saturating_sub(self.start).as_millis() as u64;
        let left = self.cluster.client.keep_alive(self.id)?;
        if left > 0 {
            self.shared.confirmed.fetch_max(sent, Ordering::SeqCst);
            Ok(true)
        } else {
            self.shared.gone.store(true, Ordering::SeqCst);
            Ok(false)
        }
    }

    /// Stops the keep-alive and revokes the lease (its remaining keys go with it).
    pub fn revoke(mut self) -> Result<(), EtcdError> {
        self.stop();
        self.cluster.client.revoke(self.id)
    }

    fn stop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
            let _ = self.cluster.client.revoke(self.id);
        }
    }
}
