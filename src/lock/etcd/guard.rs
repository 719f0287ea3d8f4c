//! Watching a run's own etcd keys while it holds them, so that a key deleted (an operator's
//! `locks break`, or the lease's expiry) or put by someone else is noticed at once, and a hold
//! that cannot be proven is noticed too.
//!
//! One thread per key, in rounds: a Range (a linearizable read) proves the key is still ours
//! (our lease; for a lock key also our creation revision) at revision R, then a watch from R + 1
//! reports any change after it. The watch lasts one round (`round`), so even a stream that hangs
//! silently (a member cut off) is followed by a fresh Range soon. [`KeyGuard::unproven`] says
//! how long ago the oldest proof was *sent* (on `CLOCK_BOOTTIME`); whoever holds the guard
//! decides when that is too long, as with the lease.
//!
//! Fails closed: a key missing from a well-formed answer, or present with another lease or
//! creation revision, is broken; an error or an unreadable answer proves nothing (the clock
//! runs on).
//!
//! Must not: stop a run itself, or write or delete any key.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::client::parse_kv;
use super::{describe, holder_of_value, EtcdError, EtcdLocks, Kv};
use crate::sys::clock;

/// How a key stopped being the run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub key: String,
    /// "was deleted (...)" or "was taken by ...".
    pub how: String,
}

/// One key the run holds, and what makes it ours.
#[derive(Debug, Clone)]
pub struct Owned {
    pub key: String,
    /// A lock key's creation revision (the fencing token); slot keys: `None` (the lease decides).
    pub create_revision: Option<i64>,
}

struct Shared {
    stop: AtomicBool,
    broken: Mutex<Option<Broken>>,
    /// Per key: ms after `start` at which the last proof (a Range that found it ours) was sent.
    proven: Vec<AtomicU64>,
}

/// The watching threads of one run's keys. Dropping it stops them (each ends within a round).
pub struct KeyGuard {
    keys: Vec<Owned>,
    lease: i64,
    cluster: Arc<EtcdLocks>,
    start: Duration,
    shared: Arc<Shared>,
}

/// Whether `kvs` (a Range of `owned.key`) still shows the key as ours.
fn judge(owned: &Owned, lease: i64, kvs: &[Kv]) -> Option<Broken> {
    let how = match kvs.first() {
        None => DELETED.to_string(),
        Some(kv) if !is_ours(owned, lease, kv) => taken(kv),
        Some(_) => return None,
    };
    Some(Broken {
        key: owned.key.clone(),
        how,
    })
}

const DELETED: &str = "was deleted (an operator's `locks break`, or the lease expired)";

fn is_ours(owned: &Owned, lease: i64, kv: &Kv) -> bool {
    kv.lease == lease
        && owned
            .create_revision
            .is_none_or(|r| kv.create_revision == r)
}

fn taken(kv: &Kv) -> String {
    format!("was taken by {}", describe(&holder_of_value(&kv.value)))
}

/// Reads a watch stream of `owned.key` until a change that is not ours (returned) or its end.
fn scan_own(reader: impl Read, owned: &Owned, lease: i64) -> Option<Broken> {
    let stream = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
    for msg in stream {
        let msg = msg.ok()?;
        let r = msg.get("result").unwrap_or(&msg);
        if r.get("canceled").and_then(Value::as_bool) == Some(true) || msg.get("error").is_some() {
            return None;
        }
        for e in r
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let how = if e.get("type").and_then(Value::as_str) == Some("DELETE") {
                DELETED.to_string()
            } else {
                // A put: ours only with our lease (and creation revision); unreadable is not ours.
                match e.get("kv").and_then(parse_kv) {
                    Some(kv) if is_ours(owned, lease, &kv) => continue,
                    Some(kv) => taken(&kv),
                    None => "was changed (an event that cannot be read)".to_string(),
                }
            };
            return Some(Broken {
                key: owned.key.clone(),
                how,
            });
        }
    }
    None
}

impl KeyGuard {
    /// Starts watching `keys`, held under `lease`; every key counts as proven at `proven_at`
    /// (boottime when the check that took them was sent). A round lasts `round`.
    pub fn start(
        cluster: &Arc<EtcdLocks>,
        keys: Vec<Owned>,
        lease: i64,
        proven_at: Duration,
        round: Duration,
    ) -> KeyGuard {
        let start = proven_at;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            broken: Mutex::new(None),
            proven: keys.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        for (i, owned) in keys.iter().enumerate() {
            let (c, s, owned) = (Arc::clone(cluster), Arc::clone(&shared), owned.clone());
            let _ = std::thread::Builder::new()
                .name("etcd-keywatch".into())
                .spawn(move || watch_key(&c, &s, i, &owned, lease, start, round));
        }
        KeyGuard {
            keys,
            lease,
            cluster: Arc::clone(cluster),
            start,
            shared,
        }
    }

    /// The first key seen deleted or taken, if any.
    pub fn broken(&self) -> Option<Broken> {
        self.shared
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key proven longest ago, and how long ago that proof was sent.
    pub fn unproven(&self) -> Option<(&str, Duration)> {
        let now = clock::boottime().saturating_sub(self.start);
        self.keys
            .iter()
            .zip(&self.shared.proven)
            .map(|(k, p)| {
                let at = Duration::from_millis(p.load(Ordering::SeqCst));
                (k.key.as_str(), now.saturating_sub(at))
            })
            .max_by_key(|(_, d)| *d)
    }

    /// Proves every key ours now (after a stop, before rsync may continue).
    pub fn verify_now(&self) -> Result<Option<Broken>, EtcdError> {
        for (i, owned) in self.keys.iter().enumerate() {
            let sent = clock::boottime().saturating_sub(self.start);
            let (_, kvs) = self.cluster.client.range(&owned.key, None)?;
            if let Some(b) = judge(owned, self.lease, &kvs) {
                return Ok(Some(b));
            }
            self.shared.proven[i].fetch_max(sent.as_millis() as u64, Ordering::SeqCst);
        }
        Ok(None)
    }

    /// Stops watching (before the run deletes its own keys, which the watch would report).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One key's rounds: Range (proof), then a watch from the Range's revision + 1 for `round`.
fn watch_key(
    c: &EtcdLocks,
    s: &Shared,
    i: usize,
    owned: &Owned,
    lease: i64,
    start: Duration,
    round: Duration,
) {
    let stopped = || s.stop.load(Ordering::SeqCst);
    let report = |b: Broken| {
        if !stopped() {
            let mut g = s.broken.lock().unwrap_or_else(|e| e.into_inner());
            g.get_or_insert(b);
        }
    };
    let pause = || {
        let end = clock::boottime() + Duration::from_millis(500);
        while !stopped() && clock::boottime() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    while !stopped() {
        let sent = clock::boottime();
        let revision = match c.client.range(&owned.key, None) {
            Ok((revision, kvs)) => {
                if let Some(b) = judge(owned, lease, &kvs) {
                    return report(b);
                }
                let at = sent.saturating_sub(start).as_millis() as u64;
                s.proven[i].fetch_max(at, Ordering::SeqCst);
                revision
            }
            Err(_) => {
                pause();
                continue;
            }
        };
        if stopped() {
            return;
        }
        let opened = clock::boottime();
        match c.client.open_watch(&owned.key, None, revision + 1, round) {
            Ok(Some(reader)) => {
                if let Some(b) = scan_own(reader, owned, lease) {
                    return report(b);
                }
            }
            Ok(None) => {}
            Err(_) => pause(),
        }
        // A stream that failed at once is not a round: no busy loop against a failing member.
        if clock::boottime().saturating_sub(opened) < round / 2 {
            pause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned() -> Owned {
        Owned {
            key: "/bm/locks/h:/l".into(),
            create_revision: Some(7),
        }
    }

    fn kv(lease: i64, create_revision: i64) -> Kv {
        Kv {
            key: "/bm/locks/h:/l".into(),
            value: "junk".into(),
            create_revision,
            mod_revision: create_revision,
            lease,
        }
    }

    #[test]
    fn a_range_proves_only_our_lease_and_revision() {
        assert_eq!(judge(&owned(), 42, &[kv(42, 7)]), None);
        assert!(judge(&owned(), 42, &[]).unwrap().how.contains("deleted"));
        assert!(judge(&owned(), 42, &[kv(43, 9)])
            .unwrap()
            .how
            .contains("taken by"));
        // Same lease, other creation revision: deleted and put again, not the key we took.
        assert!(judge(&owned(), 42, &[kv(42, 9)]).is_some());
        let slot = Owned {
            key: "/bm/slots/s/2a".into(),
            create_revision: None,
        };
        assert_eq!(judge(&slot, 42, &[kv(42, 3)]), None);
    }

    #[test]
    fn the_stream_reports_a_delete_or_a_foreign_put_and_ignores_ours() {
        // key "/bm/locks/h:/l" and value "v", base64.
        let k = super::super::b64::encode(b"/bm/locks/h:/l");
        let v = super::super::b64::encode(b"v");
        let created = r#"{"result":{"header":{"revision":"8"},"created":true}}"#;
        let ours = format!(
            r#"{{"result":{{"events":[{{"kv":{{"key":"{k}","value":"{v}","create_revision":"7","mod_revision":"9","lease":"42"}}}}]}}}}"#
        );
        let theirs = ours.replace(r#""lease":"42""#, r#""lease":"43""#);
        let del =
            format!(r#"{{"result":{{"events":[{{"type":"DELETE","kv":{{"key":"{k}"}}}}]}}}}"#);
        let o = owned();
        assert_eq!(
            scan_own(format!("{created}\n{ours}\n").as_bytes(), &o, 42),
            None
        );
        let b = scan_own(format!("{created}\n{ours}\n{del}\n").as_bytes(), &o, 42).unwrap();
        assert!(b.how.contains("deleted"), "{b:?}");
        let b = scan_own(format!("{created}\n{theirs}\n").as_bytes(), &o, 42).unwrap();
        assert!(b.how.contains("taken by"), "{b:?}");
        let garbled = r#"{"result":{"events":[{"kv":{"key":"!!"}}]}}"#;
        assert!(scan_own(garbled.as_bytes(), &o, 42).is_some());
        // A cancelled or cut stream proves nothing and reports nothing: the next round reads.
        let cancel = r#"{"result":{"canceled":true,"compact_revision":"3"}}"#;
        assert_eq!(scan_own(cancel.as_bytes(), &o, 42), None);
        assert_eq!(scan_own(&b"{\"result\":"[..], &o, 42), None);
    }
}
